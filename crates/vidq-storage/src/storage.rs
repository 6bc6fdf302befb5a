//! The S3 client: construction, keys, bucket checks, HEAD and presigned GET.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use secrecy::ExposeSecret;

use crate::buffer::BufferGauge;
use crate::error::{Error, Result};
use crate::settings::StorageSettings;

/// User metadata key holding the hex sha256 of the object (`x-amz-meta-sha256`).
pub(crate) const SHA256_META: &str = "sha256";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REGION: &str = "us-east-1";

/// Handle on the video bucket. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct Storage {
    pub(crate) client: Client,
    pub(crate) bucket: Arc<str>,
    region: Arc<str>,
    prefix: Arc<str>,
    pub(crate) checksum_metadata: bool,
    max_bytes: u64,
    pub(crate) single_put_max: u64,
    pub(crate) sign_payload: bool,
    pub(crate) part_size: usize,
    pub(crate) parts_in_flight: usize,
    presign_ttl: Duration,
    pub(crate) gauge: Arc<BufferGauge>,
    /// Host and port of the S3 endpoint, for the request spans.
    pub(crate) server: Arc<(String, u16)>,
}

/// What [`Storage::head`] learns about a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Object length.
    pub bytes: u64,
    /// Hex sha256 from the `x-amz-meta-sha256` metadata, when present.
    pub sha256: Option<String>,
    /// `Content-Type` stored with the object.
    pub content_type: Option<String>,
    /// ETag as returned by the store.
    pub etag: Option<String>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .field("sign_payload", &self.sign_payload)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Validates `settings` and builds the client. No request is made: call
    /// [`Storage::check_bucket`] to probe the store.
    pub async fn new(settings: &StorageSettings) -> Result<Self> {
        settings.validate()?;
        let part_size =
            usize::try_from(settings.part_size).map_err(|_| Error::InvalidSettings {
                setting: "storage.part_size",
                reason: "does not fit in memory on this platform".to_owned(),
            })?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            let credentials =
                Credentials::new(id, secret.expose_secret(), None, None, "vidq-settings");
            loader = loader.credentials_provider(credentials);
        }
        let shared = loader.load().await;
        // Many S3-compatible stores reject the SDK's default request checksums (aws-chunked
        // trailers); integrity is covered by our own sha256 and the length check.
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.path_style())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(Self {
            client: Client::from_conf(config),
            bucket: settings.bucket.as_str().into(),
            region: settings.region.as_str().into(),
            prefix: normalize_prefix(&settings.prefix).into(),
            part_size,
            parts_in_flight: settings.parts_in_flight,
            presign_ttl: settings.presign_ttl,
            checksum_metadata: settings.checksum_metadata,
            max_bytes: settings.max_bytes,
            single_put_max: settings.single_put_max,
            sign_payload: settings.sign_payload(),
            gauge: Arc::default(),
            server: Arc::new(crate::otel::server_of(
                shared.endpoint_url(),
                &settings.region,
            )),
        })
    }

    /// The bucket every object goes to.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Default lifetime of presigned URLs (`storage.presign_ttl`).
    pub fn presign_ttl(&self) -> Duration {
        self.presign_ttl
    }

    /// The object key of a job's video: `<prefix><job_id>.mp4`. Deterministic, so a retried
    /// transfer overwrites the same object instead of adding another.
    pub fn object_key(&self, job_id: &str) -> String {
        format!("{}{job_id}.mp4", self.prefix)
    }

    /// Bytes currently held in part buffers by uploads through this handle (and its clones).
    pub fn buffered_bytes(&self) -> u64 {
        self.gauge.current()
    }

    /// Highest value [`Storage::buffered_bytes`] has reached.
    pub fn buffered_peak(&self) -> u64 {
        self.gauge.peak()
    }

    /// HeadBucket: `Ok` when the bucket exists and the credentials may use it.
    /// Readiness probes call this.
    pub async fn check_bucket(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&*self.bucket)
            .send()
            .await
            .map_err(|err| Error::from_sdk("HeadBucket", &self.bucket, err))?;
        Ok(())
    }

    /// Creates the bucket when it is missing (tests and demos; production buckets are
    /// provisioned by the operator).
    pub async fn ensure_bucket(&self) -> Result<()> {
        match self.check_bucket().await {
            Err(Error::BucketMissing { .. }) => {}
            other => return other,
        }
        let mut request = self.client.create_bucket().bucket(&*self.bucket);
        if &*self.region != DEFAULT_REGION {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(&*self.region))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => {
                tracing::info!(bucket = %self.bucket, "created bucket");
                Ok(())
            }
            Err(err)
                if matches!(
                    err.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(Error::from_sdk("CreateBucket", &self.bucket, err)),
        }
    }

    /// Aborts every incomplete multipart upload of exactly `key` (left by a transfer whose
    /// worker died mid-way: its parts are billed until aborted). Returns how many. At most
    /// 1,000 per call, which is far more than one key ever has.
    pub async fn abort_incomplete_uploads(&self, key: &str) -> Result<usize> {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&*self.bucket)
            .prefix(key)
            .send()
            .await
            .map_err(|err| Error::from_sdk("ListMultipartUploads", &self.bucket, err))?;
        let mut aborted = 0;
        for upload in out.uploads() {
            let (Some(k), Some(upload_id)) = (upload.key(), upload.upload_id()) else {
                continue;
            };
            if k != key {
                continue;
            }
            self.client
                .abort_multipart_upload()
                .bucket(&*self.bucket)
                .key(k)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|err| Error::from_sdk("AbortMultipartUpload", &self.bucket, err))?;
            aborted += 1;
        }
        Ok(aborted)
    }

    /// Aborts the multipart upload `upload_id` of `key`; one already completed or aborted is
    /// no error.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&*self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if matches!(err.code(), Some("NoSuchUpload")) => Ok(()),
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(())
            }
            Err(err) => Err(Error::from_sdk("AbortMultipartUpload", &self.bucket, err)),
        }
    }

    /// Deletes `key` (nothing happens when it does not exist).
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| Error::from_sdk("DeleteObject", &self.bucket, err))?;
        Ok(())
    }

    /// Largest result stored (`storage.max_bytes`).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// HeadObject: `None` when the object does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let out = match self
            .client
            .head_object()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
                return Ok(None);
            }
            Err(err) => return Err(Error::from_sdk("HeadObject", &self.bucket, err)),
        };
        Ok(Some(ObjectInfo {
            bytes: out
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            sha256: out.metadata().and_then(|m| m.get(SHA256_META)).cloned(),
            content_type: out.content_type().map(str::to_owned),
            etag: out.e_tag().map(str::to_owned),
        }))
    }

    /// A URL that GETs `key` without credentials until `ttl` (default
    /// `storage.presign_ttl`) runs out. Makes no request; the object need not exist yet.
    pub async fn presign_get(&self, key: &str, ttl: Option<Duration>) -> Result<String> {
        let ttl = ttl.unwrap_or(self.presign_ttl);
        let config = PresigningConfig::expires_in(ttl).map_err(|err| Error::InvalidSettings {
            setting: "storage.presign_ttl",
            reason: err.to_string(),
        })?;
        let request = self
            .client
            .get_object()
            .bucket(&*self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|err| Error::from_sdk("PresignGetObject", &self.bucket, err))?;
        Ok(request.uri().to_owned())
    }
}

