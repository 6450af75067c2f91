//! Reading a Graph request's options: the query string (`$select`, `$filter`, `$expand`,
//! `$top`, `$skip`), `Prefer` preferences, and extended-property ids.
//!
//! Owns what the fake accepts: `$select` of the properties the shared wire model knows,
//! `$filter` clauses on `receivedDateTime`, `internetMessageId`, `isRead` and exsync's
//! single-value extended property (GD-XPROP), `$expand` of one extended property. Anything
//! else is refused with 400, never silently ignored (docs/fake-exchange.md lists it).

use chrono::{DateTime, Utc};
use exsync_graph::model::BodyType;
use http::HeaderMap;
use serde_json::{Map, Value};

use super::wire::GraphErr;
use exsync_ews::extended::ExtendedFieldUri;

/// The decoded query string.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    params: Vec<(String, String)>,
}

impl Query {
    /// Decode a raw query string.
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        Query {
            params: raw
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The value of option `name` (`$select`, …; the `$` is optional on v1.0).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.params
            .iter()
            .find(|(k, _)| {
                let k = k.trim_start_matches('$');
                k.eq_ignore_ascii_case(bare)
            })
            .map(|(_, v)| v.as_str())
    }

    /// Every option name given, for refusing unknown ones.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|(k, _)| k.as_str())
    }

    /// Refuse system query options an operation does not take.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), GraphErr> {
        for name in self.names() {
            let known = allowed.iter().any(|a| {
                a.trim_start_matches('$')
                    .eq_ignore_ascii_case(name.trim_start_matches('$'))
            });
            if !known {
                return Err(GraphErr::bad_request(format!(
                    "The query parameter '{name}' is not supported on this request."
                )));
            }
        }
        Ok(())
    }
}

/// The preferences of a request's `Prefer` headers (RFC 7240).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Prefer {
    /// `IdType="ImmutableId"`.
    pub(crate) immutable: bool,
    /// `odata.maxpagesize=N`.
    pub(crate) max_page_size: Option<u32>,
    /// `outlook.body-content-type="text"|"html"`.
    pub(crate) body_type: Option<BodyType>,
    /// `outlook.timezone="…"`.
    pub(crate) timezone: Option<String>,
}

impl Prefer {
    /// Read every `Prefer` header.
    pub(crate) fn parse(headers: &HeaderMap) -> Prefer {
        let mut prefer = Prefer::default();
        for value in headers.get_all("prefer") {
            let Ok(text) = value.to_str() else { continue };
            for item in text.split(',') {
                let Some((name, value)) = item.split_once('=') else {
                    continue;
                };
                let name = name.trim();
                let value = value.trim().trim_matches('"');
                if name.eq_ignore_ascii_case("IdType") {
                    prefer.immutable = value.eq_ignore_ascii_case("ImmutableId");
                } else if name.eq_ignore_ascii_case("odata.maxpagesize") {
                    prefer.max_page_size = value.parse().ok().filter(|n| *n > 0);
                } else if name.eq_ignore_ascii_case("outlook.body-content-type") {
                    prefer.body_type = if value.eq_ignore_ascii_case("text") {
                        Some(BodyType::Text)
                    } else if value.eq_ignore_ascii_case("html") {
                        Some(BodyType::Html)
                    } else {
                        None
                    };
                } else if name.eq_ignore_ascii_case("outlook.timezone") {
                    prefer.timezone = Some(value.to_owned());
                }
            }
        }
        prefer
    }
}

/// `$select`: the properties asked for, checked against the type's properties (`None`: the
/// type's default set).
pub(crate) fn select(
    query: &Query,
    known: &[&str],
    type_name: &str,
) -> Result<Option<Vec<String>>, GraphErr> {
    let Some(raw) = query.get("$select") else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(canonical) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) else {
            return Err(GraphErr::bad_request(format!(
                "Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'."
            )));
        };
        out.push((*canonical).to_owned());
    }
    Ok(Some(out))
}

