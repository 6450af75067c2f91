//! Server side: a request is checked against the schema before it is read, as Exchange does
//! (it validates every request against its types.xsd / messages.xsd and answers a violation
//! with the SOAP fault `ErrorSchemaValidation`).
//!
//! Owns a small model of the schema for the operations the codec reads: per element, its
//! children in sequence order with their occurrences, its required attributes and the
//! enumerations of values. Elements out of order, unknown or repeated elements, missing
//! required ones, and values outside an enumeration are violations. Content the codec does not
//! read (an `OccurrenceItemId`, a `CalendarView`, an item property it does not model) is
//! accepted without looking inside. The client side never uses this: reading responses stays
//! tolerant.

use super::schema_names as names;
use crate::error::excerpt;
use crate::soap::{MESSAGES_NS, TYPES_NS};
use crate::xml::Element;

/// The namespace of an element in a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    /// `m:` (messages.xsd).
    M,
    /// `t:` (types.xsd).
    T,
}

impl Ns {
    fn uri(self) -> &'static str {
        match self {
            Ns::M => MESSAGES_NS,
            Ns::T => TYPES_NS,
        }
    }
}

/// Values as whitespace-separated lists; empty means any value.
type Values = &'static [&'static str];

/// An attribute of an element.
struct Attr {
    name: &'static str,
    required: bool,
    values: Values,
}

