//! Label selectors: the apimachinery grammar parsed into an AST that can be evaluated in
//! memory (watch filtering) or lowered to SQL by a storage backend.
//!
//! The lexer and parser are a port of `k8s.io/apimachinery/pkg/labels/selector.go`:
//!
//! ```text
//! <selector>    ::= <requirement> | <requirement> "," <selector>
//! <requirement> ::= [!] KEY [ <set-based> | <exact> | <ordering> ]
//! <set-based>   ::= "" | ("in" | "notin") "(" VALUE ("," VALUE)* ")"
//! <exact>       ::= ("=" | "==" | "!=") VALUE
//! <ordering>    ::= (">" | "<") INTEGER
//! ```
//!
//! Whitespace separates tokens; values may be empty; keys are qualified names and values
//! label values (see [`crate::names`]). Requirements are sorted by key and set values are
//! sorted and deduplicated, so equal selectors compare equal and [`fmt::Display`] gives a
//! canonical string that parses back to the same selector.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::names::{go_quote, is_qualified_name, is_valid_label_value};

mod parser;

/// A selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=` or `==`: the label exists and equals the value.
    Equals,
    /// `!=`: the label is missing or differs.
    NotEquals,
    /// `in (..)`: the label exists and is one of the values.
    In,
    /// `notin (..)`: the label is missing or none of the values.
    NotIn,
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label is missing.
    DoesNotExist,
    /// `>`: the label is an integer greater than the value.
    GreaterThan,
    /// `<`: the label is an integer less than the value.
    LessThan,
}

/// One requirement: `key op values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key (a qualified name).
    pub key: String,
    /// How the label is tested.
    pub operator: Operator,
    /// One value for `=`, `!=`, `>`, `<`; a sorted, deduplicated set for `in`/`notin`;
    /// none for existence tests.
    pub values: Vec<String>,
}

/// A parsed label selector; no requirements selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, all of which must hold, sorted by key.
    pub requirements: Vec<Requirement>,
}

/// Why a selector was rejected (400 BadRequest). The message follows upstream, e.g.
/// `unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseSelectorError(pub String);

impl LabelSelector {
    /// Parses a `labelSelector` query parameter; the empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, ParseSelectorError> {
        let mut requirements = parser::parse(s).map_err(ParseSelectorError)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Converts a `metav1.LabelSelector` (`matchLabels` and `matchExpressions` with the
    /// operators `In`, `NotIn`, `Exists`, `DoesNotExist`), like `LabelSelectorAsSelector`.
    ///
    /// An empty object selects everything. A JSON `null` selects *nothing* upstream, which
    /// this type cannot express: it is rejected, and callers must handle it first.
    pub fn from_label_selector_json(v: &Value) -> Result<Self, ParseSelectorError> {
        let fail = |msg: &str| Err(ParseSelectorError(msg.to_string()));
        let Some(obj) = v.as_object() else {
            return fail("a label selector must be a JSON object");
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let Some(value) = value.as_str() else {
                        return fail("matchLabels values must be strings");
                    };
                    let values = vec![value.to_string()];
                    requirements.push(new_requirement(key, Operator::Equals, values)?);
                }
            }
            Some(_) => return fail("matchLabels must be an object"),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    requirements.push(expression_to_requirement(expr)?);
                }
            }
            Some(_) => return fail("matchExpressions must be an array"),
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether this selector has no requirements (selects everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    /// Evaluates the requirement against a label set, with upstream semantics: `!=` and
    /// `notin` also match objects without the key; `>`/`<` need an integer label.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let actual = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => actual.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => actual.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => actual.is_some(),
            Operator::DoesNotExist => actual.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(actual), [wanted]) = (actual, self.values.as_slice()) else {
                    return false;
                };
                match (actual.parse::<i64>(), wanted.parse::<i64>()) {
                    (Ok(a), Ok(w)) if self.operator == Operator::GreaterThan => a > w,
                    (Ok(a), Ok(w)) => a < w,
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Upstream's `Requirement.String()`: `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
    /// `k`, `!k`, `k>1`, `k<1`; set values are written sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            Operator::Exists => return f.write_str(&self.key),
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Equals => "=",
            Operator::NotEquals => "!=",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
        };
        write!(f, "{}{op}", self.key)?;
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            let values: BTreeSet<&str> = self.values.iter().map(String::as_str).collect();
            let joined = values.into_iter().collect::<Vec<_>>().join(",");
            write!(f, "({joined})")
        } else {
            f.write_str(self.values.first().map_or("", String::as_str))
        }
    }
}

