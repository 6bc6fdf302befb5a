//! `TransformRequest`: what a caller asks for, validated when it is built.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use url::Url;

use super::canonical::write_canonical;

/// The upstream arguments the request names itself; `extra` must not redefine them.
pub const NAMED_UPSTREAM_ARGS: [&str; 6] = [
    "reference_video_url",
    "model",
    "duration",
    "seed",
    "resolution",
    "prompt",
];

pub(super) const FIELDS: [&str; 11] = [
    "reference_video_url",
    "model",
    "duration",
    "seed",
    "resolution",
    "prompt",
    "extra",
    "callback_url",
    "metadata",
    "reuse",
    "priority",
];
const MAX_URL_CHARS: usize = 2048;
const MAX_PROMPT_CHARS: usize = 500;
pub(super) const MAX_METADATA_ENTRIES: usize = 32;
const MAX_METADATA_KEY_CHARS: usize = 64;
const MAX_METADATA_VALUE_CHARS: usize = 512;
const DEFAULT_DURATION_S: u32 = 5;
const DURATIONS_S: std::ops::RangeInclusive<i64> = 3..=30;

/// Why a request was refused: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {field}: {reason}")]
pub struct ValidationError {
    /// The field at fault, e.g. `model`, `extra.seed` or `metadata.team`.
    pub field: String,
    /// What is wrong with it, for a human.
    pub reason: String,
}

impl ValidationError {
    pub(super) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The output resolution upstream renders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resolution {
    /// 960×540.
    #[serde(rename = "540p")]
    P540,
    /// 1280×720, the default.
    #[default]
    #[serde(rename = "720p")]
    P720,
}

impl Resolution {
    /// The upstream spelling: `540p` or `720p`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Resolution::P540 => "540p",
            Resolution::P720 => "720p",
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resolution {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "540p" => Ok(Resolution::P540),
            "720p" => Ok(Resolution::P720),
            _ => Err(ValidationError::new(
                "resolution",
                "must be `540p` or `720p`",
            )),
        }
    }
}

/// Order of a tenant's jobs waiting for submission: every `high` job goes before any
/// `normal` one, every `normal` before any `low` (among one tenant's jobs only: tenants share
/// submissions fairly whatever their priorities).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// First.
    High,
    /// The default.
    #[default]
    Normal,
    /// Last.
    Low,
}

impl Priority {
    /// `high`, `normal` or `low`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl FromStr for Priority {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            _ => Err(ValidationError::new(
                "priority",
                "must be `high`, `normal` or `low`",
            )),
        }
    }
}

/// The unvalidated fields of a request, as a Rust caller fills them in; every field is
/// optional here and [`TransformRequest::try_from`] checks them and fills in the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformRequestInput {
    /// Required: absolute `https://` URL of the source video.
    pub reference_video_url: Option<String>,
    /// Required: the upstream style id, a positive integer.
    pub model: Option<i64>,
    /// Seconds of video, 3 to 30; default 5.
    pub duration: Option<i64>,
    /// Upstream seed; -1 (the default) asks for a random one.
    pub seed: Option<i64>,
    /// `540p` or `720p` (the default).
    pub resolution: Option<String>,
    /// Text prompt, at most 500 characters.
    pub prompt: Option<String>,
    /// Further upstream arguments, passed through untouched.
    pub extra: Option<Map<String, Value>>,
    /// Where to send the terminal event: absolute `http(s)://` URL.
    pub callback_url: Option<String>,
    /// The caller's own labels: at most 32, keys ≤ 64 characters, values ≤ 512.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Whether an identical earlier result may be reused; default true.
    pub reuse: Option<bool>,
    /// `high`, `normal` (the default) or `low`: order among the tenant's waiting jobs.
    pub priority: Option<String>,
}

/// A validated video-to-video request. It can only be built through validation
/// ([`TryFrom<TransformRequestInput>`], [`TryFrom<serde_json::Value>`], serde or
/// [`TransformRequest::from_json`]), so holding one means every field is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct TransformRequest {
    reference_video_url: Url,
    model: u32,
    duration: u32,
    seed: i64,
    resolution: Resolution,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    extra: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<Url>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
    reuse: bool,
    #[serde(skip_serializing_if = "is_normal")]
    priority: Priority,
}

fn is_normal(p: &Priority) -> bool {
    *p == Priority::Normal
}

impl TransformRequest {
    /// A request with the two required fields and every default.
    pub fn new(reference_video_url: &str, model: i64) -> Result<Self, ValidationError> {
        Self::try_from(TransformRequestInput {
            reference_video_url: Some(reference_video_url.to_owned()),
            model: Some(model),
            ..TransformRequestInput::default()
        })
    }

