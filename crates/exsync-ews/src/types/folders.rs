//! Folders.

use super::*;

/// `t:Folder` (FolderType; other folder kinds are read into it too).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Folder {
    /// `t:FolderId`.
    pub folder_id: Option<FolderId>,
    /// `t:ParentFolderId`.
    pub parent_folder_id: Option<FolderId>,
    /// `t:FolderClass` (IPF.Note, IPF.Appointment, …).
    pub folder_class: Option<String>,
    /// `t:DisplayName`.
    pub display_name: Option<String>,
    /// `t:TotalCount`.
    pub total_count: Option<u32>,
    /// `t:ChildFolderCount`.
    pub child_folder_count: Option<u32>,
    /// `t:UnreadCount`.
    pub unread_count: Option<u32>,
}

pub(super) const FOLDER_ELEMENTS: &[&str] = &[
    "Folder",
    "CalendarFolder",
    "ContactsFolder",
    "SearchFolder",
    "TasksFolder",
];

impl Folder {
    /// Written as `t:Folder` whatever the class: FolderType is valid for every folder kind.
    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.start("t:Folder");
        if let Some(id) = &self.folder_id {
            id.write(w, "t:FolderId");
        }
        if let Some(id) = &self.parent_folder_id {
            id.write(w, "t:ParentFolderId");
        }
        leaf_opt(w, "t:FolderClass", self.folder_class.as_deref());
        leaf_opt(w, "t:DisplayName", self.display_name.as_deref());
        for (name, v) in [
            ("t:TotalCount", self.total_count),
            ("t:ChildFolderCount", self.child_folder_count),
        ] {
            if let Some(v) = v {
                w.leaf(name, &v.to_string());
            }
        }
        if let Some(v) = self.unread_count {
            w.leaf("t:UnreadCount", &v.to_string());
        }
        w.end();
    }

    /// Read a folder element; `None` when `el` is not one.
    pub(crate) fn from_element(el: &Element) -> Result<Option<Folder>, WireError> {
        if el.namespace != TYPES_NS || !FOLDER_ELEMENTS.contains(&el.name.as_str()) {
            return Ok(None);
        }
        let count = |name: &'static str| {
            el.child_text(TYPES_NS, name)
                .map(|t| parse_u32(name, t))
                .transpose()
        };
        Ok(Some(Folder {
            folder_id: el
                .child(TYPES_NS, "FolderId")
                .map(FolderId::from_element)
                .transpose()?,
            parent_folder_id: el
                .child(TYPES_NS, "ParentFolderId")
                .map(FolderId::from_element)
                .transpose()?,
            folder_class: t_text(el, "FolderClass"),
            display_name: t_text(el, "DisplayName"),
            total_count: count("TotalCount")?,
            child_folder_count: count("ChildFolderCount")?,
            unread_count: count("UnreadCount")?,
        }))
    }

    /// All folders among `parent`'s children.
    pub(crate) fn all_in(parent: &Element) -> Result<Vec<Folder>, WireError> {
        let mut out = Vec::new();
        for c in &parent.children {
            if let Some(f) = Folder::from_element(c)? {
                out.push(f);
            }
        }
        Ok(out)
    }
}