impl fmt::Display for LabelSelector {
    /// The requirements joined with `,`; parses back to an equal selector.
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

/// One `matchExpressions` entry.
fn expression_to_requirement(expr: &Value) -> Result<Requirement, ParseSelectorError> {
    let fail = |msg: String| Err(ParseSelectorError(msg));
    let Some(key) = expr.get("key").and_then(Value::as_str) else {
        return fail("matchExpressions entries need a string key".into());
    };
    let operator = match expr.get("operator").and_then(Value::as_str) {
        Some("In") => Operator::In,
        Some("NotIn") => Operator::NotIn,
        Some("Exists") => Operator::Exists,
        Some("DoesNotExist") => Operator::DoesNotExist,
        Some(other) => {
            return fail(format!(
                "{} is not a valid label selector operator",
                go_quote(other)
            ))
        }
        None => return fail("matchExpressions entries need a string operator".into()),
    };
    let mut values = Vec::new();
    match expr.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Some(s) = item.as_str() else {
                    return fail("matchExpressions values must be strings".into());
                };
                values.push(s.to_string());
            }
        }
        Some(_) => return fail("matchExpressions values must be an array".into()),
    }
    new_requirement(key, operator, values)
}

/// Validates and normalises a requirement (`NewRequirement`); set values are sorted and
/// deduplicated. Errors are rendered like an aggregated `field.ErrorList`.
fn new_requirement(
    key: &str,
    operator: Operator,
    mut values: Vec<String>,
) -> Result<Requirement, ParseSelectorError> {
    let mut errs: Vec<String> = Vec::new();
    let key_errs = is_qualified_name(key);
    if !key_errs.is_empty() {
        errs.push(invalid("key", key, &key_errs.join("; ")));
    }
    let list = || serde_json::to_string(&values).unwrap_or_default();
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => errs.push(format!(
            "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
            list()
        )),
        Operator::Equals | Operator::NotEquals if values.len() != 1 => errs.push(format!(
            "values: Invalid value: {}: exact-match compatibility requires one single value",
            list()
        )),
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(format!(
            "values: Invalid value: {}: values set must be empty for exists and does not exist",
            list()
        )),
        Operator::GreaterThan | Operator::LessThan => {
            if values.len() != 1 {
                errs.push(format!(
                    "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                    list()
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(invalid(
                        &format!("values[{i}]"),
                        v,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let value_errs = is_valid_label_value(v);
        if !value_errs.is_empty() {
            errs.push(invalid(&format!("values[{i}][{key}]"), v, &value_errs.join("; ")));
        }
    }
    if !errs.is_empty() {
        let mut seen = BTreeSet::new();
        errs.retain(|e| seen.insert(e.clone()));
        return Err(ParseSelectorError(if errs.len() == 1 {
            errs.remove(0)
        } else {
            format!("[{}]", errs.join(", "))
        }));
    }
    if matches!(operator, Operator::In | Operator::NotIn) {
        values.sort();
        values.dedup();
    }
    Ok(Requirement {
        key: key.to_string(),
        operator,
        values,
    })
}

/// A `field.Invalid` error rendered with its path.
fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {}: {detail}", go_quote(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matching_follows_upstream() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "10"), ("s", "x")]);
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&l);
        assert!(m(""));
        assert!(m("app=web") && m("app==web") && !m("app=db"));
        assert!(m("app!=db") && !m("app!=web") && m("missing!=x"));
        assert!(m("app in (db,web)") && !m("app in (db)") && !m("missing in (x)"));
        assert!(m("app notin (db)") && !m("app notin (web)") && m("missing notin (x)"));
        assert!(m("app") && !m("missing") && m("!missing") && !m("!app"));
        assert!(m("n>9") && !m("n>10") && m("n<11") && !m("n<10"));
        assert!(!m("missing>1") && !m("missing<1") && !m("s>1") && !m("s<1"));
        assert!(m("app=web,tier in (front)") && !m("app=web,tier=back"));
        assert!(!m("missing="), "an empty value still needs the key");
        assert!(LabelSelector::parse("k=").unwrap().matches(&labels(&[("k", "")])));
    }

    #[test]
    fn display_is_canonical() {
        let sel = LabelSelector::parse("z notin (b,a,a), !y, x, w>3, v==1, u != , t in ()").unwrap();
        assert_eq!(sel.to_string(), "t in (),u!=,v=1,w>3,x,!y,z notin (a,b)");
        assert_eq!(LabelSelector::parse(&sel.to_string()), Ok(sel));
    }

    #[test]
    fn from_metav1_label_selector() {
        let v = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "NotIn", "values": ["b", "a"]},
                {"key": "env", "operator": "Exists"},
                {"key": "gone", "operator": "DoesNotExist", "values": []},
            ]
        });
        let sel = LabelSelector::from_label_selector_json(&v).unwrap();
        assert_eq!(sel.to_string(), "app=web,env,!gone,tier notin (a,b)");
        assert!(LabelSelector::from_label_selector_json(&json!({}))
            .unwrap()
            .is_empty());

        let bad = |v: Value| LabelSelector::from_label_selector_json(&v).unwrap_err().0;
        assert_eq!(
            bad(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            bad(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            bad(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist"
        );
        assert!(bad(json!({"matchLabels": {"a b": "x"}})).starts_with("key: Invalid value: \"a b\""));
        assert!(bad(json!({"matchLabels": {"a": 1}})).contains("strings"));
        assert!(bad(json!(null)).contains("object"));
    }

    fn key() -> impl Strategy<Value = String> {
        let name = "[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?";
        prop_oneof![
            Just("in".to_string()),
            Just("notin".to_string()),
            name,
            ("[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z0-9]{1,5}){0,2}", name)
                .prop_map(|(p, n)| format!("{p}/{n}")),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("in".to_string()),
            "[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?",
        ]
    }

    fn requirement() -> impl Strategy<Value = Requirement> {
        let set =
            proptest::collection::btree_set(value(), 1..4).prop_map(|s| s.into_iter().collect::<Vec<_>>());
        (key(), 0..8u8, value(), set, 0..1_000_000i64).prop_map(|(key, op, v, set, n)| {
            let (operator, values) = match op {
                0 => (Operator::Equals, vec![v]),
                1 => (Operator::NotEquals, vec![v]),
                2 => (Operator::In, set),
                3 => (Operator::NotIn, set),
                4 => (Operator::Exists, vec![]),
                5 => (Operator::DoesNotExist, vec![]),
                6 => (Operator::GreaterThan, vec![n.to_string()]),
                _ => (Operator::LessThan, vec![n.to_string()]),
            };
            Requirement {
                key,
                operator,
                values,
            }
        })
    }

    proptest! {
        #[test]
        fn display_round_trips(mut reqs in proptest::collection::vec(requirement(), 0..5)) {
            reqs.sort_by(|a, b| a.key.cmp(&b.key));
            let sel = LabelSelector { requirements: reqs };
            prop_assert_eq!(LabelSelector::parse(&sel.to_string()), Ok(sel));
        }

        #[test]
        fn parse_never_panics_and_is_idempotent(s in "[a-z0-9 !=<>(),.\\-_/]{0,30}") {
            if let Ok(sel) = LabelSelector::parse(&s) {
                prop_assert_eq!(LabelSelector::parse(&sel.to_string()), Ok(sel));
            }
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = LabelSelector::parse(&s);
        }
    }
}
