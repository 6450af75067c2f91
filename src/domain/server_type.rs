//! What a profile's `server_type` allows: the sign-ins Exchange Online no longer accepts are
//! refused before a request is sent (by `apply` and `exsync test-mailbox`), and what still
//! works but is going away is warned about. Pure rules, tested here.
//!
//! Facts they rest on (Microsoft's announcements):
//! - Basic authentication for EWS in Exchange Online was turned off from 1 October 2022
//!   ("Deprecation of Basic authentication in Exchange Online"); Exchange Online never
//!   offered NTLM. Any user name + password sign-in (a service account, each mailbox's own
//!   password) therefore fails there, and repeated failed sign-ins can lock the account out
//!   (Entra Smart Lockout).
//! - The ApplicationImpersonation RBAC role was removed from Exchange Online in February 2025
//!   (message center MC718754): a service account can no longer impersonate; an app
//!   registration with the `full_access_as_app` application permission (OAuth app-only)
//!   gives the same access.
//! - EWS in Exchange Online is blocked by default from 1 October 2026 (a tenant can keep it
//!   for allow-listed app ids) and switched off on 1 April 2027.

use super::{AuthMethod, PasswordScheme, Protocol, ServerType};
use chrono::NaiveDate;
use serde::Serialize;

/// Whether a finding stops the profile from being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The combination cannot work: `apply` writes nothing, `test-mailbox` fails it unsent.
    Refuse,
    /// It works today but not for long, or only with a tenant setting: say so and go on.
    Warn,
}

/// One finding about a profile's server type and sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Refuse or warn.
    pub severity: Severity,
    /// Stable code, e.g. `exchange_online.basic_auth_retired`.
    pub code: &'static str,
    /// The `apply` key the operator changes.
    pub field: &'static str,
    /// Why, and what to do instead.
    pub reason: String,
}

/// The day Exchange Online starts blocking EWS by default.
pub fn ews_blocked_from() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or_default()
}

/// The day Exchange Online switches EWS off.
pub fn ews_retired_from() -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 4, 1).unwrap_or_default()
}

