//! Rigs for the pipeline incident tests (`tests/tests/incidents_pipeline.rs`): an S3 server of
//! the test's own (s3s-fs, whose data folder shows the multipart uploads it holds open since it
//! does not answer `ListMultipartUploads`; or moto's server), a redis-server with an
//! append-only file that a test SIGKILLs and starts again on the same files and port, a
//! [`TestEnv`] on chosen services with a chosen job deadline, and what an operator reads after
//! an incident: job states, submissions, objects, open uploads, live and dead tasks.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_s3::error::ProvideErrorMetadata as _;
use tokio::process::{Child, Command};
use vidq_core::{JobId, TaskKind};

use crate::incident::live_tasks_per_job;
pub use crate::redis_rigs::{ClusterRig, ReplicatedRig, SentinelRig};
use crate::redis_server::wait_listening;
use crate::{RedisShape, S3Endpoint, Sim, TestEnv, free_port, unique, wait_until};

/// The four queues of the pipeline.
pub const QUEUES: [TaskKind; 4] = [
    TaskKind::Submit,
    TaskKind::Poll,
    TaskKind::Transfer,
    TaskKind::Notify,
];

/// `name` on `PATH`, else in `~/.cargo/bin` (where `scripts/test` installs s3s-fs).
fn find_program(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin"));
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!("{name} not found on PATH nor in ~/.cargo/bin (scripts/test installs it)")
        })
}

/// The S3 server behind [`PrivateS3`]: `VIDQ_TEST_PIPELINE_S3=moto` picks moto's server (a
/// stricter, slower S3 that answers `ListMultipartUploads`: `pip install 'moto[server]'`);
/// anything else s3s-fs, the one `scripts/test` installs.
const SERVER_VAR: &str = "VIDQ_TEST_PIPELINE_S3";

/// An S3 server of one test (s3s-fs, or moto: see [`SERVER_VAR`]) on a free port, with its own
/// credentials and data folder; killed and its folder removed on drop.
pub struct PrivateS3 {
    child: Child,
    dir: PathBuf,
    endpoint: S3Endpoint,
}

impl PrivateS3 {
    /// Starts it (a port taken in between is retried with another).
    pub async fn start() -> anyhow::Result<Self> {
        let moto = std::env::var(SERVER_VAR).is_ok_and(|v| v == "moto");
        let (name, program) = if moto {
            ("moto_server", find_program("moto_server")?)
        } else {
            ("s3s-fs", find_program("s3s-fs")?)
        };
        let dir = std::env::temp_dir().join(unique("vidq-pipeline-s3"));
        std::fs::create_dir_all(&dir)?;
        let access_key = unique("ak");
        let secret_key = unique("secret-key-of-this-test");
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?.to_string();
            let mut command = Command::new(&program);
            if moto {
                command.args(["-H", "127.0.0.1", "-p", &port]);
            } else {
                command
                    .args(["--host", "127.0.0.1", "--port", &port])
                    .args(["--access-key", &access_key, "--secret-key", &secret_key])
                    .arg(&dir);
            }
            let mut child = command
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {name}"))?;
            let port: u16 = port.parse()?;
            match wait_listening(&mut child, port, &format!("{name} to listen")).await {
                Ok(()) => {
                    let endpoint = S3Endpoint {
                        endpoint: format!("http://127.0.0.1:{port}"),
                        access_key,
                        secret_key,
                        region: "us-east-1".to_owned(),
                    };
                    return Ok(Self {
                        child,
                        dir,
                        endpoint,
                    });
                }
                Err(err) => last_error = Some(err),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("{name} did not start")))
    }

    /// Where it listens and how to sign in.
    #[must_use]
    pub fn endpoint(&self) -> &S3Endpoint {
        &self.endpoint
    }

    /// Its data folder (s3s-fs keeps objects and uploads there).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A multipart upload that was created and neither completed nor aborted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpenUpload {
    /// Its bucket (empty when the store did not say).
    pub bucket: String,
    /// The object key it would create.
    pub key: String,
    /// The upload id.
    pub upload_id: String,
    /// Parts stored so far, at most the first 1,000; `None` when the store did not say (moto
    /// 5.2.5 answers `ListParts` under a `ListPartsResponse` root that aws-sdk-s3 refuses).
    pub parts: Option<usize>,
}

/// Where [`open_uploads`] learned about the open uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadsSeen {
    /// `ListMultipartUploads` answered.
    ListMultipartUploads,
    /// The store answered `ListMultipartUploads` with NotImplemented (s3s-fs 0.14 does), so its
    /// data folder was read: `.upload-<id>.json` per open upload, `.upload_id-<id>.part-<n>`
    /// per stored part, `.bucket-<b64>.object-<b64>.upload-<id>.metadata.json` naming the key.
    DataFolder,
}

