//! The Redis key layout (issue #13): every key pattern of the workspace with its hash tag, the
//! slot each script's keys map to (one per script), and a scan of the sources that fails when
//! a key is built somewhere this list does not know, or when a command that a Redis Cluster
//! cannot answer for a whole deployment (`KEYS`, `SCAN`, `SELECT`) or a non-sharded `PUBLISH`
//! appears. No services needed; with `VIDQ_TEST_REDIS_CLUSTER_URLS` set, the cluster's own
//! `CLUSTER KEYSLOT` is asked too.
//!
//! The scan is simple by design: it reads the `format!` literals of `crates/*/src` and
//! `tests/src` (each file up to its first `#[cfg(test)]`) that look like key builders — they
//! start with a placeholder and `:` (`{prefix}:…`, `{}:…`), or hold an escaped hash tag
//! (`{{`), or sit in a `keys.rs` — and requires each one to be listed in [`BUILDERS`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use redis::cluster_routing::Slot;

/// What a key builder builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A key (or channel) with this hash tag: every key a script is given shares it.
    Tagged(&'static str),
    /// A key (or channel) of the job store, built on `<prefix>:{jobs}:` (the `{}` first
    /// placeholder of `vidq-core/src/job/keys.rs` is that base).
    JobStore,
    /// A single key that no script or transaction spans with another (any slot).
    Single,
    /// Test-only names (leftover-key allowlist, cleanup pattern, a test binary's keys).
    TestOnly,
    /// Not a Redis key.
    NotAKey,
}

use Kind::{JobStore, NotAKey, Single, Tagged, TestOnly};

