//! The `[storage]` settings section.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{Error, Result};

const MIB: u64 = 1024 * 1024;
/// S3 refuses parts below 5 MiB (except the last one).
pub(crate) const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3 refuses parts above 5 GiB.
const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
const MAX_PARTS_IN_FLIGHT: usize = 64;
/// SigV4 presigned URLs live at most 7 days.
const MAX_PRESIGN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where and how videos are stored: the `[storage]` section of the settings.
///
/// `Debug` never shows `secret_access_key`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// S3-compatible server URL (MinIO, R2, s3s-fs, ...). `None` means AWS S3.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region used for signing. Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// Bucket holding the videos. Required.
    pub bucket: String,
    /// Prefix of every object key. Default `videos/`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`). Default: true when `endpoint` is set.
    #[serde(default)]
    pub path_style: Option<bool>,
    /// Static access key. When both keys are unset the standard AWS credential chain is used
    /// (environment, profile, web identity / IRSA, instance metadata).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Static secret key, paired with `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<SecretString>,
    /// Multipart part size in bytes. Default 8 MiB, at least 5 MiB.
    #[serde(default = "default_part_size")]
    pub part_size: u64,
    /// Parts uploaded concurrently. Memory held per upload is about
    /// `(parts_in_flight + 1) * part_size`. Default 3.
    #[serde(default = "default_parts_in_flight")]
    pub parts_in_flight: usize,
    /// Lifetime of presigned GET URLs. Default 15 min.
    #[serde(default = "default_presign_ttl", with = "humantime_serde")]
    pub presign_ttl: Duration,
    /// Also store the sha256 of multipart uploads as `x-amz-meta-sha256`. The checksum is
    /// known only after the last part, so this copies the object onto itself: server-side and
    /// cheap on AWS S3, but a full rewrite on some S3-compatible servers, and limited to 5 GiB.
    /// Off by default: the job record always holds the sha256. Single-part uploads carry the
    /// metadata either way.
    #[serde(default)]
    pub checksum_metadata: bool,
    /// Sign request bodies: each part's SHA-256 goes into its SigV4 signature and the store
    /// checks it. Default: true for an `http://` endpoint, false over HTTPS, where TLS already
    /// guards the bytes (the AWS CLI's rule). Unsigned bodies (`UNSIGNED-PAYLOAD`) save one
    /// SHA-256 pass over every video in the worker and one in the store; the job record's
    /// sha256 and the length check stand either way.
    #[serde(default)]
    pub sign_payload: Option<bool>,
    /// Largest result stored, in bytes: a longer body (announced or streamed) is refused, so
    /// a result without `Content-Length` cannot fill the bucket. Default 10 GiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Results of a known length above `part_size` and up to this many bytes go up in one
    /// streamed PutObject (unsigned body, nothing buffered) instead of a multipart upload:
    /// fewer requests and no assembly by the store, but not resumable (a transfer that dies
    /// sends it again from zero). Default 1 GiB: in `scripts/bench f` a 1 GiB result went up
    /// about twice as fast into s3s-fs that way as in parts, and 1.02–1.67× as fast into moto;
    /// longer results, and results of unknown length, are multipart and resumable. 0 turns it
    /// off. At most 5 GiB (S3's PutObject limit).
    #[serde(default = "default_single_put_max")]
    pub single_put_max: u64,
}

fn default_max_bytes() -> u64 {
    10 * 1024 * MIB
}

