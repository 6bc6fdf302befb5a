//! The multipart upload a job's transfer has open, remembered beside the job (same hash tag),
//! so the next transfer can abort it after a crash even where the store cannot list uploads.

use std::time::Duration;

use redis::AsyncCommands;

use super::{JobId, JobStore, StoreError};

/// How long a remembered upload id is kept (past it, a bucket lifecycle rule is the defence).
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

impl JobStore {
    fn upload_key(&self, id: &JobId) -> String {
        format!("{}:upload", self.keys.job(id))
    }

    /// Remembers that job `id`'s transfer opened the multipart upload `upload_id`.
    pub async fn remember_upload(&self, id: &JobId, upload_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let secs = KEEP.as_secs();
        conn.set_ex::<_, _, ()>(self.upload_key(id), upload_id, secs)
            .await?;
        Ok(())
    }

    /// The upload id an earlier transfer of job `id` left open, if any.
    pub async fn open_upload(&self, id: &JobId) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(self.upload_key(id)).await?)
    }

    /// Forgets job `id`'s open upload (completed or aborted).
    pub async fn forget_upload(&self, id: &JobId) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(self.upload_key(id)).await?;
        Ok(())
    }
}
