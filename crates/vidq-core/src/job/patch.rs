//! `Patch`: the field changes a transition (or a bare patch) applies to a job record.

use super::codec::{field, to_json};
use super::{Output, SignedUrl, StoreError};

/// Hash fields to set (name, value) and hash fields to delete.
pub(super) type FieldChanges = (Vec<(&'static str, String)>, Vec<&'static str>);

/// Field changes applied atomically with a transition or on their own
/// ([`JobStore::patch`](super::JobStore::patch)). Build it with the chained methods; fields
/// not mentioned keep their stored value.
///
/// ```
/// use vidq_core::{Patch, SignedUrl};
/// let patch = Patch::new()
///     .img_uuid("5b7c1a2e-0000-4000-8000-000000000000")
///     .result_url(SignedUrl::new("https://cdn.example/v.mp4?sig=x"))
///     .note("upstream accepted");
/// # let _ = patch;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    img_uuid: Option<String>,
    error: Option<Option<String>>,
    result_url: Option<Option<SignedUrl>>,
    output: Option<Output>,
    upstream_cost: Option<f64>,
    upstream_request_id: Option<String>,
    deadline_at: Option<u64>,
    attempts_increment: u32,
    note: Option<String>,
}

impl Patch {
    /// No changes: a transition with an empty patch only moves the state.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores upstream's job id.
    #[must_use]
    pub fn img_uuid(mut self, img_uuid: impl Into<String>) -> Self {
        self.img_uuid = Some(img_uuid.into());
        self
    }

    /// Stores why the job failed (or the last transient error).
    #[must_use]
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(Some(error.into()));
        self
    }

    /// Removes the stored error.
    #[must_use]
    pub fn clear_error(mut self) -> Self {
        self.error = Some(None);
        self
    }

    /// Stores the signed URL of upstream's result (also used to refresh it).
    #[must_use]
    pub fn result_url(mut self, url: SignedUrl) -> Self {
        self.result_url = Some(Some(url));
        self
    }

    /// Removes the signed URL (once the video is stored, it is of no further use).
    #[must_use]
    pub fn clear_result_url(mut self) -> Self {
        self.result_url = Some(None);
        self
    }

    /// Stores where the video landed.
    #[must_use]
    pub fn output(mut self, output: Output) -> Self {
        self.output = Some(output);
        self
    }

    /// Stores the credits upstream charged.
    #[must_use]
    pub fn upstream_cost(mut self, cost: f64) -> Self {
        self.upstream_cost = Some(cost);
        self
    }

    /// Stores upstream's request id.
    #[must_use]
    pub fn upstream_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.upstream_request_id = Some(request_id.into());
        self
    }

    /// Sets a new deadline (Unix ms).
    #[must_use]
    pub fn deadline_at(mut self, at_ms: u64) -> Self {
        self.deadline_at = Some(at_ms);
        self
    }

    /// Adds one to `attempts`.
    #[must_use]
    pub fn bump_attempts(mut self) -> Self {
        self.attempts_increment = self.attempts_increment.saturating_add(1);
        self
    }

    /// The note recorded with the transition in the job's history (ignored by a bare patch).
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    pub(super) fn attempts_increment(&self) -> u32 {
        self.attempts_increment
    }

    pub(super) fn note_json(&self) -> Result<String, StoreError> {
        to_json("note", &self.note)
    }

    /// The hash fields to set and the hash fields to delete.
    pub(super) fn to_fields(&self) -> Result<FieldChanges, StoreError> {
        let mut sets = Vec::new();
        let mut clears = Vec::new();
        if let Some(img_uuid) = &self.img_uuid {
            sets.push((field::IMG_UUID, img_uuid.clone()));
        }
        match &self.error {
            Some(Some(error)) => sets.push((field::ERROR, error.clone())),
            Some(None) => clears.push(field::ERROR),
            None => {}
        }
        match &self.result_url {
            Some(Some(url)) => sets.push((field::RESULT_URL, url.expose().to_owned())),
            Some(None) => clears.push(field::RESULT_URL),
            None => {}
        }
        if let Some(output) = &self.output {
            sets.push((field::OUTPUT, to_json(field::OUTPUT, output)?));
        }
        if let Some(cost) = self.upstream_cost {
            sets.push((field::UPSTREAM_COST, cost.to_string()));
        }
        if let Some(request_id) = &self.upstream_request_id {
            sets.push((field::UPSTREAM_REQUEST_ID, request_id.clone()));
        }
        if let Some(at) = self.deadline_at {
            sets.push((field::DEADLINE_AT, at.to_string()));
        }
        Ok((sets, clears))
    }
}
