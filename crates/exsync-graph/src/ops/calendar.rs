//! Calendar: events by calendarView delta over a window, and create / update / delete with
//! `transactionId` and ETags (GD-EDELTA, GD-DQE; event-post, event-update, event-delete).
//!
//! Every event call carries `Prefer: outlook.timezone="UTC"`, so `start` / `end` come back in
//! UTC ([`DateTimeTimeZone::to_utc`](crate::model::DateTimeTimeZone::to_utc) reads them).
//! `events/delta` without a window is documented for beta only (GD-DQE) and is UNVERIFIED on
//! v1.0 (EVO-492f995 uses it), so only the windowed view is offered.

use crate::client::{Call, GraphClient, Target};
use crate::error::{DeltaRole, GraphError};
use crate::model::{DeltaPage, Event};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;

const CALENDAR_PERMISSION: &str = "Calendars.ReadWrite";
const UTC_PREFERENCE: &str = "outlook.timezone=\"UTC\"";

/// The window a calendarView delta round covers; it is encoded into the round's links, so
/// changing it means starting a new round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarWindow {
    /// Start of the window.
    pub start: DateTime<Utc>,
    /// End of the window.
    pub end: DateTime<Utc>,
}

impl GraphClient {
    /// The first page of a calendarView delta round over `window` (the window is required,
    /// GD-EDELTA; no `$select`/`$filter`). Occurrences of series are expanded (I-CAL6353), and
    /// removals may name events outside the window (I-CAL6599): ignore ids you do not know.
    /// `GET /users/{id}/calendarView/delta?startDateTime=…&endDateTime=…`.
    pub async fn event_delta(
        &self,
        target: &Target,
        window: &CalendarWindow,
    ) -> Result<DeltaPage<Event>, GraphError> {
        let url = Self::with_query(
            self.user_url(&target.mailbox, &["calendarView", "delta"]),
            &[
                (
                    "startDateTime",
                    window.start.to_rfc3339_opts(SecondsFormat::Secs, true),
                ),
                (
                    "endDateTime",
                    window.end.to_rfc3339_opts(SecondsFormat::Secs, true),
                ),
            ],
        );
        let call = Call::new("event.delta", target, Method::GET, url, CALENDAR_PERMISSION)
            .delta(DeltaRole::Start)
            .prefer(self.page_size_preference())
            .prefer(UTC_PREFERENCE);
        self.delta_page(&call).await
    }

    /// The next page of a calendarView delta round, or the first of the next round.
    pub async fn event_delta_next(
        &self,
        target: &Target,
        link: &str,
    ) -> Result<DeltaPage<Event>, GraphError> {
        let url = self.link(link)?;
        let call = Call::new("event.delta", target, Method::GET, url, CALENDAR_PERMISSION)
            .delta(DeltaRole::Follow)
            .prefer(self.page_size_preference())
            .prefer(UTC_PREFERENCE);
        self.delta_page(&call).await
    }

    /// One event. `GET /users/{id}/events/{id}`.
    pub async fn get_event(&self, target: &Target, id: &str) -> Result<Event, GraphError> {
        let url = self.user_url(&target.mailbox, &["events", id]);
        let call = Call::new("event.get", target, Method::GET, url, CALENDAR_PERMISSION)
            .item()
            .prefer(UTC_PREFERENCE);
        self.fetch(&call).await
    }

    /// Create an event in the default calendar with `transaction_id` (stable per database
    /// row: a retried POST with the same id does not create a second event, TP-EVENT-DESC;
    /// the dedup window is UNVERIFIED, so the caller also records the id it got back).
    /// `POST /users/{id}/events` → 201.
    pub async fn create_event(
        &self,
        target: &Target,
        event: &Event,
        transaction_id: &str,
    ) -> Result<Event, GraphError> {
        let mut body = event.clone();
        body.transaction_id = Some(transaction_id.to_owned());
        let url = self.user_url(&target.mailbox, &["events"]);
        let call = Call::new(
            "event.create",
            target,
            Method::POST,
            url,
            CALENDAR_PERMISSION,
        )
        .prefer(UTC_PREFERENCE)
        .json(&body)?;
        self.fetch(&call).await
    }

    /// Change an event. `PATCH /users/{id}/events/{id}` with `If-Match: etag` when given; a
    /// 412 answer is [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) (re-read and merge).
    /// Whether Outlook enforces `If-Match` is UNVERIFIED (graph.md §4): never rely on it alone.
    pub async fn update_event(
        &self,
        target: &Target,
        id: &str,
        patch: &Event,
        etag: Option<&str>,
    ) -> Result<Event, GraphError> {
        let url = self.user_url(&target.mailbox, &["events", id]);
        let call = Call::new(
            "event.update",
            target,
            Method::PATCH,
            url,
            CALENDAR_PERMISSION,
        )
        .item()
        .if_match(etag)
        .prefer(UTC_PREFERENCE)
        .json(patch)?;
        self.fetch(&call).await
    }

    /// Delete an event (an organiser's delete sends the cancellation to attendees).
    /// `DELETE /users/{id}/events/{id}` → 204.
    pub async fn delete_event(
        &self,
        target: &Target,
        id: &str,
        etag: Option<&str>,
    ) -> Result<(), GraphError> {
        let url = self.user_url(&target.mailbox, &["events", id]);
        let call = Call::new(
            "event.delete",
            target,
            Method::DELETE,
            url,
            CALENDAR_PERMISSION,
        )
        .item()
        .if_match(etag);
        self.fetch_empty(&call).await
    }
}
