//! Fair queues: tasks pushed into named groups (tenants) with a priority; a claim serves the
//! groups with due work in turn, by weight (see `lua/claim_fair.lua`).

use crate::error::QueueError;

/// Longest group name accepted, in bytes.
pub const MAX_GROUP: usize = 128;

/// Order of tasks within one group of a fair queue: every `High` task due before any
/// `Normal` one, every `Normal` before any `Low`; push order within one priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// First.
    High,
    /// The default.
    #[default]
    Normal,
    /// Last.
    Low,
}

impl Priority {
    fn band(self) -> u8 {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }
}

/// Where a task waits in a fair queue: its group (e.g. a tenant) and its priority there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place<'a> {
    /// The group: 1 to 128 bytes, any characters (escaped in key names).
    pub group: &'a str,
    /// Its order within the group.
    pub priority: Priority,
}

impl<'a> Place<'a> {
    /// `priority` within `group`.
    #[must_use]
    pub fn new(group: &'a str, priority: Priority) -> Self {
        Self { group, priority }
    }

    /// "<band> <escaped group>", as the push script takes it.
    pub(crate) fn encode(&self) -> Result<String, QueueError> {
        Ok(format!(
            "{} {}",
            self.priority.band(),
            escape_group(self.group)?
        ))
    }
}

/// A group name as it appears in key names and script arguments: ASCII letters, digits, `-`,
/// `_` and `.` as they are, every other byte as `%XX` (so no brace, space or colon reaches a
/// key name, and `%` alone, the group of tasks pushed without one, is never a user's group).
pub(crate) fn escape_group(group: &str) -> Result<String, QueueError> {
    if group.is_empty() || group.len() > MAX_GROUP {
        return Err(QueueError::InvalidGroup(group.chars().take(64).collect()));
    }
    let mut out = String::with_capacity(group.len());
    for b in group.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_escaped_and_bounded() {
        assert_eq!(escape_group("tenant-a_1.x").unwrap(), "tenant-a_1.x");
        assert_eq!(escape_group("a{b} c%").unwrap(), "a%7Bb%7D%20c%25");
        assert!(escape_group("").is_err());
        assert!(escape_group(&"x".repeat(129)).is_err());
        assert!(escape_group(&"x".repeat(128)).is_ok());
    }
}
