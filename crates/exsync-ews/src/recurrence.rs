//! `t:Recurrence` (types.xsd RecurrenceType, EWS reference "Recurrence (RecurrenceType)"): the
//! pattern and range of a recurring series, read from and written to calendar items.
//!
//! Owns the schema's choice groups (RecurrencePatternTypes, RecurrenceRangeTypes) in sequence
//! order. The types also (de)serialise as JSON (snake_case, `type` tags), which is how the fake
//! Exchange's `/_fake/` API accepts a recurrence. It knows nothing of operations or HTTP.

use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::wire::TYPES_NS;
use super::wire::{invalid, WireError};
use super::xml::{Element, XmlWriter};

/// `t:DayOfWeekType`: a weekday, or one of the groups `Day`, `Weekday`, `WeekendDay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayOfWeek {
    /// Sunday.
    Sunday,
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Any day.
    Day,
    /// Monday to Friday.
    Weekday,
    /// Saturday or Sunday.
    WeekendDay,
}

const DAYS: [(DayOfWeek, &str); 10] = [
    (DayOfWeek::Sunday, "Sunday"),
    (DayOfWeek::Monday, "Monday"),
    (DayOfWeek::Tuesday, "Tuesday"),
    (DayOfWeek::Wednesday, "Wednesday"),
    (DayOfWeek::Thursday, "Thursday"),
    (DayOfWeek::Friday, "Friday"),
    (DayOfWeek::Saturday, "Saturday"),
    (DayOfWeek::Day, "Day"),
    (DayOfWeek::Weekday, "Weekday"),
    (DayOfWeek::WeekendDay, "WeekendDay"),
];

impl DayOfWeek {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        DAYS.iter()
            .find(|(d, _)| *d == self)
            .map_or("Day", |(_, s)| s)
    }

    /// Whether this is one named day (not a group), as a weekly pattern needs.
    pub fn is_single_day(self) -> bool {
        !matches!(
            self,
            DayOfWeek::Day | DayOfWeek::Weekday | DayOfWeek::WeekendDay
        )
    }
}

impl FromStr for DayOfWeek {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        DAYS.iter()
            .find(|(_, text)| *text == s.trim())
            .map(|(d, _)| *d)
            .ok_or_else(|| invalid("DayOfWeek", s))
    }
}

/// `t:DayOfWeekIndexType`: which week of the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeekIndex {
    /// The first.
    First,
    /// The second.
    Second,
    /// The third.
    Third,
    /// The fourth.
    Fourth,
    /// The last.
    Last,
}

const WEEKS: [(WeekIndex, &str); 5] = [
    (WeekIndex::First, "First"),
    (WeekIndex::Second, "Second"),
    (WeekIndex::Third, "Third"),
    (WeekIndex::Fourth, "Fourth"),
    (WeekIndex::Last, "Last"),
];

impl WeekIndex {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        WEEKS
            .iter()
            .find(|(w, _)| *w == self)
            .map_or("First", |(_, s)| s)
    }
}

impl FromStr for WeekIndex {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        WEEKS
            .iter()
            .find(|(_, text)| *text == s.trim())
            .map(|(w, _)| *w)
            .ok_or_else(|| invalid("DayOfWeekIndex", s))
    }
}

/// `t:MonthNamesType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Month {
    /// January.
    January,
    /// February.
    February,
    /// March.
    March,
    /// April.
    April,
    /// May.
    May,
    /// June.
    June,
    /// July.
    July,
    /// August.
    August,
    /// September.
    September,
    /// October.
    October,
    /// November.
    November,
    /// December.
    December,
}

const MONTHS: [(Month, &str); 12] = [
    (Month::January, "January"),
    (Month::February, "February"),
    (Month::March, "March"),
    (Month::April, "April"),
    (Month::May, "May"),
    (Month::June, "June"),
    (Month::July, "July"),
    (Month::August, "August"),
    (Month::September, "September"),
    (Month::October, "October"),
    (Month::November, "November"),
    (Month::December, "December"),
];