/// The multipart uploads open in `bucket`: through `ListMultipartUploads` when the store
/// answers it, else from the data folder of `s3` (which then holds only this test's buckets).
pub async fn open_uploads(
    s3: &PrivateS3,
    bucket: &str,
) -> anyhow::Result<(Vec<OpenUpload>, UploadsSeen)> {
    let client = s3.endpoint().client();
    let mut uploads = Vec::new();
    let (mut key_marker, mut id_marker) = (None, None);
    loop {
        let page = match client
            .list_multipart_uploads()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_upload_id_marker(id_marker.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(err)
                if err.code() == Some("NotImplemented")
                    || err.raw_response().map(|r| r.status().as_u16()) == Some(501) =>
            {
                let mut seen = uploads_in_data_folder(s3.dir())?;
                seen.retain(|u| u.bucket == bucket);
                return Ok((seen, UploadsSeen::DataFolder));
            }
            Err(err) => {
                return Err(anyhow::Error::new(err).context("ListMultipartUploads"));
            }
        };
        for upload in page.uploads() {
            let key = upload.key().unwrap_or_default().to_owned();
            let upload_id = upload.upload_id().unwrap_or_default().to_owned();
            // Parts of an upload that completes meanwhile are unknown; the upload is still
            // reported, as it was open when listed.
            let parts = client
                .list_parts()
                .bucket(bucket)
                .key(&key)
                .upload_id(&upload_id)
                .send()
                .await
                .ok()
                .map(|listed| listed.parts().len());
            uploads.push(OpenUpload {
                bucket: bucket.to_owned(),
                key,
                upload_id,
                parts,
            });
        }
        if page.is_truncated() != Some(true) {
            uploads.sort();
            return Ok((uploads, UploadsSeen::ListMultipartUploads));
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        id_marker = page.next_upload_id_marker().map(str::to_owned);
    }
}

/// The open uploads recorded in an s3s-fs data folder (see [`UploadsSeen::DataFolder`]).
fn uploads_in_data_folder(dir: &Path) -> anyhow::Result<Vec<OpenUpload>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        if let Some(name) = entry?.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    let mut uploads = Vec::new();
    for name in &names {
        let Some(id) = name
            .strip_prefix(".upload-")
            .and_then(|rest| rest.strip_suffix(".json"))
        else {
            continue;
        };
        let parts = names
            .iter()
            .filter(|n| n.starts_with(&format!(".upload_id-{id}.part-")))
            .count();
        let meta_suffix = format!(".upload-{id}.metadata.json");
        let (bucket, key) = names
            .iter()
            .find_map(|n| {
                let rest = n.strip_prefix(".bucket-")?.strip_suffix(&meta_suffix)?;
                let (bucket, key) = rest.split_once(".object-")?;
                Some((decode_b64url(bucket)?, decode_b64url(key)?))
            })
            .unwrap_or_default();
        uploads.push(OpenUpload {
            bucket,
            key,
            upload_id: id.to_owned(),
            parts: Some(parts),
        });
    }
    uploads.sort();
    Ok(uploads)
}

/// URL-safe base64 without padding, as s3s-fs names its metadata files.
fn decode_b64url(text: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut held = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push(u8::try_from((bits >> held) & 0xff).ok()?);
        }
    }
    String::from_utf8(out).ok()
}

/// A [`TestEnv`] named after `name` on `redis_url` and `s3`, its bucket created; new jobs get
/// `deadline` (the producer's `jobs.deadline`) when given, else the default.
pub async fn test_env(
    name: &str,
    redis_url: &str,
    s3: &S3Endpoint,
    deadline: Option<Duration>,
) -> anyhow::Result<TestEnv> {
    test_env_on(
        name,
        RedisShape::Standalone(redis_url.to_owned()),
        s3,
        deadline,
    )
    .await
}

/// [`test_env`] on any Redis shape.
pub async fn test_env_on(
    name: &str,
    shape: RedisShape,
    s3: &S3Endpoint,
    deadline: Option<Duration>,
) -> anyhow::Result<TestEnv> {
    let deadline = deadline.map(as_millis_setting);
    let settings: Vec<(&str, &str)> = deadline
        .as_deref()
        .map(|d| ("VIDQ__JOBS__DEADLINE", d))
        .into_iter()
        .collect();
    TestEnv::on_with(name, shape, s3, &settings).await
}

