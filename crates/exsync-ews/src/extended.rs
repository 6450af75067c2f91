//! Extended (MAPI) properties: `t:ExtendedFieldURI` paths (PathToExtendedFieldType) and
//! `t:ExtendedProperty` values (ExtendedPropertyType), EWS reference pages "ExtendedFieldURI"
//! and "ExtendedProperty".
//!
//! Owns naming a custom property (a property set GUID plus a name or an id, or a bare property
//! tag) and carrying its value on an item. A path travels inside [`FieldUri`] (which is the
//! codec's "path to a property"), so shapes, restrictions and updates take extended properties
//! without new fields; [`FieldUri::extended`] and [`FieldUri::as_extended`] convert.

use super::types::FieldUri;
use super::wire::{invalid, WireError};
use super::xml::{Element, XmlWriter};
use crate::wire::TYPES_NS;

/// The property types of MapiPropertyTypeType (types.xsd).
pub const MAPI_PROPERTY_TYPES: &[&str] = &[
    "ApplicationTime",
    "ApplicationTimeArray",
    "Binary",
    "BinaryArray",
    "Boolean",
    "CLSID",
    "CLSIDArray",
    "Currency",
    "CurrencyArray",
    "Double",
    "DoubleArray",
    "Error",
    "Float",
    "FloatArray",
    "Integer",
    "IntegerArray",
    "Long",
    "LongArray",
    "Null",
    "Object",
    "ObjectArray",
    "Short",
    "ShortArray",
    "SystemTime",
    "SystemTimeArray",
    "String",
    "StringArray",
];

/// The property sets of DistinguishedPropertySetType (types.xsd).
pub const DISTINGUISHED_PROPERTY_SETS: &[&str] = &[
    "Meeting",
    "Appointment",
    "Common",
    "PublicStrings",
    "Address",
    "InternetHeaders",
    "CalendarAssistant",
    "UnifiedMessaging",
    "Task",
    "Sharing",
];

/// How a [`FieldUri`] carrying an extended path starts (never a FieldURI or IndexedFieldURI).
const PREFIX: &str = "extended?";

/// `t:ExtendedFieldURI`: which extended property. Valid combinations (schema annotation):
/// (`DistinguishedPropertySetId` or `PropertySetId`) with (`PropertyName` or `PropertyId`), or
/// `PropertyTag` alone; `PropertyType` always.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ExtendedFieldUri {
    /// `@DistinguishedPropertySetId` (`PublicStrings`, `Common`, …).
    pub distinguished_property_set_id: Option<String>,
    /// `@PropertySetId`: a property set GUID.
    pub property_set_id: Option<String>,
    /// `@PropertyTag`: a MAPI property tag without its type (`0x1035` or decimal).
    pub property_tag: Option<String>,
    /// `@PropertyName`: the name of a named property.
    pub property_name: Option<String>,
    /// `@PropertyId`: the numeric id of a named property.
    pub property_id: Option<i32>,
    /// `@PropertyType` (MapiPropertyTypeType: `String`, `Integer`, …).
    pub property_type: String,
}

impl ExtendedFieldUri {
    /// A custom named string property: a property set GUID and a name (the usual way an
    /// application tags its own items).
    pub fn named_string(property_set_id: &str, name: &str) -> Self {
        ExtendedFieldUri {
            property_set_id: Some(property_set_id.to_owned()),
            property_name: Some(name.to_owned()),
            property_type: "String".to_owned(),
            ..ExtendedFieldUri::default()
        }
    }

    /// A property addressed by its MAPI tag (e.g. `0x1035`, PidTagInternetMessageId).
    pub fn tagged(tag: &str, property_type: &str) -> Self {
        ExtendedFieldUri {
            property_tag: Some(tag.to_owned()),
            property_type: property_type.to_owned(),
            ..ExtendedFieldUri::default()
        }
    }

