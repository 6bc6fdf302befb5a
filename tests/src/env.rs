//! One test's isolated environment: a key prefix, a bucket, a producer, and the services.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use vidq_producer::{Producer, ProducerSettings};
use vidq_storage::{Storage, StorageSettings};

/// A name no other test uses: `<base>-<8 random hex>`.
#[must_use]
pub fn unique(base: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{base}-{}", &id[..8])
}

/// The Redis the tests use.
#[must_use]
pub fn redis_url() -> String {
    std::env::var("VIDQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The S3-compatible server the tests use (from `VIDQ_TEST_S3_*`, set by `scripts/test`).
#[derive(Debug, Clone)]
pub struct S3Endpoint {
    /// `http://127.0.0.1:port`.
    pub endpoint: String,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// Region.
    pub region: String,
}

impl S3Endpoint {
    /// Reads `VIDQ_TEST_S3_*`; the error says to run the tests through `scripts/test`.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: run the tests with scripts/test, which starts s3s-fs")
            })
        };
        Ok(Self {
            endpoint: var("VIDQ_TEST_S3_ENDPOINT")?,
            access_key: var("VIDQ_TEST_S3_ACCESS_KEY")?,
            secret_key: var("VIDQ_TEST_S3_SECRET_KEY")?,
            region: std::env::var("VIDQ_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
        })
    }

    /// A raw S3 client, for assertions on what the bucket holds.
    #[must_use]
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                &self.access_key,
                &self.secret_key,
                None,
                None,
                "vidq-tests",
            ))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

/// One test's world: its own Redis key prefix and bucket on the shared services.
pub struct TestEnv {
    /// Key prefix of everything this test writes to Redis.
    pub prefix: String,
    /// The test's bucket (created).
    pub bucket: String,
    /// Redis URL: the server; on a cluster its first seed, on Sentinel its first sentinel
    /// (read through [`TestEnv::redis`] there).
    pub redis_url: String,
    /// The Redis shape the test runs on.
    pub redis: crate::RedisShape,
    /// The S3 server.
    pub s3: S3Endpoint,
    /// A producer on the test's prefix.
    pub producer: Producer,
    /// Storage on the test's bucket.
    pub storage: Storage,
}

impl TestEnv {
    /// A fresh environment named after `name`, with its bucket created.
    pub async fn new(name: &str) -> anyhow::Result<Self> {
        Self::on(name, crate::RedisShape::standalone_from_env()).await
    }

    /// A fresh environment named after `name` on the Redis `shape`, with its bucket created.
    pub async fn on(name: &str, shape: crate::RedisShape) -> anyhow::Result<Self> {
        Self::on_with(name, shape, &S3Endpoint::from_env()?, &[]).await
    }

    /// A fresh environment named after `name` on `shape` and `s3`, its bucket created; the
    /// producer also gets the `VIDQ__...` `settings` (e.g. `VIDQ__JOBS__DEADLINE`).
    pub async fn on_with(
        name: &str,
        shape: crate::RedisShape,
        s3: &S3Endpoint,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let prefix = unique(&format!("t-{name}"));
        let bucket = unique(&format!("b-{}", name.replace('_', "-")));
        let mut vars = shape.settings_env();
        vars.push(("VIDQ__REDIS__PREFIX".to_owned(), prefix.clone()));
        vars.extend(
            settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let producer_settings: ProducerSettings =
            vidq_core::load_settings(vidq_producer::DEFAULTS, None, vars)
                .with_context(|| format!("producer settings on {}", shape.mode()))?;
        let producer = Producer::connect(&producer_settings).await?;
        let storage = Storage::new(&self_storage_settings(s3, &bucket)).await?;
        storage.ensure_bucket().await?;
        Ok(Self {
            prefix,
            bucket,
            redis_url: shape.first_url(),
            redis: shape,
            s3: s3.clone(),
            producer,
            storage,
        })
    }

    /// The `VIDQ__...` environment a worker of this test runs with (against `sim`), with fast
    /// polling and short retries; `overrides` win.
    #[must_use]
    pub fn worker_env(
        &self,
        sim_url: &str,
        overrides: &[(&str, &str)],
    ) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = [
            ("VIDQ__REDIS__PREFIX", self.prefix.as_str()),
            ("VIDQ__GOENHANCE__BASE_URL", sim_url),
            ("VIDQ__GOENHANCE__API_KEY", "sim-key"),
            ("VIDQ__GOENHANCE__TIMEOUT", "5s"),
            ("VIDQ__STORAGE__ENDPOINT", self.s3.endpoint.as_str()),
            ("VIDQ__STORAGE__REGION", self.s3.region.as_str()),
            ("VIDQ__STORAGE__BUCKET", self.bucket.as_str()),
            ("VIDQ__STORAGE__ACCESS_KEY_ID", self.s3.access_key.as_str()),
            (
                "VIDQ__STORAGE__SECRET_ACCESS_KEY",
                self.s3.secret_key.as_str(),
            ),
            ("VIDQ__HTTP__LISTEN", "127.0.0.1:0"),
            ("VIDQ__JOBS__POLL_INTERVAL", "500ms"),
            ("VIDQ__QUEUES__LEASE", "5s"),
            ("VIDQ__QUEUES__SUBMIT__BACKOFF", "200ms"),
            ("VIDQ__QUEUES__SUBMIT__BACKOFF_MAX", "2s"),
            ("VIDQ__QUEUES__POLL__BACKOFF", "200ms"),
            ("VIDQ__QUEUES__POLL__BACKOFF_MAX", "2s"),
            ("VIDQ__QUEUES__TRANSFER__BACKOFF", "200ms"),
            ("VIDQ__QUEUES__TRANSFER__BACKOFF_MAX", "2s"),
            ("VIDQ__LOG__FILTER", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain(self.redis.settings_env())
        .collect();
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        env
    }

    /// Every Redis key under this test's prefix (SCAN of every primary, fine for tests).
    pub async fn redis_keys(&self) -> anyhow::Result<Vec<String>> {
        let mut keys: Vec<String> = self
            .redis
            .scan(&format!("{}:*", self.prefix))
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// A connection to the primary holding `key` (the server on standalone).
    pub async fn redis_conn_for(
        &self,
        key: &str,
    ) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let url = self.redis.url_for_key(key).await?;
        let client = redis::Client::open(url.as_str())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }

    /// Deletes this test's keys (never anything else), and its bucket with what it holds.
    pub async fn cleanup(&self) -> anyhow::Result<()> {
        let s3 = self.s3.client();
        for key in crate::verify::list_keys(self).await? {
            s3.delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await?;
        }
        s3.delete_bucket().bucket(&self.bucket).send().await?;
        let keys = self.redis.scan(&format!("{}:*", self.prefix)).await?;
        self.redis.delete(&keys).await
    }
}

fn self_storage_settings(s3: &S3Endpoint, bucket: &str) -> StorageSettings {
    let mut settings = StorageSettings::new(bucket);
    settings.endpoint = Some(s3.endpoint.clone());
    settings.region = s3.region.clone();
    settings.access_key_id = Some(s3.access_key.clone());
    settings.secret_access_key = Some(s3.secret_key.clone().into());
    settings
}