/// `d` as whole milliseconds, a duration the settings loader reads (`"1500ms"`).
fn as_millis_setting(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Deletes the Redis keys under the test's prefix (its bucket goes with its private s3s-fs).
pub async fn forget_keys(env: &TestEnv) -> anyhow::Result<()> {
    let keys = env.redis.scan(&format!("{}:*", env.prefix)).await?;
    env.redis.delete(&keys).await
}

/// Live tasks (due or leased) per queue that belong to one of `jobs`, as `job id -> count`;
/// queues without any are left out.
pub async fn live_tasks_of(
    env: &TestEnv,
    jobs: &[JobId],
) -> anyhow::Result<BTreeMap<&'static str, BTreeMap<String, usize>>> {
    let mut out = BTreeMap::new();
    for kind in QUEUES {
        let per_job = live_tasks_per_job(env, kind.queue_name()).await?;
        let mine: BTreeMap<String, usize> = jobs
            .iter()
            .filter_map(|id| {
                let id = id.to_string();
                per_job.get(&id).map(|n| (id, *n))
            })
            .collect();
        if !mine.is_empty() {
            out.insert(kind.queue_name(), mine);
        }
    }
    Ok(out)
}

/// Waits (up to 30 s) until no queue holds a due or leased task of `jobs` (all ended); the
/// error lists what stayed.
pub async fn wait_queues_clear(env: &TestEnv, jobs: &[JobId]) -> anyhow::Result<()> {
    let result = wait_until(
        "no live task of an ended job",
        Duration::from_secs(30),
        || async { Ok(live_tasks_of(env, jobs).await?.is_empty().then_some(())) },
    )
    .await;
    if result.is_err() {
        let left = live_tasks_of(env, jobs).await?;
        anyhow::bail!("tasks of ended jobs still due or leased after 30 s: {left:?}");
    }
    Ok(())
}

/// What an operator reads after an incident, for the test's `incident:` line.
#[derive(Debug, Default)]
pub struct Tally {
    /// Jobs per state.
    pub states: BTreeMap<String, usize>,
    /// The simulator's decision per job (`success`/`failed`), or `unsubmitted`.
    pub decided: BTreeMap<String, usize>,
    /// Jobs per number of accepted submissions.
    pub submissions: BTreeMap<u64, usize>,
    /// Objects in the bucket.
    pub objects: usize,
    /// Multipart uploads open in the bucket.
    pub open_uploads: usize,
    /// Live tasks per queue, all jobs of the test together.
    pub live_tasks: BTreeMap<&'static str, usize>,
    /// Dead tasks per queue.
    pub dead: BTreeMap<&'static str, u64>,
    /// Result downloads the simulator answered (all jobs).
    pub downloads: u64,
    /// HTTP 5xx answers the simulator injected.
    pub injected_5xx: u64,
}

impl Tally {
    /// Jobs in `state` (its lowercase name).
    #[must_use]
    pub fn in_state(&self, state: &str) -> usize {
        self.states.get(state).copied().unwrap_or(0)
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "states {:?}, upstream decided {:?}, jobs by submissions {:?}, objects {}, open \
             uploads {}, live tasks {:?}, dead tasks {:?}, downloads {}, injected 5xx {}",
            self.states,
            self.decided,
            self.submissions,
            self.objects,
            self.open_uploads,
            self.live_tasks,
            self.dead,
            self.downloads,
            self.injected_5xx
        )
    }
}

/// Counts everything [`Tally`] holds for `jobs` (id, reference_video_url).
pub async fn tally(
    env: &TestEnv,
    sim: &Sim,
    s3: &PrivateS3,
    jobs: &[(JobId, String)],
) -> anyhow::Result<Tally> {
    let stats = sim.stats().await?;
    let mut out = Tally {
        downloads: stats.downloads,
        injected_5xx: stats.faults.http_5xx,
        ..Tally::default()
    };
    for (id, url) in jobs {
        let job = env
            .producer
            .status(id)
            .await?
            .with_context(|| format!("job {id} has no record"))?;
        *out.states.entry(job.state.to_string()).or_insert(0) += 1;
        let decided = job
            .img_uuid
            .as_deref()
            .and_then(|img| stats.jobs.get(img))
            .map_or_else(|| "unsubmitted".to_owned(), |j| j.status.clone());
        *out.decided.entry(decided).or_insert(0) += 1;
        let n = stats.submissions.get(url).copied().unwrap_or(0);
        *out.submissions.entry(n).or_insert(0) += 1;
    }
    out.objects = crate::verify::list_keys(env).await?.len();
    out.open_uploads = open_uploads(s3, &env.bucket).await?.0.len();
    for kind in QUEUES {
        let live: usize = live_tasks_per_job(env, kind.queue_name())
            .await?
            .values()
            .sum();
        if live > 0 {
            out.live_tasks.insert(kind.queue_name(), live);
        }
        let dead = env.producer.depth(kind).await?.dead;
        if dead > 0 {
            out.dead.insert(kind.queue_name(), dead);
        }
    }
    Ok(out)
}
