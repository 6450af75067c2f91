//! `translateExchangeIds` (GD-TRANS, GD-TRANS-PERM): stored EWS ids to immutable Graph ids.

use crate::client::{Call, GraphClient, Target};
use crate::error::GraphError;
use crate::model::{Collection, ConvertIdResult, ExchangeIdFormat, TranslateExchangeIdsRequest};
use reqwest::Method;

/// Graph translates at most this many ids per call, all from one mailbox (GD-TRANS).
pub const MAX_IDS_PER_TRANSLATION: usize = 1000;

impl GraphClient {
    /// Translate `ids` of `mailbox` from `source` to `target_format`, in calls of at most
    /// [`MAX_IDS_PER_TRANSLATION`]. One result per id; an id Graph could not translate has
    /// `errorDetails` (a per-item answer inside a 200, I-TRANS7610) and stays data.
    /// `POST /users/{id}/translateExchangeIds` (needs `User.Read.All`).
    pub async fn translate_exchange_ids(
        &self,
        target: &Target,
        ids: &[String],
        source: ExchangeIdFormat,
        target_format: ExchangeIdFormat,
    ) -> Result<Vec<ConvertIdResult>, GraphError> {
        let mut results = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_IDS_PER_TRANSLATION) {
            let body = TranslateExchangeIdsRequest {
                input_ids: chunk.to_vec(),
                source_id_type: source,
                target_id_type: target_format,
            };
            let url = self.user_url(&target.mailbox, &["translateExchangeIds"]);
            // A translation changes nothing: sending it twice is harmless.
            let call = Call::new(
                "translateExchangeIds",
                target,
                Method::POST,
                url,
                "User.Read.All",
            )
            .idempotent(true)
            .json(&body)?;
            let page: Collection<ConvertIdResult> = self.fetch(&call).await?;
            results.extend(page.value);
        }
        Ok(results)
    }
}