/// Keep only what was asked for: the selected properties plus `id` and the annotations
/// (`@odata.etag`, `@removed`, …). Without `$select`, drop what Graph returns only on request
/// (`on_request`).
pub(crate) fn project(value: Value, select: Option<&[String]>, on_request: &[&str]) -> Value {
    let Value::Object(map) = value else {
        return value;
    };
    // An `$expand`ed navigation property is there only when expanded: kept whatever `$select`.
    let keep = |name: &str| {
        name == "id"
            || name.contains('@')
            || name == "singleValueExtendedProperties"
            || match select {
                Some(list) => list.iter().any(|s| s == name),
                None => !on_request.contains(&name),
            }
    };
    Value::Object(
        map.into_iter()
            .filter(|(k, _)| keep(k))
            .collect::<Map<String, Value>>(),
    )
}

/// A comparison in a `$filter` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

impl Cmp {
    fn parse(op: &str) -> Option<Cmp> {
        match op.to_ascii_lowercase().as_str() {
            "eq" => Some(Cmp::Eq),
            "ge" => Some(Cmp::Ge),
            "gt" => Some(Cmp::Gt),
            "le" => Some(Cmp::Le),
            "lt" => Some(Cmp::Lt),
            _ => None,
        }
    }

    /// Whether `actual op wanted` holds.
    pub(crate) fn holds<T: PartialOrd>(self, actual: &T, wanted: &T) -> bool {
        match self {
            Cmp::Eq => actual == wanted,
            Cmp::Ge => actual >= wanted,
            Cmp::Gt => actual > wanted,
            Cmp::Le => actual <= wanted,
            Cmp::Lt => actual < wanted,
        }
    }
}

/// One `$filter` clause the fake evaluates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause {
    /// `receivedDateTime op <DateTimeOffset>`.
    Received(Cmp, DateTime<Utc>),
    /// `internetMessageId eq '…'`.
    InternetMessageId(String),
    /// `isRead eq true|false`.
    IsRead(bool),
    /// `singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')`.
    ExtendedProperty {
        /// The property.
        field: ExtendedFieldUri,
        /// The value (compared without case, GD-XPROP).
        value: String,
    },
}

fn invalid_filter(raw: &str) -> GraphErr {
    GraphErr::bad_request(format!("Invalid filter clause: {raw}"))
}

/// Split at top-level ` and ` (outside quotes and parentheses).
fn split_and(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            _ => {}
        }
        if !quoted && depth == 0 && c == ' ' {
            let rest: String = chars[i..chars.len().min(i + 5)].iter().collect();
            if rest.eq_ignore_ascii_case(" and ") {
                parts.push(std::mem::take(&mut current));
                i += 5;
                continue;
            }
        }
        current.push(c);
        i += 1;
    }
    parts.push(current);
    parts.into_iter().map(|p| p.trim().to_owned()).collect()
}

/// An OData string literal `'…'` (`''` is a quote).
fn string_literal(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    if inner.replace("''", "").contains('\'') {
        return None;
    }
    Some(inner.replace("''", "'"))
}

/// `name op value` with a one-word operator.
fn comparison(clause: &str) -> Option<(&str, Cmp, &str)> {
    let mut parts = clause.splitn(3, ' ');
    let name = parts.next()?;
    let op = Cmp::parse(parts.next()?)?;
    Some((name, op, parts.next()?.trim()))
}

/// Parse a `$filter` into clauses joined by `and`.
pub(crate) fn parse_filter(raw: &str) -> Result<Vec<Clause>, GraphErr> {
    let mut clauses = Vec::new();
    for part in split_and(raw.trim()) {
        let lower = part.to_ascii_lowercase();
        if lower.starts_with("singlevalueextendedproperties/any(") {
            clauses.push(extended_clause(&part).ok_or_else(|| invalid_filter(raw))?);
            continue;
        }
        let (name, op, value) = comparison(&part).ok_or_else(|| invalid_filter(raw))?;
        let clause = if name.eq_ignore_ascii_case("receivedDateTime") {
            let at = DateTime::parse_from_rfc3339(value)
                .map_err(|_| invalid_filter(raw))?
                .with_timezone(&Utc);
            Clause::Received(op, at)
        } else if name.eq_ignore_ascii_case("internetMessageId") && op == Cmp::Eq {
            Clause::InternetMessageId(string_literal(value).ok_or_else(|| invalid_filter(raw))?)
        } else if name.eq_ignore_ascii_case("isRead") && op == Cmp::Eq {
            match value {
                "true" => Clause::IsRead(true),
                "false" => Clause::IsRead(false),
                _ => return Err(invalid_filter(raw)),
            }
        } else {
            return Err(GraphErr::bad_request(format!(
                "The fake Graph does not evaluate this filter: {raw}"
            )));
        };
        clauses.push(clause);
    }
    Ok(clauses)
}