    /// Whether `other` names the same property: GUIDs and set names compared without case,
    /// tags by number (hex or decimal), names exactly, and the same type.
    pub fn same_property(&self, other: &ExtendedFieldUri) -> bool {
        let lower = |s: &Option<String>| s.as_ref().map(|v| v.trim().to_ascii_lowercase());
        lower(&self.distinguished_property_set_id) == lower(&other.distinguished_property_set_id)
            && lower(&self.property_set_id) == lower(&other.property_set_id)
            && self.property_tag.as_deref().map(tag_number)
                == other.property_tag.as_deref().map(tag_number)
            && self.property_name == other.property_name
            && self.property_id == other.property_id
            && self.property_type == other.property_type
    }

    /// Check the attribute combination and the enumerations the schema constrains.
    pub fn validate(&self) -> Result<(), WireError> {
        if !MAPI_PROPERTY_TYPES.contains(&self.property_type.as_str()) {
            return Err(invalid(
                "ExtendedFieldURI/@PropertyType",
                &self.property_type,
            ));
        }
        if let Some(set) = &self.distinguished_property_set_id {
            if !DISTINGUISHED_PROPERTY_SETS.contains(&set.as_str()) {
                return Err(invalid("ExtendedFieldURI/@DistinguishedPropertySetId", set));
            }
        }
        if let Some(guid) = &self.property_set_id {
            if uuid::Uuid::parse_str(guid.trim()).is_err() {
                return Err(invalid("ExtendedFieldURI/@PropertySetId", guid));
            }
        }
        if let Some(tag) = &self.property_tag {
            if tag_number(tag).is_none() {
                return Err(invalid("ExtendedFieldURI/@PropertyTag", tag));
            }
        }
        let set = self.distinguished_property_set_id.is_some() || self.property_set_id.is_some();
        let named = self.property_name.is_some() || self.property_id.is_some();
        let tagged = self.property_tag.is_some();
        let both_sets =
            self.distinguished_property_set_id.is_some() && self.property_set_id.is_some();
        let both_names = self.property_name.is_some() && self.property_id.is_some();
        let ok = if tagged {
            !set && !named
        } else {
            set && named && !both_sets && !both_names
        };
        if ok {
            Ok(())
        } else {
            Err(invalid(
                "ExtendedFieldURI",
                "a property set with a name or an id, or a property tag alone",
            ))
        }
    }

