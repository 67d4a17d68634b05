//! Job logs (a capped stream per job, so any node serves live log streaming) and the events
//! channel every node subscribes to.
//!
//! Keys: `log:<id>`; the `events` pub/sub channel.

use redis::AsyncCommands;

use crate::{Event, LogEntry, Result, Store};

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
    pub async fn read_log(
        &self,
        id: &str,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<Vec<LogEntry>> {
        let start = match cursor {
            Some(c) => format!("({c}"),
            None => "-".to_owned(),
        };
        let mut conn = self.conn();
        let reply: redis::streams::StreamRangeReply = conn
            .xrange_count(self.keys.log(id), start, "+", count)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|entry| {
                let text = |f: &str| entry.get::<String>(f).unwrap_or_default();
                LogEntry {
                    attempt: text("attempt").parse().unwrap_or(0),
                    level: text("level"),
                    message: text("msg"),
                    cursor: entry.id,
                }
            })
            .collect())
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
