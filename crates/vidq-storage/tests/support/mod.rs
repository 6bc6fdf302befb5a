//! A real S3-compatible server for tests: a private `s3s-fs` on a free port with a temp root
//! and random credentials, killed on drop. These tests look inside the server's data folder
//! (s3s-fs lacks ListMultipartUploads and creates missing buckets on PutObject), so they use
//! the shared `VIDQ_TEST_S3_ENDPOINT` only when `VIDQ_TEST_S3_EXTERNAL=1` says it is a full S3
//! implementation.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use futures::Stream;
use secrecy::SecretString;
use vidq_storage::{Storage, StorageSettings};

pub(crate) const MIB: usize = 1024 * 1024;

pub(crate) struct TestS3 {
    pub(crate) endpoint: String,
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    pub(crate) region: String,
    server: Option<(Child, tempfile::TempDir)>,
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        if let Some((child, _root)) = &mut self.server {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl TestS3 {
    pub(crate) fn start() -> Self {
        let region = std::env::var("VIDQ_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into());
        let external = std::env::var("VIDQ_TEST_S3_EXTERNAL").is_ok_and(|v| v == "1");
        if let (true, Ok(endpoint)) = (external, std::env::var("VIDQ_TEST_S3_ENDPOINT")) {
            return Self {
                endpoint,
                access_key: std::env::var("VIDQ_TEST_S3_ACCESS_KEY").unwrap_or_default(),
                secret_key: std::env::var("VIDQ_TEST_S3_SECRET_KEY").unwrap_or_default(),
                region,
                server: None,
            };
        }
        let access_key = format!("AK{}", uuid::Uuid::new_v4().simple());
        let secret_key = format!("SK{}", uuid::Uuid::new_v4().simple());
        let binary = s3s_fs_binary();
        // The port is free when probed; another process may take it before s3s-fs binds,
        // so a server that exits at start is retried on a new port.
        for _ in 0..5 {
            let root = tempfile::tempdir().expect("temp dir");
            let addr = free_addr();
            let mut child = Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
                .args(["--access-key", &access_key, "--secret-key", &secret_key])
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
            if wait_listening(&mut child, addr) {
                return Self {
                    endpoint: format!("http://{addr}"),
                    access_key,
                    secret_key,
                    region,
                    server: Some((child, root)),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs did not start");
    }

    /// Settings for a fresh, uniquely named bucket (not created).
    pub(crate) fn settings(&self, part_size: usize, parts_in_flight: usize) -> StorageSettings {
        let mut s = StorageSettings::new(format!("vidq-test-{}", uuid::Uuid::new_v4().simple()));
        s.endpoint = Some(self.endpoint.clone());
        s.region = self.region.clone();
        s.access_key_id = Some(self.access_key.clone());
        s.secret_access_key = Some(SecretString::from(self.secret_key.clone()));
        s.part_size = part_size as u64;
        s.parts_in_flight = parts_in_flight;
        // These tests are about parts: no streamed PutObject unless a test asks for one.
        s.single_put_max = 0;
        s
    }

    /// A storage handle on its own new bucket.
    pub(crate) async fn storage(&self, part_size: usize, parts_in_flight: usize) -> Storage {
        let storage = Storage::new(&self.settings(part_size, parts_in_flight))
            .await
            .expect("storage");
        storage.ensure_bucket().await.expect("create bucket");
        storage
    }

    /// A plain SDK client, to look at the bucket independently of the code under test.
    pub(crate) fn raw_client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                &self.access_key,
                &self.secret_key,
                None,
                None,
                "test",
            ))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub(crate) async fn download(&self, bucket: &str, key: &str) -> Vec<u8> {
        let out = self
            .raw_client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("get object");
        out.body.collect().await.expect("read body").to_vec()
    }

    pub(crate) async fn list_keys(&self, bucket: &str) -> Vec<String> {
        let out = self
            .raw_client()
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .expect("list objects");
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    /// Multipart uploads still pending in `bucket`. s3s-fs does not implement
    /// ListMultipartUploads; for our own s3s-fs we count its upload records on disk instead.
    /// Whether the tests run against an external, full S3 implementation (not our s3s-fs).
    pub(crate) fn is_external(&self) -> bool {
        self.server.is_none()
    }

    pub(crate) async fn pending_uploads(&self, bucket: &str) -> usize {
        let listed = self
            .raw_client()
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await;
        match (listed, &self.server) {
            (Ok(out), _) => out.uploads().len(),
            (Err(_), Some((_, root))) => count_upload_files(root.path()),
            (Err(err), None) => panic!(
                "ListMultipartUploads failed: {}",
                aws_sdk_s3::error::DisplayErrorContext(&err)
            ),
        }
    }
}

/// s3s-fs keeps `.upload-<id>.json` per pending upload and `.upload_id-<id>.part-<n>` per part.
fn count_upload_files(root: &Path) -> usize {
    std::fs::read_dir(root)
        .expect("read s3s-fs root")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".upload"))
        .count()
}

fn s3s_fs_binary() -> PathBuf {
    if let Ok(path) = std::env::var("VIDQ_TEST_S3S_FS") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        let home = std::env::var("HOME").unwrap_or_default();
        Path::new(&home).join(".cargo/bin/s3s-fs")
    })
}

fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr")
}

fn wait_listening(child: &mut Child, addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Deterministic pseudo-random bytes (xorshift), so a body's parts all differ.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `data` as a stream of chunks of `chunk` bytes.
pub(crate) fn chunked(
    data: &[u8],
    chunk: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<_> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