/// `videos` and `/videos/` both become `videos/`; an empty prefix stays empty.
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_start_matches('/');
    if trimmed.is_empty() || trimmed.ends_with('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(normalize_prefix("videos/"), "videos/");
        assert_eq!(normalize_prefix("videos"), "videos/");
        assert_eq!(normalize_prefix("/a/b"), "a/b/");
        assert_eq!(normalize_prefix(""), "");
    }

    #[tokio::test]
    async fn object_keys_are_deterministic_per_job() {
        let mut settings = StorageSettings::new("b");
        settings.prefix = "out".into();
        settings.endpoint = Some("http://127.0.0.1:1".into());
        let storage = Storage::new(&settings).await.unwrap();
        assert_eq!(storage.object_key("job-1"), "out/job-1.mp4");
        assert_eq!(storage.object_key("job-1"), storage.object_key("job-1"));
        assert_ne!(storage.object_key("job-1"), storage.object_key("job-2"));
    }

    #[tokio::test]
    async fn new_rejects_invalid_settings() {
        let mut settings = StorageSettings::new("b");
        settings.parts_in_flight = 0;
        match Storage::new(&settings).await {
            Err(Error::InvalidSettings { setting, .. }) => {
                assert_eq!(setting, "storage.parts_in_flight")
            }
            other => panic!("expected InvalidSettings, got {other:?}"),
        }
    }
}
