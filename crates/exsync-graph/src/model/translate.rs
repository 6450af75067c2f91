//! `translateExchangeIds` (GD-TRANS): EWS ids to immutable REST ids, for the move from EWS.

use super::common::GenericError;
use serde::{Deserialize, Serialize};

/// `microsoft.graph.exchangeIdFormat` (META).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExchangeIdFormat {
    /// MAPI entry id (binary, URL-safe base64).
    EntryId,
    /// EWS ItemId.
    EwsId,
    /// MAPI immutable entry id.
    ImmutableEntryId,
    /// Graph/REST id.
    RestId,
    /// Graph immutable id (what `Prefer: IdType="ImmutableId"` returns).
    RestImmutableEntryId,
}

/// The action's body. Graph's docs spell the parameters in camelCase; the CSDL says
/// `InputIds` (check-json matches case-insensitively, and so, we infer, does Graph).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranslateExchangeIdsRequest {
    /// At most 1,000 ids, all of one mailbox and one format (GD-TRANS).
    pub input_ids: Vec<String>,
    /// The format of `input_ids`.
    pub source_id_type: ExchangeIdFormat,
    /// The format wanted.
    pub target_id_type: ExchangeIdFormat,
}

/// `microsoft.graph.convertIdResult`: one id's translation or why it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConvertIdResult {
    /// The id as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// The translated id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// Why this id was not translated (e.g. `NotFound`, I-TRANS4823, I-TRANS7610).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<GenericError>,
}