/// Every key builder of the sources: the `format!` literal, what it builds, and its kind.
const BUILDERS: &[(&str, &str, Kind)] = &[
    // vidq-core job store: crates/vidq-core/src/job/keys.rs
    (
        "{prefix}:{JOBS_TAG}:",
        "<prefix>:{jobs}: (base)",
        Tagged("jobs"),
    ),
    ("{}job:{id}", "<prefix>:{jobs}:job:<id> (hash)", JobStore),
    (
        "{}job:{id}:history",
        "<prefix>:{jobs}:job:<id>:history",
        JobStore,
    ),
    (
        "{}job:{id}:transfer",
        "<prefix>:{jobs}:job:<id>:transfer",
        JobStore,
    ),
    (
        "{}job:{id}:upload",
        "<prefix>:{jobs}:job:<id>:upload",
        JobStore,
    ),
    ("{}events", "<prefix>:{jobs}:events (channel)", JobStore),
    (
        "{}events:transitions",
        "<prefix>:{jobs}:events:transitions (channel)",
        JobStore,
    ),
    ("{}active", "<prefix>:{jobs}:active", JobStore),
    ("{}all", "<prefix>:{jobs}:all", JobStore),
    (
        "{}tenant:{tenant}",
        "<prefix>:{jobs}:tenant:<tenant>",
        JobStore,
    ),
    ("{}tenants", "<prefix>:{jobs}:tenants", JobStore),
    ("{}unfinished", "<prefix>:{jobs}:unfinished", JobStore),
    (
        "{}job:",
        "<prefix>:{jobs}:job: (prefix for scripts)",
        JobStore,
    ),
    (
        "{}tenant:",
        "<prefix>:{jobs}:tenant: (prefix for scripts)",
        JobStore,
    ),
    (
        "{}tenant:{tenant}:unfinished",
        "<prefix>:{jobs}:tenant:<t>:unfinished",
        JobStore,
    ),
    (
        "{}tenant:{tenant}:today",
        "<prefix>:{jobs}:tenant:<t>:today",
        JobStore,
    ),
    (
        "{}state:",
        "<prefix>:{jobs}:state: (prefix for scripts)",
        JobStore,
    ),
    (
        "{}state_backfill",
        "<prefix>:{jobs}:state_backfill (hash)",
        JobStore,
    ),
    ("{}state:{state}", "<prefix>:{jobs}:state:<state>", JobStore),
    (
        "{}tenant:{tenant}:state:{state}",
        "<prefix>:{jobs}:tenant:<t>:state:<state>",
        JobStore,
    ),
    ("{}states", "<prefix>:{jobs}:states", JobStore),
    ("{}idem:{{{key}}}", "<prefix>:{jobs}:idem:{<key>}", JobStore),
    (
        "{}idem:{tenant}:{{{key}}}",
        "<prefix>:{jobs}:idem:<t>:{<key>}",
        JobStore,
    ),
    (
        "{}:{{jobs}}:stats:minute:",
        "<prefix>:{jobs}:stats:minute:<n>",
        Tagged("jobs"),
    ),
    (
        "{}:{{jobs}}:img:",
        "<prefix>:{jobs}:img:<uuid>",
        Tagged("jobs"),
    ),
    (
        "{}:{{jobs}}:job:{id}:deliveries",
        "<prefix>:{jobs}:job:<id>:deliveries",
        Tagged("jobs"),
    ),
    // vidq-queue: crates/vidq-queue/src/keys.rs (and readers of one queue's keys)
    (
        "{prefix}:{{{queue}}}:{kind}",
        "<prefix>:{<queue>}:<kind>",
        Tagged("q"),
    ),
    (
        "{}:{{{queue}}}:{kind}",
        "<prefix>:{<queue>}:<kind> (tests/src/incident.rs)",
        Tagged("q"),
    ),
    (
        "{PREFIX}:{{{queue}}}:{kind}",
        "<prefix>:{<queue>}:<kind> (bench memory)",
        Tagged("q"),
    ),
    (
        "{prefix}:{{{queue}}}:due",
        "<prefix>:{<queue>}:due (bench: which node holds a queue)",
        Tagged("q"),
    ),
    (
        "{prefix}:{{submit}}:due",
        "<prefix>:{submit}:due (bench)",
        Tagged("submit"),
    ),
    (
        "{prefix}:{{submit}}:lease",
        "<prefix>:{submit}:lease (bench)",
        Tagged("submit"),
    ),
    (
        "{prefix}:{{poll}}:due",
        "<prefix>:{poll}:due (bench)",
        Tagged("poll"),
    ),
    (
        "{prefix}:{{poll}}:lease",
        "<prefix>:{poll}:lease (bench)",
        Tagged("poll"),
    ),
    // vidq-worker limits (admit.lua and the other limit scripts), read by the CLI and console
    (
        "{prefix}:{{limits}}:rate",
        "<prefix>:{limits}:rate",
        Tagged("limits"),
    ),
    (
        "{prefix}:{{limits}}:processing",
        "<prefix>:{limits}:processing",
        Tagged("limits"),
    ),
    (
        "{prefix}:{{limits}}:today",
        "<prefix>:{limits}:today",
        Tagged("limits"),
    ),
    (
        "{prefix}:{{limits}}:credits",
        "<prefix>:{limits}:credits",
        Tagged("limits"),
    ),
    (
        "{prefix}:{{limits}}:budget",
        "<prefix>:{limits}:budget",
        Tagged("limits"),
    ),
    (
        "{}:{{limits}}:credits",
        "<prefix>:{limits}:credits",
        Tagged("limits"),
    ),
    (
        "{}:{{limits}}:budget",
        "<prefix>:{limits}:budget",
        Tagged("limits"),
    ),
    // vidq-core worker registry
    (
        "{prefix}:{{workers}}",
        "<prefix>:{workers}",
        Tagged("workers"),
    ),
    (
        "{prefix}:{{workers}}:info",
        "<prefix>:{workers}:info",
        Tagged("workers"),
    ),
    // single keys
    ("{prefix}:epoch", "<prefix>:epoch", Single),
    ("{}:reconciler:lock", "<prefix>:reconciler:lock", Single),
    ("{}:api:rate:{token}", "<prefix>:api:rate:<token>", Single),
    (
        "{}:console:session:{digest}",
        "<prefix>:console:session:<digest>",
        Single,
    ),
    (
        "{}:console:signin:{client}",
        "<prefix>:console:signin:<client>",
        Single,
    ),
    (
        "{prefix}:reuse:{tenant}:{{{sha}}}",
        "<prefix>:reuse:<t>:{<sha>}",
        Single,
    ),
    ("{prefix}:reuse:{{{sha}}}", "<prefix>:reuse:{<sha>}", Single),
    // tests/src
    ("{p}:{{jobs}}:job:", "leftover allowlist", TestOnly),
    ("{p}:{{jobs}}:all", "leftover allowlist", TestOnly),
    ("{p}:{{jobs}}:states", "leftover allowlist", TestOnly),
    ("{p}:reconciler:lock", "leftover allowlist", TestOnly),
    ("{p}:epoch", "leftover allowlist", TestOnly),
    ("{p}:{{limits}}:credits", "leftover allowlist", TestOnly),
    ("{p}:{{limits}}:rate", "leftover allowlist", TestOnly),
    ("{p}:{{limits}}:today", "leftover allowlist", TestOnly),
    ("{p}:{{limits}}:budget", "leftover allowlist", TestOnly),
    ("{p}:{{jobs}}:img:", "leftover allowlist", TestOnly),
    ("{p}:{{jobs}}:state:", "leftover allowlist", TestOnly),
    (
        "{p}:{{jobs}}:state_backfill",
        "leftover allowlist",
        TestOnly,
    ),
    ("{p}:{{jobs}}:stats:minute:", "leftover allowlist", TestOnly),
    ("{p}:{{workers}}", "leftover allowlist", TestOnly),
    ("{p}:{{workers}}:info", "leftover allowlist", TestOnly),
    (
        "{prefix}:*",
        "the bench's cleanup pattern (its private standalone Redis)",
        TestOnly,
    ),
    ("{}:*", "a test's cleanup pattern", TestOnly),
    ("{}:started", "queue_worker test binary", TestOnly),
    ("{}:done", "queue_worker test binary", TestOnly),
    // not keys
    ("{host}:{port}", "an address", NotAKey),
    ("{job}:{}", "a task id", NotAKey),
    ("{s}:00", "a time", NotAKey),
    ("{}:{}", "a webhook id / a cache key in memory", NotAKey),
];

