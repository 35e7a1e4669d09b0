//! Label and field selectors lowered to SQL predicates over the `objects` table.
//!
//! Every value is a bound parameter (`$n` with an explicit type); only fixed SQL text is
//! written into the query. Labels live in the `labels jsonb` column, so keys with dots and
//! slashes (`app.kubernetes.io/name`) need no escaping:
//!
//! | requirement | SQL |
//! |---|---|
//! | `k=v` | `labels @> {"k":"v"}` (served by the GIN index) |
//! | `k in (a,b)` | `labels->>k = ANY(array)` |
//! | `k!=v`, `k notin (..)` | `NOT coalesce(labels->>k = ANY(array), false)` (also matches a missing key) |
//! | `k`, `!k` | `labels ? k`, `NOT (labels ? k)` |
//! | `k>n`, `k<n` | the value as an integer, compared; never matches a value that is not one |
//!
//! The semantics are apimachinery's, checked against the in-memory evaluator by the property
//! test in `tests/postgres.rs`.

use std::error::Error as StdError;

use bytes::BytesMut;
use prext_api::fields::{Field, FieldOp, FieldSelector};
use prext_api::labels::{LabelSelector, Operator, Requirement};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// A bound parameter of a dynamically built query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    TextArray(Vec<String>),
    Int(i64),
    Json(serde_json::Value),
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        // Each variant checks the column type itself.
        match self {
            Param::Text(v) => v.to_sql_checked(ty, out),
            Param::TextArray(v) => v.to_sql_checked(ty, out),
            Param::Int(v) => v.to_sql_checked(ty, out),
            Param::Json(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A SQL condition and its parameters, built up requirement by requirement.
#[derive(Debug, Default)]
pub(crate) struct Predicate {
    /// Conditions to be joined with `AND`.
    conditions: Vec<String>,
    /// The parameters, `$1` first.
    pub(crate) params: Vec<Param>,
}

/// SQL for the label value as an integer the way apimachinery parses it for `>`/`<`
/// (strconv.ParseInt base 10, 64 bits), NULL when it is not one. The nested CASE keeps the
/// casts from ever seeing a non-numeric value.
fn label_int(value_sql: &str) -> String {
    format!(
        "(CASE WHEN {value_sql} ~ '^[+-]?[0-9]+$' THEN \
           CASE WHEN {value_sql}::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 \
           THEN {value_sql}::numeric END END)"
    )
}

impl Predicate {
    /// Binds a parameter; returns its placeholder with `cast` (e.g. `$3::text`).
    pub(crate) fn bind(&mut self, param: Param, cast: &str) -> String {
        self.params.push(param);
        format!("${}::{cast}", self.params.len())
    }

    /// Adds a condition.
    pub(crate) fn push(&mut self, condition: impl Into<String>) {
        self.conditions.push(condition.into());
    }

    /// ` WHERE c1 AND c2 …`, or an empty string when there is no condition.
    pub(crate) fn where_sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// The parameters as tokio-postgres takes them.
    pub(crate) fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
    }

    /// Adds the label selector's requirements.
    pub(crate) fn labels(&mut self, selector: &LabelSelector) {
        for r in &selector.requirements {
            self.label(r);
        }
    }

    /// Adds the field selector's requirements (`metadata.name`, `metadata.namespace`).
    pub(crate) fn fields(&mut self, selector: &FieldSelector) {
        for r in &selector.requirements {
            let column = match r.field {
                Field::Name => "name",
                Field::Namespace => "namespace",
            };
            let op = match r.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "<>",
            };
            let value = self.bind(Param::Text(r.value.clone()), "text");
            self.push(format!("{column} {op} {value}"));
        }
    }

    fn label(&mut self, r: &Requirement) {
        match r.operator {
            Operator::Equals => {
                let Some(value) = r.values.first() else {
                    self.push("false");
                    return;
                };
                let pair = serde_json::json!({ r.key.clone(): value });
                let p = self.bind(Param::Json(pair), "jsonb");
                self.push(format!("labels @> {p}"));
            }
            Operator::In => {
                let key = self.bind(Param::Text(r.key.clone()), "text");
                let values = self.bind(Param::TextArray(r.values.clone()), "text[]");
                self.push(format!("labels->>{key} = ANY({values})"));
            }
            Operator::NotEquals | Operator::NotIn => {
                let key = self.bind(Param::Text(r.key.clone()), "text");
                let values = self.bind(Param::TextArray(r.values.clone()), "text[]");
                self.push(format!("NOT coalesce(labels->>{key} = ANY({values}), false)"));
            }
            Operator::Exists => {
                let key = self.bind(Param::Text(r.key.clone()), "text");
                self.push(format!("labels ? {key}"));
            }
            Operator::DoesNotExist => {
                let key = self.bind(Param::Text(r.key.clone()), "text");
                self.push(format!("NOT (labels ? {key})"));
            }
            Operator::GreaterThan | Operator::LessThan => {
                let bound = match r.values.as_slice() {
                    [v] => v.parse::<i64>().ok(),
                    _ => None,
                };
                let Some(bound) = bound else {
                    // apimachinery: a requirement whose value is not one integer matches nothing.
                    self.push("false");
                    return;
                };
                let op = if r.operator == Operator::GreaterThan {
                    ">"
                } else {
                    "<"
                };
                let key = self.bind(Param::Text(r.key.clone()), "text");
                let bound = self.bind(Param::Int(bound), "bigint");
                let value = format!("(labels->>{key})");
                self.push(format!("{} {op} {bound}", label_int(&value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use prext_api::fields::FieldRequirement;

    use super::*;

    fn req(key: &str, operator: Operator, values: &[&str]) -> LabelSelector {
        LabelSelector {
            requirements: vec![Requirement {
                key: key.to_owned(),
                operator,
                values: values.iter().map(|v| (*v).to_owned()).collect(),
            }],
        }
    }

    #[test]
    fn values_are_bound_never_inlined() {
        let evil = "x'); DROP TABLE objects; --";
        let mut p = Predicate::default();
        p.labels(&req(evil, Operator::Equals, &[evil]));
        p.labels(&req(evil, Operator::NotIn, &[evil, "b"]));
        p.labels(&req(evil, Operator::Exists, &[]));
        p.labels(&req(evil, Operator::GreaterThan, &["5"]));
        p.fields(&FieldSelector {
            requirements: vec![FieldRequirement {
                field: Field::Name,
                op: FieldOp::NotEquals,
                value: evil.into(),
            }],
        });
        let sql = p.where_sql();
        assert!(!sql.contains("DROP"), "{sql}");
        assert_eq!(
            sql,
            " WHERE labels @> $1::jsonb AND NOT coalesce(labels->>$2::text = ANY($3::text[]), false) \
             AND labels ? $4::text AND (CASE WHEN (labels->>$5::text) ~ '^[+-]?[0-9]+$' THEN \
             CASE WHEN (labels->>$5::text)::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 \
             THEN (labels->>$5::text)::numeric END END) > $6::bigint AND name <> $7::text"
        );
        assert_eq!(p.params.len(), 7);
        assert_eq!(p.params[0], Param::Json(serde_json::json!({ evil: evil })));
        assert_eq!(p.params[5], Param::Int(5));
    }

    #[test]
    fn impossible_requirements_match_nothing() {
        for s in [
            req("tier", Operator::GreaterThan, &["x"]),
            req("tier", Operator::LessThan, &["99999999999999999999"]),
            req("tier", Operator::Equals, &[]),
        ] {
            let mut p = Predicate::default();
            p.labels(&s);
            assert_eq!(p.where_sql(), " WHERE false", "{s:?}");
            assert!(p.params.is_empty());
        }
        assert_eq!(Predicate::default().where_sql(), "");
    }
}