impl Month {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        MONTHS
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("January", |(_, s)| s)
    }
}

impl FromStr for Month {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        MONTHS
            .iter()
            .find(|(_, text)| *text == s.trim())
            .map(|(m, _)| *m)
            .ok_or_else(|| invalid("Month", s))
    }
}

/// RecurrencePatternTypes: how often the series repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RecurrencePattern {
    /// `t:DailyRecurrence`: every `interval` days.
    Daily {
        /// Days between occurrences.
        interval: u32,
    },
    /// `t:WeeklyRecurrence`: on these days every `interval` weeks.
    Weekly {
        /// Weeks between occurrences.
        interval: u32,
        /// The days of the week it falls on.
        days_of_week: Vec<DayOfWeek>,
        /// `t:FirstDayOfWeek` (Exchange 2013 and later).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_day_of_week: Option<DayOfWeek>,
    },
    /// `t:AbsoluteMonthlyRecurrence`: on day `day_of_month` every `interval` months.
    AbsoluteMonthly {
        /// Months between occurrences.
        interval: u32,
        /// Day of the month (1..=31).
        day_of_month: u32,
    },
    /// `t:RelativeMonthlyRecurrence`: e.g. the second Tuesday every `interval` months.
    RelativeMonthly {
        /// Months between occurrences.
        interval: u32,
        /// The day.
        day_of_week: DayOfWeek,
        /// Which one in the month.
        week: WeekIndex,
    },
    /// `t:AbsoluteYearlyRecurrence`: e.g. every 14 March.
    AbsoluteYearly {
        /// Day of the month (1..=31).
        day_of_month: u32,
        /// The month.
        month: Month,
    },
    /// `t:RelativeYearlyRecurrence`: e.g. the last Friday of November.
    RelativeYearly {
        /// The day.
        day_of_week: DayOfWeek,
        /// Which one in the month.
        week: WeekIndex,
        /// The month.
        month: Month,
    },
}

/// RecurrenceRangeTypes: when the series starts and ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RecurrenceRange {
    /// `t:NoEndRecurrence`.
    NoEnd {
        /// First day of the series.
        start_date: NaiveDate,
    },
    /// `t:EndDateRecurrence`.
    EndDate {
        /// First day of the series.
        start_date: NaiveDate,
        /// Last day of the series.
        end_date: NaiveDate,
    },
    /// `t:NumberedRecurrence`.
    Numbered {
        /// First day of the series.
        start_date: NaiveDate,
        /// How many occurrences.
        occurrences: u32,
    },
}

impl RecurrenceRange {
    /// The first day of the series.
    pub fn start_date(&self) -> NaiveDate {
        match self {
            RecurrenceRange::NoEnd { start_date }
            | RecurrenceRange::EndDate { start_date, .. }
            | RecurrenceRange::Numbered { start_date, .. } => *start_date,
        }
    }
}

/// `t:Recurrence` (RecurrenceType): a pattern and a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    /// How often.
    pub pattern: RecurrencePattern,
    /// From when until when.
    pub range: RecurrenceRange,
}

/// Why Exchange would refuse a recurrence (ErrorCalendarInvalidRecurrence and relatives).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid recurrence: {0}")]
pub struct InvalidRecurrence(pub String);

