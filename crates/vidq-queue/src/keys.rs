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
    /// Sharded pub/sub channel (`SPUBLISH`/`SSUBSCRIBE`, in the queue's slot) announcing
    /// immediately-due work.
    pub(crate) wake: String,
    /// Fair queues: ZSET id -> due time (ms) of every task waiting in a group.
    pub(crate) ready: String,
    /// Fair queues: HASH id -> "<band> <seq> <group>[ <start tag>]".
    pub(crate) gm: String,
    /// Fair queues: ZSET group -> virtual start time of its next task (groups with work).
    pub(crate) groups: String,
    /// Fair queues: HASH group -> finish tag of an idle group; `%V` -> the virtual time.
    pub(crate) vt: String,
    /// Fair queues: STRING, until when (ms) no claim takes anything.
    pub(crate) hold: String,
    /// Fair queues: prefix of each group's ZSET id -> rank (priority, then push order).
    pub(crate) group_prefix: String,
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
            ready: k("ready"),
            gm: k("gm"),
            groups: k("groups"),
            vt: k("vt"),
            hold: k("hold"),
            group_prefix: k("g:"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key and the wake-up channel of one queue (and the `paused` key and the group
    /// ZSETs the scripts build from them) map to one Redis Cluster slot, redis-rs's slot
    /// function deciding; two queues may map to two.
    #[test]
    fn keys_share_the_queue_hash_tag() {
        use redis::cluster_routing::Slot;

        let k = Keys::new("p", "submit");
        let paused = format!("{}paused", k.due.strip_suffix("due").unwrap());
        let group = format!("{}tenant-a", k.group_prefix);
        let slot = Slot::for_key("{submit}");
        for key in [
            &k.due,
            &k.lease,
            &k.data,
            &k.dlv,
            &k.dead,
            &k.why,
            &k.wake,
            &k.ready,
            &k.gm,
            &k.groups,
            &k.vt,
            &k.hold,
            &k.group_prefix,
            &paused,
            &group,
        ] {
            assert!(key.starts_with("p:{submit}:"), "{key}");
            assert_eq!(Slot::for_key(key), slot, "{key}");
        }
        assert_ne!(Slot::for_key(&Keys::new("p", "poll").due), slot);
    }
}