/// What an element may contain.
enum Content {
    /// Character data only; one of `values` when they are given (an enumeration).
    Text(Values),
    /// Child elements in this order, no character data.
    Seq(&'static [Particle]),
    /// The property elements of an item type (each list continues the previous one), all
    /// optional and at most once except `ExtendedProperty`; each checked by [`property_rule`].
    Properties(&'static [Values]),
    /// Not checked below this element (content the codec does not read).
    Any,
}

/// One element's rule.
struct Rule {
    attrs: &'static [Attr],
    content: Content,
}

/// One particle of a sequence: an element, or a choice among elements, with its occurrences.
enum Particle {
    /// An element.
    El {
        ns: Ns,
        name: &'static str,
        rule: &'static Rule,
        min: u32,
        max: u32,
    },
    /// One of several elements (each occurrence may be any of them).
    Choice {
        of: &'static [Particle],
        min: u32,
        max: u32,
    },
}

const MANY: u32 = u32::MAX;

const fn el(ns: Ns, name: &'static str, rule: &'static Rule, min: u32, max: u32) -> Particle {
    Particle::El {
        ns,
        name,
        rule,
        min,
        max,
    }
}

const fn required(name: &'static str, values: Values) -> Attr {
    Attr {
        name,
        required: true,
        values,
    }
}

const fn optional(name: &'static str, values: Values) -> Attr {
    Attr {
        name,
        required: false,
        values,
    }
}

const fn seq(particles: &'static [Particle]) -> Rule {
    Rule {
        attrs: &[],
        content: Content::Seq(particles),
    }
}

const fn text(values: Values) -> Rule {
    Rule {
        attrs: &[],
        content: Content::Text(values),
    }
}

const fn properties(lists: &'static [Values]) -> Rule {
    Rule {
        attrs: &[],
        content: Content::Properties(lists),
    }
}

use Ns::{M, T};

static ANY: Rule = Rule {
    attrs: &[],
    content: Content::Any,
};
static TEXT: Rule = text(&[]);
static BOOLEAN: Rule = text(&["true false 1 0"]);

// Ids, folders and paths.
static ID: Rule = Rule {
    attrs: &[required("Id", &[]), optional("ChangeKey", &[])],
    content: Content::Seq(&[]),
};
static MAILBOX: Rule = seq(&[
    el(T, "Name", &TEXT, 0, 1),
    el(T, "EmailAddress", &TEXT, 0, 1),
    el(T, "RoutingType", &TEXT, 0, 1),
    el(T, "MailboxType", &TEXT, 0, 1),
    el(T, "ItemId", &ID, 0, 1),
    el(T, "OriginalDisplayName", &TEXT, 0, 1),
]);
static DISTINGUISHED_FOLDER_ID: Rule = Rule {
    attrs: &[
        required("Id", names::DISTINGUISHED_FOLDERS),
        optional("ChangeKey", &[]),
    ],
    content: Content::Seq(&[el(T, "Mailbox", &MAILBOX, 0, 1)]),
};
const FOLDER_ID_CHOICE: &[Particle] = &[
    el(T, "FolderId", &ID, 1, 1),
    el(T, "DistinguishedFolderId", &DISTINGUISHED_FOLDER_ID, 1, 1),
];
static FOLDER_IDS: Rule = seq(&[Particle::Choice {
    of: FOLDER_ID_CHOICE,
    min: 1,
    max: MANY,
}]);
static TARGET_FOLDER: Rule = seq(&[Particle::Choice {
    of: &[
        el(T, "FolderId", &ID, 1, 1),
        el(T, "DistinguishedFolderId", &DISTINGUISHED_FOLDER_ID, 1, 1),
        el(T, "AddressListId", &ANY, 1, 1),
    ],
    min: 1,
    max: 1,
}]);
const ITEM_ID_CHOICE: &[Particle] = &[
    el(T, "ItemId", &ID, 1, 1),
    el(T, "OccurrenceItemId", &ANY, 1, 1),
    el(T, "RecurringMasterItemId", &ANY, 1, 1),
    el(T, "RecurringMasterItemIdRanges", &ANY, 1, 1),
];
static ITEM_IDS: Rule = seq(&[Particle::Choice {
    of: ITEM_ID_CHOICE,
    min: 1,
    max: MANY,
}]);
static IGNORE: Rule = seq(&[el(T, "ItemId", &ID, 0, MANY)]);
static FIELD_URI: Rule = Rule {
    attrs: &[required("FieldURI", names::FIELD_URIS)],
    content: Content::Seq(&[]),
};
static INDEXED_FIELD_URI: Rule = Rule {
    attrs: &[
        required("FieldURI", names::DICTIONARY_URIS),
        required("FieldIndex", &[]),
    ],
    content: Content::Seq(&[]),
};
const PATH_CHOICE: &[Particle] = &[
    el(T, "FieldURI", &FIELD_URI, 1, 1),
    el(T, "IndexedFieldURI", &INDEXED_FIELD_URI, 1, 1),
    el(T, "ExtendedFieldURI", &ANY, 1, 1),
];
static PATHS: Rule = seq(&[Particle::Choice {
    of: PATH_CHOICE,
    min: 1,
    max: MANY,
}]);
static ONE_PATH: Rule = seq(&[Particle::Choice {
    of: PATH_CHOICE,
    min: 1,
    max: 1,
}]);

// Response shapes.
const BASE_SHAPES: Values = &["IdOnly Default AllProperties PcxPeopleSearch"];
static FOLDER_SHAPE: Rule = seq(&[
    el(T, "BaseShape", &text(BASE_SHAPES), 1, 1),
    el(T, "AdditionalProperties", &PATHS, 0, 1),
]);
static BODY_TYPE: Rule = text(&["Best HTML Text"]);
static ITEM_SHAPE: Rule = seq(&[
    el(T, "BaseShape", &text(BASE_SHAPES), 1, 1),
    el(T, "IncludeMimeContent", &BOOLEAN, 0, 1),
    el(T, "BodyType", &BODY_TYPE, 0, 1),
    el(T, "UniqueBodyType", &BODY_TYPE, 0, 1),
    el(T, "NormalizedBodyType", &BODY_TYPE, 0, 1),
    el(T, "FilterHtmlContent", &BOOLEAN, 0, 1),
    el(T, "ConvertHtmlCodePageToUTF8", &BOOLEAN, 0, 1),
    el(T, "InlineImageUrlTemplate", &TEXT, 0, 1),
    el(T, "BlockExternalImages", &BOOLEAN, 0, 1),
    el(T, "AddBlankTargetToLinks", &BOOLEAN, 0, 1),
    el(T, "MaximumBodySize", &TEXT, 0, 1),
    el(T, "AdditionalProperties", &PATHS, 0, 1),
]);

// FindItem: paging and restrictions.
static INDEXED_PAGE_VIEW: Rule = Rule {
    attrs: &[
        optional("MaxEntriesReturned", &[]),
        required("Offset", &[]),
        required("BasePoint", &["Beginning End"]),
    ],
    content: Content::Seq(&[]),
};
static CONSTANT: Rule = Rule {
    attrs: &[required("Value", &[])],
    content: Content::Seq(&[]),
};
static FIELD_OR_CONSTANT: Rule = seq(&[Particle::Choice {
    of: &[
        el(T, "FieldURI", &FIELD_URI, 1, 1),
        el(T, "IndexedFieldURI", &INDEXED_FIELD_URI, 1, 1),
        el(T, "ExtendedFieldURI", &ANY, 1, 1),
        el(T, "Constant", &CONSTANT, 1, 1),
    ],
    min: 1,
    max: 1,
}]);
static COMPARISON: Rule = seq(&[
    Particle::Choice {
        of: PATH_CHOICE,
        min: 1,
        max: MANY,
    },
    el(T, "FieldURIOrConstant", &FIELD_OR_CONSTANT, 1, 1),
]);
static SEARCH_EXPRESSIONS: [Particle; 12] = [
    el(T, "Contains", &ANY, 1, 1),
    el(T, "Excludes", &ANY, 1, 1),
    el(T, "Exists", &PATHS, 1, 1),
    el(T, "IsEqualTo", &COMPARISON, 1, 1),
    el(T, "IsNotEqualTo", &COMPARISON, 1, 1),
    el(T, "IsGreaterThan", &COMPARISON, 1, 1),
    el(T, "IsGreaterThanOrEqualTo", &COMPARISON, 1, 1),
    el(T, "IsLessThan", &COMPARISON, 1, 1),
    el(T, "IsLessThanOrEqualTo", &COMPARISON, 1, 1),
    el(T, "And", &SEARCH, 1, 1),
    el(T, "Not", &SEARCH, 1, 1),
    el(T, "Or", &SEARCH, 1, 1),
];
/// A restriction, and the operands of And, Or and Not: search expressions.
static SEARCH: Rule = seq(&[Particle::Choice {
    of: &SEARCH_EXPRESSIONS,
    min: 1,
    max: MANY,
}]);

// Items.
static BODY: Rule = Rule {
    attrs: &[
        required("BodyType", &["HTML Text"]),
        optional("IsTruncated", &["true false 1 0"]),
    ],
    content: Content::Text(&[]),
};
static STRINGS: Rule = seq(&[el(T, "String", &TEXT, 0, MANY)]);
static SINGLE_RECIPIENT: Rule = seq(&[el(T, "Mailbox", &MAILBOX, 1, 1)]);
static RECIPIENTS: Rule = seq(&[el(T, "Mailbox", &MAILBOX, 0, MANY)]);
static ATTENDEE: Rule = seq(&[
    el(T, "Mailbox", &MAILBOX, 1, 1),
    el(T, "ResponseType", &TEXT, 0, 1),
    el(T, "LastResponseTime", &TEXT, 0, 1),
    el(T, "ProposedStart", &TEXT, 0, 1),
    el(T, "ProposedEnd", &TEXT, 0, 1),
]);
static ATTENDEES: Rule = seq(&[el(T, "Attendee", &ATTENDEE, 1, MANY)]);
static EMAIL_ENTRY: Rule = Rule {
    attrs: &[
        required("Key", &["EmailAddress1 EmailAddress2 EmailAddress3"]),
        optional("Name", &[]),
        optional("RoutingType", &[]),
        optional("MailboxType", &[]),
    ],
    content: Content::Text(&[]),
};
static EMAIL_ENTRIES: Rule = seq(&[el(T, "Entry", &EMAIL_ENTRY, 1, MANY)]);
static PHONE_ENTRY: Rule = Rule {
    attrs: &[required("Key", names::PHONE_NUMBER_KEYS)],
    content: Content::Text(&[]),
};
static PHONE_ENTRIES: Rule = seq(&[el(T, "Entry", &PHONE_ENTRY, 1, MANY)]);
static TASK_STATUS: Rule = text(&["NotStarted InProgress Completed WaitingOnOthers Deferred"]);

/// The rule for one property element of an item (the ones the codec reads; others unchecked).
fn property_rule(name: &str) -> &'static Rule {
    match name {
        "ItemId" | "ParentFolderId" | "ConversationId" => &ID,
        "Body" => &BODY,
        "Categories" => &STRINGS,
        "Sender" | "From" | "Organizer" => &SINGLE_RECIPIENT,
        "ToRecipients" | "CcRecipients" | "BccRecipients" | "ReplyTo" => &RECIPIENTS,
        "RequiredAttendees" | "OptionalAttendees" | "Resources" => &ATTENDEES,
        "EmailAddresses" => &EMAIL_ENTRIES,
        "PhoneNumbers" => &PHONE_ENTRIES,
        "Status" => &TASK_STATUS,
        "IsRead" | "IsAllDayEvent" => &BOOLEAN,
        "ItemClass" | "Subject" | "InReplyTo" | "InternetMessageId" | "References" | "UID"
        | "Location" | "DisplayName" | "GivenName" | "Surname" | "CompanyName" | "JobTitle" => {
            &TEXT
        }
        _ => &ANY,
    }
}

static ITEM: Rule = properties(&[names::ITEM]);
static MESSAGE: Rule = properties(&[names::ITEM, names::MESSAGE]);
static CALENDAR_ITEM: Rule = properties(&[names::ITEM, names::CALENDAR_ITEM]);
static CONTACT: Rule = properties(&[names::ITEM, names::CONTACT]);
static TASK: Rule = properties(&[names::ITEM, names::TASK]);

/// The item elements an update may carry (SetItemFieldType, AppendToItemFieldType).
const UPDATE_ITEM_CHOICE: &[Particle] = &[
    el(T, "Item", &ITEM, 1, 1),
    el(T, "Message", &MESSAGE, 1, 1),
    el(T, "CalendarItem", &CALENDAR_ITEM, 1, 1),
    el(T, "Contact", &CONTACT, 1, 1),
    el(T, "DistributionList", &ANY, 1, 1),
    el(T, "MeetingMessage", &ANY, 1, 1),
    el(T, "MeetingRequest", &ANY, 1, 1),
    el(T, "MeetingResponse", &ANY, 1, 1),
    el(T, "MeetingCancellation", &ANY, 1, 1),
    el(T, "Task", &TASK, 1, 1),
    el(T, "PostItem", &ANY, 1, 1),
    el(T, "RoleMember", &ANY, 1, 1),
    el(T, "Network", &ANY, 1, 1),
    el(T, "Person", &ANY, 1, 1),
];
/// CreateItem's `Items` (NonEmptyArrayOfAllItemsType).
static ITEMS: Rule = seq(&[Particle::Choice {
    of: &[
        el(T, "Item", &ITEM, 1, 1),
        el(T, "Message", &MESSAGE, 1, 1),
        el(T, "CalendarItem", &CALENDAR_ITEM, 1, 1),
        el(T, "Contact", &CONTACT, 1, 1),
        el(T, "DistributionList", &ANY, 1, 1),
        el(T, "MeetingMessage", &ANY, 1, 1),
        el(T, "MeetingRequest", &ANY, 1, 1),
        el(T, "MeetingResponse", &ANY, 1, 1),
        el(T, "MeetingCancellation", &ANY, 1, 1),
        el(T, "Task", &TASK, 1, 1),
        el(T, "PostItem", &ANY, 1, 1),
        el(T, "ReplyToItem", &ANY, 1, 1),
        el(T, "ForwardItem", &ANY, 1, 1),
        el(T, "ReplyAllToItem", &ANY, 1, 1),
        el(T, "AcceptItem", &ANY, 1, 1),
        el(T, "TentativelyAcceptItem", &ANY, 1, 1),
        el(T, "DeclineItem", &ANY, 1, 1),
        el(T, "CancelCalendarItem", &ANY, 1, 1),
        el(T, "RemoveItem", &ANY, 1, 1),
        el(T, "SuppressReadReceipt", &ANY, 1, 1),
        el(T, "PostReplyItem", &ANY, 1, 1),
        el(T, "AcceptSharingInvitation", &ANY, 1, 1),
        el(T, "RoleMember", &ANY, 1, 1),
        el(T, "Network", &ANY, 1, 1),
        el(T, "Person", &ANY, 1, 1),
    ],
    min: 1,
    max: MANY,
}]);
static FIELD_WITH_ITEM: Rule = seq(&[
    Particle::Choice {
        of: PATH_CHOICE,
        min: 1,
        max: 1,
    },
    Particle::Choice {
        of: UPDATE_ITEM_CHOICE,
        min: 1,
        max: 1,
    },
]);
static UPDATES: Rule = seq(&[Particle::Choice {
    of: &[
        el(T, "AppendToItemField", &FIELD_WITH_ITEM, 1, 1),
        el(T, "SetItemField", &FIELD_WITH_ITEM, 1, 1),
        el(T, "DeleteItemField", &ONE_PATH, 1, 1),
    ],
    min: 1,
    max: MANY,
}]);
static ITEM_CHANGE: Rule = seq(&[
    Particle::Choice {
        of: &[
            el(T, "ItemId", &ID, 1, 1),
            el(T, "OccurrenceItemId", &ANY, 1, 1),
            el(T, "RecurringMasterItemId", &ANY, 1, 1),
        ],
        min: 1,
        max: 1,
    },
    el(T, "Updates", &UPDATES, 1, 1),
    el(T, "CalendarActivityData", &ANY, 0, 1),
]);
static ITEM_CHANGES: Rule = seq(&[el(T, "ItemChange", &ITEM_CHANGE, 1, MANY)]);

// The operations (messages.xsd).
const DISPOSITIONS: Values = &["SaveOnly SendOnly SendAndSaveCopy"];
const INVITATIONS: Values = &["SendToNone SendOnlyToAll SendToAllAndSaveCopy"];
static GET_FOLDER: Rule = seq(&[
    el(M, "FolderShape", &FOLDER_SHAPE, 1, 1),
    el(M, "FolderIds", &FOLDER_IDS, 1, 1),
]);
static SYNC_FOLDER_HIERARCHY: Rule = seq(&[
    el(M, "FolderShape", &FOLDER_SHAPE, 1, 1),
    el(M, "SyncFolderId", &TARGET_FOLDER, 0, 1),
    el(M, "SyncState", &TEXT, 0, 1),
]);
static SYNC_FOLDER_ITEMS: Rule = seq(&[
    el(M, "ItemShape", &ITEM_SHAPE, 1, 1),
    el(M, "SyncFolderId", &TARGET_FOLDER, 1, 1),
    el(M, "SyncState", &TEXT, 0, 1),
    el(M, "Ignore", &IGNORE, 0, 1),
    el(M, "MaxChangesReturned", &TEXT, 1, 1),
    el(
        M,
        "SyncScope",
        &text(&["NormalItems NormalAndAssociatedItems"]),
        0,
        1,
    ),
]);
static GET_ITEM: Rule = seq(&[
    el(M, "ItemShape", &ITEM_SHAPE, 1, 1),
    el(M, "ItemIds", &ITEM_IDS, 1, 1),
]);
static FIND_ITEM: Rule = Rule {
    attrs: &[required(
        "Traversal",
        &["Shallow Deep SoftDeleted Associated"],
    )],
    content: Content::Seq(&[
        el(M, "ItemShape", &ITEM_SHAPE, 1, 1),
        Particle::Choice {
            of: &[
                el(M, "IndexedPageItemView", &INDEXED_PAGE_VIEW, 1, 1),
                el(M, "FractionalPageItemView", &ANY, 1, 1),
                el(M, "SeekToConditionPageItemView", &ANY, 1, 1),
                el(M, "CalendarView", &ANY, 1, 1),
                el(M, "ContactsView", &ANY, 1, 1),
            ],
            min: 0,
            max: 1,
        },
        Particle::Choice {
            of: &[
                el(M, "GroupBy", &ANY, 1, 1),
                el(M, "DistinguishedGroupBy", &ANY, 1, 1),
            ],
            min: 0,
            max: 1,
        },
        el(M, "Restriction", &SEARCH, 0, 1),
        el(M, "SortOrder", &ANY, 0, 1),
        el(M, "ParentFolderIds", &FOLDER_IDS, 1, 1),
        el(M, "QueryString", &ANY, 0, 1),
    ]),
};
static CREATE_ITEM: Rule = Rule {
    attrs: &[
        optional("MessageDisposition", DISPOSITIONS),
        optional("SendMeetingInvitations", INVITATIONS),
    ],
    content: Content::Seq(&[
        el(M, "SavedItemFolderId", &TARGET_FOLDER, 0, 1),
        el(M, "Items", &ITEMS, 1, 1),
    ]),
};
static UPDATE_ITEM: Rule = Rule {
    attrs: &[
        required(
            "ConflictResolution",
            &["NeverOverwrite AutoResolve AlwaysOverwrite"],
        ),
        optional("MessageDisposition", DISPOSITIONS),
        optional(
            "SendMeetingInvitationsOrCancellations",
            &["SendToNone SendOnlyToAll SendOnlyToChanged SendToAllAndSaveCopy SendToChangedAndSaveCopy"],
        ),
        optional("SuppressReadReceipts", &["true false 1 0"]),
    ],
    content: Content::Seq(&[
        el(M, "SavedItemFolderId", &TARGET_FOLDER, 0, 1),
        el(M, "ItemChanges", &ITEM_CHANGES, 1, 1),
    ]),
};
static DELETE_ITEM: Rule = Rule {
    attrs: &[
        required("DeleteType", &["HardDelete SoftDelete MoveToDeletedItems"]),
        optional("SendMeetingCancellations", INVITATIONS),
        optional(
            "AffectedTaskOccurrences",
            &["AllOccurrences SpecifiedOccurrenceOnly"],
        ),
        optional("SuppressReadReceipts", &["true false 1 0"]),
    ],
    content: Content::Seq(&[el(M, "ItemIds", &ITEM_IDS, 1, 1)]),
};

fn operation_rule(name: &str) -> Option<&'static Rule> {
    Some(match name {
        "GetFolder" => &GET_FOLDER,
        "SyncFolderHierarchy" => &SYNC_FOLDER_HIERARCHY,
        "SyncFolderItems" => &SYNC_FOLDER_ITEMS,
        "GetItem" => &GET_ITEM,
        "FindItem" => &FIND_ITEM,
        "CreateItem" => &CREATE_ITEM,
        "UpdateItem" => &UPDATE_ITEM,
        "DeleteItem" => &DELETE_ITEM,
        _ => return None,
    })
}