impl Recurrence {
    /// The checks Exchange applies before it stores a series (interval and day ranges, a
    /// weekly pattern naming at least one single day, a range that ends after it starts).
    pub fn validate(&self) -> Result<(), InvalidRecurrence> {
        let bad = |what: &str| Err(InvalidRecurrence(what.to_owned()));
        let interval_ok = |i: u32| (1..=999).contains(&i);
        let day_ok = |d: u32| (1..=31).contains(&d);
        match &self.pattern {
            RecurrencePattern::Daily { interval }
            | RecurrencePattern::AbsoluteMonthly { interval, .. }
            | RecurrencePattern::RelativeMonthly { interval, .. }
            | RecurrencePattern::Weekly { interval, .. }
                if !interval_ok(*interval) =>
            {
                return bad("the interval must be 1..=999");
            }
            RecurrencePattern::Weekly { days_of_week, .. }
                if days_of_week.is_empty() || !days_of_week.iter().all(|d| d.is_single_day()) =>
            {
                return bad("a weekly pattern names one or more single days of the week");
            }
            RecurrencePattern::AbsoluteMonthly { day_of_month, .. }
            | RecurrencePattern::AbsoluteYearly { day_of_month, .. }
                if !day_ok(*day_of_month) =>
            {
                return bad("the day of the month must be 1..=31");
            }
            _ => {}
        }
        match &self.range {
            RecurrenceRange::EndDate {
                start_date,
                end_date,
            } if end_date < start_date => bad("the end date is before the start date"),
            RecurrenceRange::Numbered { occurrences, .. } if !(1..=999).contains(occurrences) => {
                bad("the number of occurrences must be 1..=999")
            }
            _ => Ok(()),
        }
    }

    /// Write `t:Recurrence` (schema order: pattern, then range).
    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.start("t:Recurrence");
        let interval = |w: &mut XmlWriter, i: u32| {
            w.leaf("t:Interval", &i.to_string());
        };
        match &self.pattern {
            RecurrencePattern::Daily { interval: i } => {
                w.start("t:DailyRecurrence");
                interval(w, *i);
            }
            RecurrencePattern::Weekly {
                interval: i,
                days_of_week,
                first_day_of_week,
            } => {
                w.start("t:WeeklyRecurrence");
                interval(w, *i);
                let days: Vec<&str> = days_of_week.iter().map(|d| d.as_str()).collect();
                w.leaf("t:DaysOfWeek", &days.join(" "));
                if let Some(first) = first_day_of_week {
                    w.leaf("t:FirstDayOfWeek", first.as_str());
                }
            }
            RecurrencePattern::AbsoluteMonthly {
                interval: i,
                day_of_month,
            } => {
                w.start("t:AbsoluteMonthlyRecurrence");
                interval(w, *i);
                w.leaf("t:DayOfMonth", &day_of_month.to_string());
            }
            RecurrencePattern::RelativeMonthly {
                interval: i,
                day_of_week,
                week,
            } => {
                w.start("t:RelativeMonthlyRecurrence");
                interval(w, *i);
                w.leaf("t:DaysOfWeek", day_of_week.as_str());
                w.leaf("t:DayOfWeekIndex", week.as_str());
            }
            RecurrencePattern::AbsoluteYearly {
                day_of_month,
                month,
            } => {
                w.start("t:AbsoluteYearlyRecurrence");
                w.leaf("t:DayOfMonth", &day_of_month.to_string());
                w.leaf("t:Month", month.as_str());
            }
            RecurrencePattern::RelativeYearly {
                day_of_week,
                week,
                month,
            } => {
                w.start("t:RelativeYearlyRecurrence");
                w.leaf("t:DaysOfWeek", day_of_week.as_str());
                w.leaf("t:DayOfWeekIndex", week.as_str());
                w.leaf("t:Month", month.as_str());
            }
        }
        w.end();
        let date = |d: &NaiveDate| d.format("%Y-%m-%d").to_string();
        match &self.range {
            RecurrenceRange::NoEnd { start_date } => {
                w.start("t:NoEndRecurrence")
                    .leaf("t:StartDate", &date(start_date));
            }
            RecurrenceRange::EndDate {
                start_date,
                end_date,
            } => {
                w.start("t:EndDateRecurrence")
                    .leaf("t:StartDate", &date(start_date))
                    .leaf("t:EndDate", &date(end_date));
            }
            RecurrenceRange::Numbered {
                start_date,
                occurrences,
            } => {
                w.start("t:NumberedRecurrence")
                    .leaf("t:StartDate", &date(start_date))
                    .leaf("t:NumberOfOccurrences", &occurrences.to_string());
            }
        }
        w.end();
        w.end();
    }

    /// Read a `t:Recurrence` element (any prefix; unknown children skipped).
    pub(crate) fn from_element(el: &Element) -> Result<Recurrence, WireError> {
        let mut pattern = None;
        let mut range = None;
        for child in el.children.iter().filter(|c| c.namespace == TYPES_NS) {
            match child.name.as_str() {
                "DailyRecurrence"
                | "WeeklyRecurrence"
                | "AbsoluteMonthlyRecurrence"
                | "RelativeMonthlyRecurrence"
                | "AbsoluteYearlyRecurrence"
                | "RelativeYearlyRecurrence" => pattern = Some(read_pattern(child)?),
                "NoEndRecurrence" | "EndDateRecurrence" | "NumberedRecurrence" => {
                    range = Some(read_range(child)?)
                }
                _ => {}
            }
        }
        Ok(Recurrence {
            pattern: pattern.ok_or(WireError::Missing("Recurrence pattern"))?,
            range: range.ok_or(WireError::Missing("Recurrence range"))?,
        })
    }
}

