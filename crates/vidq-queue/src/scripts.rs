//! The Lua scripts, in `lua/`. Each touches the keys of one queue only, every range it reads
//! or `unpack`s is bounded by an argument the Rust side caps at `MAX_BATCH`, and every instant
//! it needs comes from Redis's `TIME` (`lua/common.lua`, prepended to each): clients pass
//! relative delays, so a worker's clock changes nothing.

use redis::Script;

const COMMON: &str = include_str!("lua/common.lua");

/// The loaded scripts (their SHA1s are computed once).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) push: Script,
    pub(crate) claim: Script,
    pub(crate) claim_fair: Script,
    pub(crate) end_hold: Script,
    pub(crate) held_for: Script,
    pub(crate) ack: Script,
    pub(crate) finish: Script,
    pub(crate) release: Script,
    pub(crate) renew: Script,
    pub(crate) depth: Script,
    pub(crate) dead_page: Script,
    pub(crate) dead_retry: Script,
    pub(crate) dead_purge: Script,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            push: script(include_str!("lua/push.lua")),
            claim: script(include_str!("lua/claim.lua")),
            claim_fair: script(include_str!("lua/claim_fair.lua")),
            end_hold: Script::new(include_str!("lua/end_hold.lua")),
            held_for: script(include_str!("lua/held_for.lua")),
            ack: script(include_str!("lua/ack.lua")),
            finish: script(include_str!("lua/finish.lua")),
            release: script(include_str!("lua/release.lua")),
            renew: script(include_str!("lua/renew.lua")),
            depth: script(include_str!("lua/depth.lua")),
            dead_page: script(include_str!("lua/dead_page.lua")),
            dead_retry: script(include_str!("lua/dead_retry.lua")),
            dead_purge: script(include_str!("lua/dead_purge.lua")),
        }
    }
}
