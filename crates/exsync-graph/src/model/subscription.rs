//! `microsoft.graph.subscription`: change-notification subscriptions (GD-SUB, GD-WH, GD-ONO).

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A subscription as created, renewed or returned. `clientState` is the shared secret Graph
/// echoes in every notification (at most 128 characters); it never appears in `Debug`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Subscription id (assigned by Graph).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What is watched, e.g. `/users/{id}/mailFolders('inbox')/messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `created,updated,deleted` (comma-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<String>,
    /// Public HTTPS endpoint that receives notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_url: Option<String>,
    /// Endpoint for lifecycle events (settable only at creation, GD-LC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_notification_url: Option<String>,
    /// When it lapses (Outlook resources: at most 4,230 minutes ahead, GD-LIFE-TBL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date_time: Option<DateTime<Utc>>,
    /// The secret checked on every notification.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_client_state",
        deserialize_with = "read_client_state"
    )]
    pub client_state: Option<SecretString>,
    /// Application that created it (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// Principal that created it (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator_id: Option<String>,
    /// Rich notifications with resource data (exsync does not use them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_resource_data: Option<bool>,
    /// Lowest TLS version the endpoint supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_supported_tls_version: Option<String>,
}

fn expose_client_state<S: Serializer>(
    value: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(secret) => serializer.serialize_str(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

fn read_client_state<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.map(SecretString::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_state_is_sent_but_never_debug_printed() {
        let subscription = Subscription {
            client_state: Some(SecretString::from("s3cret-state".to_owned())),
            ..Default::default()
        };
        let json = serde_json::to_string(&subscription).unwrap();
        assert!(json.contains("\"clientState\":\"s3cret-state\""), "{json}");
        assert!(!format!("{subscription:?}").contains("s3cret-state"));
        let back: Subscription = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.client_state
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            Some("s3cret-state".to_owned())
        );
    }
}
