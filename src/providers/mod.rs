//! Mail-server providers: the adapters that implement `sync::port` in one protocol each
//! (EWS, and Microsoft Graph for Exchange Online). `sync` never names them; the daemon picks
//! one per profile through [`Providers`], a [`Connector`] that dispatches on the profile's
//! `protocol`.

pub mod ews;
pub mod graph;

use crate::domain::{Mailbox, Profile, Protocol};
use crate::sync::plan::ConnectionPlan;
use crate::sync::port::{Connector, MailServer, OpenError, SessionSettings};
use std::sync::Arc;

/// The process's providers: each profile's mailboxes are opened by the provider of its
/// protocol (both keep their own clients per credential).
pub struct Providers {
    ews: Arc<dyn Connector>,
    graph: Arc<graph::GraphConnector>,
}

impl Providers {
    /// EWS through `ews`, Graph through `graph`.
    pub fn new(ews: Arc<dyn Connector>, graph: Arc<graph::GraphConnector>) -> Self {
        Self { ews, graph }
    }

    /// The Graph provider (the profile migration translates ids through it).
    pub fn graph(&self) -> &graph::GraphConnector {
        &self.graph
    }
}

impl Connector for Providers {
    fn open(
        &self,
        profile: &Profile,
        mailbox: &Mailbox,
        plan: &ConnectionPlan,
        settings: &SessionSettings,
    ) -> Result<Arc<dyn MailServer>, OpenError> {
        match profile.protocol {
            Protocol::Ews => self.ews.open(profile, mailbox, plan, settings),
            Protocol::Graph => self.graph.open(profile, mailbox, plan, settings),
        }
    }

    fn fresh(&self) -> Arc<dyn Connector> {
        Arc::new(Providers {
            ews: self.ews.fresh(),
            graph: Arc::new(self.graph.empty_like()),
        })
    }
}
