//! A job's transfer progress, beside the job (same hash tag): the multipart upload it has open
//! and each part the store confirmed, so a re-delivered transfer resumes it after a crash (and
//! can abort it even where the store cannot list uploads). Every write is fenced by the
//! delivery that owns the transfer: a late worker that lost its lease records nothing.
//!
//! `<prefix>:{jobs}:job:<id>:transfer` is a hash: `owner` (the fencing token of the delivery
//! running the transfer), `upload_id`, `key`, `length` and `validator` (of the upstream body
//! the parts hold), and `p:<n>` = `<bytes> <etag or -> <sha256 state>` per stored part.
//! `<prefix>:{jobs}:job:<id>:upload` (a string: an upload id) is what releases before resuming
//! kept; it is still read, to abort what they left open.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{AsyncCommands, Script};

use super::{JobId, JobStore, StoreError};

/// How long a transfer's record is kept (past it, a bucket lifecycle rule is the defence).
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// KEYS[1] record; ARGV[1] token, ARGV[2] keep ms. The delivery takes the transfer over (the
/// queue hands a task to a second delivery only once the first one's lease is gone) and reads
/// what earlier ones recorded.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "redis.call('HSET', KEYS[1], 'owner', ARGV[1]) \
         redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
         return redis.call('HGETALL', KEYS[1])",
    )
});

/// KEYS[1] record; ARGV[1] token, ARGV[2] keep ms, ARGV[3..] field/value pairs. Replaces the
/// record with a new one (no parts) if the token still owns it.
static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end \
         redis.call('DEL', KEYS[1]) \
         redis.call('HSET', KEYS[1], 'owner', ARGV[1]) \
         for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end \
         redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
         return 1",
    )
});

/// KEYS[1] record; ARGV[1] token, ARGV[2] upload id, ARGV[3] field, ARGV[4] value.
static PART: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] \
            or redis.call('HGET', KEYS[1], 'upload_id') ~= ARGV[2] then return 0 end \
         redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) \
         return 1",
    )
});

/// KEYS[1] record; ARGV[1] token. Deletes the record if the token owns it.
static END: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end \
         redis.call('DEL', KEYS[1]) return 1",
    )
});

/// KEYS[1] record; ARGV[1] token, ARGV[2] keep ms. Forgets the upload and its parts if the
/// token owns the record, which it keeps owning.
static RESET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end \
         redis.call('DEL', KEYS[1]) \
         redis.call('HSET', KEYS[1], 'owner', ARGV[1]) \
         redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1",
    )
});

/// The multipart upload a transfer opened, as [`JobStore::begin_transfer_upload`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferUpload {
    /// The multipart upload's id.
    pub upload_id: String,
    /// The object key it creates.
    pub key: String,
    /// The upstream body's whole length.
    pub length: u64,
    /// The upstream body's validator (its `ETag`, else its `Last-Modified`), when it had one.
    pub validator: Option<String>,
}

/// A part the store confirmed, as [`JobStore::record_part`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPart {
    /// Part number, from 1.
    pub number: u32,
    /// Its length.
    pub bytes: u64,
    /// The ETag the store gave it.
    pub etag: Option<String>,
    /// The sha256 state at the part's end (opaque text, no spaces).
    pub sha256_state: String,
}

/// What earlier deliveries of a job's transfer recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferRecord {
    /// The upload they opened, if any.
    pub upload: Option<TransferUpload>,
    /// Its parts the store confirmed, in no particular order.
    pub parts: Vec<RecordedPart>,
}

impl JobStore {
    /// The Redis key of job `id`'s transfer record (for operators and tests).
    #[must_use]
    pub fn transfer_key(&self, id: &JobId) -> String {
        self.keys.transfer(id)
    }

    fn legacy_upload_key(&self, id: &JobId) -> String {
        self.keys.upload(id)
    }

    /// The delivery `token` takes job `id`'s transfer over (later writes of any other token
    /// change nothing) and reads what earlier deliveries recorded.
    pub async fn take_transfer(
        &self,
        id: &JobId,
        token: &str,
    ) -> Result<TransferRecord, StoreError> {
        let mut conn = self.conn.clone();
        let fields: Vec<String> = TAKE
            .key(self.transfer_key(id))
            .arg(token)
            .arg(keep_ms())
            .invoke_async(&mut conn)
            .await?;
        Ok(parse_record(&fields))
    }

    /// Records the multipart upload `upload` of job `id`'s transfer, replacing whatever was
    /// recorded (its parts too). `false` (nothing written) if `token` no longer owns the
    /// transfer.
    pub async fn begin_transfer_upload(
        &self,
        id: &JobId,
        token: &str,
        upload: &TransferUpload,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut script = BEGIN.key(self.transfer_key(id));
        script
            .arg(token)
            .arg(keep_ms())
            .arg("upload_id")
            .arg(&upload.upload_id)
            .arg("key")
            .arg(&upload.key)
            .arg("length")
            .arg(upload.length);
        if let Some(validator) = &upload.validator {
            script.arg("validator").arg(validator);
        }
        let n: i64 = script.invoke_async(&mut conn).await?;
        Ok(n == 1)
    }

