//! Query parameters of the result API → a [`ResultFilter`]'s conditions and an order.
//!
//! * `fieldSelector`: `field=value`, `field==value`, `field!=value` terms joined by `,`,
//!   with apimachinery's escaping (`\,`, `\=`, `\\`), so any value (a category with spaces,
//!   a message-like policy name) can be written;
//! * `labelSelector`: the label grammar over the same fields (`severity in (high,critical)`,
//!   `result!=pass`, `properties.score>7`, `!severity`), for set expressions; values must be
//!   valid label values;
//! * `property`: `key>=8`, `key<4.5`, `key=text`, `key!=text`, `key` (present), `!key`
//!   (absent); repeatable;
//! * `message`: a case-insensitive substring of the message;
//! * `sort` (`report`, `severity`, `timestamp`) and `order` (`asc`, `desc`).
//!
//! Fields: `result`, `severity`, `policy`, `rule`, `category`, `source`, `namespace`
//! (also `metadata.namespace`, `report.namespace`), `report.name`, `report.kind`,
//! `report.apiVersion`, `subject.apiVersion`, `subject.kind`, `subject.namespace`,
//! `subject.name`, `subject.uid`, `properties.<key>`, and `metadata.name` (one result).

use crate::labels::{LabelSelector, Operator};
use crate::resources::RESOURCES;

use super::object::parse_name;
use super::query::{Compare, Condition, PropertyTest, ResultColumn, ResultOrder};

/// Why the parameters were refused (answered 400 BadRequest with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(message.into()))
}

/// The fields a selector may name, for error messages.
pub const FIELDS: &str = "result, severity, policy, rule, category, source, namespace, report.name, \
     report.kind, report.apiVersion, subject.apiVersion, subject.kind, subject.namespace, subject.name, \
     subject.uid, properties.<key>, metadata.name";

/// What a selector key refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Column(ResultColumn),
    ReportKind,
    ReportApiVersion,
    /// `metadata.name`: one result, by its name.
    Name,
    Property(String),
}

fn field(key: &str) -> Result<Field, FilterError> {
    use ResultColumn as C;
    let column = match key {
        "result" => C::Result,
        "severity" => C::Severity,
        "policy" => C::Policy,
        "rule" => C::Rule,
        "category" => C::Category,
        "source" => C::Source,
        "namespace" | "metadata.namespace" | "report.namespace" => C::Namespace,
        "report.name" => C::Report,
        "subject.apiVersion" => C::SubjectApiVersion,
        "subject.kind" => C::SubjectKind,
        "subject.namespace" => C::SubjectNamespace,
        "subject.name" => C::SubjectName,
        "subject.uid" => C::SubjectUid,
        "report.kind" => return Ok(Field::ReportKind),
        "report.apiVersion" => return Ok(Field::ReportApiVersion),
        "metadata.name" => return Ok(Field::Name),
        other => {
            return match other.strip_prefix("properties.") {
                Some(k) if !k.is_empty() => Ok(Field::Property(k.to_owned())),
                _ => fail(format!(
                    "\"{other}\" is not a known field of policy results: one of {FIELDS}"
                )),
            }
        }
    };
    Ok(Field::Column(column))
}

/// The report resources (`plural.group`) whose kind is `kind`: the kind itself (`PolicyReport`),
/// its plural (`policyreports`) or a short name (`polr`), case-insensitively for the latter two.
pub fn resources_of_kind(kind: &str) -> Vec<String> {
    let lower = kind.to_ascii_lowercase();
    RESOURCES
        .iter()
        .filter(|r| r.kind == kind || r.plural == lower || r.short_names.contains(&lower.as_str()))
        .map(|r| r.group_resource())
        .collect()
}

fn resources_of_api_version(api_version: &str) -> Vec<String> {
    RESOURCES
        .iter()
        .filter(|r| r.api_version() == api_version)
        .map(|r| r.group_resource())
        .collect()
}

