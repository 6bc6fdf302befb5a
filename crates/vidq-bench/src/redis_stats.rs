//! Counters of the Redis under measurement: commands and script calls (`INFO commandstats`,
//! which counts the commands a script runs, too), CPU (`INFO cpu`) and memory.

use redis::aio::MultiplexedConnection;

/// The counters at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Snapshot {
    pub(crate) commands: u64,
    pub(crate) scripts: u64,
    pub(crate) cpu_secs: f64,
    pub(crate) used_memory: u64,
}

/// What happened between two snapshots, per unit of work.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PerUnit {
    pub(crate) commands: f64,
    pub(crate) scripts: f64,
    pub(crate) cpu_us: f64,
}

const SCRIPT_COMMANDS: [&str; 6] = [
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
];

pub(crate) async fn snapshot(conn: &mut MultiplexedConnection) -> anyhow::Result<Snapshot> {
    let commandstats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let mut snap = Snapshot::default();
    for line in commandstats.lines() {
        let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let calls = field(rest, "calls").unwrap_or(0.0) as u64;
        snap.commands += calls;
        if SCRIPT_COMMANDS.contains(&name) {
            snap.scripts += calls;
        }
    }
    let cpu: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    snap.cpu_secs = info_value(&cpu, "used_cpu_sys") + info_value(&cpu, "used_cpu_user");
    let memory: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    snap.used_memory = info_value(&memory, "used_memory") as u64;
    Ok(snap)
}

impl Snapshot {
    /// Per-unit cost of the work done between `before` and `self`.
    pub(crate) fn per(&self, before: &Snapshot, units: u64) -> PerUnit {
        let n = units.max(1) as f64;
        PerUnit {
            commands: self.commands.saturating_sub(before.commands) as f64 / n,
            scripts: self.scripts.saturating_sub(before.scripts) as f64 / n,
            cpu_us: (self.cpu_secs - before.cpu_secs) * 1e6 / n,
        }
    }

    /// Memory grown since `before`, per unit (may be negative).
    pub(crate) fn memory_per(&self, before: &Snapshot, units: u64) -> f64 {
        (self.used_memory as f64 - before.used_memory as f64) / units.max(1) as f64
    }
}

/// `key:value` from an INFO section.
fn info_value(info: &str, key: &str) -> f64 {
    info.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0)
}

/// `name=value` from a commandstats line's `calls=..,usec=..` list.
fn field(list: &str, name: &str) -> Option<f64> {
    list.split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_info_fields() {
        let cpu = "# CPU\r\nused_cpu_sys:1.50\r\nused_cpu_user:2.25\r\n";
        assert_eq!(info_value(cpu, "used_cpu_sys"), 1.5);
        assert_eq!(info_value(cpu, "used_cpu_user"), 2.25);
        assert_eq!(
            field("calls=12,usec=30,usec_per_call=2.5", "calls"),
            Some(12.0)
        );
    }
}
