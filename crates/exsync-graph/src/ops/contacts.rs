//! Contacts: delta per contact folder, create / update / delete with ETags (GD-CDELTA;
//! contact-post, contact-update, contact-delete).
//!
//! The default folder is addressed by its well-known name `contacts`, as evolution-ews reads
//! it (`contactFolders/contacts`, EVO-CONN); that the delta path accepts the name in place
//! of the id is UNVERIFIED (on the live-tenant checklist).

use crate::client::{Call, GraphClient, Target};
use crate::error::{DeltaRole, GraphError};
use crate::model::{Contact, DeltaPage};
use reqwest::Method;

const CONTACTS_PERMISSION: &str = "Contacts.ReadWrite";

/// The default contact folder's well-known name.
pub const DEFAULT_CONTACT_FOLDER: &str = "contacts";

impl GraphClient {
    /// The first page of a contact delta round for `folder` (`$select` allowed, GD-CDELTA;
    /// empty `select` reads everything). `GET /users/{id}/contactFolders/{id}/contacts/delta`.
    pub async fn contact_delta(
        &self,
        target: &Target,
        folder: &str,
        select: &[&str],
    ) -> Result<DeltaPage<Contact>, GraphError> {
        let mut pairs = Vec::new();
        if !select.is_empty() {
            pairs.push(("$select", select.join(",")));
        }
        let url = Self::with_query(
            self.user_url(
                &target.mailbox,
                &["contactFolders", folder, "contacts", "delta"],
            ),
            &pairs,
        );
        let call = Call::new(
            "contact.delta",
            target,
            Method::GET,
            url,
            CONTACTS_PERMISSION,
        )
        .delta(DeltaRole::Start)
        .prefer(self.page_size_preference());
        self.delta_page(&call).await
    }

    /// The next page of a contact delta round, or the first of the next round.
    pub async fn contact_delta_next(
        &self,
        target: &Target,
        link: &str,
    ) -> Result<DeltaPage<Contact>, GraphError> {
        let url = self.link(link)?;
        let call = Call::new(
            "contact.delta",
            target,
            Method::GET,
            url,
            CONTACTS_PERMISSION,
        )
        .delta(DeltaRole::Follow)
        .prefer(self.page_size_preference());
        self.delta_page(&call).await
    }

    /// One contact. `GET /users/{id}/contacts/{id}`.
    pub async fn get_contact(&self, target: &Target, id: &str) -> Result<Contact, GraphError> {
        let url = self.user_url(&target.mailbox, &["contacts", id]);
        let call = Call::new("contact.get", target, Method::GET, url, CONTACTS_PERMISSION).item();
        self.fetch(&call).await
    }

    /// Create a contact in the default folder. `POST /users/{id}/contacts` → 201. Not
    /// idempotent (contacts have no transactionId): the caller records the id it gets back
    /// before anything else.
    pub async fn create_contact(
        &self,
        target: &Target,
        contact: &Contact,
    ) -> Result<Contact, GraphError> {
        let url = self.user_url(&target.mailbox, &["contacts"]);
        let call = Call::new(
            "contact.create",
            target,
            Method::POST,
            url,
            CONTACTS_PERMISSION,
        )
        .json(contact)?;
        self.fetch(&call).await
    }

    /// Change a contact. `PATCH /users/{id}/contacts/{id}`, `If-Match` when `etag` is given.
    pub async fn update_contact(
        &self,
        target: &Target,
        id: &str,
        patch: &Contact,
        etag: Option<&str>,
    ) -> Result<Contact, GraphError> {
        let url = self.user_url(&target.mailbox, &["contacts", id]);
        let call = Call::new(
            "contact.update",
            target,
            Method::PATCH,
            url,
            CONTACTS_PERMISSION,
        )
        .item()
        .if_match(etag)
        .json(patch)?;
        self.fetch(&call).await
    }

    /// Delete a contact. `DELETE /users/{id}/contacts/{id}` → 204.
    pub async fn delete_contact(
        &self,
        target: &Target,
        id: &str,
        etag: Option<&str>,
    ) -> Result<(), GraphError> {
        let url = self.user_url(&target.mailbox, &["contacts", id]);
        let call = Call::new(
            "contact.delete",
            target,
            Method::DELETE,
            url,
            CONTACTS_PERMISSION,
        )
        .item()
        .if_match(etag);
        self.fetch_empty(&call).await
    }
}
