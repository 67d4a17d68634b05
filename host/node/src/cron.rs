//! Cron expressions (6 or 7 fields: sec min hour day month weekday [year]): checked where a
//! schedule is accepted (the APIs) and evaluated where it fires (the worker's leader).

use std::str::FromStr;

/// The first fire time of `schedule` after `after_ms` (Unix ms), if it has one.
pub fn next_fire(schedule: &str, after_ms: u64) -> Option<u64> {
    let schedule = ::cron::Schedule::from_str(schedule).ok()?;
    let after = chrono_from_ms(after_ms)?;
    let next = schedule.after(&after).next()?;
    u64::try_from(next.timestamp_millis()).ok()
}

/// Checks a cron expression; the error says what is wrong.
pub fn check_cron(schedule: &str) -> Result<(), String> {
    ::cron::Schedule::from_str(schedule)
        .map(|_| ())
        .map_err(|e| format!("invalid cron expression {schedule:?}: {e} (expected 6 or 7 fields: sec min hour day month weekday [year])"))
}

fn chrono_from_ms(ms: u64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_next_fire_is_after_now() {
        // Every 5 seconds; from 12:00:01.000 the next is 12:00:05.000.
        let base = 1_700_000_000_000 - (1_700_000_000_000 % 60_000) + 1_000;
        let next = next_fire("*/5 * * * * *", base).unwrap();
        assert_eq!(next - base, 4_000);
        assert!(check_cron("not a cron").unwrap_err().contains("not a cron"));
        assert!(check_cron("0 */5 * * * *").is_ok());
    }
}
