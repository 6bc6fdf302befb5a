//! Request and reply types of the GoEnhanceAI API.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The job type of video-to-video generation.
pub const MX_V2V: &str = "mx-v2v";

/// The body of `POST /api/v1/video2video/generate`: `{"type": "mx-v2v", "args": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The job type, [`MX_V2V`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The generation arguments.
    pub args: GenerateArgs,
}

impl GenerateRequest {
    /// A video-to-video request with these arguments.
    pub fn new(args: GenerateArgs) -> Self {
        Self {
            kind: MX_V2V.to_owned(),
            args,
        }
    }
}

/// The `args` of a generation. Fields the upstream adds later go through `extra` untouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateArgs {
    /// https URL of the source video (MP4/MOV, documented max 50 MB).
    pub reference_video_url: String,
    /// Style id, e.g. 2000 (see [`crate::Client::model_list`]).
    pub model: i64,
    /// Seconds of output, 3–30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
    /// Seed; -1 asks for a random one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// `"540p"` or `"720p"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Optional text prompt, ≤ 500 chars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Any other argument, sent as given. Do not repeat a field named above here: the body
    /// would carry the key twice.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl GenerateArgs {
    /// Arguments with the two required fields and nothing else.
    pub fn new(reference_video_url: impl Into<String>, model: i64) -> Self {
        Self {
            reference_video_url: reference_video_url.into(),
            model,
            duration: None,
            seed: None,
            resolution: None,
            prompt: None,
            extra: Map::new(),
        }
    }
}

/// What `generate` returns: the upstream job id and what the upstream said it costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// The upstream job id (a UUID string).
    pub img_uuid: String,
    /// Credits charged, when the reply says.
    pub cost: Option<f64>,
    /// The upstream's request id, when the reply carries one.
    pub request_id: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SubmittedData {
    pub(crate) img_uuid: String,
    #[serde(default)]
    pub(crate) cost: Option<f64>,
    #[serde(default)]
    pub(crate) request_id: Option<String>,
}

/// Where an upstream job is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Accepted, not started.
    Pending,
    /// Generating.
    Processing,
    /// Done; the result URL is in [`JobDetail::video_url`]. `completed` also means this.
    Success,
    /// Done without a result (the upstream gives no reason).
    Failed,
    /// A value this client does not know; treat the job as still running.
    Unknown(String),
}

impl JobStatus {
    /// Reads the upstream's `status` string (case-insensitive).
    pub fn parse(raw: &str) -> Self {
        match raw.trim().to_ascii_lowercase().as_str() {
            "pending" => Self::Pending,
            "processing" => Self::Processing,
            "success" | "completed" => Self::Success,
            "failed" => Self::Failed,
            _ => Self::Unknown(raw.to_owned()),
        }
    }

    /// Whether the job has finished, one way or the other.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Success | Self::Failed)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pending => f.write_str("pending"),
            Self::Processing => f.write_str("processing"),
            Self::Success => f.write_str("success"),
            Self::Failed => f.write_str("failed"),
            Self::Unknown(raw) => write!(f, "unknown({raw})"),
        }
    }
}

/// What `detail` returns.
#[derive(Clone, PartialEq)]
pub struct JobDetail {
    /// The upstream job id.
    pub img_uuid: String,
    /// The parsed status.
    pub status: JobStatus,
    /// The status string exactly as the upstream sent it.
    pub raw_status: String,
    /// The signed result URL: the first `json` entry of type `video`, once done.
    pub video_url: Option<String>,
    /// When the upstream started the job, as it wrote it.
    pub start_time: Option<String>,
    /// When the upstream finished the job, as it wrote it.
    pub end_time: Option<String>,
    /// The style id the upstream used (a string upstream).
    pub model_id: Option<String>,
}

impl fmt::Debug for JobDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The signed URL is a bearer credential for the video: show only host and path.
        f.debug_struct("JobDetail")
            .field("img_uuid", &self.img_uuid)
            .field("status", &self.status)
            .field("raw_status", &self.raw_status)
            .field(
                "video_url",
                &self.video_url.as_deref().map(url_without_query),
            )
            .field("start_time", &self.start_time)
            .field("end_time", &self.end_time)
            .field("model_id", &self.model_id)
            .finish()
    }
}

