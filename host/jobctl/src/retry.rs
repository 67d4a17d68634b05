//! Submitting safely over an unreliable link: an UNAVAILABLE answer does not say the job
//! was not created (the node may have written it to Redis and lost the answer), so every
//! submission carries an idempotency key, and UNAVAILABLE is retried with the same key: one
//! job, however many tries.

use std::future::Future;
use std::io::Read;
use std::time::Duration;

use tonic::{Code, Status};

/// Tries of one submission before its UNAVAILABLE is reported.
const TRIES: u32 = 6;

/// A fresh idempotency key for one submission: `jobctl-` and 128 random bits.
pub(crate) fn fresh_key() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // No /dev/urandom: the time and the process id still tell submissions apart.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = (now ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("jobctl-{hex}")
}

/// `call` until it answers something other than UNAVAILABLE, at most [`TRIES`] times with
/// a growing pause (0.2 s to 3.2 s); the request it sends must carry idempotency keys.
pub(crate) async fn unavailable<T, F, Fut>(call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    retry_unavailable(Duration::from_millis(200), call).await
}

async fn retry_unavailable<T, F, Fut>(first_pause: Duration, mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut pause = first_pause;
    let mut tries = 1;
    loop {
        match call().await {
            Err(status) if status.code() == Code::Unavailable && tries < TRIES => {
                eprintln!(
                    "jobctl: {} (UNAVAILABLE); retrying in {:.1}s with the same idempotency key",
                    crate::output::printable(status.message()),
                    pause.as_secs_f64()
                );
                tokio::time::sleep(pause).await;
                pause *= 2;
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Code, Duration, Future, Status, TRIES, fresh_key, retry_unavailable};

    #[test]
    fn keys_are_fresh() {
        let (a, b) = (fresh_key(), fresh_key());
        assert!(a.starts_with("jobctl-") && a.len() == 7 + 32, "{a}");
        assert_ne!(a, b);
    }

    async fn unavailable<T, F, Fut>(call: F) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        retry_unavailable(Duration::from_millis(1), call).await
    }

    #[tokio::test]
    async fn unavailable_is_retried_then_reported() {
        let mut calls = 0;
        let answer = unavailable(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(Status::unavailable("redis away"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(answer.unwrap(), 3);
        let mut calls = 0;
        let answer: Result<(), Status> = unavailable(|| {
            calls += 1;
            async { Err(Status::unavailable("still away")) }
        })
        .await;
        assert_eq!(answer.unwrap_err().code(), Code::Unavailable);
        assert_eq!(calls, TRIES);
        let mut calls = 0;
        let answer: Result<(), Status> = unavailable(|| {
            calls += 1;
            async { Err(Status::invalid_argument("bad spec")) }
        })
        .await;
        assert_eq!(answer.unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(calls, 1, "other errors are not retried");
    }
}
