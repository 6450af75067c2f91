//! The closed vocabularies of the product (server type, authentication, methods, statuses).
//!
//! Each enum round-trips through the snake_case text stored in Postgres (where a CHECK
//! constraint holds the same list) and used in `apply` files.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Text that names no member of a closed vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?} (expected one of: {expected})")]
pub struct ParseEnumError {
    /// Which vocabulary was being parsed.
    pub kind: &'static str,
    /// The offending text (never a secret: these are setting names).
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static str,
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored / configured spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseEnumError {
                        kind: $kind,
                        value: value.chars().take(64).collect(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }
    };
}

text_enum!(
    /// Which kind of Exchange a profile talks to.
    ServerType, "server type" {
        /// On-premises Exchange Server (2016, 2019, Subscription Edition).
        ExchangeServer => "exchange_server",
        /// Exchange Online (Microsoft 365).
        ExchangeOnline => "exchange_online",
    }
);

text_enum!(
    /// Which protocol a profile speaks to its Exchange.
    Protocol, "protocol" {
        /// Exchange Web Services (SOAP): Exchange Server on premises, and Exchange Online
        /// until Microsoft switches EWS off there.
        Ews => "ews",
        /// Microsoft Graph (REST): Exchange Online only, app-only OAuth only.
        Graph => "graph",
    }
);

text_enum!(
    /// Whose credentials a profile's connections use.
    AuthMethod, "authentication" {
        /// The profile's one service account (with or without impersonation).
        ProfileCredentials => "profile_credentials",
        /// Each mailbox's own user name and password.
        MailboxCredentials => "mailbox_credentials",
        /// OAuth2 client credentials (app-only), always with impersonation.
        OauthClientCredentials => "oauth_client_credentials",
    }
);

text_enum!(
    /// How an OAuth client assertion (certificate credential) is signed.
    AssertionSigning, "assertion signing" {
        /// RSASSA-PSS SHA-256 with the `x5t#S256` thumbprint (Microsoft's current guidance).
        Ps256 => "ps256",
        /// RSASSA-PKCS1-v1_5 SHA-256 with the `x5t` (SHA-1) thumbprint (the older form).
        Rs256 => "rs256",
    }
);

text_enum!(
    /// How a user name and password are presented to Exchange.
    PasswordScheme, "password scheme" {
        /// HTTP Basic authentication.
        Basic => "basic",
        /// NTLM (Windows integrated) authentication, for on-premises servers.
        Ntlm => "ntlm",
    }
);

text_enum!(
    /// Whether a workload of a mailbox is synchronised at all.
    SyncMethod, "synchronization method" {
        /// Not synchronised.
        None => "none",
        /// Synchronised by exsync.
        ServerSideSync => "server_side_sync",
    }
);

text_enum!(
    /// A mailbox's approval, required before its email is processed.
    ApprovalStatus, "approval status" {
        /// Never asked for.
        Empty => "empty",
        /// Awaiting an administrator.
        Pending => "pending",
        /// Email may be processed.
        Approved => "approved",
        /// Email must not be processed.
        Rejected => "rejected",
    }
);

text_enum!(
    /// Outcome of a workload's most recent run, as Dynamics shows it.
    WorkloadStatus, "workload status" {
        /// Never run (or reset by a settings change).
        NotRun => "not_run",
        /// Last run succeeded.
        Success => "success",
        /// Last run failed.
        Failure => "failure",
    }
);

text_enum!(
    /// One of the three independently scheduled kinds of synchronisation of a mailbox.
    Workload, "workload" {
        /// Exchange → database email.
        Incoming => "incoming",
        /// Database → Exchange email.
        Outgoing => "outgoing",
        /// Appointments, contacts and tasks, both ways.
        Act => "act",
    }
);

/// Other domain modules declare their vocabularies the same way.
pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_round_trips_through_its_stored_spelling() {
        for method in AuthMethod::ALL {
            assert_eq!(method.as_str().parse::<AuthMethod>(), Ok(*method));
        }
        for status in WorkloadStatus::ALL {
            assert_eq!(status.as_str().parse::<WorkloadStatus>(), Ok(*status));
        }
    }

    #[test]
    fn unknown_spelling_names_the_vocabulary_and_the_choices() {
        let error = "exchange_2003".parse::<ServerType>().unwrap_err();
        let text = error.to_string();
        assert!(text.contains("server type"), "{text}");
        assert!(text.contains("exchange_online"), "{text}");
    }
}
