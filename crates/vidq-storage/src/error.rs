//! The crate's error type and its mapping from AWS SDK errors.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// An error from the source stream handed to an upload.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest service message kept in [`Error::S3`].
const MAX_MESSAGE_CHARS: usize = 400;

/// What can go wrong while talking to object storage.
///
/// Messages never contain credentials. Use [`Error::is_retryable`] to decide whether to retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range or inconsistent.
    #[error("invalid setting {setting}: {reason}")]
    InvalidSettings {
        /// Dotted name of the setting, e.g. `storage.part_size`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The configured bucket does not exist.
    #[error("bucket {bucket:?} does not exist")]
    BucketMissing {
        /// The bucket that was asked for.
        bucket: String,
    },
    /// The store refused the credentials or the operation.
    #[error(
        "object store denied {op} ({code}): check storage.access_key_id / storage.secret_access_key and the bucket policy"
    )]
    AccessDenied {
        /// S3 operation, e.g. `PutObject`.
        op: &'static str,
        /// Service error code, e.g. `SignatureDoesNotMatch`.
        code: String,
    },
    /// The source delivered a different number of bytes than announced.
    /// When the source ran past `expected`, `got` is the count at the moment it was stopped.
    #[error("source length mismatch: expected {expected} bytes, got {got}")]
    LengthMismatch {
        /// Length announced by the caller.
        expected: u64,
        /// Bytes actually received.
        got: u64,
    },
    /// The body needs more than the 10,000 parts S3 allows at this part size.
    #[error("body exceeds 10000 parts of {part_size} bytes; raise storage.part_size")]
    TooManyParts {
        /// The configured part size.
        part_size: u64,
    },
    /// The input stream failed.
    #[error("source stream failed: {0}")]
    Source(BoxError),
    /// The upload's [`crate::Journal`] says its caller no longer owns it (another process
    /// took it over): it stopped, leaving the multipart upload to the new owner.
    #[error("the upload was taken over by another owner")]
    Superseded,
    /// The upload's [`crate::Journal`] could not record or check its progress.
    #[error("recording the upload's progress failed: {0}")]
    Journal(BoxError),
    /// A [`crate::Checkpoint`] to resume from is damaged.
    #[error("cannot resume the upload: {0}")]
    BadCheckpoint(String),
    /// Any other failure of an S3 call: network, timeout or service error.
    #[error("S3 {op} failed: {message}")]
    S3 {
        /// S3 operation, e.g. `UploadPart`.
        op: &'static str,
        /// HTTP status when the service answered.
        status: Option<u16>,
        /// Service error code when the service answered with one.
        code: Option<String>,
        /// Short description from the SDK.
        message: String,
    },
}

impl Error {
    /// True when trying again may succeed: network failures, timeouts, 5xx, throttling, and a
    /// failing source stream. False for a missing bucket, denied access, a length mismatch and
    /// invalid settings.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Source(_) | Error::Journal(_) => true,
            Error::S3 { status, code, .. } => {
                let retryable_code = matches!(
                    code.as_deref(),
                    Some("RequestTimeout" | "SlowDown" | "InternalError" | "ServiceUnavailable")
                );
                retryable_code || status.is_none_or(|s| s >= 500 || s == 429 || s == 408)
            }
            Error::InvalidSettings { .. }
            | Error::BucketMissing { .. }
            | Error::AccessDenied { .. }
            | Error::LengthMismatch { .. }
            | Error::TooManyParts { .. }
            | Error::Superseded
            | Error::BadCheckpoint(_) => false,
        }
    }

    /// Maps an SDK error of operation `op` against `bucket`.
    pub(crate) fn from_sdk<E>(
        op: &'static str,
        bucket: &str,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        match (code.as_deref(), status) {
            (Some("NoSuchBucket"), _) => Error::BucketMissing {
                bucket: bucket.to_owned(),
            },
            (None | Some("NotFound"), Some(404)) if op == "HeadBucket" => Error::BucketMissing {
                bucket: bucket.to_owned(),
            },
            (
                Some(
                    "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken"
                    | "ExpiredToken"
                    | "AllAccessDisabled",
                ),
                _,
            )
            | (_, Some(401 | 403)) => Error::AccessDenied {
                op,
                code: code.unwrap_or_else(|| "Forbidden".to_owned()),
            },
            _ => Error::S3 {
                op,
                status,
                code,
                message: short(&DisplayErrorContext(&err).to_string()),
            },
        }
    }
}

fn short(message: &str) -> String {
    let message = message.trim();
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(status: Option<u16>, code: Option<&str>) -> Error {
        Error::S3 {
            op: "UploadPart",
            status,
            code: code.map(str::to_owned),
            message: "boom".into(),
        }
    }

    #[test]
    fn retryable_classification() {
        assert!(s3(None, None).is_retryable(), "network failures retry");
        assert!(s3(Some(500), None).is_retryable());
        assert!(s3(Some(503), Some("SlowDown")).is_retryable());
        assert!(s3(Some(400), Some("RequestTimeout")).is_retryable());
        assert!(!s3(Some(400), Some("EntityTooSmall")).is_retryable());
        assert!(Error::Source("eof".into()).is_retryable());
        assert!(!Error::BucketMissing { bucket: "b".into() }.is_retryable());
        assert!(
            !Error::AccessDenied {
                op: "PutObject",
                code: "AccessDenied".into()
            }
            .is_retryable()
        );
        assert!(
            !Error::LengthMismatch {
                expected: 1,
                got: 2
            }
            .is_retryable()
        );
    }

    fn service_error(op: &'static str, status: u16, code: Option<&str>) -> Error {
        use aws_sdk_s3::error::ErrorMetadata;
        use aws_sdk_s3::operation::put_object::PutObjectError;
        use aws_sdk_s3::primitives::SdkBody;

        let mut meta = ErrorMetadata::builder().message("service said no");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        let err = SdkError::service_error(PutObjectError::generic(meta.build()), raw);
        Error::from_sdk(op, "bkt", err)
    }

    #[test]
    fn service_errors_map_to_variants() {
        assert!(matches!(
            service_error("PutObject", 404, Some("NoSuchBucket")),
            Error::BucketMissing { bucket } if bucket == "bkt"
        ));
        assert!(matches!(
            service_error("HeadBucket", 404, None),
            Error::BucketMissing { .. }
        ));
        assert!(matches!(
            service_error("PutObject", 403, Some("SignatureDoesNotMatch")),
            Error::AccessDenied { op: "PutObject", code } if code == "SignatureDoesNotMatch"
        ));
        assert!(matches!(
            service_error("HeadBucket", 403, None),
            Error::AccessDenied { .. }
        ));
        let slow = service_error("UploadPart", 503, Some("SlowDown"));
        assert!(
            matches!(
                &slow,
                Error::S3 {
                    status: Some(503),
                    ..
                }
            ),
            "{slow:?}"
        );
        assert!(slow.is_retryable());
        assert!(slow.to_string().contains("service said no"), "{slow}");
        let small = service_error("CompleteMultipartUpload", 400, Some("EntityTooSmall"));
        assert!(!small.is_retryable());
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(1000);
        assert_eq!(short(&long).chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(short(" ok "), "ok");
    }
}
