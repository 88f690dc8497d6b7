//! A moment as a UTC calendar date and time of day, for names and stamps
//! people read (run folders, the date a Keras file was saved), without a
//! time zone database.
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
}

impl UtcTime {
    /// `now` in UTC; a time before 1970 reads as 1970-01-01 00:00:00.
    pub fn of(now: SystemTime) -> UtcTime {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days as i64);
        UtcTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        }
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 -> (y, m, d).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn seconds_since_the_epoch_are_utc_dates_and_times() {
        let at = |secs| UtcTime::of(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(
            at(0),
            UtcTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        // 2000-02-29 (a leap day) 23:59:59, and 2026-12-06 02:12:44.
        assert_eq!(
            at(11_016 * 86_400 + 86_399),
            UtcTime {
                year: 2000,
                month: 2,
                day: 29,
                hour: 23,
                minute: 59,
                second: 59
            }
        );
        assert_eq!(
            at(20_793 * 86_400 + 2 * 3600 + 12 * 60 + 44),
            UtcTime {
                year: 2026,
                month: 12,
                day: 6,
                hour: 2,
                minute: 12,
                second: 44
            }
        );
    }
}