fn text<'a>(el: &'a Element, name: &'static str) -> Result<&'a str, WireError> {
    el.child_text(TYPES_NS, name)
        .map(str::trim)
        .ok_or(WireError::Missing(name))
}

fn number(el: &Element, name: &'static str) -> Result<u32, WireError> {
    let value = text(el, name)?;
    value.parse().map_err(|_| invalid(name, value))
}

/// `xs:date` may carry a zone (`2026-12-07Z`, `2026-12-07-08:00`): the date is what counts.
fn date(el: &Element, name: &'static str) -> Result<NaiveDate, WireError> {
    let value = text(el, name)?;
    let day = value.get(..10).unwrap_or(value);
    NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| invalid(name, value))
}

fn read_pattern(el: &Element) -> Result<RecurrencePattern, WireError> {
    Ok(match el.name.as_str() {
        "DailyRecurrence" => RecurrencePattern::Daily {
            interval: number(el, "Interval")?,
        },
        "WeeklyRecurrence" => RecurrencePattern::Weekly {
            interval: number(el, "Interval")?,
            days_of_week: text(el, "DaysOfWeek")?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()?,
            first_day_of_week: el
                .child_text(TYPES_NS, "FirstDayOfWeek")
                .map(str::parse)
                .transpose()?,
        },
        "AbsoluteMonthlyRecurrence" => RecurrencePattern::AbsoluteMonthly {
            interval: number(el, "Interval")?,
            day_of_month: number(el, "DayOfMonth")?,
        },
        "RelativeMonthlyRecurrence" => RecurrencePattern::RelativeMonthly {
            interval: number(el, "Interval")?,
            day_of_week: text(el, "DaysOfWeek")?.parse()?,
            week: text(el, "DayOfWeekIndex")?.parse()?,
        },
        "AbsoluteYearlyRecurrence" => RecurrencePattern::AbsoluteYearly {
            day_of_month: number(el, "DayOfMonth")?,
            month: text(el, "Month")?.parse()?,
        },
        _ => RecurrencePattern::RelativeYearly {
            day_of_week: text(el, "DaysOfWeek")?.parse()?,
            week: text(el, "DayOfWeekIndex")?.parse()?,
            month: text(el, "Month")?.parse()?,
        },
    })
}