    /// Write `t:ExtendedFieldURI` (attributes only).
    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.start("t:ExtendedFieldURI");
        if let Some(v) = &self.distinguished_property_set_id {
            w.attr("DistinguishedPropertySetId", v);
        }
        if let Some(v) = &self.property_set_id {
            w.attr("PropertySetId", v);
        }
        if let Some(v) = &self.property_tag {
            w.attr("PropertyTag", v);
        }
        if let Some(v) = &self.property_name {
            w.attr("PropertyName", v);
        }
        if let Some(v) = self.property_id {
            w.attr("PropertyId", &v.to_string());
        }
        w.attr("PropertyType", &self.property_type);
        w.end();
    }

    /// Read a `t:ExtendedFieldURI` element.
    pub(crate) fn from_element(el: &Element) -> Result<Self, WireError> {
        let attr = |name: &str| el.attr(name).map(str::to_owned);
        let uri = ExtendedFieldUri {
            distinguished_property_set_id: attr("DistinguishedPropertySetId"),
            property_set_id: attr("PropertySetId"),
            property_tag: attr("PropertyTag"),
            property_name: attr("PropertyName"),
            property_id: el
                .attr("PropertyId")
                .map(|v| {
                    v.trim()
                        .parse::<i32>()
                        .map_err(|_| invalid("ExtendedFieldURI/@PropertyId", v))
                })
                .transpose()?,
            property_type: attr("PropertyType")
                .ok_or(WireError::Missing("ExtendedFieldURI/@PropertyType"))?,
        };
        uri.validate()?;
        Ok(uri)
    }

    /// This path as a [`FieldUri`] (for shapes, restrictions and updates).
    pub fn to_field_uri(&self) -> FieldUri {
        let mut form = url::form_urlencoded::Serializer::new(String::from(PREFIX));
        if let Some(v) = &self.distinguished_property_set_id {
            form.append_pair("DistinguishedPropertySetId", v);
        }
        if let Some(v) = &self.property_set_id {
            form.append_pair("PropertySetId", v);
        }
        if let Some(v) = &self.property_tag {
            form.append_pair("PropertyTag", v);
        }
        if let Some(v) = &self.property_name {
            form.append_pair("PropertyName", v);
        }
        if let Some(v) = self.property_id {
            form.append_pair("PropertyId", &v.to_string());
        }
        form.append_pair("PropertyType", &self.property_type);
        FieldUri::new(form.finish())
    }

    /// The extended path a [`FieldUri`] carries, if it carries one.
    pub fn from_field_uri(field: &FieldUri) -> Option<ExtendedFieldUri> {
        let query = field.as_str().strip_prefix(PREFIX)?;
        let mut uri = ExtendedFieldUri::default();
        let mut typed = false;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "DistinguishedPropertySetId" => uri.distinguished_property_set_id = Some(value),
                "PropertySetId" => uri.property_set_id = Some(value),
                "PropertyTag" => uri.property_tag = Some(value),
                "PropertyName" => uri.property_name = Some(value),
                "PropertyId" => uri.property_id = Some(value.parse().ok()?),
                "PropertyType" => {
                    uri.property_type = value;
                    typed = true;
                }
                _ => return None,
            }
        }
        typed.then_some(uri)
    }
}

impl std::fmt::Display for ExtendedFieldUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtendedFieldURI(")?;
        let mut parts = Vec::new();
        if let Some(v) = &self.distinguished_property_set_id {
            parts.push(format!("DistinguishedPropertySetId={v}"));
        }
        if let Some(v) = &self.property_set_id {
            parts.push(format!("PropertySetId={v}"));
        }
        if let Some(v) = &self.property_tag {
            parts.push(format!("PropertyTag={v}"));
        }
        if let Some(v) = &self.property_name {
            parts.push(format!("PropertyName={v}"));
        }
        if let Some(v) = self.property_id {
            parts.push(format!("PropertyId={v}"));
        }
        parts.push(format!("PropertyType={}", self.property_type));
        f.write_str(&parts.join(" "))?;
        f.write_str(")")
    }
}

/// Whether `text` names an extended path (a [`FieldUri`] made by [`ExtendedFieldUri::to_field_uri`]).
pub(crate) fn is_extended(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// A property tag as a number (`0x1035` or `4149`).
fn tag_number(tag: &str) -> Option<u16> {
    let tag = tag.trim();
    match tag.strip_prefix("0x").or_else(|| tag.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => tag.parse().ok(),
    }
}

/// The value of an extended property: `t:Value`, or `t:Values` for the array types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtendedValue {
    /// `t:Value`.
    Single(String),
    /// `t:Values/t:Value*`.
    Multiple(Vec<String>),
}

impl ExtendedValue {
    /// The single value, or the first of several.
    pub fn first(&self) -> Option<&str> {
        match self {
            ExtendedValue::Single(v) => Some(v),
            ExtendedValue::Multiple(values) => values.first().map(String::as_str),
        }
    }
}

/// `t:ExtendedProperty` (ExtendedPropertyType): a property path and its value on an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedProperty {
    /// `t:ExtendedFieldURI`.
    pub field: ExtendedFieldUri,
    /// `t:Value` or `t:Values`.
    pub value: ExtendedValue,
}

impl ExtendedProperty {
    /// A single-valued property.
    pub fn new(field: ExtendedFieldUri, value: impl Into<String>) -> Self {
        ExtendedProperty {
            field,
            value: ExtendedValue::Single(value.into()),
        }
    }

