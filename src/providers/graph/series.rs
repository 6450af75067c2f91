//! Recurring series over Microsoft Graph, with parity to EWS: a series is one master event
//! carrying its `patternedRecurrence`, mapped exactly to and from the domain's recurrence
//! (the stored JSON of `exsync_ews::recurrence::Recurrence`, see docs/operations.md); what
//! cannot be mapped is refused for that one item with the reason. A calendarView delta
//! expands a series into occurrences (and exceptions) carrying `seriesMasterId`: they are
//! reported as a change of their master, once per page, so a series is imported once as its
//! master and never as one row per occurrence.

use crate::store::activities::ActFields;
use crate::sync::port::{Change, ChangePage, ItemRef, RemoteActivity};
use exsync_ews::recurrence::{
    DayOfWeek as Day, Month, Recurrence, RecurrencePattern as Pattern, RecurrenceRange as Range,
    WeekIndex as Week,
};
use exsync_graph::model::{
    DayOfWeek as GDay, DeltaEntry, DeltaPage, Event, EventType, PatternedRecurrence,
    RecurrencePattern as GPattern, RecurrencePatternType as GPatternType,
    RecurrenceRange as GRange, RecurrenceRangeType as GRangeType, WeekIndex as GWeek,
};
use std::collections::HashMap;

/// The seven single days, Graph's and the domain's, in the same order.
const DAYS: [(Day, GDay); 7] = [
    (Day::Sunday, GDay::Sunday),
    (Day::Monday, GDay::Monday),
    (Day::Tuesday, GDay::Tuesday),
    (Day::Wednesday, GDay::Wednesday),
    (Day::Thursday, GDay::Thursday),
    (Day::Friday, GDay::Friday),
    (Day::Saturday, GDay::Saturday),
];

const WEEKS: [(Week, GWeek); 5] = [
    (Week::First, GWeek::First),
    (Week::Second, GWeek::Second),
    (Week::Third, GWeek::Third),
    (Week::Fourth, GWeek::Fourth),
    (Week::Last, GWeek::Last),
];

const MONTHS: [Month; 12] = [
    Month::January,
    Month::February,
    Month::March,
    Month::April,
    Month::May,
    Month::June,
    Month::July,
    Month::August,
    Month::September,
    Month::October,
    Month::November,
    Month::December,
];

/// The Graph days a domain day stands for (a group such as `weekday` is its days; Graph's
/// relative patterns take such a list: "the first weekday of the month").
fn graph_days(day: Day) -> Vec<GDay> {
    let all = || DAYS.iter().map(|(_, g)| *g);
    match day {
        Day::Day => all().collect(),
        Day::Weekday => all()
            .filter(|g| !matches!(g, GDay::Saturday | GDay::Sunday))
            .collect(),
        Day::WeekendDay => vec![GDay::Saturday, GDay::Sunday],
        single => DAYS
            .iter()
            .filter(|(d, _)| *d == single)
            .map(|(_, g)| *g)
            .collect(),
    }
}

fn graph_day(day: Day) -> Result<GDay, String> {
    DAYS.iter()
        .find(|(d, _)| *d == day)
        .map(|(_, g)| *g)
        .ok_or_else(|| format!("{} is not a single day", day.as_str()))
}

fn domain_day(day: GDay) -> Result<Day, String> {
    DAYS.iter()
        .find(|(_, g)| *g == day)
        .map(|(d, _)| *d)
        .ok_or_else(|| "a day of the week this version does not know".to_owned())
}

/// Graph days as a set (their places in the week, sorted, each once).
fn day_set(days: &[GDay]) -> Vec<usize> {
    let mut set: Vec<usize> = days
        .iter()
        .filter_map(|g| DAYS.iter().position(|(_, x)| x == g))
        .collect();
    set.sort_unstable();
    set.dedup();
    set
}

/// A relative pattern's days as one domain day: a single day, or exactly a group's days.
fn domain_day_group(days: &[GDay]) -> Result<Day, String> {
    if let [one] = days {
        return domain_day(*one);
    }
    let wanted = day_set(days);
    [Day::Day, Day::Weekday, Day::WeekendDay]
        .into_iter()
        .find(|group| day_set(&graph_days(*group)) == wanted)
        .ok_or_else(|| {
            "its days of the week are neither one day nor a whole group (day, weekday, weekend \
             day), which the database's recurrence cannot hold"
                .to_owned()
        })
}

fn graph_week(week: Week) -> GWeek {
    WEEKS
        .iter()
        .find(|(w, _)| *w == week)
        .map_or(GWeek::First, |(_, g)| *g)
}

fn domain_week(week: Option<GWeek>) -> Result<Week, String> {
    let week = week.ok_or("a relative pattern without its index")?;
    WEEKS
        .iter()
        .find(|(_, g)| *g == week)
        .map(|(w, _)| *w)
        .ok_or_else(|| "a week index this version does not know".to_owned())
}