/// Longest violation text: it names remote element names and values, so it stays bounded.
const MAX_VIOLATION_CHARS: usize = 400;

/// Check an operation element (`m:GetItem`, …) against the schema; the violation, worded like
/// Exchange's schema validation messages (at most 400 characters), when there is one.
/// Operations without a rule pass.
pub(crate) fn check_operation(op: &Element) -> Result<(), String> {
    match operation_rule(&op.name) {
        Some(rule) if op.namespace == MESSAGES_NS => {
            check(op, rule).map_err(|v| v.chars().take(MAX_VIOLATION_CHARS).collect())
        }
        _ => Ok(()),
    }
}

fn contains(values: Values, value: &str) -> bool {
    values
        .iter()
        .flat_map(|list| list.split_ascii_whitespace())
        .any(|v| v == value)
}

fn describe(el: &Element) -> String {
    format!(
        "'{}' in namespace '{}'",
        excerpt(&el.name),
        excerpt(&el.namespace)
    )
}

fn check(el: &Element, rule: &Rule) -> Result<(), String> {
    for attr in rule.attrs {
        match el.attr(attr.name) {
            None if attr.required => {
                return Err(format!(
                    "The required attribute '{}' is missing on the element {}.",
                    attr.name,
                    describe(el)
                ))
            }
            Some(value) if !attr.values.is_empty() && !contains(attr.values, value) => {
                return Err(format!(
                    "The '{}' attribute is invalid - The value '{}' is invalid according to its datatype.",
                    attr.name,
                    excerpt(value)
                ))
            }
            _ => {}
        }
    }
    match &rule.content {
        Content::Any => Ok(()),
        Content::Text(values) => {
            if let Some(child) = el.children.first() {
                return Err(format!(
                    "The element {} cannot contain child element {} because the parent element's content type is text only.",
                    describe(el),
                    describe(child)
                ));
            }
            if !values.is_empty() && !contains(values, el.text.trim()) {
                return Err(format!(
                    "The element {} is invalid - The value '{}' is invalid according to its datatype.",
                    describe(el),
                    excerpt(el.text.trim())
                ));
            }
            Ok(())
        }
        Content::Seq(particles) => {
            no_text(el)?;
            check_sequence(el, particles)
        }
        Content::Properties(lists) => {
            no_text(el)?;
            check_properties(el, lists)
        }
    }
}