    /// Parses and validates a JSON request body; the error names the field at fault.
    pub fn from_json(body: &[u8]) -> Result<Self, ValidationError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ValidationError::new("request", format!("not valid JSON: {e}")))?;
        Self::try_from(value)
    }

    /// The source video.
    #[must_use]
    pub fn reference_video_url(&self) -> &Url {
        &self.reference_video_url
    }
    /// The upstream style id.
    #[must_use]
    pub fn model(&self) -> u32 {
        self.model
    }
    /// Seconds of video to generate.
    #[must_use]
    pub fn duration(&self) -> u32 {
        self.duration
    }
    /// The upstream seed (-1 = random).
    #[must_use]
    pub fn seed(&self) -> i64 {
        self.seed
    }
    /// The output resolution.
    #[must_use]
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }
    /// The prompt, when one was given.
    #[must_use]
    pub fn prompt(&self) -> Option<&str> {
        self.prompt.as_deref()
    }
    /// Further upstream arguments, passed through untouched.
    #[must_use]
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    /// Where to deliver the terminal event, if anywhere.
    #[must_use]
    pub fn callback_url(&self) -> Option<&Url> {
        self.callback_url.as_ref()
    }
    /// The caller's labels.
    #[must_use]
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
    /// Whether an identical earlier result may be reused.
    #[must_use]
    pub fn reuse(&self) -> bool {
        self.reuse
    }
    /// Order among the tenant's jobs waiting for submission.
    #[must_use]
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// Checks `callback_url` as the workers will before they send (scheme, IP literals and
    /// `localhost` against `policy`), so a URL they would refuse is refused at enqueue,
    /// naming `callback_url`. The host's DNS answers are checked again at every send.
    pub fn check_callback(&self, policy: &crate::CallbackPolicy) -> Result<(), ValidationError> {
        match &self.callback_url {
            Some(url) => policy
                .check_url(url)
                .map(drop)
                .map_err(|refused| ValidationError::new("callback_url", refused.to_string())),
            None => Ok(()),
        }
    }

    /// The `args` object sent upstream: the named arguments plus `extra`.
    #[must_use]
    pub fn upstream_args(&self) -> Map<String, Value> {
        let mut args = self.extra.clone();
        args.insert(
            "reference_video_url".into(),
            self.reference_video_url.as_str().into(),
        );
        args.insert("model".into(), self.model.into());
        args.insert("duration".into(), self.duration.into());
        args.insert("seed".into(), self.seed.into());
        args.insert("resolution".into(), self.resolution.as_str().into());
        if let Some(prompt) = &self.prompt {
            args.insert("prompt".into(), prompt.as_str().into());
        }
        args
    }

    /// The upstream arguments as stable JSON: keys sorted at every depth, no whitespace.
    /// Two requests asking upstream for the same work give the same text.
    #[must_use]
    pub fn canonical_upstream_args(&self) -> String {
        let mut out = String::new();
        write_canonical(&Value::Object(self.upstream_args()), &mut out);
        out
    }

    /// Lowercase hex sha256 of [`Self::canonical_upstream_args`]: the key for reusing
    /// identical work.
    #[must_use]
    pub fn upstream_args_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_upstream_args().as_bytes()))
    }
}

impl TryFrom<TransformRequestInput> for TransformRequest {
    type Error = ValidationError;

    fn try_from(input: TransformRequestInput) -> Result<Self, Self::Error> {
        let url = input
            .reference_video_url
            .ok_or_else(|| ValidationError::new("reference_video_url", "is required"))?;
        let reference_video_url = parse_url("reference_video_url", &url, &["https"])?;

        let model = input
            .model
            .ok_or_else(|| ValidationError::new("model", "is required"))?;
        let model = u32::try_from(model)
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| ValidationError::new("model", "must be a positive integer"))?;

        let duration = match input.duration {
            None => DEFAULT_DURATION_S,
            Some(d) if DURATIONS_S.contains(&d) => d as u32,
            Some(_) => return Err(ValidationError::new("duration", "must be 3 to 30 seconds")),
        };

        let seed = input.seed.unwrap_or(-1);
        if seed < -1 {
            return Err(ValidationError::new(
                "seed",
                "must be -1 (random) or a non-negative integer",
            ));
        }

        let resolution = match input.resolution {
            None => Resolution::default(),
            Some(r) => r.parse()?,
        };

        let prompt = input.prompt.filter(|p| !p.is_empty());
        if prompt
            .as_ref()
            .is_some_and(|p| p.chars().count() > MAX_PROMPT_CHARS)
        {
            return Err(ValidationError::new(
                "prompt",
                "must be at most 500 characters",
            ));
        }

        let extra = input.extra.unwrap_or_default();
        if let Some(name) = NAMED_UPSTREAM_ARGS.iter().find(|n| extra.contains_key(**n)) {
            return Err(ValidationError::new(
                format!("extra.{name}"),
                format!("redefines a named argument; set `{name}` at the top level"),
            ));
        }

        let callback_url = input
            .callback_url
            .map(|u| parse_url("callback_url", &u, &["http", "https"]))
            .transpose()?;

        let metadata = input.metadata.unwrap_or_default();
        check_metadata(&metadata)?;

        Ok(Self {
            reference_video_url,
            model,
            duration,
            seed,
            resolution,
            prompt,
            extra,
            callback_url,
            metadata,
            reuse: input.reuse.unwrap_or(true),
            priority: input
                .priority
                .as_deref()
                .map(str::parse)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

fn parse_url(field: &str, text: &str, schemes: &[&str]) -> Result<Url, ValidationError> {
    let wanted = if schemes == ["https"] {
        "must be an absolute https URL"
    } else {
        "must be an absolute http(s) URL"
    };
    if text.chars().count() > MAX_URL_CHARS {
        return Err(ValidationError::new(
            field,
            "must be at most 2048 characters",
        ));
    }
    let url = Url::parse(text).map_err(|_| ValidationError::new(field, wanted))?;
    if !schemes.contains(&url.scheme()) || url.host_str().is_none_or(str::is_empty) {
        return Err(ValidationError::new(field, wanted));
    }
    Ok(url)
}

fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(ValidationError::new(
            "metadata",
            "must have at most 32 entries",
        ));
    }
    for (key, value) in metadata {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_METADATA_KEY_CHARS {
            return Err(ValidationError::new(
                "metadata",
                "keys must be 1 to 64 characters",
            ));
        }
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(ValidationError::new(
                format!("metadata.{key}"),
                "must be at most 512 characters",
            ));
        }
    }
    Ok(())
}