#[derive(Deserialize)]
pub(crate) struct DetailData {
    #[serde(default)]
    pub(crate) img_uuid: Option<String>,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) json: Option<Vec<ResultItem>>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub(crate) start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub(crate) end_time: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub(crate) model_id: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ResultItem {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

impl DetailData {
    pub(crate) fn into_detail(self, asked: &str) -> JobDetail {
        let video_url = self
            .json
            .unwrap_or_default()
            .into_iter()
            .find(|item| item.kind.as_deref() == Some("video") && item.value.is_some())
            .and_then(|item| item.value);
        JobDetail {
            img_uuid: self.img_uuid.unwrap_or_else(|| asked.to_owned()),
            status: JobStatus::parse(&self.status),
            raw_status: self.status,
            video_url,
            start_time: self.start_time,
            end_time: self.end_time,
            model_id: self.model_id,
        }
    }
}

/// What `tokens` returns: the credit balance and the plan's concurrent-job limit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Tokens {
    /// Credits left.
    pub count: f64,
    /// Jobs the plan allows at once (`queueLimit`), when the reply says.
    #[serde(default, rename = "queueLimit", alias = "queue_limit")]
    pub queue_limit: Option<u32>,
}

/// One group of styles from `model_list`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StyleGroup {
    /// Display name of the group.
    #[serde(default)]
    pub label: String,
    /// The group's id, as the upstream wrote it.
    #[serde(default, deserialize_with = "lenient_string")]
    pub value: Option<String>,
    /// The styles of the group.
    #[serde(default)]
    pub list: Vec<Style>,
}

/// One style: its `value` is what goes into [`GenerateArgs::model`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Style {
    /// Display name.
    #[serde(default)]
    pub label: String,
    /// The style id (e.g. 2000).
    #[serde(deserialize_with = "int_or_string")]
    pub value: i64,
    /// Model version, as the upstream wrote it.
    #[serde(default, deserialize_with = "lenient_string")]
    pub version: Option<String>,
    /// Whether the style needs a paid plan.
    #[serde(default, rename = "isVip", alias = "is_vip")]
    pub is_vip: bool,
    /// Preview image or video.
    #[serde(default)]
    pub url: Option<String>,
}

/// `scheme://host[:port]/path` of a URL, without credentials and the query that carries a
/// signature.
pub(crate) fn url_without_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            // Fails only for URLs that cannot carry credentials anyway.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.into()
        }
        Err(_) => "<unparsable url>".to_owned(),
    }
}

/// Accepts a string, a number, a bool or null as an optional string (fields whose type the
/// upstream does not document).
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Null => None,
        Value::String(text) => Some(text),
        other => Some(other.to_string()),
    })
}

/// Accepts `2000` or `"2000"`.
fn int_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::de::Error as _;
    match Value::deserialize(deserializer)? {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| D::Error::custom("style value is not an integer")),
        Value::String(text) => text
            .trim()
            .parse()
            .map_err(|_| D::Error::custom("style value is not an integer")),
        _ => Err(D::Error::custom("style value is not an integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse() {
        assert_eq!(JobStatus::parse("completed"), JobStatus::Success);
        assert_eq!(JobStatus::parse("SUCCESS"), JobStatus::Success);
        assert_eq!(JobStatus::parse("pending"), JobStatus::Pending);
        assert_eq!(
            JobStatus::parse("queued_somewhere"),
            JobStatus::Unknown("queued_somewhere".into())
        );
        assert!(!JobStatus::parse("queued_somewhere").is_terminal());
    }

    #[test]
    fn extra_args_are_flattened() {
        let mut args = GenerateArgs::new("https://x/v.mp4", 2000);
        args.seed = Some(-1);
        args.extra.insert("future_flag".into(), Value::Bool(true));
        let body = serde_json::to_value(GenerateRequest::new(args)).unwrap();
        assert_eq!(body["type"], "mx-v2v");
        assert_eq!(body["args"]["future_flag"], true);
        assert_eq!(body["args"]["seed"], -1);
        assert!(body["args"].get("duration").is_none());
    }

    #[test]
    fn detail_debug_hides_the_signature() {
        let data: DetailData = serde_json::from_value(serde_json::json!({
            "status": "success", "model_id": 2000, "start_time": 1_700_000_000,
            "json": [{"type": "image", "value": "https://a/b.png"},
                     {"type": "video", "value": "https://cdn.example/v.mp4?sig=SECRET"}]
        }))
        .unwrap();
        let detail = data.into_detail("u-1");
        assert_eq!(detail.img_uuid, "u-1");
        assert_eq!(detail.model_id.as_deref(), Some("2000"));
        assert_eq!(
            detail.video_url.as_deref(),
            Some("https://cdn.example/v.mp4?sig=SECRET")
        );
        let shown = format!("{detail:?}");
        assert!(shown.contains("cdn.example/v.mp4") && !shown.contains("SECRET"));
    }
}