fn no_text(el: &Element) -> Result<(), String> {
    if el.text.trim().is_empty() {
        Ok(())
    } else {
        Err(format!(
            "The element {} cannot contain text. Content model is element-only.",
            describe(el)
        ))
    }
}

/// The rule of `child` if the particle admits it.
fn admits(particle: &Particle, child: &Element) -> Option<&'static Rule> {
    match particle {
        Particle::El { ns, name, rule, .. } => {
            (child.namespace == ns.uri() && child.name == *name).then_some(*rule)
        }
        Particle::Choice { of, .. } => of.iter().find_map(|p| admits(p, child)),
    }
}

fn occurrences(particle: &Particle) -> (u32, u32) {
    match particle {
        Particle::El { min, max, .. } | Particle::Choice { min, max, .. } => (*min, *max),
    }
}

fn expected(particle: &Particle) -> String {
    match particle {
        Particle::El { ns, name, .. } => format!("'{name}' in namespace '{}'", ns.uri()),
        Particle::Choice { of, .. } => of.iter().map(expected).collect::<Vec<_>>().join(", "),
    }
}

/// Children against a sequence of particles, greedily (EWS content models are deterministic).
fn check_sequence(el: &Element, particles: &[Particle]) -> Result<(), String> {
    let invalid_child = |child: &Element| {
        format!(
            "The element {} has invalid child element {}.",
            describe(el),
            describe(child)
        )
    };
    let mut at = 0;
    let mut count = 0;
    for child in &el.children {
        loop {
            let Some(particle) = particles.get(at) else {
                return Err(invalid_child(child));
            };
            let (min, max) = occurrences(particle);
            match admits(particle, child) {
                Some(rule) if count < max => {
                    count += 1;
                    check(child, rule)?;
                    break;
                }
                _ if count < min => {
                    return Err(format!(
                        "{} List of possible elements expected: {}.",
                        invalid_child(child),
                        expected(particle)
                    ))
                }
                _ => {
                    at += 1;
                    count = 0;
                }
            }
        }
    }
    for particle in particles.get(at..).unwrap_or_default() {
        if occurrences(particle).0 > count {
            return Err(format!(
                "The element {} has incomplete content. List of possible elements expected: {}.",
                describe(el),
                expected(particle)
            ));
        }
        count = 0;
    }
    Ok(())
}