/// `singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')`.
fn extended_clause(part: &str) -> Option<Clause> {
    let open = part.find('(')?;
    let inner = part[open + 1..].strip_suffix(')')?;
    let (var, body) = inner.split_once(':')?;
    let var = var.trim();
    let mut id = None;
    let mut value = None;
    for piece in split_and(body.trim()) {
        let (name, op, literal) = comparison(&piece)?;
        if op != Cmp::Eq {
            return None;
        }
        let (prefix, property) = name.split_once('/')?;
        if prefix != var {
            return None;
        }
        match property {
            "id" => id = Some(string_literal(literal)?),
            "value" => value = Some(string_literal(literal)?),
            _ => return None,
        }
    }
    Some(Clause::ExtendedProperty {
        field: parse_property_id(&id?)?,
        value: value?,
    })
}

/// A Graph extended-property id (`String {guid} Name X`, `String {guid} Id 0x8005`,
/// `String 0x1035`) as the EWS property it is.
pub(crate) fn parse_property_id(id: &str) -> Option<ExtendedFieldUri> {
    let mut words = id.split_whitespace();
    let property_type = words.next()?.to_owned();
    let second = words.next()?;
    let field = if let Some(guid) = second.strip_prefix('{').and_then(|g| g.strip_suffix('}')) {
        let kind = words.next()?;
        let rest: Vec<&str> = words.collect();
        if rest.is_empty() {
            return None;
        }
        let name = rest.join(" ");
        if kind.eq_ignore_ascii_case("Name") {
            ExtendedFieldUri {
                property_set_id: Some(guid.to_ascii_lowercase()),
                property_name: Some(name),
                property_type,
                ..ExtendedFieldUri::default()
            }
        } else if kind.eq_ignore_ascii_case("Id") {
            let number = name.trim();
            let parsed = match number
                .strip_prefix("0x")
                .or_else(|| number.strip_prefix("0X"))
            {
                Some(hex) => i32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            ExtendedFieldUri {
                property_set_id: Some(guid.to_ascii_lowercase()),
                property_id: Some(parsed),
                property_type,
                ..ExtendedFieldUri::default()
            }
        } else {
            return None;
        }
    } else {
        if words.next().is_some() {
            return None;
        }
        ExtendedFieldUri {
            property_tag: Some(second.to_owned()),
            property_type,
            ..ExtendedFieldUri::default()
        }
    };
    field.validate().ok()?;
    Some(field)
}

/// The Graph id of an EWS extended property.
pub(crate) fn property_id_string(field: &ExtendedFieldUri) -> String {
    let set = field
        .property_set_id
        .as_deref()
        .map(|g| format!("{{{}}}", g.to_ascii_lowercase()));
    match (
        &set,
        &field.property_name,
        field.property_id,
        &field.property_tag,
    ) {
        (Some(set), Some(name), _, _) => format!("{} {set} Name {name}", field.property_type),
        (Some(set), None, Some(id), _) => format!("{} {set} Id 0x{id:x}", field.property_type),
        (_, _, _, Some(tag)) => format!("{} {tag}", field.property_type),
        _ => field.property_type.clone(),
    }
}

/// Whether two ids name one property the way Graph compares them: type and GUID without
/// case, the name exactly (GD-XPROP).
pub(crate) fn same_property(a: &ExtendedFieldUri, b: &ExtendedFieldUri) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    for f in [&mut a, &mut b] {
        f.property_type = f.property_type.to_ascii_lowercase();
    }
    a.same_property(&b)
}

