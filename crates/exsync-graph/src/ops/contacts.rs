//! Contacts: delta per contact folder, create / update / delete with ETags (GD-CDELTA;
//! contact-post, contact-update, contact-delete).
//!
//! The default folder is addressed by its well-known name `contacts`, as evolution-ews reads
//! it (`contactFolders/contacts`, EVO-CONN); that the delta path accepts the name in place
//! of the id is UNVERIFIED (on the live-tenant checklist).

use crate::client::{odata_string, Call, GraphClient, Target};
use crate::error::{DeltaRole, GraphError};
use crate::model::{Collection, Contact, DeltaPage, SingleValueExtendedProperty};
use reqwest::Method;

/// The one named property that carries the id of the database row a contact was created
/// for. Fixed and shared with the EWS side (`ExsyncActivityKey` in exsync's property set), so
/// an item created over either protocol is recognised over the other; one name for every
/// item keeps the mailbox's named-property quota untouched (I-QUOTA527).
pub const ACTIVITY_KEY_PROPERTY: &str =
    "String {d0925a5d-722f-42f0-882e-a816636fa020} Name ExsyncActivityKey";

/// Most pages read when looking for a row's contact (a key matches one contact; more pages
/// mean something else is wrong, and the answer so far is returned).
const MAX_LOOKUP_PAGES: usize = 10;

/// The create-key property for database row `row_id`.
pub fn activity_key(row_id: &str) -> SingleValueExtendedProperty {
    SingleValueExtendedProperty {
        id: ACTIVITY_KEY_PROPERTY.to_owned(),
        value: Some(row_id.to_owned()),
    }
}

fn activity_key_expand() -> String {
    format!(
        "singleValueExtendedProperties($filter=id eq {})",
        odata_string(ACTIVITY_KEY_PROPERTY)
    )
}

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

    /// One contact, with exsync's create key when it carries one.
    /// `GET /users/{id}/contacts/{id}?$expand=singleValueExtendedProperties($filter=id eq '…')`.
    pub async fn get_contact(&self, target: &Target, id: &str) -> Result<Contact, GraphError> {
        let url = Self::with_query(
            self.user_url(&target.mailbox, &["contacts", id]),
            &[("$expand", activity_key_expand())],
        );
        let call = Call::new("contact.get", target, Method::GET, url, CONTACTS_PERMISSION).item();
        self.fetch(&call).await
    }

    /// Create a contact in the default folder carrying exsync's create key with `row_id`
    /// (the database row). `POST /users/{id}/contacts` → 201. Not idempotent (contacts have
    /// no transactionId): before every create, look for the row's contact with
    /// [`GraphClient::find_contact_for_row`], so a POST whose answer was lost is not repeated.
    pub async fn create_contact(
        &self,
        target: &Target,
        contact: &Contact,
        row_id: &str,
    ) -> Result<Contact, GraphError> {
        let mut body = contact.clone();
        let mut properties = body
            .single_value_extended_properties
            .take()
            .unwrap_or_default();
        properties.retain(|p| !p.id.eq_ignore_ascii_case(ACTIVITY_KEY_PROPERTY));
        properties.push(activity_key(row_id));
        body.single_value_extended_properties = Some(properties);
        let url = self.user_url(&target.mailbox, &["contacts"]);
        let call = Call::new(
            "contact.create",
            target,
            Method::POST,
            url,
            CONTACTS_PERMISSION,
        )
        .json(&body)?;
        self.fetch(&call).await
    }

    /// The contact carrying `row_id`'s create key, if any (GD-XPROP: the value is matched
    /// case-insensitively by Graph, so only an exact match is kept).
    /// `GET /users/{id}/contacts?$filter=singleValueExtendedProperties/Any(…)`.
    pub async fn find_contact_for_row(
        &self,
        target: &Target,
        row_id: &str,
    ) -> Result<Option<Contact>, GraphError> {
        let filter = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq {} and ep/value eq {})",
            odata_string(ACTIVITY_KEY_PROPERTY),
            odata_string(row_id)
        );
        let pairs = [("$filter", filter), ("$expand", activity_key_expand())];
        let mut url = Self::with_query(self.user_url(&target.mailbox, &["contacts"]), &pairs);
        for _ in 0..MAX_LOOKUP_PAGES {
            let call = Call::new(
                "contact.findForRow",
                target,
                Method::GET,
                url,
                CONTACTS_PERMISSION,
            );
            let page: Collection<Contact> = self.fetch(&call).await?;
            if let Some(found) = page
                .value
                .into_iter()
                .find(|c| c.extended_property(ACTIVITY_KEY_PROPERTY) == Some(row_id))
            {
                return Ok(Some(found));
            }
            match page.next_link {
                Some(next) => url = self.link(&next)?,
                None => return Ok(None),
            }
        }
        Ok(None)
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
