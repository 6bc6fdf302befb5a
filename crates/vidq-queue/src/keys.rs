//! Key names of one queue; all share the hash tag `{<queue>}`.

/// The Redis keys (and the wake-up channel) of one queue.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// ZSET id -> due time (ms): immediate and scheduled tasks.
    pub(crate) due: String,
    /// ZSET id -> lease deadline (ms): claimed tasks.
    pub(crate) lease: String,
    /// HASH id -> payload bytes.
    pub(crate) data: String,
    /// HASH id -> delivery count (the fencing token), present once claimed.
    pub(crate) dlv: String,
    /// ZSET id -> time of death (ms).
    pub(crate) dead: String,
    /// HASH id -> reason of death.
    pub(crate) why: String,
    /// Pub/sub channel announcing immediately-due work.
    pub(crate) wake: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, queue: &str) -> Self {
        let k = |kind: &str| format!("{prefix}:{{{queue}}}:{kind}");
        Self {
            due: k("due"),
            lease: k("lease"),
            data: k("data"),
            dlv: k("dlv"),
            dead: k("dead"),
            why: k("why"),
            wake: k("wake"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_queue_hash_tag() {
        let k = Keys::new("p", "submit");
        for key in [&k.due, &k.lease, &k.data, &k.dlv, &k.dead, &k.why] {
            assert!(key.starts_with("p:{submit}:"), "{key}");
        }
    }
}
