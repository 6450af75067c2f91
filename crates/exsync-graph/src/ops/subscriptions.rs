//! Change-notification subscriptions: create, renew, delete (GD-SUB, GD-WH, GD-ONO, GD-LC).
//! They are counted against the mailbox they watch (1,000 per mailbox across apps, GD-ONO),
//! so each call takes that mailbox's gate.

use crate::client::{Call, GraphClient, Target};
use crate::error::GraphError;
use crate::model::Subscription;
use chrono::{DateTime, Utc};
use reqwest::Method;

/// Subscribing needs read access to the resource (GD-ONO).
const SUBSCRIPTION_PERMISSION: &str = "Mail.Read (or Calendars.Read, Contacts.Read)";

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Renewal {
    expiration_date_time: DateTime<Utc>,
}

impl GraphClient {
    /// Create a subscription for a resource of `target`'s mailbox. Graph first POSTs a
    /// validation token to `notificationUrl` (and the lifecycle URL) and creates nothing
    /// unless it is echoed within 10 s (GD-WH-VALID). `POST /subscriptions` → 201.
    pub async fn create_subscription(
        &self,
        target: &Target,
        subscription: &Subscription,
    ) -> Result<Subscription, GraphError> {
        let url = self.root_url(&["subscriptions"]);
        let call = Call::new(
            "subscription.create",
            target,
            Method::POST,
            url,
            SUBSCRIPTION_PERMISSION,
        )
        .json(subscription)?;
        self.fetch(&call).await
    }

    /// Move a subscription's expiry (at most 4,230 minutes ahead for Outlook resources,
    /// GD-LIFE-TBL). `PATCH /subscriptions/{id}`.
    pub async fn renew_subscription(
        &self,
        target: &Target,
        id: &str,
        expiration: DateTime<Utc>,
    ) -> Result<Subscription, GraphError> {
        let url = self.root_url(&["subscriptions", id]);
        let call = Call::new(
            "subscription.renew",
            target,
            Method::PATCH,
            url,
            SUBSCRIPTION_PERMISSION,
        )
        .item()
        .json(&Renewal {
            expiration_date_time: expiration,
        })?;
        self.fetch(&call).await
    }

    /// Delete a subscription. `DELETE /subscriptions/{id}` → 204.
    pub async fn delete_subscription(&self, target: &Target, id: &str) -> Result<(), GraphError> {
        let url = self.root_url(&["subscriptions", id]);
        let call = Call::new(
            "subscription.delete",
            target,
            Method::DELETE,
            url,
            SUBSCRIPTION_PERMISSION,
        )
        .item();
        self.fetch_empty(&call).await
    }
}