/// `$expand=singleValueExtendedProperties($filter=id eq '…')`: the property to include.
pub(crate) fn expand(query: &Query) -> Result<Option<ExtendedFieldUri>, GraphErr> {
    let Some(raw) = query.get("$expand") else {
        return Ok(None);
    };
    let refused = || {
        GraphErr::bad_request(format!(
            "The fake Graph expands only singleValueExtendedProperties($filter=id eq '…'): {raw}"
        ))
    };
    let trimmed = raw.trim();
    let lower = trimmed.to_ascii_lowercase();
    if !lower.starts_with("singlevalueextendedproperties(") {
        return Err(refused());
    }
    let inner = trimmed
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .ok_or_else(refused)?;
    let (option, filter) = inner.split_once('=').ok_or_else(refused)?;
    if !option.trim().eq_ignore_ascii_case("$filter") {
        return Err(refused());
    }
    let (name, op, literal) = comparison(filter.trim()).ok_or_else(refused)?;
    if name != "id" || op != Cmp::Eq {
        return Err(refused());
    }
    let id = string_literal(literal).ok_or_else(refused)?;
    parse_property_id(&id).map(Some).ok_or_else(refused)
}

/// `$top` (bounded by `max`).
pub(crate) fn top(query: &Query, default: u32, max: u32) -> Result<usize, GraphErr> {
    let n = match query.get("$top") {
        None => default,
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| GraphErr::bad_request(format!("Invalid $top value: {v}")))?,
    };
    Ok(usize::try_from(n.min(max)).unwrap_or(usize::MAX))
}

/// `$skip`.
pub(crate) fn skip(query: &Query) -> Result<usize, GraphErr> {
    match query.get("$skip") {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| GraphErr::bad_request(format!("Invalid $skip value: {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outgoing_marker_filter_is_read_with_its_case_rules() {
        let raw = "singleValueExtendedProperties/Any(ep: ep/id eq 'String {D0925A5D-722F-42F0-882E-A816636FA020} Name ExsyncOutgoingId' and ep/value eq 'Row''s 1') and receivedDateTime ge 2026-01-01T00:00:00Z";
        let clauses = parse_filter(raw).unwrap();
        assert_eq!(clauses.len(), 2);
        let Clause::ExtendedProperty { field, value } = &clauses[0] else {
            panic!("{clauses:?}")
        };
        assert_eq!(value, "Row's 1");
        let ours = parse_property_id(
            "String {d0925a5d-722f-42f0-882e-a816636fa020} Name ExsyncOutgoingId",
        )
        .unwrap();
        assert!(same_property(field, &ours));
        let other_case = parse_property_id(
            "String {d0925a5d-722f-42f0-882e-a816636fa020} Name exsyncoutgoingid",
        )
        .unwrap();
        assert!(
            !same_property(field, &other_case),
            "names are case-sensitive"
        );
        assert_eq!(
            property_id_string(field),
            "String {d0925a5d-722f-42f0-882e-a816636fa020} Name ExsyncOutgoingId"
        );
        assert!(matches!(clauses[1], Clause::Received(Cmp::Ge, _)));
    }

    #[test]
    fn filters_the_fake_cannot_evaluate_are_refused() {
        assert!(parse_filter("subject eq 'x'").is_err());
        assert!(parse_filter("receivedDateTime ge '2026-01-01'").is_err());
        assert!(parse_filter("receivedDateTime").is_err());
    }

    #[test]
    fn projection_keeps_id_annotations_and_only_what_was_selected() {
        let value =
            serde_json::json!({"id": "1", "@odata.etag": "W/\"x\"", "subject": "s", "body": {}});
        let selected = vec!["subject".to_owned()];
        let out = project(value, Some(&selected), &[]);
        assert_eq!(
            out,
            serde_json::json!({"id": "1", "@odata.etag": "W/\"x\"", "subject": "s"})
        );
    }
}