/// The findings for a profile's settings on `today`.
///
/// Microsoft Graph reaches Exchange Online only (on-premises mailboxes answer
/// `MailboxNotEnabledForRESTAPI`, graph.md §8), and exsync signs in to it app-only (a client
/// secret or a certificate): `protocol = "graph"` with anything else is refused. A Graph
/// profile has none of EWS's retirement findings.
pub fn findings(
    server_type: ServerType,
    protocol: Protocol,
    auth: AuthMethod,
    password_scheme: PasswordScheme,
    use_impersonation: bool,
    today: NaiveDate,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if protocol == Protocol::Graph {
        if server_type != ServerType::ExchangeOnline {
            out.push(Finding {
                severity: Severity::Refuse,
                code: "graph.exchange_online_only",
                field: "protocol",
                reason: "Microsoft Graph reaches Exchange Online mailboxes only (on-premises \
                         mailboxes are not enabled for its REST API): use protocol = \"ews\" \
                         with server_type = \"exchange_server\", or set server_type = \
                         \"exchange_online\""
                    .to_owned(),
            });
        }
        if auth != AuthMethod::OauthClientCredentials {
            out.push(Finding {
                severity: Severity::Refuse,
                code: "graph.app_only_oauth_required",
                field: "auth",
                reason: "protocol = \"graph\" signs in app-only: set auth = \
                         \"oauth_client_credentials\" with a client secret or a certificate \
                         (an Entra app registration with Graph application permissions, see \
                         docs/graph.md)"
                    .to_owned(),
            });
        }
        return out;
    }
    if server_type != ServerType::ExchangeOnline {
        return out;
    }
    let scheme = match password_scheme {
        PasswordScheme::Basic => "Basic authentication",
        PasswordScheme::Ntlm => "NTLM (which Exchange Online never offered)",
    };
    match auth {
        AuthMethod::ProfileCredentials if use_impersonation => out.push(Finding {
            severity: Severity::Refuse,
            code: "exchange_online.credential_impersonation_retired",
            field: "auth",
            reason: format!(
                "Exchange Online removed the ApplicationImpersonation role in February 2025 and \
                 turned off {scheme} for EWS (Basic since October 2022): a service account \
                 cannot sign in or impersonate. Use auth = \"oauth_client_credentials\" (an app \
                 registration with the full_access_as_app permission)"
            ),
        }),
        AuthMethod::ProfileCredentials => out.push(Finding {
            severity: Severity::Refuse,
            code: "exchange_online.basic_auth_retired",
            field: "auth",
            reason: format!(
                "Exchange Online turned off {scheme} for EWS (Basic since October 2022): a \
                 user name and password cannot sign in. Use auth = \"oauth_client_credentials\""
            ),
        }),
        AuthMethod::MailboxCredentials => out.push(Finding {
            severity: Severity::Refuse,
            code: "exchange_online.mailbox_passwords_retired",
            field: "auth",
            reason: format!(
                "each mailbox's own password needs {scheme}, which Exchange Online turned off \
                 for EWS (Basic since October 2022). Use auth = \"oauth_client_credentials\""
            ),
        }),
        AuthMethod::OauthClientCredentials => {
            if today >= ews_retired_from() {
                out.push(Finding {
                    severity: Severity::Refuse,
                    code: "exchange_online.ews_retired",
                    field: "server_type",
                    reason: format!(
                        "Exchange Online switched EWS off on {}: this profile needs Microsoft \
                         Graph (protocol = \"graph\", or `exsync migrate-profile NAME --to graph`)",
                        ews_retired_from()
                    ),
                });
            } else if today >= ews_blocked_from() {
                out.push(Finding {
                    severity: Severity::Warn,
                    code: "exchange_online.ews_blocked_by_default",
                    field: "server_type",
                    reason: format!(
                        "Exchange Online blocks EWS by default since {} unless the tenant \
                         allow-lists this app id, and switches EWS off on {}: plan the move to \
                         Microsoft Graph (`exsync migrate-profile NAME --to graph`)",
                        ews_blocked_from(),
                        ews_retired_from()
                    ),
                });
            } else {
                out.push(Finding {
                    severity: Severity::Warn,
                    code: "exchange_online.ews_retiring",
                    field: "server_type",
                    reason: format!(
                        "Exchange Online blocks EWS by default from {} (allow-listed app ids \
                         excepted) and switches it off on {}: plan the move to Microsoft Graph",
                        ews_blocked_from(),
                        ews_retired_from()
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn exchange_server_allows_every_sign_in() {
        for auth in AuthMethod::ALL {
            for scheme in PasswordScheme::ALL {
                assert!(findings(
                    ServerType::ExchangeServer,
                    Protocol::Ews,
                    *auth,
                    *scheme,
                    true,
                    day(2027, 6, 1)
                )
                .is_empty());
            }
        }
    }

    #[test]
    fn exchange_online_refuses_every_password_sign_in_naming_why() {
        let today = day(2026, 12, 7);
        let cases = [
            (
                AuthMethod::ProfileCredentials,
                true,
                "exchange_online.credential_impersonation_retired",
                "ApplicationImpersonation",
            ),
            (
                AuthMethod::ProfileCredentials,
                false,
                "exchange_online.basic_auth_retired",
                "Basic",
            ),
            (
                AuthMethod::MailboxCredentials,
                false,
                "exchange_online.mailbox_passwords_retired",
                "own password",
            ),
        ];
        for (auth, impersonate, code, why) in cases {
            let found = findings(
                ServerType::ExchangeOnline,
                Protocol::Ews,
                auth,
                PasswordScheme::Basic,
                impersonate,
                today,
            );
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].severity, Severity::Refuse);
            assert_eq!(found[0].code, code);
            assert!(found[0].reason.contains(why), "{}", found[0].reason);
        }
    }

    #[test]
    fn exchange_online_oauth_is_warned_then_refused_when_ews_is_switched_off() {
        let at = |today| {
            findings(
                ServerType::ExchangeOnline,
                Protocol::Ews,
                AuthMethod::OauthClientCredentials,
                PasswordScheme::Basic,
                true,
                today,
            )
        };
        assert_eq!(at(day(2026, 6, 1))[0].code, "exchange_online.ews_retiring");
        assert_eq!(at(day(2026, 6, 1))[0].severity, Severity::Warn);
        assert_eq!(
            at(day(2026, 12, 7))[0].code,
            "exchange_online.ews_blocked_by_default"
        );
        assert_eq!(at(day(2027, 4, 1))[0].severity, Severity::Refuse);
    }

    #[test]
    fn graph_needs_exchange_online_and_app_only_oauth_and_has_no_ews_retirement_warning() {
        let today = day(2026, 12, 7);
        let ok = findings(
            ServerType::ExchangeOnline,
            Protocol::Graph,
            AuthMethod::OauthClientCredentials,
            PasswordScheme::Basic,
            true,
            today,
        );
        assert!(ok.is_empty(), "{ok:?}");
        let on_premises = findings(
            ServerType::ExchangeServer,
            Protocol::Graph,
            AuthMethod::OauthClientCredentials,
            PasswordScheme::Basic,
            true,
            today,
        );
        assert_eq!(on_premises.len(), 1);
        assert_eq!(on_premises[0].code, "graph.exchange_online_only");
        assert_eq!(on_premises[0].severity, Severity::Refuse);
        for auth in [
            AuthMethod::ProfileCredentials,
            AuthMethod::MailboxCredentials,
        ] {
            let found = findings(
                ServerType::ExchangeOnline,
                Protocol::Graph,
                auth,
                PasswordScheme::Basic,
                true,
                today,
            );
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].code, "graph.app_only_oauth_required");
            assert_eq!(found[0].field, "auth");
        }
    }
}
