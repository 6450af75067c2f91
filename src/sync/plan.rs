//! Pure decisions of a pass, written once and tested here: which endpoint and credentials a
//! workload uses and how it reaches the mailbox (or why it may not run), and when a
//! workload is next due (cadence, backoff with jitter, the profile's minimum interval).

use crate::config::SchedulerSettings;
use crate::domain::{AuthMethod, Mailbox, OutgoingSettings, Profile, Workload};
use chrono::{DateTime, Utc};
use std::time::Duration;
use url::Url;

/// How a connection reaches the mailbox it works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The service account acts as the mailbox (ExchangeImpersonation header).
    Impersonate,
    /// The service account opens the mailbox's folders with delegate rights.
    Delegate,
    /// The mailbox signs in with its own credentials.
    Own,
}

/// Whose secret signs the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// The profile's service account.
    Profile,
    /// The profile's separate outgoing account (use_same_settings_for_outgoing = false).
    ProfileOutgoing,
    /// The profile's OAuth application.
    OAuthApp,
    /// The mailbox's own user name and password.
    Mailbox,
}

/// Where and as whom one workload of one mailbox connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPlan {
    /// The endpoint the profile names for this workload (its EWS URL, or the outgoing one);
    /// a provider with an endpoint setting of its own (Graph's `graph_url`) uses that instead.
    pub endpoint: Url,
    /// Whose credentials.
    pub credentials: CredentialSource,
    /// How the mailbox is reached.
    pub access: Access,
}

/// Why a workload may not run for a mailbox (raised as an alert; not retried until the
/// mailbox's or profile's row changes, or the slow retry comes round).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable code, e.g. `act.delegation_unsupported`.
    pub code: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
    /// Whether it is a warning (the rest of the mailbox works) or an error.
    pub is_warning: bool,
}

/// Decide how `workload` of `mailbox` connects, or why it must not run.
pub fn connection_for(
    profile: &Profile,
    mailbox: &Mailbox,
    workload: Workload,
) -> Result<ConnectionPlan, Refusal> {
    // Dynamics requires an approved mailbox for email and for appointments, contacts and tasks.
    if mailbox.approval != crate::domain::ApprovalStatus::Approved {
        let what = match workload {
            Workload::Act => "appointments, contacts and tasks".to_owned(),
            _ => format!("{workload} email"),
        };
        return Err(Refusal {
            code: "mailbox.not_approved",
            message: format!(
                "{what} of {} are not synchronised: the mailbox's approval is {} (approve it to start)",
                mailbox.address, mailbox.approval
            ),
            is_warning: false,
        });
    }
    let outgoing_url = match (&profile.outgoing, workload) {
        (OutgoingSettings::Separate { ews_url, .. }, Workload::Outgoing) => Some(ews_url.clone()),
        _ => None,
    };
    let endpoint = outgoing_url
        .clone()
        .unwrap_or_else(|| profile.ews_url.clone());
    match profile.auth {
        AuthMethod::ProfileCredentials => {
            let access = if profile.use_impersonation {
                Access::Impersonate
            } else {
                Access::Delegate
            };
            if workload == Workload::Act && access == Access::Delegate {
                return Err(Refusal {
                    code: "act.delegation_unsupported",
                    message: format!(
                        "appointments, contacts and tasks of {} are not synchronised: profile {:?} uses delegation (profile credentials without impersonation), which supports email only; enable impersonation on the profile or set act = \"none\"",
                        mailbox.address, profile.name
                    ),
                    is_warning: true,
                });
            }
            let credentials = if outgoing_url.is_some() {
                CredentialSource::ProfileOutgoing
            } else {
                CredentialSource::Profile
            };
            Ok(ConnectionPlan {
                endpoint,
                credentials,
                access,
            })
        }
        AuthMethod::OauthClientCredentials => Ok(ConnectionPlan {
            endpoint,
            credentials: CredentialSource::OAuthApp,
            access: Access::Impersonate,
        }),
        AuthMethod::MailboxCredentials => {
            if !mailbox.allow_credentials_for_email_processing {
                return Err(Refusal {
                    code: "mailbox.credentials_not_allowed",
                    message: format!(
                        "profile {:?} signs in with each mailbox's own credentials, but {} does not allow its credentials to be used for email processing",
                        profile.name, mailbox.address
                    ),
                    is_warning: false,
                });
            }
            if mailbox.username.is_none() || mailbox.password.is_none() {
                return Err(Refusal {
                    code: "mailbox.credentials_missing",
                    message: format!(
                        "{} has no user name or password of its own, which profile {:?} requires",
                        mailbox.address, profile.name
                    ),
                    is_warning: false,
                });
            }
            Ok(ConnectionPlan {
                endpoint,
                credentials: CredentialSource::Mailbox,
                access: Access::Own,
            })
        }
    }
}

