//! Job logs (a capped stream per job, so any node serves live log streaming) and the events
//! channel every node subscribes to.
//!
//! Keys: `log:<id>`; the `events` pub/sub channel.

use redis::AsyncCommands;

use crate::{Event, LogEntry, Result, Store, StoreError};

impl Store {
    /// Appends log lines of attempt `attempt` to job `id`'s stream, in one round trip.
    pub async fn append_log(&self, id: &str, attempt: u32, lines: &[(&str, &str)]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let key = self.keys.log(id);
        let mut pipe = redis::pipe();
        for (level, message) in lines {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.options.log_max_entries)
                .arg("*")
                .arg("attempt")
                .arg(attempt)
                .arg("level")
                .arg(*level)
                .arg("msg")
                .arg(*message)
                .ignore();
        }
        let mut conn = self.conn();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Log entries of job `id` after `cursor` (from the start when `None`), up to `count`.
    /// A cursor that [`is_log_cursor`] refuses is an [`StoreError::Invalid`] error.
    pub async fn read_log(
        &self,
        id: &str,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<Vec<LogEntry>> {
        let start = match cursor {
            Some(c) if !is_log_cursor(c) => {
                return Err(StoreError::Invalid(format!("{c:?} is not a log cursor")));
            }
            Some(c) => format!("({c}"),
            None => "-".to_owned(),
        };
        let mut conn = self.conn();
        let reply: redis::streams::StreamRangeReply = conn
            .xrange_count(self.keys.log(id), start, "+", count)
            .await?;
        Ok(reply.ids.into_iter().map(log_entry).collect())
    }

    /// Subscribes to the store's events. The stream ends if the subscription connection
    /// drops; callers resubscribe.
    pub async fn events(&self) -> Result<impl futures::Stream<Item = Event> + use<>> {
        use futures::StreamExt;
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.keys.events()).await?;
        Ok(pubsub.into_on_message().filter_map(|msg| async move {
            let payload: String = msg.get_payload().ok()?;
            Event::parse(&payload)
        }))
    }
}

/// Whether `cursor` has the form of a log line's cursor (`1733500000000-0`, or the
/// milliseconds alone), as a caller resuming a log must pass.
pub fn is_log_cursor(cursor: &str) -> bool {
    // A cursor names a line already read: the largest id cannot be one (Redis refuses to
    // read after it).
    let number = |s: &str| !s.is_empty() && s.parse::<u64>().is_ok_and(|n| n < u64::MAX);
    match cursor.split_once('-') {
        Some((ms, seq)) => number(ms) && number(seq),
        None => number(cursor),
    }
}

/// A log stream entry (`attempt`, `level`, `msg`) as a [`LogEntry`].
pub(crate) fn log_entry(entry: redis::streams::StreamId) -> LogEntry {
    let text = |f: &str| entry.get::<String>(f).unwrap_or_default();
    LogEntry {
        attempt: text("attempt").parse().unwrap_or(0),
        level: text("level"),
        message: text("msg"),
        cursor: entry.id,
    }
}

#[cfg(test)]
mod tests {
    use super::is_log_cursor;

    #[test]
    fn cursors_are_stream_ids() {
        for ok in ["1733500000000-0", "1733500000000", "0-1"] {
            assert!(is_log_cursor(ok), "{ok}");
        }
        for bad in [
            "",
            "garbage",
            "1-",
            "-1",
            "1-2-3",
            "+",
            "-",
            "(1-0",
            "1 -0",
            "99999999999999999999999-0",
            "18446744073709551615-18446744073709551615",
        ] {
            assert!(!is_log_cursor(bad), "{bad}");
        }
    }
}
