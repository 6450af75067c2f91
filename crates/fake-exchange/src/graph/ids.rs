//! Item ids in Graph's formats (`exchangeIdFormat`, META): the same item has an EWS id (the
//! fake Exchange's own), a REST id, an immutable REST id, and the binary entry ids. Each
//! encodes its mailbox and item number under its own prefix and tag, so one format is never
//! accepted for another (Graph answers `ErrorInvalidIdMalformed` for a foreign format).
//! To Do tasks have ids of their own (they are not Exchange item ids, GD-IMM).
//!
//! Owns encoding and decoding only; whether the item exists is the caller's question.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::state::{item_id_string, parse_item_id};

/// An id format of `translateExchangeIds` (camelCase as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GraphIdFormat {
    /// MAPI entry id (binary, URL-safe base64 with a trailing pad-count digit).
    EntryId,
    /// The EWS `ItemId` (what the fake Exchange hands out).
    EwsId,
    /// MAPI immutable entry id (binary).
    ImmutableEntryId,
    /// Graph's default id.
    RestId,
    /// Graph's immutable id (`Prefer: IdType="ImmutableId"`).
    RestImmutableEntryId,
}

const REST_PREFIX: &str = "AAMkAGR";
const IMMUTABLE_PREFIX: &str = "AAkALgAA";
const TODO_PREFIX: &str = "AAkALgTD";

fn tagged(prefix: &str, tag: &str, address: &str, n: u64) -> String {
    format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(format!("{tag}\0{}\0{n}", address.to_ascii_lowercase()))
    )
}

fn untag(id: &str, prefix: &str, tag: &str) -> Option<(String, u64)> {
    let raw = URL_SAFE_NO_PAD.decode(id.strip_prefix(prefix)?).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.splitn(3, '\0');
    if parts.next()? != tag {
        return None;
    }
    let address = parts.next()?.to_owned();
    let n = parts.next()?.parse().ok()?;
    Some((address, n))
}

/// The binary formats: URL-safe base64 with padding replaced by a digit counting it (GD-TRANS).
fn binary(tag: &str, address: &str, n: u64) -> String {
    let raw = format!("{tag}\0{}\0{n}", address.to_ascii_lowercase());
    let padded = base64::engine::general_purpose::URL_SAFE.encode(raw);
    let pads = padded.bytes().rev().take_while(|b| *b == b'=').count();
    format!("{}{pads}", padded.trim_end_matches('='))
}

fn unbinary(id: &str, tag: &str) -> Option<(String, u64)> {
    let (body, pads) = id.split_at(id.len().checked_sub(1)?);
    let pads: usize = pads.parse().ok()?;
    let padded = format!("{body}{}", "=".repeat(pads));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(padded)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.splitn(3, '\0');
    if parts.next()? != tag {
        return None;
    }
    let address = parts.next()?.to_owned();
    let n = parts.next()?.parse().ok()?;
    Some((address, n))
}

/// Item `n` of `address` in `format`.
pub(crate) fn encode(format: GraphIdFormat, address: &str, n: u64) -> String {
    match format {
        GraphIdFormat::EwsId => item_id_string(address, n),
        GraphIdFormat::RestId => tagged(REST_PREFIX, "r", address, n),
        GraphIdFormat::RestImmutableEntryId => tagged(IMMUTABLE_PREFIX, "m", address, n),
        GraphIdFormat::EntryId => binary("E", address, n),
        GraphIdFormat::ImmutableEntryId => binary("I", address, n),
    }
}

/// The mailbox and item number `id` names in `format`, or `None` when it is not that format.
pub(crate) fn decode(format: GraphIdFormat, id: &str) -> Option<(String, u64)> {
    let id = id.trim();
    match format {
        GraphIdFormat::EwsId => parse_item_id(id),
        GraphIdFormat::RestId => untag(id, REST_PREFIX, "r"),
        GraphIdFormat::RestImmutableEntryId => untag(id, IMMUTABLE_PREFIX, "m"),
        GraphIdFormat::EntryId => unbinary(id, "E"),
        GraphIdFormat::ImmutableEntryId => unbinary(id, "I"),
    }
}

/// An id a Graph item path accepts: a REST id or an immutable REST id (either, whatever the
/// request's `Prefer`, GD-IMM).
pub(crate) fn decode_rest(id: &str) -> Option<(String, u64)> {
    decode(GraphIdFormat::RestImmutableEntryId, id).or_else(|| decode(GraphIdFormat::RestId, id))
}

/// The id a Graph answer carries for item `n`.
pub(crate) fn rest_id(address: &str, n: u64, immutable: bool) -> String {
    let format = if immutable {
        GraphIdFormat::RestImmutableEntryId
    } else {
        GraphIdFormat::RestId
    };
    encode(format, address, n)
}

const OCCURRENCE_PREFIX: &str = "AAkALgOC";

/// The id of the occurrence of series `n` that starts at `at` (occurrences are expanded by
/// `calendarView`; item paths do not take them in the fake).
pub(crate) fn occurrence_id(address: &str, n: u64, at: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{OCCURRENCE_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(format!(
            "o\0{}\0{n}\0{}",
            address.to_ascii_lowercase(),
            at.format("%Y%m%d%H%M")
        ))
    )
}

/// Whether `id` names an occurrence of a series.
pub(crate) fn is_occurrence_id(id: &str) -> bool {
    id.trim().starts_with(OCCURRENCE_PREFIX)
}

/// A To Do task's id.
pub(crate) fn todo_task_id(address: &str, n: u64) -> String {
    tagged(TODO_PREFIX, "t", address, n)
}

/// The mailbox and item number of a To Do task id.
pub(crate) fn parse_todo_task_id(id: &str) -> Option<(String, u64)> {
    untag(id.trim(), TODO_PREFIX, "t")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_round_trips_and_no_format_reads_another() {
        let formats = [
            GraphIdFormat::EntryId,
            GraphIdFormat::EwsId,
            GraphIdFormat::ImmutableEntryId,
            GraphIdFormat::RestId,
            GraphIdFormat::RestImmutableEntryId,
        ];
        for from in formats {
            let id = encode(from, "A@contoso.test", 42);
            for to in formats {
                let read = decode(to, &id);
                if from == to {
                    assert_eq!(read.map(|(_, n)| n), Some(42), "{from:?} {id}");
                } else {
                    assert_eq!(read, None, "{to:?} read a {from:?} id {id}");
                }
            }
        }
        assert_eq!(decode_rest(&item_id_string("a@contoso.test", 1)), None);
        let task = todo_task_id("a@contoso.test", 7);
        assert_eq!(
            parse_todo_task_id(&task),
            Some(("a@contoso.test".into(), 7))
        );
        assert_eq!(decode_rest(&task), None);
    }
}