fn read_range(el: &Element) -> Result<RecurrenceRange, WireError> {
    let start_date = date(el, "StartDate")?;
    Ok(match el.name.as_str() {
        "NoEndRecurrence" => RecurrenceRange::NoEnd { start_date },
        "EndDateRecurrence" => RecurrenceRange::EndDate {
            start_date,
            end_date: date(el, "EndDate")?,
        },
        _ => RecurrenceRange::Numbered {
            start_date,
            occurrences: number(el, "NumberOfOccurrences")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{parse, XmlLimits};

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    /// One of every pattern and every range.
    pub(crate) fn every_recurrence() -> Vec<Recurrence> {
        let patterns = [
            RecurrencePattern::Daily { interval: 2 },
            RecurrencePattern::Weekly {
                interval: 1,
                days_of_week: vec![DayOfWeek::Monday, DayOfWeek::Thursday],
                first_day_of_week: Some(DayOfWeek::Monday),
            },
            RecurrencePattern::AbsoluteMonthly {
                interval: 1,
                day_of_month: 15,
            },
            RecurrencePattern::RelativeMonthly {
                interval: 3,
                day_of_week: DayOfWeek::Tuesday,
                week: WeekIndex::Second,
            },
            RecurrencePattern::AbsoluteYearly {
                day_of_month: 14,
                month: Month::March,
            },
            RecurrencePattern::RelativeYearly {
                day_of_week: DayOfWeek::Friday,
                week: WeekIndex::Last,
                month: Month::November,
            },
        ];
        let ranges = [
            RecurrenceRange::NoEnd {
                start_date: day("2026-12-07"),
            },
            RecurrenceRange::EndDate {
                start_date: day("2026-12-07"),
                end_date: day("2027-06-30"),
            },
            RecurrenceRange::Numbered {
                start_date: day("2026-12-07"),
                occurrences: 10,
            },
        ];
        patterns
            .iter()
            .zip(ranges.iter().cycle())
            .map(|(p, r)| Recurrence {
                pattern: p.clone(),
                range: r.clone(),
            })
            .collect()
    }

    #[test]
    fn every_pattern_and_range_round_trips_through_xml_and_json() {
        for recurrence in every_recurrence() {
            let mut w = XmlWriter::new();
            w.start("t:X").attr("xmlns:t", TYPES_NS);
            recurrence.write(&mut w);
            w.end();
            let xml = w.finish();
            let root = parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
            let el = root.child(TYPES_NS, "Recurrence").unwrap();
            assert_eq!(Recurrence::from_element(el).unwrap(), recurrence, "{xml}");
            let json = serde_json::to_string(&recurrence).unwrap();
            assert_eq!(
                serde_json::from_str::<Recurrence>(&json).unwrap(),
                recurrence
            );
            assert!(recurrence.validate().is_ok());
        }
    }

    #[test]
    fn dates_with_a_zone_are_read_as_their_date() {
        let xml = format!(
            r#"<t:Recurrence xmlns:t="{TYPES_NS}"><t:DailyRecurrence><t:Interval>1</t:Interval></t:DailyRecurrence><t:NumberedRecurrence><t:StartDate>2026-12-07-08:00</t:StartDate><t:NumberOfOccurrences>3</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence>"#
        );
        let el = parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
        let r = Recurrence::from_element(&el).unwrap();
        assert_eq!(r.range.start_date(), day("2026-12-07"));
    }

    #[test]
    fn exchange_refuses_what_validate_refuses() {
        let mut r = every_recurrence().remove(1);
        r.pattern = RecurrencePattern::Weekly {
            interval: 1,
            days_of_week: vec![DayOfWeek::Weekday],
            first_day_of_week: None,
        };
        assert!(r.validate().is_err());
        r.pattern = RecurrencePattern::Daily { interval: 0 };
        assert!(r.validate().is_err());
        r.pattern = RecurrencePattern::Daily { interval: 1 };
        r.range = RecurrenceRange::EndDate {
            start_date: day("2026-12-07"),
            end_date: day("2026-12-01"),
        };
        assert!(r.validate().is_err());
        let missing = format!(
            r#"<t:Recurrence xmlns:t="{TYPES_NS}"><t:DailyRecurrence><t:Interval>1</t:Interval></t:DailyRecurrence></t:Recurrence>"#
        );
        let el = parse(missing.as_bytes(), &XmlLimits::default()).unwrap();
        assert!(Recurrence::from_element(&el).is_err());
    }
}