fn default_single_put_max() -> u64 {
    1024 * MIB
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn default_prefix() -> String {
    "videos/".to_owned()
}

fn default_part_size() -> u64 {
    8 * MIB
}

fn default_parts_in_flight() -> usize {
    3
}

fn default_presign_ttl() -> Duration {
    Duration::from_secs(15 * 60)
}

impl StorageSettings {
    /// Settings for `bucket` with every other field at its default (AWS, credential chain).
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            region: default_region(),
            bucket: bucket.into(),
            prefix: default_prefix(),
            path_style: None,
            access_key_id: None,
            secret_access_key: None,
            part_size: default_part_size(),
            parts_in_flight: default_parts_in_flight(),
            presign_ttl: default_presign_ttl(),
            checksum_metadata: false,
            sign_payload: None,
            max_bytes: default_max_bytes(),
            single_put_max: default_single_put_max(),
        }
    }

    /// Whether requests use path-style addressing, after applying the default.
    pub fn path_style(&self) -> bool {
        self.path_style.unwrap_or(self.endpoint.is_some())
    }

    /// Whether request bodies are signed, after applying the default: only over plain HTTP.
    pub fn sign_payload(&self) -> bool {
        self.sign_payload.unwrap_or_else(|| {
            self.endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"))
        })
    }

    /// Checks every field; the error names the offending setting (`storage.part_size`, ...).
    pub fn validate(&self) -> Result<()> {
        if self.bucket.trim().is_empty() {
            return Err(invalid("storage.bucket", "must not be empty"));
        }
        if self.region.trim().is_empty() {
            return Err(invalid("storage.region", "must not be empty"));
        }
        if self.max_bytes == 0 {
            return Err(invalid("storage.max_bytes", "must be at least 1"));
        }
        if self.single_put_max > MAX_PART_SIZE {
            return Err(invalid(
                "storage.single_put_max",
                format!(
                    "must be at most {MAX_PART_SIZE} (5 GiB, S3's PutObject limit), got {}",
                    self.single_put_max
                ),
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(invalid(
                "storage.endpoint",
                "must be an http:// or https:// URL",
            ));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => {
                return Err(invalid(
                    "storage.secret_access_key",
                    "must be set when storage.access_key_id is set",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "storage.access_key_id",
                    "must be set when storage.secret_access_key is set",
                ));
            }
            _ => {}
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(invalid(
                "storage.part_size",
                format!(
                    "must be between {MIN_PART_SIZE} (5 MiB) and {MAX_PART_SIZE} (5 GiB) bytes, got {}",
                    self.part_size
                ),
            ));
        }
        if !(1..=MAX_PARTS_IN_FLIGHT).contains(&self.parts_in_flight) {
            return Err(invalid(
                "storage.parts_in_flight",
                format!(
                    "must be between 1 and {MAX_PARTS_IN_FLIGHT}, got {}",
                    self.parts_in_flight
                ),
            ));
        }
        if self.presign_ttl < Duration::from_secs(1) || self.presign_ttl > MAX_PRESIGN_TTL {
            return Err(invalid(
                "storage.presign_ttl",
                "must be between 1s and 7 days",
            ));
        }
        Ok(())
    }
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidSettings {
        setting,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> StorageSettings {
        serde_json::from_str(json).expect("valid settings JSON")
    }

    fn setting_of(err: Error) -> &'static str {
        match err {
            Error::InvalidSettings { setting, .. } => setting,
            other => panic!("expected InvalidSettings, got {other:?}"),
        }
    }

    #[test]
    fn defaults_apply_when_only_the_bucket_is_given() {
        let s = parse(r#"{"bucket": "videos"}"#);
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.prefix, "videos/");
        assert_eq!(s.part_size, 8 * MIB);
        assert_eq!(s.parts_in_flight, 3);
        assert_eq!(s.single_put_max, 1024 * MIB);
        assert_eq!(s.presign_ttl, Duration::from_secs(900));
        assert!(!s.path_style(), "AWS uses virtual-hosted style by default");
        s.validate().expect("defaults are valid");
    }

    #[test]
    fn path_style_defaults_on_with_a_custom_endpoint_and_can_be_turned_off() {
        let s = parse(r#"{"bucket": "b", "endpoint": "http://minio:9000"}"#);
        assert!(s.path_style());
        let s = parse(r#"{"bucket": "b", "endpoint": "http://minio:9000", "path_style": false}"#);
        assert!(!s.path_style());
    }

    #[test]
    fn payloads_are_signed_by_default_only_over_plain_http() {
        assert!(!parse(r#"{"bucket": "b"}"#).sign_payload(), "AWS is HTTPS");
        let s = parse(r#"{"bucket": "b", "endpoint": "https://r2.example"}"#);
        assert!(!s.sign_payload());
        let s = parse(r#"{"bucket": "b", "endpoint": "http://minio:9000"}"#);
        assert!(s.sign_payload());
        let s = parse(r#"{"bucket": "b", "endpoint": "http://minio:9000", "sign_payload": false}"#);
        assert!(!s.sign_payload());
        let s = parse(r#"{"bucket": "b", "sign_payload": true}"#);
        assert!(s.sign_payload());
    }

    #[test]
    fn presign_ttl_reads_human_durations() {
        let s = parse(r#"{"bucket": "b", "presign_ttl": "1h 30m"}"#);
        assert_eq!(s.presign_ttl, Duration::from_secs(5400));
    }

    #[test]
    fn missing_bucket_is_rejected_by_serde() {
        let err = serde_json::from_str::<StorageSettings>("{}").unwrap_err();
        assert!(err.to_string().contains("bucket"), "{err}");
    }

    #[test]
    fn validation_names_the_setting() {
        let mut s = StorageSettings::new("");
        assert_eq!(setting_of(s.validate().unwrap_err()), "storage.bucket");

        s = StorageSettings::new("b");
        s.part_size = MIN_PART_SIZE - 1;
        let err = s.validate().unwrap_err();
        assert!(err.to_string().contains("storage.part_size"), "{err}");
        assert_eq!(setting_of(err), "storage.part_size");

        s = StorageSettings::new("b");
        s.parts_in_flight = 0;
        assert_eq!(
            setting_of(s.validate().unwrap_err()),
            "storage.parts_in_flight"
        );

        s = StorageSettings::new("b");
        s.presign_ttl = Duration::from_secs(8 * 24 * 3600);
        assert_eq!(setting_of(s.validate().unwrap_err()), "storage.presign_ttl");

        s = StorageSettings::new("b");
        s.endpoint = Some("minio:9000".into());
        assert_eq!(setting_of(s.validate().unwrap_err()), "storage.endpoint");

        s = StorageSettings::new("b");
        s.single_put_max = 6 * 1024 * MIB;
        assert_eq!(
            setting_of(s.validate().unwrap_err()),
            "storage.single_put_max"
        );

        s = StorageSettings::new("b");
        s.access_key_id = Some("AKIA".into());
        assert_eq!(
            setting_of(s.validate().unwrap_err()),
            "storage.secret_access_key"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = parse(
            r#"{"bucket": "b", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "hunter2-very-secret"}"#,
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2-very-secret"), "{shown}");
        assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
    }
}