/// How busy a mailbox has been, for adaptive cadences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Items changed in this pass.
    Busy,
    /// Nothing changed in this pass, but recently (within a day).
    Recent,
    /// Nothing for more than a day.
    Quiet,
}

/// Activity from this pass's item count and the newest item seen.
pub fn activity(items: usize, newest: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Activity {
    if items > 0 {
        Activity::Busy
    } else if newest.is_some_and(|t| now - t < chrono::Duration::days(1)) {
        Activity::Recent
    } else {
        Activity::Quiet
    }
}

/// The interval until a workload's next regular pass after a successful one.
pub fn cadence(
    settings: &SchedulerSettings,
    workload: Workload,
    activity: Activity,
    profile_min: Duration,
) -> Duration {
    let interval = match (workload, activity) {
        (Workload::Incoming, Activity::Busy) => settings.incoming_min_interval,
        (Workload::Incoming, Activity::Recent) => settings.incoming_interval,
        (Workload::Incoming, Activity::Quiet) => settings.incoming_max_interval,
        (Workload::Outgoing, _) => settings.outgoing_interval,
        (Workload::Act, Activity::Busy) => settings.act_min_interval,
        (Workload::Act, Activity::Recent) => {
            (settings.act_min_interval + settings.act_max_interval) / 2
        }
        (Workload::Act, Activity::Quiet) => settings.act_max_interval,
    };
    // Outgoing is also woken by newly queued mail; the profile minimum still bounds polling.
    interval.max(profile_min)
}

/// Retry delay after `failures` consecutive transient failures: exponential from
/// `backoff_initial`, capped at `backoff_max`, with ±20% jitter, and never shorter than a
/// back-off the server asked for.
pub fn backoff(
    settings: &SchedulerSettings,
    failures: u32,
    server_back_off: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let base = settings
        .backoff_initial
        .saturating_mul(1u32 << exponent)
        .min(settings.backoff_max);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    let jittered = base.mul_f64(factor).min(settings.backoff_max);
    match server_back_off {
        Some(asked) => jittered.max(asked),
        None => jittered,
    }
}

/// A uniformly random jitter in [0, 1).
pub fn random_jitter() -> f64 {
    rand::random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        ApprovalStatus, MailboxId, PasswordScheme, ProfileId, ServerType, SyncMethod,
    };
    use secrecy::SecretString;
    use uuid::Uuid;

    fn profile(auth: AuthMethod, use_impersonation: bool) -> Profile {
        Profile {
            id: ProfileId(Uuid::nil()),
            name: "Contoso".to_owned(),
            server_type: ServerType::ExchangeServer,
            protocol: crate::domain::Protocol::Ews,
            ews_url: Url::parse("https://mail.contoso.test/EWS/Exchange.asmx").unwrap(),
            graph_url: Url::parse(crate::domain::DEFAULT_GRAPH_URL).unwrap(),
            auth,
            password_scheme: PasswordScheme::Basic,
            username: Some("svc".to_owned()),
            password: Some(SecretString::from("pw")),
            oauth: None,
            use_impersonation,
            outgoing: OutgoingSettings::SameAsIncoming,
            process_emails_from: None,
            max_concurrent_connections: 10,
            min_polling_interval: Duration::from_secs(60),
            enabled: true,
            updated_at: Utc::now(),
        }
    }

    fn mailbox() -> Mailbox {
        Mailbox {
            id: MailboxId(Uuid::nil()),
            address: "alice@contoso.test".to_owned(),
            profile_id: ProfileId(Uuid::nil()),
            allow_credentials_for_email_processing: false,
            username: None,
            password: None,
            process_email_received_after: None,
            incoming: SyncMethod::ServerSideSync,
            outgoing: SyncMethod::ServerSideSync,
            act: SyncMethod::ServerSideSync,
            approval: ApprovalStatus::Approved,
            payload_logging: false,
        }
    }

    #[test]
    fn delegation_is_refused_for_act_only_with_a_warning() {
        let p = profile(AuthMethod::ProfileCredentials, false);
        let m = mailbox();
        let refusal = connection_for(&p, &m, Workload::Act).unwrap_err();
        assert_eq!(refusal.code, "act.delegation_unsupported");
        assert!(refusal.is_warning);
        let email = connection_for(&p, &m, Workload::Incoming).unwrap();
        assert_eq!(email.access, Access::Delegate);
        assert!(connection_for(&p, &m, Workload::Outgoing).is_ok());
    }

    #[test]
    fn impersonation_profiles_reach_every_workload_with_the_service_account() {
        let p = profile(AuthMethod::ProfileCredentials, true);
        for workload in Workload::ALL {
            let plan = connection_for(&p, &mailbox(), *workload).unwrap();
            assert_eq!(plan.access, Access::Impersonate);
            assert_eq!(plan.credentials, CredentialSource::Profile);
        }
    }

    #[test]
    fn mailbox_credentials_need_the_mailbox_to_allow_them() {
        let p = profile(AuthMethod::MailboxCredentials, false);
        let mut m = mailbox();
        assert_eq!(
            connection_for(&p, &m, Workload::Incoming).unwrap_err().code,
            "mailbox.credentials_not_allowed"
        );
        m.allow_credentials_for_email_processing = true;
        m.username = Some("alice".to_owned());
        m.password = Some(SecretString::from("pw"));
        let plan = connection_for(&p, &m, Workload::Act).unwrap();
        assert_eq!(
            (plan.access, plan.credentials),
            (Access::Own, CredentialSource::Mailbox)
        );
    }

    #[test]
    fn unapproved_mailboxes_sync_neither_email_nor_act() {
        let p = profile(AuthMethod::ProfileCredentials, true);
        let mut m = mailbox();
        m.approval = ApprovalStatus::Pending;
        for workload in Workload::ALL {
            let refusal = connection_for(&p, &m, *workload).unwrap_err();
            assert_eq!(refusal.code, "mailbox.not_approved");
            assert!(refusal.message.contains("pending"), "{}", refusal.message);
        }
        let act = connection_for(&p, &m, Workload::Act).unwrap_err();
        assert!(
            act.message.contains("appointments, contacts and tasks"),
            "{}",
            act.message
        );
    }

    #[test]
    fn separate_outgoing_settings_apply_to_outgoing_only() {
        let mut p = profile(AuthMethod::ProfileCredentials, true);
        p.outgoing = OutgoingSettings::Separate {
            ews_url: Url::parse("https://smtp.contoso.test/EWS/Exchange.asmx").unwrap(),
            username: Some("svc-out".to_owned()),
            password: Some(SecretString::from("pw2")),
        };
        let out = connection_for(&p, &mailbox(), Workload::Outgoing).unwrap();
        assert_eq!(out.endpoint.host_str(), Some("smtp.contoso.test"));
        assert_eq!(out.credentials, CredentialSource::ProfileOutgoing);
        let incoming = connection_for(&p, &mailbox(), Workload::Incoming).unwrap();
        assert_eq!(incoming.endpoint.host_str(), Some("mail.contoso.test"));
    }

    #[test]
    fn cadence_adapts_to_activity_and_never_undercuts_the_profile_minimum() {
        let s = SchedulerSettings::default();
        let minute = Duration::from_secs(60);
        assert_eq!(
            cadence(&s, Workload::Incoming, Activity::Busy, minute),
            s.incoming_min_interval
        );
        assert_eq!(
            cadence(&s, Workload::Incoming, Activity::Quiet, minute),
            s.incoming_max_interval
        );
        let slow_profile = Duration::from_secs(600);
        assert_eq!(
            cadence(&s, Workload::Incoming, Activity::Busy, slow_profile),
            slow_profile
        );
        assert_eq!(
            cadence(&s, Workload::Outgoing, Activity::Busy, minute),
            s.outgoing_interval
        );
    }

    #[test]
    fn backoff_grows_exponentially_is_capped_and_honours_the_server() {
        let s = SchedulerSettings::default();
        assert_eq!(backoff(&s, 1, None, 0.5), s.backoff_initial);
        assert_eq!(backoff(&s, 3, None, 0.5), s.backoff_initial * 4);
        assert_eq!(backoff(&s, 50, None, 0.5), s.backoff_max);
        let asked = Duration::from_secs(3600);
        assert_eq!(backoff(&s, 1, Some(asked), 0.0), asked);
        let low = backoff(&s, 2, None, 0.0);
        let high = backoff(&s, 2, None, 1.0);
        assert!(low < high && low >= s.backoff_initial);
    }
}