/// The condition of `field (in|notin) values`.
fn membership(field: Field, values: Vec<String>, negated: bool) -> Result<Vec<Condition>, FilterError> {
    let set = |col, values| {
        if negated {
            Condition::NotIn(col, values)
        } else {
            Condition::In(col, values)
        }
    };
    Ok(match field {
        Field::Column(col) => vec![set(col, values)],
        Field::ReportKind => {
            let resources = values.iter().flat_map(|v| resources_of_kind(v)).collect();
            vec![set(ResultColumn::Resource, resources)]
        }
        Field::ReportApiVersion => {
            let resources = values.iter().flat_map(|v| resources_of_api_version(v)).collect();
            vec![set(ResultColumn::Resource, resources)]
        }
        Field::Property(key) => {
            let test = if negated {
                PropertyTest::NotIn(values)
            } else {
                PropertyTest::In(values)
            };
            vec![Condition::Property { key, test }]
        }
        Field::Name => match (negated, values.as_slice()) {
            (false, [name]) => match parse_name(name) {
                Some((resource, report, index)) => vec![
                    Condition::In(ResultColumn::Resource, vec![resource]),
                    Condition::In(ResultColumn::Report, vec![report]),
                    Condition::Index(index),
                ],
                // Not a result name: nothing matches.
                None => vec![Condition::In(ResultColumn::Report, Vec::new())],
            },
            _ => return fail("metadata.name supports only a single `=` value"),
        },
    })
}

/// Parses a `fieldSelector` (apimachinery's grammar, any field of [`FIELDS`]).
///
/// `groupBy=<field>` terms are returned apart (resultsummaries take their grouping from the
/// field selector, since kubectl cannot send other parameters).
pub fn parse_field_selector(s: &str) -> Result<(Vec<Condition>, Option<String>), FilterError> {
    let mut conditions = Vec::new();
    let mut group_by = None;
    for term in split_unescaped(s, ',') {
        if term.is_empty() {
            continue;
        }
        let Some((key, negated, value)) = split_term(term) else {
            return fail(format!("invalid selector: '{s}'; can't understand '{term}'"));
        };
        let value = unescape(value)
            .map_err(|e| FilterError(format!("invalid field selector value {value:?}: {e}")))?;
        if key == "groupBy" && !negated {
            group_by = Some(value);
            continue;
        }
        conditions.extend(membership(field(key)?, vec![value], negated)?);
    }
    Ok((conditions, group_by))
}

/// Splits `s` at every `sep` not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// `key op value` at the leftmost operator (`!=`, `==`, `=`); returns whether it is `!=`.
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        if let Some(v) = rest.strip_prefix("!=") {
            return Some((&term[..i], true, v));
        }
        if let Some(v) = rest.strip_prefix("==") {
            return Some((&term[..i], false, v));
        }
        if let Some(v) = rest.strip_prefix('=') {
            return Some((&term[..i], false, v));
        }
    }
    None
}

/// apimachinery's `UnescapeValue`: `\\`, `\,` and `\=` only.
fn unescape(v: &str) -> Result<String, String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == ',' || c == '=' {
                return Err(format!("unescaped {c:?}"));
            }
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e @ ('\\' | ',' | '=')) => out.push(e),
            Some(e) => return Err(format!("invalid escape sequence \\{e}")),
            None => return Err("trailing backslash".into()),
        }
    }
    Ok(out)
}

