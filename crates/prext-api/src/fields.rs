//! Field selectors for the report kinds: `metadata.name` and `metadata.namespace`, with
//! `=`, `==` and `!=`, and apimachinery's backslash escaping.
//!
//! Parsing follows `k8s.io/apimachinery/pkg/fields/selector.go` (terms split on unescaped
//! `,`, the first `!=`/`==`/`=` splits a term, values unescape `\\`, `\,` and `\=`), then
//! the custom-resource field conversion (`DefaultMetaV1FieldSelectorConversion`), which
//! only knows the two metadata fields.

use std::fmt;

use crate::names::go_quote;

/// A selectable field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `metadata.name`
    Name,
    /// `metadata.namespace` (empty for cluster-scoped objects)
    Namespace,
}

/// `=`/`==` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    /// `=` or `==`
    Equals,
    /// `!=`
    NotEquals,
}

/// One term: `field op value` (the value unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field compared.
    pub field: Field,
    /// How it is compared.
    pub op: FieldOp,
    /// The value, unescaped.
    pub value: String,
}

/// A parsed field selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The terms, all of which must hold, in canonical order.
    pub requirements: Vec<FieldRequirement>,
}

/// Why a field selector was rejected (400 BadRequest); the message is upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseFieldSelectorError(pub String);

impl Field {
    /// The field's path as written in selectors.
    pub fn path(self) -> &'static str {
        match self {
            Field::Name => "metadata.name",
            Field::Namespace => "metadata.namespace",
        }
    }

    fn from_path(path: &str) -> Result<Self, ParseFieldSelectorError> {
        match path {
            "metadata.name" => Ok(Field::Name),
            "metadata.namespace" => Ok(Field::Namespace),
            other => Err(ParseFieldSelectorError(format!(
                "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                go_quote(other)
            ))),
        }
    }
}

impl FieldRequirement {
    /// Whether an object with this namespace and name satisfies the term.
    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        let actual = match self.field {
            Field::Name => name,
            Field::Namespace => namespace,
        };
        match self.op {
            FieldOp::Equals => actual == self.value,
            FieldOp::NotEquals => actual != self.value,
        }
    }
}

