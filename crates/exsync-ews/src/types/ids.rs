//! Item and folder ids, distinguished folder names, and the folder ids requests carry.

use super::*;

/// `t:ItemId` (ItemIdType): an item's id and change key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ItemId {
    /// The Id attribute.
    pub id: String,
    /// The ChangeKey attribute (required by Exchange for writes).
    pub change_key: Option<String>,
}

impl ItemId {
    /// An id without change key.
    pub fn new(id: impl Into<String>) -> Self {
        ItemId {
            id: id.into(),
            change_key: None,
        }
    }

    /// An id with a change key.
    pub fn with_change_key(id: impl Into<String>, change_key: impl Into<String>) -> Self {
        ItemId {
            id: id.into(),
            change_key: Some(change_key.into()),
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter, qname: &str) {
        w.start(qname).attr("Id", &self.id);
        if let Some(ck) = &self.change_key {
            w.attr("ChangeKey", ck);
        }
        w.end();
    }

    pub(crate) fn from_element(el: &Element) -> Result<Self, WireError> {
        Ok(ItemId {
            id: el
                .attr("Id")
                .ok_or(WireError::Missing("ItemId/@Id"))?
                .to_owned(),
            change_key: el.attr("ChangeKey").map(str::to_owned),
        })
    }
}

/// `t:FolderId` (FolderIdType): a folder's id and change key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FolderId {
    /// The Id attribute.
    pub id: String,
    /// The ChangeKey attribute.
    pub change_key: Option<String>,
}

impl FolderId {
    /// An id without change key.
    pub fn new(id: impl Into<String>) -> Self {
        FolderId {
            id: id.into(),
            change_key: None,
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter, qname: &str) {
        w.start(qname).attr("Id", &self.id);
        if let Some(ck) = &self.change_key {
            w.attr("ChangeKey", ck);
        }
        w.end();
    }

    pub(crate) fn from_element(el: &Element) -> Result<Self, WireError> {
        Ok(FolderId {
            id: el
                .attr("Id")
                .ok_or(WireError::Missing("FolderId/@Id"))?
                .to_owned(),
            change_key: el.attr("ChangeKey").map(str::to_owned),
        })
    }
}

/// Well-known folders (DistinguishedFolderIdNameType), the ones the sync uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistinguishedFolderName {
    /// `inbox`.
    Inbox,
    /// `sentitems`.
    SentItems,
    /// `drafts`.
    Drafts,
    /// `deleteditems`.
    DeletedItems,
    /// `outbox`.
    Outbox,
    /// `calendar`.
    Calendar,
    /// `contacts`.
    Contacts,
    /// `tasks`.
    Tasks,
    /// `junkemail`.
    JunkEmail,
    /// `msgfolderroot` (top of the information store).
    MsgFolderRoot,
    /// `root`.
    Root,
}

impl DistinguishedFolderName {
    /// Every name, for tables and tests.
    pub const ALL: [DistinguishedFolderName; 11] = [
        DistinguishedFolderName::Inbox,
        DistinguishedFolderName::SentItems,
        DistinguishedFolderName::Drafts,
        DistinguishedFolderName::DeletedItems,
        DistinguishedFolderName::Outbox,
        DistinguishedFolderName::Calendar,
        DistinguishedFolderName::Contacts,
        DistinguishedFolderName::Tasks,
        DistinguishedFolderName::JunkEmail,
        DistinguishedFolderName::MsgFolderRoot,
        DistinguishedFolderName::Root,
    ];

    /// The schema value.
    pub fn as_str(self) -> &'static str {
        match self {
            DistinguishedFolderName::Inbox => "inbox",
            DistinguishedFolderName::SentItems => "sentitems",
            DistinguishedFolderName::Drafts => "drafts",
            DistinguishedFolderName::DeletedItems => "deleteditems",
            DistinguishedFolderName::Outbox => "outbox",
            DistinguishedFolderName::Calendar => "calendar",
            DistinguishedFolderName::Contacts => "contacts",
            DistinguishedFolderName::Tasks => "tasks",
            DistinguishedFolderName::JunkEmail => "junkemail",
            DistinguishedFolderName::MsgFolderRoot => "msgfolderroot",
            DistinguishedFolderName::Root => "root",
        }
    }
}

impl FromStr for DistinguishedFolderName {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        DistinguishedFolderName::ALL
            .into_iter()
            .find(|n| n.as_str() == s.trim())
            .ok_or_else(|| invalid("DistinguishedFolderId/@Id", s))
    }
}

/// A folder reference: a well-known name (optionally in another mailbox) or a folder id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BaseFolderId {
    /// `t:DistinguishedFolderId`.
    Distinguished {
        /// Which well-known folder.
        name: DistinguishedFolderName,
        /// `t:Mailbox/t:EmailAddress`, for delegate access to another mailbox.
        mailbox: Option<String>,
    },
    /// `t:FolderId`.
    Folder(FolderId),
}

impl BaseFolderId {
    /// A well-known folder of the mailbox being accessed.
    pub fn distinguished(name: DistinguishedFolderName) -> Self {
        BaseFolderId::Distinguished {
            name,
            mailbox: None,
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        match self {
            BaseFolderId::Distinguished { name, mailbox } => {
                w.start("t:DistinguishedFolderId").attr("Id", name.as_str());
                if let Some(m) = mailbox {
                    w.start("t:Mailbox").leaf("t:EmailAddress", m).end();
                }
                w.end();
            }
            BaseFolderId::Folder(id) => id.write(w, "t:FolderId"),
        }
    }

    /// Read a `t:FolderId` or `t:DistinguishedFolderId`; other elements give `None`.
    pub(crate) fn from_element(el: &Element) -> Result<Option<Self>, WireError> {
        if el.namespace != TYPES_NS {
            return Ok(None);
        }
        match el.name.as_str() {
            "FolderId" => Ok(Some(BaseFolderId::Folder(FolderId::from_element(el)?))),
            "DistinguishedFolderId" => {
                let name = el
                    .attr("Id")
                    .ok_or(WireError::Missing("DistinguishedFolderId/@Id"))?
                    .parse()?;
                let mailbox = el
                    .child(TYPES_NS, "Mailbox")
                    .and_then(|m| m.child_text(TYPES_NS, "EmailAddress"))
                    .map(|s| s.trim().to_owned());
                Ok(Some(BaseFolderId::Distinguished { name, mailbox }))
            }
            _ => Ok(None),
        }
    }

    /// The first folder id among `parent`'s children.
    pub(crate) fn first_in(parent: &Element) -> Result<Option<Self>, WireError> {
        for c in &parent.children {
            if let Some(id) = BaseFolderId::from_element(c)? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// All folder ids among `parent`'s children.
    pub(crate) fn all_in(parent: &Element) -> Result<Vec<Self>, WireError> {
        let mut out = Vec::new();
        for c in &parent.children {
            if let Some(id) = BaseFolderId::from_element(c)? {
                out.push(id);
            }
        }
        Ok(out)
    }
}