/// Each script or transaction and the builders of the keys and channels it is handed (or
/// builds from a prefix it is handed): all must map to one slot.
const SCRIPTS: &[(&str, &[&str])] = &[
    (
        "vidq-worker admit.lua, give back, uncertain, spend, balance",
        &[
            "{prefix}:{{limits}}:rate",
            "{prefix}:{{limits}}:processing",
            "{prefix}:{{limits}}:today",
            "{}:{{limits}}:credits",
            "{}:{{limits}}:budget",
        ],
    ),
    (
        "vidq producer `usage` pipeline",
        &["{prefix}:{{limits}}:today", "{prefix}:{{limits}}:credits"],
    ),
    (
        "vidq-core workers beat/list/remove",
        &["{prefix}:{{workers}}", "{prefix}:{{workers}}:info"],
    ),
    (
        "vidq-queue scripts (push, claim, claim_fair, ack, finish, release, renew, dead_*, \
         hold, depth) and pause's MULTI: one queue's keys and wake channel",
        &["{prefix}:{{{queue}}}:{kind}"],
    ),
    (
        "vidq-core create.lua, transition.lua, prune_unfinished.lua, backfill_states.lua, … (see the unit test \
         in vidq-core/src/job/keys.rs for each script's keys)",
        &[
            "{}job:{id}",
            "{}job:{id}:history",
            "{}all",
            "{}active",
            "{}unfinished",
            "{}tenants",
            "{}tenant:{tenant}",
            "{}tenant:{tenant}:unfinished",
            "{}tenant:{tenant}:today",
            "{}state:",
            "{}state_backfill",
            "{}state:{state}",
            "{}tenant:{tenant}:state:{state}",
            "{}states",
            "{}events",
            "{}events:transitions",
            "{}tenant:",
            "{}job:",
            "{}:{{jobs}}:stats:minute:",
            "{}:{{jobs}}:img:",
        ],
    ),
    (
        "vidq-core transfer scripts",
        &["{}job:{id}:transfer", "{}job:{id}:upload"],
    ),
    (
        "vidq-core record delivery",
        &["{}job:{id}", "{}:{{jobs}}:job:{id}:deliveries"],
    ),
];