impl FieldSelector {
    /// Parses a `fieldSelector` query parameter. The empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, ParseFieldSelectorError> {
        let mut terms = split_terms(s);
        terms.sort_unstable();
        let mut parsed = Vec::with_capacity(terms.len());
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let (lhs, op, rhs) = split_term(term).ok_or_else(|| {
                ParseFieldSelectorError(format!("invalid selector: '{s}'; can't understand '{term}'"))
            })?;
            parsed.push((lhs, op, unescape_value(rhs)?));
        }
        // Field names are checked after the whole string parsed, like upstream's
        // `Transform` step.
        let mut requirements = parsed
            .into_iter()
            .map(|(lhs, op, value)| {
                Ok(FieldRequirement {
                    field: Field::from_path(lhs)?,
                    op,
                    value,
                })
            })
            .collect::<Result<Vec<_>, ParseFieldSelectorError>>()?;
        requirements.sort_by_cached_key(ToString::to_string);
        Ok(FieldSelector { requirements })
    }

    /// Whether this selector has no terms (selects everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object with this namespace (empty when cluster-scoped) and name
    /// satisfies every term.
    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        self.requirements.iter().all(|r| r.matches(namespace, name))
    }

    /// The name pinned by `metadata.name=x`, if any (upstream `RequiresExactMatch`),
    /// used for single-object watches and for RBAC `resourceNames`.
    pub fn pinned_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == Field::Name && r.op == FieldOp::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldRequirement {
    /// `field=value` or `field!=value`, with the value escaped so it parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOp::Equals => "=",
            FieldOp::NotEquals => "!=",
        };
        f.write_str(self.field.path())?;
        f.write_str(op)?;
        for c in self.value.chars() {
            if matches!(c, '\\' | ',' | '=') {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical selector string: terms joined with `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Splits on commas not preceded by a backslash escape (`splitTerms`).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator (`!=` before `==` before `=` at each position).
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    const OPERATORS: [(&str, FieldOp); 3] = [
        ("!=", FieldOp::NotEquals),
        ("==", FieldOp::Equals),
        ("=", FieldOp::Equals),
    ];
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        OPERATORS
            .iter()
            .find(|(op, _)| rest.starts_with(op))
            .map(|(op, kind)| (&term[..i], *kind, &rest[op.len()..]))
    })
}

/// Undoes `\\`, `\,` and `\=`; any other escape, or a bare `,` or `=`, is an error.
fn unescape_value(s: &str) -> Result<String, ParseFieldSelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(ParseFieldSelectorError(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(ParseFieldSelectorError(format!(
                    "invalid field selector: unescaped character in value: '{c}'"
                )))
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(ParseFieldSelectorError(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(field: Field, op: FieldOp, value: &str) -> FieldRequirement {
        FieldRequirement {
            field,
            op,
            value: value.into(),
        }
    }

    fn err(s: &str) -> String {
        FieldSelector::parse(s).unwrap_err().0
    }

    #[test]
    fn empty_selects_everything() {
        for s in ["", ",", ",,"] {
            let sel = FieldSelector::parse(s).unwrap();
            assert!(sel.is_empty());
            assert!(sel.matches("any", "thing"));
            assert_eq!(sel.pinned_name(), None);
        }
    }

    #[test]
    fn operators() {
        let sel = FieldSelector::parse("metadata.name==a,metadata.namespace!=kube-system").unwrap();
        assert_eq!(
            sel.requirements,
            vec![
                req(Field::Name, FieldOp::Equals, "a"),
                req(Field::Namespace, FieldOp::NotEquals, "kube-system"),
            ]
        );
        assert!(sel.matches("default", "a"));
        assert!(
            sel.matches("", "a"),
            "cluster-scoped objects have an empty namespace"
        );
        assert!(!sel.matches("kube-system", "a"));
        assert!(!sel.matches("default", "b"));
        assert_eq!(sel.pinned_name(), Some("a"));
    }

    #[test]
    fn pinned_name_needs_equality_on_name() {
        let sel = FieldSelector::parse("metadata.name!=a,metadata.namespace=a").unwrap();
        assert_eq!(sel.pinned_name(), None);
        let sel = FieldSelector::parse("metadata.name=").unwrap();
        assert_eq!(sel.pinned_name(), Some(""));
        assert!(!sel.matches("ns", "x"));
    }

    #[test]
    fn escaping() {
        let sel = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(sel.requirements[0].value, r"a,b=c\d");
        assert_eq!(sel.to_string(), r"metadata.name=a\,b\=c\\d");
        // `=` right after the operator is data only when escaped.
        assert_eq!(
            FieldSelector::parse(r"metadata.name!=\=x").unwrap().requirements[0],
            req(Field::Name, FieldOp::NotEquals, "=x")
        );
    }

    #[test]
    fn errors_match_upstream() {
        assert_eq!(
            err("status.phase=Running"),
            r#""status.phase" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        assert_eq!(
            err(" metadata.name=a"),
            r#"" metadata.name" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        assert_eq!(
            err("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            err("metadata.name=a=b"),
            "invalid field selector: unescaped character in value: '='"
        );
        assert_eq!(
            err(r"metadata.name=a\x"),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            err(r"metadata.name=a\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        // Syntax errors win over unknown fields, whatever their order.
        assert!(err("zzz=1,metadata.name").starts_with("invalid selector"));
        assert!(err("aaa=1,zzz").starts_with("invalid selector"));
    }

    proptest! {
        #[test]
        fn display_round_trips(
            terms in proptest::collection::vec(
                (any::<bool>(), any::<bool>(), ".*"), 0..5),
        ) {
            let mut requirements: Vec<_> = terms
                .into_iter()
                .map(|(name, eq, value)| FieldRequirement {
                    field: if name { Field::Name } else { Field::Namespace },
                    op: if eq { FieldOp::Equals } else { FieldOp::NotEquals },
                    value,
                })
                .collect();
            requirements.sort_by_cached_key(ToString::to_string);
            let sel = FieldSelector { requirements };
            prop_assert_eq!(FieldSelector::parse(&sel.to_string()), Ok(sel));
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = FieldSelector::parse(&s);
        }
    }
}
