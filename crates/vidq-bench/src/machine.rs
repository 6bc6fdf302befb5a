//! The machine and software versions, for RESULTS.md.

use crate::ctx::Ctx;

/// A Markdown list: CPU, cores, memory, kernel, and versions of every program involved.
pub(crate) async fn describe(ctx: &Ctx) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or("unknown".to_owned(), |kib| {
            format!("{:.1} GiB", kib / 1024.0 / 1024.0)
        });
    let redis_version = match ctx.redis().await {
        Ok(mut conn) => {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            let get = |k: &str| {
                info.lines()
                    .find_map(|l| l.trim().strip_prefix(k))
                    .unwrap_or("?")
                    .to_owned()
            };
            format!("{} (hz {})", get("redis_version:"), get("hz:"))
        }
        Err(_) => "unreachable".to_owned(),
    };
    let bullmq = std::fs::read_to_string(ctx.bullmq_dir.join("node_modules/bullmq/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "not installed".to_owned());
    let ioredis = std::fs::read_to_string(ctx.bullmq_dir.join("node_modules/ioredis/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "not installed".to_owned());
    [
        format!("- CPU: {cpu}, {cores} cores available; memory {mem}"),
        format!("- Kernel: {}", output("uname", &["-sr"])),
        format!("- Redis: {redis_version}, private instance, no persistence, loopback"),
        format!("- {}", output("rustc", &["--version"])),
        format!(
            "- Node.js {}, BullMQ {bullmq}, ioredis {ioredis}",
            output("node", &["--version"])
        ),
        format!(
            "- {}",
            output("curl", &["--version"])
                .lines()
                .next()
                .unwrap_or("curl ?")
        ),
        format!("- Date: {}", output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
    ]
    .join("\n")
}

/// A program's trimmed stdout, or `<program> not found`.
pub(crate) fn output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| format!("{program} not found"))
}
