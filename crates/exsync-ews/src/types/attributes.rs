//! The schema's string enumerations that operations carry as attributes or elements.

use super::*;

/// Declares a schema string enumeration with `as_str` and `FromStr`.
macro_rules! schema_enum {
    ($(#[$meta:meta])* $name:ident, $element:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// The schema value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl FromStr for $name {
            type Err = WireError;
            fn from_str(s: &str) -> Result<Self, WireError> {
                match s.trim() {
                    $($text => Ok($name::$variant),)*
                    other => Err(invalid($element, other)),
                }
            }
        }
    };
}

schema_enum! {
    /// `MessageDisposition` (MessageDispositionType): save, send, or both.
    MessageDisposition, "MessageDisposition" {
        /// Save in the target folder only.
        SaveOnly = "SaveOnly",
        /// Send without keeping a copy.
        SendOnly = "SendOnly",
        /// Send and keep a copy in Sent Items (or SavedItemFolderId).
        SendAndSaveCopy = "SendAndSaveCopy",
    }
}

schema_enum! {
    /// `SendMeetingInvitations` / `SendMeetingCancellations` (CalendarItemCreateOrDeleteOperationType).
    SendMeetingInvitations, "SendMeetingInvitations" {
        /// Tell nobody.
        SendToNone = "SendToNone",
        /// Tell every attendee, keep no copy.
        SendOnlyToAll = "SendOnlyToAll",
        /// Tell every attendee and keep a copy.
        SendToAllAndSaveCopy = "SendToAllAndSaveCopy",
    }
}

schema_enum! {
    /// `SendMeetingInvitationsOrCancellations` (CalendarItemUpdateOperationType).
    SendMeetingInvitationsOrCancellations, "SendMeetingInvitationsOrCancellations" {
        /// Tell nobody.
        SendToNone = "SendToNone",
        /// Tell every attendee.
        SendOnlyToAll = "SendOnlyToAll",
        /// Tell changed attendees only.
        SendOnlyToChanged = "SendOnlyToChanged",
        /// Tell every attendee and keep a copy.
        SendToAllAndSaveCopy = "SendToAllAndSaveCopy",
        /// Tell changed attendees and keep a copy.
        SendToChangedAndSaveCopy = "SendToChangedAndSaveCopy",
    }
}

schema_enum! {
    /// `ConflictResolution` (ConflictResolutionType): what UpdateItem does on a stale change key.
    ConflictResolution, "ConflictResolution" {
        /// Fail with ErrorIrresolvableConflict.
        NeverOverwrite = "NeverOverwrite",
        /// Merge when possible.
        AutoResolve = "AutoResolve",
        /// Overwrite the server's version.
        AlwaysOverwrite = "AlwaysOverwrite",
    }
}

schema_enum! {
    /// `DeleteType` (DisposalType).
    DeleteType, "DeleteType" {
        /// Gone for good.
        HardDelete = "HardDelete",
        /// Into the dumpster (recoverable items).
        SoftDelete = "SoftDelete",
        /// Into Deleted Items.
        MoveToDeletedItems = "MoveToDeletedItems",
    }
}

schema_enum! {
    /// `AffectedTaskOccurrences` (AffectedTaskOccurrencesType).
    AffectedTaskOccurrences, "AffectedTaskOccurrences" {
        /// The whole recurring task.
        AllOccurrences = "AllOccurrences",
        /// Only the given occurrence.
        SpecifiedOccurrenceOnly = "SpecifiedOccurrenceOnly",
    }
}

schema_enum! {
    /// FindItem `Traversal` (ItemQueryTraversalType).
    Traversal, "Traversal" {
        /// Items directly in the folder.
        Shallow = "Shallow",
        /// Soft-deleted items.
        SoftDeleted = "SoftDeleted",
        /// Folder-associated items.
        Associated = "Associated",
    }
}

schema_enum! {
    /// `t:CalendarItemType` (CalendarItemTypeType): what kind of calendar item this is.
    CalendarItemKind, "CalendarItemType" {
        /// A single appointment or meeting.
        Single = "Single",
        /// One occurrence of a series.
        Occurrence = "Occurrence",
        /// A changed occurrence of a series.
        Exception = "Exception",
        /// The series itself (SyncFolderItems reports masters, not occurrences).
        RecurringMaster = "RecurringMaster",
    }
}

schema_enum! {
    /// `t:MyResponseType` / `t:ResponseType` (ResponseTypeType): the mailbox's role or answer.
    ResponseType, "ResponseType" {
        /// Not known.
        Unknown = "Unknown",
        /// The mailbox organises the meeting.
        Organizer = "Organizer",
        /// Tentatively accepted.
        Tentative = "Tentative",
        /// Accepted.
        Accept = "Accept",
        /// Declined.
        Decline = "Decline",
        /// Invited, no answer yet.
        NoResponseReceived = "NoResponseReceived",
    }
}