    /// Records that the store confirmed `part` of `upload_id`. `false` (nothing written) if
    /// `token` no longer owns the transfer or another upload is recorded.
    pub async fn record_part(
        &self,
        id: &JobId,
        token: &str,
        upload_id: &str,
        part: &RecordedPart,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let value = format!(
            "{} {} {}",
            part.bytes,
            part.etag.as_deref().unwrap_or("-").replace(' ', ""),
            part.sha256_state
        );
        let n: i64 = PART
            .key(self.transfer_key(id))
            .arg(token)
            .arg(upload_id)
            .arg(format!("p:{}", part.number))
            .arg(value)
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// Whether `token` still owns job `id`'s transfer.
    pub async fn owns_transfer(&self, id: &JobId, token: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let owner: Option<String> = conn.hget(self.transfer_key(id), "owner").await?;
        Ok(owner.as_deref() == Some(token))
    }

    /// Forgets job `id`'s transfer record (its upload completed or was aborted), if `token`
    /// owns it; `false` otherwise.
    pub async fn end_transfer(&self, id: &JobId, token: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = END
            .key(self.transfer_key(id))
            .arg(token)
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// Forgets the upload recorded for job `id`'s transfer (aborted) and its parts, if `token`
    /// owns the transfer, which it goes on owning; `false` otherwise.
    pub async fn reset_transfer(&self, id: &JobId, token: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = RESET
            .key(self.transfer_key(id))
            .arg(token)
            .arg(keep_ms())
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// The upload id a transfer of an earlier release left open for job `id`, if any.
    pub async fn open_upload(&self, id: &JobId) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(self.legacy_upload_key(id)).await?)
    }

    /// Forgets the upload id [`JobStore::open_upload`] returns (aborted).
    pub async fn forget_upload(&self, id: &JobId) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(self.legacy_upload_key(id)).await?;
        Ok(())
    }
}

fn keep_ms() -> u64 {
    u64::try_from(KEEP.as_millis()).unwrap_or(u64::MAX)
}

/// Reads `HGETALL`'s flat field/value list; a damaged part is left out (sent again).
fn parse_record(fields: &[String]) -> TransferRecord {
    let mut record = TransferRecord::default();
    let (mut upload_id, mut key, mut length, mut validator) = (None, None, None, None);
    for pair in fields.chunks_exact(2) {
        let (field, value) = (pair[0].as_str(), pair[1].as_str());
        match field {
            "upload_id" => upload_id = Some(value.to_owned()),
            "key" => key = Some(value.to_owned()),
            "length" => length = value.parse::<u64>().ok(),
            "validator" => validator = Some(value.to_owned()),
            _ => {
                if let Some(part) = field.strip_prefix("p:").and_then(|n| parse_part(n, value)) {
                    record.parts.push(part);
                }
            }
        }
    }
    if let (Some(upload_id), Some(key), Some(length)) = (upload_id, key, length) {
        record.upload = Some(TransferUpload {
            upload_id,
            key,
            length,
            validator,
        });
    } else {
        record.parts.clear();
    }
    record
}

fn parse_part(number: &str, value: &str) -> Option<RecordedPart> {
    let mut words = value.split(' ');
    let bytes = words.next()?.parse().ok()?;
    let etag = words.next()?;
    let sha256_state = words.next()?.to_owned();
    Some(RecordedPart {
        number: number.parse().ok()?,
        bytes,
        etag: (etag != "-").then(|| etag.to_owned()),
        sha256_state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(pairs: &[(&str, &str)]) -> Vec<String> {
        pairs
            .iter()
            .flat_map(|(k, v)| [(*k).to_owned(), (*v).to_owned()])
            .collect()
    }

    #[test]
    fn a_record_reads_back_with_its_parts() {
        let record = parse_record(&flat(&[
            ("owner", "3.17"),
            ("upload_id", "u-1"),
            ("key", "videos/j.mp4"),
            ("length", "100"),
            ("validator", "\"v1\""),
            ("p:2", "50 \"e2\" s2"),
            ("p:1", "50 - s1"),
            ("p:x", "50 - s1"),
            ("p:3", "damaged"),
        ]));
        let upload = record.upload.unwrap();
        assert_eq!(upload.upload_id, "u-1");
        assert_eq!(upload.length, 100);
        assert_eq!(upload.validator.as_deref(), Some("\"v1\""));
        let mut parts = record.parts;
        parts.sort_by_key(|p| p.number);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].etag, None);
        assert_eq!(parts[1].etag.as_deref(), Some("\"e2\""));
        assert_eq!(parts[1].sha256_state, "s2");
    }

    #[test]
    fn a_record_without_an_upload_has_no_parts() {
        let record = parse_record(&flat(&[("owner", "1.1"), ("p:1", "50 - s1")]));
        assert_eq!(record, TransferRecord::default());
    }
}