fn month_number(month: Month) -> i32 {
    MONTHS
        .iter()
        .position(|m| *m == month)
        .and_then(|p| i32::try_from(p + 1).ok())
        .unwrap_or(1)
}

fn domain_month(month: Option<i32>) -> Result<Month, String> {
    month
        .and_then(|m| usize::try_from(m.checked_sub(1)?).ok())
        .and_then(|i| MONTHS.get(i).copied())
        .ok_or_else(|| format!("a yearly pattern's month must be 1..=12, not {month:?}"))
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn positive(what: &str, n: Option<i32>) -> Result<u32, String> {
    n.and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{what} must be at least 1, not {n:?}"))
}

/// A stored recurrence (the database's JSON) as Graph's `patternedRecurrence`, checked as
/// Exchange checks it; `Err` says why this one row cannot be written.
pub(super) fn graph_recurrence(json: &serde_json::Value) -> Result<PatternedRecurrence, String> {
    let r: Recurrence = serde_json::from_value(json.clone())
        .map_err(|e| format!("the appointment's recurrence is not valid: {e}"))?;
    r.validate().map_err(|e| format!("the appointment's {e}"))?;
    let mut p = GPattern::default();
    match &r.pattern {
        Pattern::Daily { interval } => {
            p.pattern_type = Some(GPatternType::Daily);
            p.interval = Some(count(*interval));
        }
        Pattern::Weekly {
            interval,
            days_of_week,
            first_day_of_week,
        } => {
            p.pattern_type = Some(GPatternType::Weekly);
            p.interval = Some(count(*interval));
            p.days_of_week = Some(
                days_of_week
                    .iter()
                    .map(|d| graph_day(*d))
                    .collect::<Result<_, _>>()?,
            );
            p.first_day_of_week = first_day_of_week.map(graph_day).transpose()?;
        }
        Pattern::AbsoluteMonthly {
            interval,
            day_of_month,
        } => {
            p.pattern_type = Some(GPatternType::AbsoluteMonthly);
            p.interval = Some(count(*interval));
            p.day_of_month = Some(count(*day_of_month));
        }
        Pattern::RelativeMonthly {
            interval,
            day_of_week,
            week,
        } => {
            p.pattern_type = Some(GPatternType::RelativeMonthly);
            p.interval = Some(count(*interval));
            p.days_of_week = Some(graph_days(*day_of_week));
            p.index = Some(graph_week(*week));
        }
        Pattern::AbsoluteYearly {
            day_of_month,
            month,
        } => {
            p.pattern_type = Some(GPatternType::AbsoluteYearly);
            p.interval = Some(1);
            p.day_of_month = Some(count(*day_of_month));
            p.month = Some(month_number(*month));
        }
        Pattern::RelativeYearly {
            day_of_week,
            week,
            month,
        } => {
            p.pattern_type = Some(GPatternType::RelativeYearly);
            p.interval = Some(1);
            p.days_of_week = Some(graph_days(*day_of_week));
            p.index = Some(graph_week(*week));
            p.month = Some(month_number(*month));
        }
    }
    let mut range = GRange {
        start_date: Some(r.range.start_date()),
        // The provider writes start and end in UTC; the dates are meant in the same zone.
        recurrence_time_zone: Some("UTC".into()),
        ..GRange::default()
    };
    match &r.range {
        Range::NoEnd { .. } => range.range_type = Some(GRangeType::NoEnd),
        Range::EndDate { end_date, .. } => {
            range.range_type = Some(GRangeType::EndDate);
            range.end_date = Some(*end_date);
        }
        Range::Numbered { occurrences, .. } => {
            range.range_type = Some(GRangeType::Numbered);
            range.number_of_occurrences = Some(count(*occurrences));
        }
    }
    Ok(PatternedRecurrence {
        pattern: Some(p),
        range: Some(range),
    })
}

/// Graph's `patternedRecurrence` as the database's recurrence JSON; `Err` says why this
/// series cannot be kept (a pattern the domain has no words for).
pub(super) fn domain_recurrence(r: &PatternedRecurrence) -> Result<serde_json::Value, String> {
    let p = r
        .pattern
        .as_ref()
        .ok_or("a recurrence without its pattern")?;
    let range = r.range.as_ref().ok_or("a recurrence without its range")?;
    let interval = || positive("the interval", p.interval.or(Some(1)));
    let days = || p.days_of_week.clone().unwrap_or_default();
    let day_of_month = || positive("the day of the month", p.day_of_month);
    let yearly_interval = || match p.interval.unwrap_or(1) {
        1 => Ok(()),
        n => Err(format!(
            "a yearly series every {n} years, which the database's recurrence (as EWS's) \
             cannot hold"
        )),
    };
    let pattern = match p.pattern_type {
        Some(GPatternType::Daily) => Pattern::Daily {
            interval: interval()?,
        },
        Some(GPatternType::Weekly) => Pattern::Weekly {
            interval: interval()?,
            days_of_week: days()
                .into_iter()
                .map(domain_day)
                .collect::<Result<_, _>>()?,
            first_day_of_week: p.first_day_of_week.map(domain_day).transpose()?,
        },
        Some(GPatternType::AbsoluteMonthly) => Pattern::AbsoluteMonthly {
            interval: interval()?,
            day_of_month: day_of_month()?,
        },
        Some(GPatternType::RelativeMonthly) => Pattern::RelativeMonthly {
            interval: interval()?,
            day_of_week: domain_day_group(&days())?,
            week: domain_week(p.index)?,
        },
        Some(GPatternType::AbsoluteYearly) => {
            yearly_interval()?;
            Pattern::AbsoluteYearly {
                day_of_month: day_of_month()?,
                month: domain_month(p.month)?,
            }
        }
        Some(GPatternType::RelativeYearly) => {
            yearly_interval()?;
            Pattern::RelativeYearly {
                day_of_week: domain_day_group(&days())?,
                week: domain_week(p.index)?,
                month: domain_month(p.month)?,
            }
        }
        _ => return Err("a recurrence pattern type this version does not know".into()),
    };
    let start_date = range
        .start_date
        .ok_or("a recurrence range without its start")?;
    let range = match range.range_type {
        Some(GRangeType::NoEnd) => Range::NoEnd { start_date },
        Some(GRangeType::EndDate) => Range::EndDate {
            start_date,
            end_date: range.end_date.ok_or("an end-date range without its end")?,
        },
        Some(GRangeType::Numbered) => Range::Numbered {
            start_date,
            occurrences: positive("the number of occurrences", range.number_of_occurrences)?,
        },
        _ => return Err("a recurrence range type this version does not know".into()),
    };
    let recurrence = Recurrence { pattern, range };
    recurrence.validate().map_err(|e| e.to_string())?;
    serde_json::to_value(&recurrence).map_err(|e| e.to_string())
}

/// An event as the database's appointment, a series master with its recurrence; `Err`:
/// the series' pattern cannot be kept (the reason, for this one item).
pub(super) fn appointment_of(e: Event) -> Result<RemoteActivity, String> {
    let recurrence = e
        .recurrence
        .as_ref()
        .map(domain_recurrence)
        .transpose()
        .map_err(|why| format!("the series' recurrence cannot be kept in the database: {why}"))?;
    let mut activity = super::mailbox::appointment(e);
    if let ActFields::Appointment(a) = &mut activity.fields {
        a.recurrence = recurrence;
    }
    Ok(activity)
}

/// A calendarView delta page as changes: an occurrence or exception is a change of its
/// series master (reported once per page, without a version: the master is read by id);
/// a removed entry is a delete of that id (a master's removal deletes the series; an
/// occurrence's id is never linked to a row, so its removal changes nothing).
pub(super) fn calendar_changes(page: DeltaPage<Event>) -> ChangePage {
    let (sync_state, last) = match &page.next {
        exsync_graph::model::DeltaNext::NextPage(link) => (link.clone(), false),
        exsync_graph::model::DeltaNext::Done(link) => (link.clone(), true),
    };
    // Where each reported id's change is, so a master's own entry after one of its
    // occurrences lends it its version.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut changes = Vec::new();
    for entry in page.entries {
        match entry {
            DeltaEntry::Removed { id, .. } => changes.push(Change::Deleted(id)),
            DeltaEntry::Changed(e) => {
                let occurrence = matches!(
                    e.event_type,
                    Some(EventType::Occurrence | EventType::Exception)
                );
                let (id, version) = match (&e.series_master_id, occurrence) {
                    (Some(master), _) => (master.clone(), None),
                    (None, true) => continue, // an occurrence without its master: nothing to read
                    (None, false) => match &e.id {
                        Some(id) => (id.clone(), super::mailbox::version(&e.etag, &e.change_key)),
                        None => continue,
                    },
                };
                match seen.get(&id) {
                    Some(&at) => {
                        if let (Some(Change::Updated(item)), Some(v)) =
                            (changes.get_mut(at), version)
                        {
                            item.version.get_or_insert(v);
                        }
                    }
                    None => {
                        seen.insert(id.clone(), changes.len());
                        changes.push(Change::Updated(ItemRef {
                            id,
                            version,
                            received_at: None,
                        }));
                    }
                }
            }
        }
    }
    ChangePage {
        sync_state,
        last,
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exsync_graph::model::DeltaNext;
    use serde_json::json;

    fn round_trip(json: serde_json::Value) {
        let graph = graph_recurrence(&json).unwrap();
        assert_eq!(domain_recurrence(&graph).unwrap(), json, "{graph:?}");
    }

    #[test]
    fn every_domain_recurrence_maps_to_graph_and_back_exactly() {
        round_trip(json!({"pattern": {"type": "daily", "interval": 2},
                          "range": {"type": "no_end", "start_date": "2026-12-07"}}));
        round_trip(json!({"pattern": {"type": "weekly", "interval": 1,
                                      "days_of_week": ["monday", "wednesday"],
                                      "first_day_of_week": "monday"},
                          "range": {"type": "numbered", "start_date": "2026-12-07", "occurrences": 5}}));
        round_trip(
            json!({"pattern": {"type": "absolute_monthly", "interval": 3, "day_of_month": 15},
                          "range": {"type": "end_date", "start_date": "2026-12-15", "end_date": "2027-12-15"}}),
        );
        round_trip(
            json!({"pattern": {"type": "relative_monthly", "interval": 1,
                                      "day_of_week": "weekday", "week": "last"},
                          "range": {"type": "no_end", "start_date": "2026-12-31"}}),
        );
        round_trip(
            json!({"pattern": {"type": "absolute_yearly", "day_of_month": 14, "month": "march"},
                          "range": {"type": "no_end", "start_date": "2027-03-14"}}),
        );
        round_trip(
            json!({"pattern": {"type": "relative_yearly", "day_of_week": "friday",
                                      "week": "last", "month": "november"},
                          "range": {"type": "numbered", "start_date": "2026-11-27", "occurrences": 10}}),
        );
    }

    #[test]
    fn what_the_other_side_cannot_hold_is_refused_with_the_reason() {
        let invalid = json!({"pattern": {"type": "weekly", "interval": 1, "days_of_week": []},
                             "range": {"type": "no_end", "start_date": "2026-12-07"}});
        assert!(graph_recurrence(&invalid)
            .unwrap_err()
            .contains("single days"));
        let mut every_two_years = graph_recurrence(
            &json!({"pattern": {"type": "absolute_yearly", "day_of_month": 14, "month": "march"},
                    "range": {"type": "no_end", "start_date": "2027-03-14"}}),
        )
        .unwrap();
        if let Some(p) = every_two_years.pattern.as_mut() {
            p.interval = Some(2);
        }
        assert!(domain_recurrence(&every_two_years)
            .unwrap_err()
            .contains("every 2 years"));
        let mut two_days = graph_recurrence(
            &json!({"pattern": {"type": "relative_monthly", "interval": 1,
                                "day_of_week": "monday", "week": "first"},
                    "range": {"type": "no_end", "start_date": "2026-12-07"}}),
        )
        .unwrap();
        if let Some(p) = two_days.pattern.as_mut() {
            p.days_of_week = Some(vec![GDay::Monday, GDay::Tuesday]);
        }
        assert!(domain_recurrence(&two_days)
            .unwrap_err()
            .contains("neither one day nor a whole group"));
    }

    #[test]
    fn occurrences_in_a_delta_page_are_one_change_of_their_master() {
        let event = |value: serde_json::Value| -> Event { serde_json::from_value(value).unwrap() };
        let page = DeltaPage {
            entries: vec![
                DeltaEntry::Changed(event(
                    json!({"id": "O1", "type": "occurrence", "seriesMasterId": "M"}),
                )),
                DeltaEntry::Changed(event(
                    json!({"id": "M", "type": "seriesMaster", "@odata.etag": "W/\"1\""}),
                )),
                DeltaEntry::Changed(event(
                    json!({"id": "O2", "type": "exception", "seriesMasterId": "M"}),
                )),
                DeltaEntry::Changed(event(
                    json!({"id": "P1", "type": "occurrence", "seriesMasterId": "P"}),
                )),
                DeltaEntry::Changed(event(
                    json!({"id": "P2", "type": "occurrence", "seriesMasterId": "P"}),
                )),
                DeltaEntry::Changed(event(json!({"id": "S", "type": "singleInstance"}))),
                DeltaEntry::Removed {
                    id: "X".into(),
                    reason: Some("deleted".into()),
                },
            ],
            next: DeltaNext::Done("link".into()),
        };
        let changes = calendar_changes(page);
        let ids: Vec<String> = changes
            .changes
            .iter()
            .map(|c| match c {
                Change::Updated(item) => format!("updated {}", item.id),
                Change::Deleted(id) => format!("deleted {id}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["updated M", "updated P", "updated S", "deleted X"]);
        let Change::Updated(master) = &changes.changes[0] else {
            panic!("the master")
        };
        assert_eq!(
            master.version.as_deref(),
            Some("W/\"1\""),
            "the master's own entry lends its version"
        );
        assert!(changes.last);
    }
}
