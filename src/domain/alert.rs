//! Alerts: the trail an operator reads on a profile or a mailbox.

use crate::domain::{MailboxId, ProfileId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Severity of an alert, as Dynamics grades them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// Something worth knowing (e.g. a condition healed).
    Information,
    /// Something degraded but still working (e.g. one item skipped).
    Warning,
    /// Something stopped (e.g. credentials rejected, workload disabled).
    Error,
}

impl AlertLevel {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Information => "information",
            AlertLevel::Warning => "warning",
            AlertLevel::Error => "error",
        }
    }
}

impl fmt::Display for AlertLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertLevel {
    type Err = crate::domain::ParseEnumError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "information" => Ok(AlertLevel::Information),
            "warning" => Ok(AlertLevel::Warning),
            "error" => Ok(AlertLevel::Error),
            _ => Err(crate::domain::ParseEnumError {
                kind: "alert level",
                value: value.chars().take(64).collect(),
                expected: "information warning error",
            }),
        }
    }
}

/// What an alert is about: a whole profile (its credentials) or one mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertTarget {
    /// The profile and, through it, all its mailboxes.
    Profile(ProfileId),
    /// One mailbox.
    Mailbox(MailboxId),
}