    /// Write `t:ExtendedProperty`.
    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.start("t:ExtendedProperty");
        self.field.write(w);
        match &self.value {
            ExtendedValue::Single(v) => {
                w.leaf("t:Value", v);
            }
            ExtendedValue::Multiple(values) => {
                w.start("t:Values");
                for v in values {
                    w.leaf("t:Value", v);
                }
                w.end();
            }
        }
        w.end();
    }

    /// Read a `t:ExtendedProperty` element.
    pub(crate) fn from_element(el: &Element) -> Result<Self, WireError> {
        let field = el
            .child(TYPES_NS, "ExtendedFieldURI")
            .ok_or(WireError::Missing("ExtendedProperty/ExtendedFieldURI"))?;
        let field = ExtendedFieldUri::from_element(field)?;
        let value = if let Some(v) = el.child(TYPES_NS, "Value") {
            ExtendedValue::Single(v.text.clone())
        } else if let Some(values) = el.child(TYPES_NS, "Values") {
            let list: Vec<String> = values
                .children_named(TYPES_NS, "Value")
                .map(|v| v.text.clone())
                .collect();
            if list.is_empty() {
                return Err(WireError::Missing("ExtendedProperty/Values/Value"));
            }
            ExtendedValue::Multiple(list)
        } else {
            return Err(WireError::Missing("ExtendedProperty/Value"));
        };
        Ok(ExtendedProperty { field, value })
    }

    /// Every `t:ExtendedProperty` child of an item element.
    pub(crate) fn all_in(item: &Element) -> Result<Vec<ExtendedProperty>, WireError> {
        item.children_named(TYPES_NS, "ExtendedProperty")
            .map(ExtendedProperty::from_element)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = "d0925a5d-722f-42f0-882e-a816636fa020";

    #[test]
    fn a_path_survives_the_trip_through_a_field_uri() {
        let uri = ExtendedFieldUri::named_string(SET, "Exsync&Outgoing=Id?");
        let field = uri.to_field_uri();
        assert!(is_extended(field.as_str()));
        assert_eq!(field.split_index(), (field.as_str(), None));
        assert_eq!(ExtendedFieldUri::from_field_uri(&field), Some(uri.clone()));
        assert_eq!(field.as_extended(), Some(uri));
        assert_eq!(FieldUri::SUBJECT.as_extended(), None);
    }

    #[test]
    fn the_same_property_is_recognised_whatever_the_spelling() {
        let a = ExtendedFieldUri::named_string(SET, "ExsyncOutgoingId");
        let b = ExtendedFieldUri::named_string(&SET.to_uppercase(), "ExsyncOutgoingId");
        assert!(a.same_property(&b));
        let c = ExtendedFieldUri::named_string(SET, "exsyncoutgoingid");
        assert!(!a.same_property(&c));
        assert!(ExtendedFieldUri::tagged("0x1035", "String")
            .same_property(&ExtendedFieldUri::tagged("4149", "String")));
    }

    #[test]
    fn only_the_schema_s_combinations_are_valid() {
        assert!(ExtendedFieldUri::named_string(SET, "x").validate().is_ok());
        assert!(ExtendedFieldUri::tagged("0x1035", "String")
            .validate()
            .is_ok());
        let mut both = ExtendedFieldUri::named_string(SET, "x");
        both.property_tag = Some("0x1035".into());
        assert!(both.validate().is_err());
        let mut bad_type = ExtendedFieldUri::named_string(SET, "x");
        bad_type.property_type = "Text".into();
        assert!(bad_type.validate().is_err());
        assert!(ExtendedFieldUri::named_string("not-a-guid", "x")
            .validate()
            .is_err());
        let nameless = ExtendedFieldUri {
            property_set_id: Some(SET.into()),
            property_type: "String".into(),
            ..ExtendedFieldUri::default()
        };
        assert!(nameless.validate().is_err());
    }
}
