//! Rigs for the incident tests: a worker with a skewed clock (libfaketime), the live tasks of a
//! queue counted per job straight from Redis, and the lease trouble a worker's log reports.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context as _;

use crate::TestEnv;

/// Where Debian's `libfaketime` package puts its multi-threaded preload library.
const FAKETIME_MT: &str = "libfaketimeMT.so.1";

/// The path of `libfaketimeMT.so.1`: `VIDQ_TEST_FAKETIME_LIB` (set by `scripts/test`), else
/// what `dpkg -L libfaketime` lists. The error says how to get it.
pub fn faketime_lib() -> anyhow::Result<String> {
    if let Ok(path) = std::env::var("VIDQ_TEST_FAKETIME_LIB")
        && !path.is_empty()
    {
        anyhow::ensure!(
            Path::new(&path).exists(),
            "VIDQ_TEST_FAKETIME_LIB={path} does not exist"
        );
        return Ok(path);
    }
    let listed = std::process::Command::new("dpkg")
        .args(["-L", "libfaketime"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    listed
        .lines()
        .find(|line| line.ends_with(FAKETIME_MT) && Path::new(line).exists())
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "{FAKETIME_MT} not found: VIDQ_TEST_FAKETIME_LIB is unset and `dpkg -L libfaketime` \
                 lists no such file; install Debian's `faketime` package (scripts/test does) or \
                 set VIDQ_TEST_FAKETIME_LIB to the library's path"
            )
        })
}

/// `env` for a process whose wall clock (`SystemTime`, `CLOCK_REALTIME`) runs `offset` off the
/// real one (`"+40s"`, `"-40s"`); its monotonic clock (`Instant`, tokio's timers) stays true.
pub fn with_skewed_clock(
    mut env: BTreeMap<String, String>,
    offset: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    env.insert("LD_PRELOAD".to_owned(), faketime_lib()?);
    env.insert("FAKETIME".to_owned(), offset.to_owned());
    env.insert("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned());
    env.insert("FAKETIME_NO_CACHE".to_owned(), "1".to_owned());
    Ok(env)
}

/// The live tasks of `queue` (members of its `due` or `lease` set), counted per job (the
/// `"job"` field of each payload), read in one atomic step. Task ids are not looked at.
pub async fn live_tasks_per_job(
    env: &TestEnv,
    queue: &str,
) -> anyhow::Result<HashMap<String, usize>> {
    let key = |kind: &str| format!("{}:{{{queue}}}:{kind}", env.prefix);
    let mut conn = env.redis_conn_for(&key("due")).await?;
    let (due, lease, data): (Vec<String>, Vec<String>, HashMap<String, Vec<u8>>) = redis::pipe()
        .atomic()
        .zrange(key("due"), 0, -1)
        .zrange(key("lease"), 0, -1)
        .hgetall(key("data"))
        .query_async(&mut conn)
        .await
        .with_context(|| format!("reading the live tasks of {queue}"))?;
    let mut per_job = HashMap::new();
    for id in due.iter().chain(&lease) {
        let payload = data
            .get(id)
            .with_context(|| format!("live task {id} of {queue} has no payload"))?;
        let value: serde_json::Value = serde_json::from_slice(payload)
            .with_context(|| format!("payload of task {id} of {queue} is not JSON"))?;
        let job = value["job"]
            .as_str()
            .with_context(|| format!("payload of task {id} of {queue} has no \"job\": {value}"))?;
        *per_job.entry(job.to_owned()).or_insert(0) += 1;
    }
    Ok(per_job)
}

/// The lines of a worker log that report a lost lease or an outcome dropped because the task
/// was taken over (the queue logs "leases lost before renewal" and "outcome ignored: the lease
/// was lost and the task was taken over").
#[must_use]
pub fn lease_trouble(log: &str) -> Vec<String> {
    const SIGNS: [&str; 4] = ["lease lost", "leases lost", "lease was lost", "taken over"];
    log.lines()
        .filter(|line| {
            let line = line.to_ascii_lowercase();
            SIGNS.iter().any(|sign| line.contains(sign))
        })
        .map(str::to_owned)
        .collect()
}
