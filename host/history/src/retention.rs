//! The history's own retention (`history.retention_days`): rows finished before it are
//! deleted a small batch per statement, so no statement holds many row locks or runs long,
//! and archiving goes on between batches.

use std::time::Duration;

use crate::{History, HistoryError};

/// Rows deleted per statement.
const BATCH: i64 = 1_000;

impl History {
    /// Deletes the rows past the retention (none when it is 0), at most `limit` of them
    /// this call. Returns how many went.
    pub async fn expire(&self, limit: u64) -> Result<u64, HistoryError> {
        let days = self.settings.retention_days;
        if days == 0 {
            return Ok(0);
        }
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        let mut deleted = 0;
        while deleted < limit {
            let client = self.inner.client().await?;
            let result = client
                .execute(
                    "DELETE FROM job_history WHERE id IN (SELECT id FROM job_history \
                     WHERE finished_at < now() - make_interval(days => $1) LIMIT $2)",
                    &[&days, &BATCH],
                )
                .await
                .map_err(HistoryError::of);
            self.inner.note(&result);
            let n = result?;
            deleted += n;
            if n < BATCH as u64 {
                break;
            }
            // Let the archive drain's writes in between.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(deleted)
    }
}
