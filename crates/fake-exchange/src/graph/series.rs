//! Expanding a series into its occurrences for `calendarView/delta`, which returns series
//! masters *and* every occurrence in the window (I-CAL6353; occurrences carry only `id`,
//! `seriesMasterId`, `type`, `start`, `end` and the annotations, I-7632 / contrib #34).
//!
//! Owns the recurrence arithmetic: which dates a pattern and range produce. Exceptions and
//! deleted occurrences are not modelled (the fake Exchange keeps none).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};

use exsync_ews::recurrence::{
    DayOfWeek as EDay, Recurrence, RecurrencePattern as Pattern, RecurrenceRange as Range,
    WeekIndex,
};

/// Most days walked from a series' start (a window far in the future stops here).
const MAX_DAYS: i64 = 366 * 20;

fn weekdays(day: EDay) -> Vec<Weekday> {
    match day {
        EDay::Sunday => vec![Weekday::Sun],
        EDay::Monday => vec![Weekday::Mon],
        EDay::Tuesday => vec![Weekday::Tue],
        EDay::Wednesday => vec![Weekday::Wed],
        EDay::Thursday => vec![Weekday::Thu],
        EDay::Friday => vec![Weekday::Fri],
        EDay::Saturday => vec![Weekday::Sat],
        EDay::Day => vec![
            Weekday::Sun,
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
        ],
        EDay::Weekday => vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
        EDay::WeekendDay => vec![Weekday::Sat, Weekday::Sun],
    }
}

fn months_between(a: NaiveDate, b: NaiveDate) -> i64 {
    (i64::from(b.year()) * 12 + i64::from(b.month0()))
        - (i64::from(a.year()) * 12 + i64::from(a.month0()))
}

/// Whether `d` is the `week`-th day of its month among `days` (Last: no later one).
fn nth_in_month(d: NaiveDate, days: &[Weekday], week: WeekIndex) -> bool {
    if !days.contains(&d.weekday()) {
        return false;
    }
    let first = d.with_day(1).unwrap_or(d);
    let before = (0..d.day0())
        .filter_map(|i| first.checked_add_signed(Duration::days(i64::from(i))))
        .filter(|x| days.contains(&x.weekday()))
        .count();
    match week {
        WeekIndex::First => before == 0,
        WeekIndex::Second => before == 1,
        WeekIndex::Third => before == 2,
        WeekIndex::Fourth => before == 3,
        WeekIndex::Last => (1..=7)
            .filter_map(|i| d.checked_add_signed(Duration::days(i)))
            .filter(|x| x.month() == d.month())
            .all(|x| !days.contains(&x.weekday())),
    }
}

fn month_of(m: exsync_ews::recurrence::Month) -> u32 {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES
        .iter()
        .position(|n| *n == m.as_str())
        .and_then(|p| u32::try_from(p + 1).ok())
        .unwrap_or(1)
}

/// Whether the pattern produces date `d` for a series starting on `start`.
fn occurs(pattern: &Pattern, start: NaiveDate, d: NaiveDate) -> bool {
    match pattern {
        Pattern::Daily { interval } => (d - start).num_days() % i64::from((*interval).max(1)) == 0,
        Pattern::Weekly {
            interval,
            days_of_week,
            first_day_of_week,
        } => {
            let days: Vec<Weekday> = days_of_week.iter().flat_map(|x| weekdays(*x)).collect();
            if !days.contains(&d.weekday()) {
                return false;
            }
            let first = first_day_of_week
                .and_then(|f| weekdays(f).first().copied())
                .unwrap_or(Weekday::Sun);
            let week_start = |x: NaiveDate| {
                let back =
                    (7 + x.weekday().num_days_from_sunday() - first.num_days_from_sunday()) % 7;
                x - Duration::days(i64::from(back))
            };
            let weeks = (week_start(d) - week_start(start)).num_days() / 7;
            weeks % i64::from((*interval).max(1)) == 0
        }
        Pattern::AbsoluteMonthly {
            interval,
            day_of_month,
        } => {
            d.day() == *day_of_month
                && months_between(start, d) % i64::from((*interval).max(1)) == 0
        }
        Pattern::RelativeMonthly {
            interval,
            day_of_week,
            week,
        } => {
            months_between(start, d) % i64::from((*interval).max(1)) == 0
                && nth_in_month(d, &weekdays(*day_of_week), *week)
        }
        Pattern::AbsoluteYearly {
            day_of_month,
            month,
        } => d.month() == month_of(*month) && d.day() == *day_of_month,
        Pattern::RelativeYearly {
            day_of_week,
            week,
            month,
        } => d.month() == month_of(*month) && nth_in_month(d, &weekdays(*day_of_week), *week),
    }
}

/// The occurrences (start, end) of a series whose first instance is `first_start`..
/// `first_end`, that overlap `[from, to)`.
pub(crate) fn occurrences(
    recurrence: &Recurrence,
    first_start: DateTime<Utc>,
    first_end: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let length = first_end - first_start;
    let time = first_start.time();
    let start_date = recurrence.range.start_date();
    let (end_date, count) = match &recurrence.range {
        Range::NoEnd { .. } => (None, None),
        Range::EndDate { end_date, .. } => (Some(*end_date), None),
        Range::Numbered { occurrences, .. } => (None, Some(*occurrences)),
    };
    let mut out = Vec::new();
    let mut produced = 0u32;
    for offset in 0..MAX_DAYS {
        let Some(d) = start_date.checked_add_signed(Duration::days(offset)) else {
            break;
        };
        if end_date.is_some_and(|e| d > e) || count.is_some_and(|c| produced >= c) {
            break;
        }
        let begins = d.and_time(time).and_utc();
        if begins >= to {
            break;
        }
        if !occurs(&recurrence.pattern, start_date, d) {
            continue;
        }
        produced += 1;
        let ends = begins + length;
        if ends > from {
            out.push((begins, ends));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_weekly_series_on_two_days_yields_those_days_in_the_window() {
        // Monday 2026-12-07 09:00, every week on Monday and Wednesday, five occurrences.
        let start = Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap();
        let recurrence = Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days_of_week: vec![EDay::Monday, EDay::Wednesday],
                first_day_of_week: None,
            },
            range: Range::Numbered {
                start_date: start.date_naive(),
                occurrences: 5,
            },
        };
        let all = occurrences(
            &recurrence,
            start,
            start + Duration::hours(1),
            start - Duration::days(30),
            start + Duration::days(60),
        );
        let days: Vec<u32> = all.iter().map(|(s, _)| s.day()).collect();
        assert_eq!(days, [7, 9, 14, 16, 21]);
        let window = occurrences(
            &recurrence,
            start,
            start + Duration::hours(1),
            start + Duration::days(5),
            start + Duration::days(10),
        );
        assert_eq!(window.len(), 2, "{window:?}");
    }

    #[test]
    fn the_last_weekday_of_a_month_is_found() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(); // a Thursday
        assert!(nth_in_month(d, &weekdays(EDay::Weekday), WeekIndex::Last));
        assert!(!nth_in_month(
            NaiveDate::from_ymd_opt(2026, 12, 30).unwrap(),
            &weekdays(EDay::Weekday),
            WeekIndex::Last
        ));
        assert!(nth_in_month(
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            &weekdays(EDay::Tuesday),
            WeekIndex::First
        ));
    }
}