/// Parses a `labelSelector` over the result fields.
pub fn parse_label_selector(s: &str) -> Result<Vec<Condition>, FilterError> {
    let selector = LabelSelector::parse(s).map_err(|e| {
        FilterError(format!(
            "unable to parse labelSelector: {e} (values with spaces or other characters go in fieldSelector)"
        ))
    })?;
    let mut out = Vec::new();
    for r in selector.requirements {
        let f = field(&r.key)?;
        match r.operator {
            Operator::Equals | Operator::In => out.extend(membership(f, r.values, false)?),
            Operator::NotEquals | Operator::NotIn => out.extend(membership(f, r.values, true)?),
            Operator::Exists | Operator::DoesNotExist => {
                let exists = r.operator == Operator::Exists;
                out.push(match f {
                    Field::Column(col) if exists => Condition::NotIn(col, vec![String::new()]),
                    Field::Column(col) => Condition::In(col, vec![String::new()]),
                    Field::Property(key) => Condition::Property {
                        key,
                        test: if exists {
                            PropertyTest::Exists
                        } else {
                            PropertyTest::Missing
                        },
                    },
                    _ => {
                        return fail(format!(
                            "{}: existence tests are not supported on this field",
                            r.key
                        ))
                    }
                });
            }
            Operator::GreaterThan | Operator::LessThan => {
                let Field::Property(key) = f else {
                    return fail(format!(
                        "{}: `>` and `<` compare properties only (properties.<key>)",
                        r.key
                    ));
                };
                let op = if r.operator == Operator::GreaterThan {
                    Compare::Greater
                } else {
                    Compare::Less
                };
                out.push(Condition::Property {
                    key,
                    test: PropertyTest::Number(op, number(r.values.first().map_or("", String::as_str))?),
                });
            }
        }
    }
    Ok(out)
}

fn number(s: &str) -> Result<f64, FilterError> {
    match s.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => fail(format!("{s:?} is not a number")),
    }
}

/// Parses one `property` parameter: `key>=8`, `key=text`, `key!=text`, `key`, `!key`.
pub fn parse_property(s: &str) -> Result<Condition, FilterError> {
    const OPS: [&str; 7] = [">=", "<=", "!=", "==", "=", ">", "<"];
    if s.starts_with(['=', '<', '>']) {
        return fail(format!("invalid property filter {s:?}: the key is missing"));
    }
    let found = s
        .char_indices()
        .filter(|(i, _)| *i > 0)
        .find_map(|(i, _)| OPS.iter().find(|op| s[i..].starts_with(**op)).map(|op| (i, *op)));
    let Some((at, op)) = found else {
        return match s.strip_prefix('!') {
            Some(key) if !key.is_empty() => Ok(Condition::Property {
                key: key.to_owned(),
                test: PropertyTest::Missing,
            }),
            _ if !s.is_empty() && !s.starts_with('!') => Ok(Condition::Property {
                key: s.to_owned(),
                test: PropertyTest::Exists,
            }),
            _ => fail(format!(
                "invalid property filter {s:?}: want key, !key, or key<op>value"
            )),
        };
    };
    let (key, value) = (&s[..at], &s[at + op.len()..]);
    let test = match op {
        "=" | "==" => PropertyTest::In(vec![value.to_owned()]),
        "!=" => PropertyTest::NotIn(vec![value.to_owned()]),
        ">=" => PropertyTest::Number(Compare::GreaterOrEqual, number(value)?),
        "<=" => PropertyTest::Number(Compare::LessOrEqual, number(value)?),
        ">" => PropertyTest::Number(Compare::Greater, number(value)?),
        _ => PropertyTest::Number(Compare::Less, number(value)?),
    };
    Ok(Condition::Property {
        key: key.to_owned(),
        test,
    })
}

/// Parses `sort` and `order`.
pub fn parse_order(sort: Option<&str>, order: Option<&str>) -> Result<ResultOrder, FilterError> {
    let ascending = match order.unwrap_or("") {
        "" | "desc" => false,
        "asc" => true,
        other => return fail(format!("order: unsupported value {other:?}: \"asc\", \"desc\"")),
    };
    match sort.unwrap_or("") {
        "" | "report" => Ok(ResultOrder::Report),
        "severity" => Ok(ResultOrder::Severity { ascending }),
        "timestamp" => Ok(ResultOrder::Timestamp { ascending }),
        other => fail(format!(
            "sort: unsupported value {other:?}: \"report\", \"severity\", \"timestamp\""
        )),
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