/// A sample key from a builder: `{{`/`}}` unescaped, `{JOBS_TAG}` = `{jobs}`, `{queue}` = `q`,
/// every other placeholder `x`, and a job-store builder's first `{}` = `vidq:{jobs}:`.
fn sample(literal: &str, kind: Kind) -> String {
    let mut out = String::new();
    let mut rest = literal;
    let mut first = true;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") {
            out.push('{');
            rest = &rest[2..];
        } else if rest.starts_with("}}") {
            out.push('}');
            rest = &rest[2..];
        } else if c == '{' {
            let end = rest.find('}').expect("a closed placeholder");
            let name = &rest[1..end];
            out.push_str(match name {
                "JOBS_TAG" => "{jobs}",
                "queue" => "q",
                "" if first && kind == JobStore => "vidq:{jobs}:",
                "" | "prefix" | "p" | "PREFIX" => "vidq",
                _ => "x",
            });
            first = false;
            rest = &rest[end + 1..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The hash tag Redis Cluster hashes for `key`.
fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

fn kind_of(literal: &str) -> Kind {
    BUILDERS
        .iter()
        .find(|(l, _, _)| *l == literal)
        .map(|(_, _, k)| *k)
        .unwrap_or_else(|| panic!("{literal:?} is not in BUILDERS"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// The source dirs scanned: every crate's `src`, and `tests/src` when `with_tests`.
fn source_files(ext: &str, with_tests: bool) -> Vec<PathBuf> {
    let root = root();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
    {
        files(&entry.path().join("src"), ext, &mut out);
    }
    if with_tests {
        files(&root.join("tests/src"), ext, &mut out);
    }
    out.sort();
    out
}

/// A file's text up to its first `#[cfg(test)]` (its unit tests run against a local Redis).
fn non_test_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("a readable source file");
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The `format!` literals of `text` that look like Redis key builders.
fn key_literals(text: &str, in_keys_rs: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("format!(") {
        rest = &rest[at + "format!(".len()..];
        let trimmed = rest.trim_start();
        let Some(body) = trimmed.strip_prefix('"') else {
            continue;
        };
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { continue };
        let literal = &body[..end];
        if literal.chars().any(char::is_whitespace) || !literal.contains(['{', ':']) {
            continue;
        }
        let placeholder_colon = literal.starts_with('{')
            && literal
                .find('}')
                .is_some_and(|close| literal[close + 1..].starts_with(':'))
            && !literal.starts_with("{{");
        let escaped_tag = literal.contains("{{") && literal.contains(':');
        let starts_with_placeholder = literal.starts_with('{') && !literal.starts_with("{{");
        if placeholder_colon || escaped_tag || (in_keys_rs && starts_with_placeholder) {
            out.push(literal.to_owned());
        }
    }
    out
}

#[test]
fn every_key_builder_in_the_sources_is_listed_with_its_hash_tag() {
    let root = root();
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in source_files("rs", true) {
        let in_keys_rs = path.file_name().is_some_and(|n| n == "keys.rs");
        for literal in key_literals(&non_test_text(&path), in_keys_rs) {
            let shown = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            found.entry(literal).or_default().insert(shown);
        }
    }
    let unknown: Vec<String> = found
        .iter()
        .filter(|(literal, _)| !BUILDERS.iter().any(|(l, _, _)| l == literal))
        .map(|(literal, files)| format!("{literal:?} in {files:?}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "key builders not in tests/tests/key_layout.rs BUILDERS (add each with its hash tag; \
         a script's or MULTI's keys must share one): {unknown:#?}"
    );
    let stale: Vec<&str> = BUILDERS
        .iter()
        .map(|(l, _, _)| *l)
        .filter(|l| !found.contains_key(*l))
        .collect();
    assert!(
        stale.is_empty(),
        "BUILDERS lists key builders no longer in the sources: {stale:?}"
    );
}

#[test]
fn each_tagged_builder_has_its_hash_tag() {
    for (literal, what, kind) in BUILDERS {
        let key = sample(literal, *kind);
        match kind {
            Tagged(tag) => assert_eq!(hash_tag(&key), *tag, "{literal:?} ({what}) → {key}"),
            JobStore => {
                assert!(key.starts_with("vidq:{jobs}:"), "{literal:?} → {key}");
                assert_eq!(hash_tag(&key), "jobs", "{literal:?} ({what}) → {key}");
            }
            Single | TestOnly | NotAKey => {}
        }
    }
}

#[test]
fn each_script_touches_one_slot() {
    for (script, builders) in SCRIPTS {
        let slots: BTreeSet<String> = builders
            .iter()
            .map(|b| format!("{:?}", Slot::for_key(sample(b, kind_of(b)))))
            .collect();
        assert_eq!(slots.len(), 1, "{script}: keys in slots {slots:?}");
    }
    // Different tags may (and for the job store and the queues, do) live on different shards.
    let jobs = Slot::for_key("vidq:{jobs}:all");
    assert_ne!(jobs, Slot::for_key("vidq:{submit}:due"));
    assert_ne!(jobs, Slot::for_key("vidq:{poll}:due"));
}

/// No command a cluster answers for one node only, no database switch, no classic pub/sub.
#[test]
fn no_keys_scan_select_or_unsharded_publish_in_the_sources() {
    let banned_lua = ["'KEYS'", "'SCAN'", "'SELECT'", "'PUBLISH'", "\"PUBLISH\""];
    let banned_rust = [
        "cmd(\"KEYS\")",
        "cmd(\"SCAN\")",
        "cmd(\"SELECT\")",
        "cmd(\"PUBLISH\")",
        ".scan_match(",
        ".keys(format!",
        ".publish(",
    ];
    // The bench's scenarios run on their own private standalone Redis and clean their prefix.
    let allowed = [("crates/vidq-bench/src/scenario/console.rs", "cmd(\"SCAN\")")];
    let root = root();
    let mut found = Vec::new();
    for path in source_files("lua", false) {
        let text = std::fs::read_to_string(&path).expect("a readable script");
        for b in banned_lua {
            if text.contains(&format!("redis.call({b}"))
                || text.contains(&format!("redis.pcall({b}"))
            {
                found.push(format!(
                    "{}: {b}",
                    path.strip_prefix(&root).unwrap_or(&path).display()
                ));
            }
        }
    }
    for path in source_files("rs", false) {
        let text = non_test_text(&path);
        for b in banned_lua {
            if text.contains(&format!("redis.call({b}")) {
                found.push(format!(
                    "{}: {b}",
                    path.strip_prefix(&root).unwrap_or(&path).display()
                ));
            }
        }
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        for b in banned_rust {
            if text.contains(b) && !allowed.contains(&(shown.as_str(), b)) {
                found.push(format!(
                    "{}: {b}",
                    path.strip_prefix(&root).unwrap_or(&path).display()
                ));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// The slot function agrees with Redis Cluster's spec and, when a cluster is at hand, with
/// the cluster's own `CLUSTER KEYSLOT`.
#[tokio::test]
async fn slots_agree_with_the_cluster() {
    assert_eq!(Slot::for_key("123456789"), Slot::new(0x31C3).unwrap());
    let Ok(urls) = std::env::var("VIDQ_TEST_REDIS_CLUSTER_URLS") else {
        eprintln!("skipped the CLUSTER KEYSLOT check: VIDQ_TEST_REDIS_CLUSTER_URLS is not set");
        return;
    };
    let url = urls.split(',').next().expect("a seed URL").trim();
    let client = redis::Client::open(url).expect("a cluster seed URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("a connection to the cluster seed");
    for (literal, _, kind) in BUILDERS {
        if matches!(kind, NotAKey | TestOnly) {
            continue;
        }
        let key = sample(literal, *kind);
        let theirs: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("CLUSTER KEYSLOT");
        assert_eq!(Slot::for_key(&key), Slot::new(theirs).unwrap(), "{key}");
    }
}
