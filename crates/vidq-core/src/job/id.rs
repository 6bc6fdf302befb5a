//! `JobId`: the id of one job, a UUID v7 so ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The id of one job: a UUID v7 in its hyphenated lowercase form.
///
/// Version 7 UUIDs start with the creation time, so ids sort by age.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(Uuid);

/// A string that is not a job id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid job id `{value}`: {reason}")]
pub struct InvalidJobId {
    value: String,
    reason: &'static str,
}

impl JobId {
    /// A new id for a job created now.
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The UUID behind the id.
    #[must_use]
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

impl FromStr for JobId {
    type Err = InvalidJobId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown: String = s.chars().take(64).collect();
        // Only the canonical form, so the id in a URL and in a Redis key are the same text.
        if s.len() != 36 {
            return Err(InvalidJobId {
                value: shown,
                reason: "expected a hyphenated UUID of 36 characters",
            });
        }
        let uuid = Uuid::try_parse(s).map_err(|_| InvalidJobId {
            value: shown.clone(),
            reason: "not a UUID",
        })?;
        if uuid.get_version_num() != 7 {
            return Err(InvalidJobId {
                value: shown,
                reason: "not a version 7 UUID",
            });
        }
        Ok(Self(uuid))
    }
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parses_back() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
    }

    #[test]
    fn rejects_non_v7_and_garbage() {
        let v4 = Uuid::new_v4().to_string();
        let err = v4.parse::<JobId>().unwrap_err().to_string();
        assert!(err.contains("version 7"), "{err}");
        let err = "not-a-job".parse::<JobId>().unwrap_err().to_string();
        assert!(err.contains("not-a-job"), "{err}");
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = JobId::new();
        let b = JobId::new();
        assert!(a.to_string() < b.to_string());
    }
}