/// An item's property elements: known names of its type, in schema order, each at most once.
fn check_properties(el: &Element, lists: &[Values]) -> Result<(), String> {
    let order = |name: &str| {
        lists
            .iter()
            .flat_map(|list| list.iter())
            .flat_map(|names| names.split_ascii_whitespace())
            .position(|n| n == name)
    };
    let mut last: Option<usize> = None;
    for child in &el.children {
        let position = match order(&child.name) {
            Some(p) if child.namespace == TYPES_NS => p,
            _ => {
                return Err(format!(
                    "The element {} has invalid child element {}.",
                    describe(el),
                    describe(child)
                ))
            }
        };
        let repeatable = child.name == "ExtendedProperty";
        if last.is_some_and(|l| position < l || (position == l && !repeatable)) {
            return Err(format!(
                "The element {} has invalid child element {} (out of schema order or repeated).",
                describe(el),
                describe(child)
            ));
        }
        last = Some(position);
        check(child, property_rule(&child.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{parse, XmlLimits};

    fn op(xml: &str) -> Result<(), String> {
        let wrapped = format!(r#"<m:Op xmlns:m="{MESSAGES_NS}" xmlns:t="{TYPES_NS}">{xml}</m:Op>"#);
        let root = parse(wrapped.as_bytes(), &XmlLimits::default()).unwrap();
        check_operation(&root.children[0])
    }

    #[test]
    fn a_request_in_schema_order_passes() {
        op(r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>
<t:FieldURI FieldURI="item:Subject"/><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress1"/>
</t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="a"/><t:ItemId Id="b" ChangeKey="c"/></m:ItemIds></m:GetItem>"#)
        .unwrap();
        op(r#"<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:Message><t:Subject>s</t:Subject>
<t:Sensitivity>Normal</t:Sensitivity><t:Body BodyType="Text">b</t:Body><t:ToRecipients><t:Mailbox>
<t:EmailAddress>a@b</t:EmailAddress></t:Mailbox></t:ToRecipients><t:IsRead>false</t:IsRead></t:Message>
</m:Items></m:CreateItem>"#)
        .unwrap();
    }

    #[test]
    fn out_of_order_unknown_missing_and_repeated_elements_are_violations() {
        let cases = [
            // ItemIds before ItemShape.
            r#"<m:GetItem><m:ItemIds><t:ItemId Id="a"/></m:ItemIds><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape></m:GetItem>"#,
            // An element the schema does not have.
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:Shiny/></m:ItemShape><m:ItemIds><t:ItemId Id="a"/></m:ItemIds></m:GetItem>"#,
            // ItemIds missing.
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape></m:GetItem>"#,
            // Two ItemShapes.
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="a"/></m:ItemIds></m:GetItem>"#,
            // Item properties out of order (Body before Subject) and in the wrong namespace.
            r#"<m:CreateItem><m:Items><t:Message><t:Body BodyType="Text">b</t:Body><t:Subject>s</t:Subject></t:Message></m:Items></m:CreateItem>"#,
            r#"<m:CreateItem><m:Items><t:Message><m:Subject>s</m:Subject></t:Message></m:Items></m:CreateItem>"#,
            // Text where only elements may be.
            r#"<m:GetItem>oops<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="a"/></m:ItemIds></m:GetItem>"#,
        ];
        for case in cases {
            assert!(op(case).is_err(), "accepted: {case}");
        }
    }

    #[test]
    fn values_outside_an_enumeration_are_violations() {
        let cases = [
            r#"<m:GetItem><m:ItemShape><t:BaseShape>Everything</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="a"/></m:ItemIds></m:GetItem>"#,
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Shiny"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="a"/></m:ItemIds></m:GetItem>"#,
            r#"<m:DeleteItem DeleteType="Shred"><m:ItemIds><t:ItemId Id="a"/></m:ItemIds></m:DeleteItem>"#,
            r#"<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="attic"/></m:SavedItemFolderId><m:Items><t:Task/></m:Items></m:CreateItem>"#,
            r#"<m:CreateItem><m:Items><t:Contact><t:PhoneNumbers><t:Entry Key="SatellitePhone">1</t:Entry></t:PhoneNumbers></t:Contact></m:Items></m:CreateItem>"#,
            r#"<m:CreateItem><m:Items><t:Task><t:Status>Done</t:Status></t:Task></m:Items></m:CreateItem>"#,
            r#"<m:FindItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindItem>"#,
        ];
        for case in cases {
            assert!(op(case).is_err(), "accepted: {case}");
        }
    }

    #[test]
    fn content_the_codec_does_not_read_is_accepted_unseen() {
        op(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds>
<t:OccurrenceItemId RecurringMasterId="r" InstanceIndex="1"/></m:ItemIds></m:GetItem>"#,
        )
        .unwrap();
        op(r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
<m:CalendarView StartDate="2026-01-01T00:00:00Z" EndDate="2026-02-01T00:00:00Z"/>
<m:Restriction><t:And><t:IsEqualTo><t:FieldURI FieldURI="item:Subject"/><t:FieldURIOrConstant><t:Constant Value="x"/></t:FieldURIOrConstant></t:IsEqualTo>
<t:Not><t:Exists><t:FieldURI FieldURI="item:Categories"/></t:Exists></t:Not></t:And></m:Restriction>
<m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#)
        .unwrap();
    }
}
