//! Label and field selectors lowered to SQL predicates over the `objects` table.
//!
//! Every value is a bound parameter; only fixed SQL text and `?` placeholders are written into
//! the query. Labels live in the `labels` JSON column; a key is looked up with
//! `json_extract(labels, ?)` and the path `$."key"` (quoted, so dots and slashes in
//! `app.kubernetes.io/name` are part of the key). The semantics are apimachinery's:
//! `!=` and `notin` also match objects without the key, `in`/`=` require it, and `>`/`<`
//! compare integers and never match a value that is not one.

use prext_api::fields::{Field, FieldOp, FieldSelector};
use prext_api::labels::{LabelSelector, Operator, Requirement};
use rusqlite::types::Value;

/// A SQL condition and its parameters, built up requirement by requirement.
#[derive(Debug, Clone, Default)]
pub(crate) struct Predicate {
    /// Conditions to be joined with `AND`.
    conditions: Vec<String>,
    /// The parameters of the `?` placeholders, in order.
    pub(crate) params: Vec<Value>,
}

impl Predicate {
    /// Adds a condition with its parameters.
    pub(crate) fn push(&mut self, condition: impl Into<String>, params: impl IntoIterator<Item = Value>) {
        self.conditions.push(condition.into());
        self.params.extend(params);
    }

    /// ` WHERE c1 AND c2 …`, or an empty string when there is no condition.
    pub(crate) fn where_sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
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
            self.push(format!("{column} {op} ?"), [Value::Text(r.value.clone())]);
        }
    }

    fn label(&mut self, r: &Requirement) {
        // The label's value, or NULL when the object has no such key.
        let (value_sql, key_params) = label_value(&r.key);
        let values = || r.values.iter().map(|v| Value::Text(v.clone()));
        let placeholders = vec!["?"; r.values.len()].join(", ");
        match r.operator {
            Operator::Equals | Operator::In => {
                let params = key_params.into_iter().chain(values());
                self.push(format!("{value_sql} IN ({placeholders})"), params);
            }
            Operator::NotEquals | Operator::NotIn => {
                let key_twice = key_params.iter().cloned().chain(key_params.iter().cloned());
                self.push(
                    format!("({value_sql} IS NULL OR {value_sql} NOT IN ({placeholders}))"),
                    key_twice.chain(values()),
                );
            }
            Operator::Exists => self.push(format!("{value_sql} IS NOT NULL"), key_params),
            Operator::DoesNotExist => self.push(format!("{value_sql} IS NULL"), key_params),
            Operator::GreaterThan | Operator::LessThan => {
                let bound = match r.values.as_slice() {
                    [v] => v.parse::<i64>().ok(),
                    _ => None,
                };
                let Some(bound) = bound else {
                    // apimachinery: a requirement whose value is not one integer matches nothing.
                    self.push("0", []);
                    return;
                };
                let op = if r.operator == Operator::GreaterThan {
                    ">"
                } else {
                    "<"
                };
                let params = key_params.into_iter().chain([Value::Integer(bound)]);
                self.push(format!("prext_label_int({value_sql}) {op} ?"), params);
            }
        }
    }
}

/// SQL for the value of label `key` (NULL when absent), with its parameters.
fn label_value(key: &str) -> (&'static str, Vec<Value>) {
    if key.contains('"') {
        // A JSON path label cannot escape a double quote: look the key up by equality instead.
        (
            "(SELECT je.value FROM json_each(objects.labels) AS je WHERE je.key = ?)",
            vec![Value::Text(key.to_owned())],
        )
    } else {
        (
            "json_extract(objects.labels, ?)",
            vec![Value::Text(format!("$.\"{key}\""))],
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use prext_api::fields::FieldRequirement;
    use rusqlite::Connection;

    use super::*;

    /// Label pairs of a test object.
    type Labels<'a> = &'a [(&'a str, &'a str)];

    /// An in-memory table shaped like `objects`, with the functions the predicates use.
    fn empty_db() -> Connection {
        let conn = Connection::open_in_memory().expect("memory db");
        super::super::schema::register_functions(&conn).expect("functions");
        conn.execute_batch("CREATE TABLE objects (namespace TEXT, name TEXT, labels TEXT)")
            .expect("table");
        conn
    }

    fn insert(conn: &Connection, ns: &str, name: &str, labels: &BTreeMap<String, String>) {
        let labels = serde_json::to_string(labels).expect("json");
        conn.execute(
            "INSERT INTO objects VALUES (?1, ?2, ?3)",
            rusqlite::params![ns, name, labels],
        )
        .expect("insert");
    }

    /// Objects `(namespace, name, labels)`.
    fn db(objects: &[(&str, &str, Labels<'_>)]) -> Connection {
        let conn = empty_db();
        for (ns, name, labels) in objects {
            let labels = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            insert(&conn, ns, name, &labels);
        }
        conn
    }

    fn select(conn: &Connection, p: &Predicate) -> Vec<String> {
        let sql = format!("SELECT name FROM objects{} ORDER BY name", p.where_sql());
        let mut stmt = conn.prepare(&sql).expect("prepare");
        let rows = stmt
            .query_map(rusqlite::params_from_iter(p.params.iter()), |r| r.get(0))
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> LabelSelector {
        LabelSelector {
            requirements: vec![Requirement {
                key: key.to_owned(),
                operator,
                values: values.iter().map(|v| (*v).to_owned()).collect(),
            }],
        }
    }

    fn labels(conn: &Connection, s: &LabelSelector) -> Vec<String> {
        let mut p = Predicate::default();
        p.labels(s);
        select(conn, &p)
    }

    fn sample() -> Connection {
        db(&[
            ("ns", "a", &[("app.kubernetes.io/name", "web"), ("tier", "1")]),
            ("ns", "b", &[("app.kubernetes.io/name", "db"), ("tier", "007")]),
            ("ns", "c", &[("tier", "x")]),
            ("ns", "d", &[]),
            ("ns", "e", &[("we\"ird", "q")]),
        ])
    }

    #[test]
    fn every_label_operator() {
        use Operator::*;
        let conn = sample();
        let app = "app.kubernetes.io/name";
        let cases: &[(LabelSelector, &[&str])] = &[
            (req(app, Equals, &["web"]), &["a"]),
            (req(app, In, &["web", "db"]), &["a", "b"]),
            (req(app, NotEquals, &["web"]), &["b", "c", "d", "e"]),
            (req(app, NotIn, &["web", "db"]), &["c", "d", "e"]),
            (req(app, Exists, &[]), &["a", "b"]),
            (req(app, DoesNotExist, &[]), &["c", "d", "e"]),
            (req("tier", GreaterThan, &["1"]), &["b"]),
            (req("tier", LessThan, &["7"]), &["a"]),
            (req("tier", GreaterThan, &["x"]), &[]),
            (req("app.kubernetes.io", Exists, &[]), &[]),
            (req("we\"ird", Equals, &["q"]), &["e"]),
            (req("we\"ird", NotEquals, &["q"]), &["a", "b", "c", "d"]),
            (LabelSelector::default(), &["a", "b", "c", "d", "e"]),
        ];
        for (selector, want) in cases {
            assert_eq!(labels(&conn, selector), *want, "{selector:?}");
        }
        let both = LabelSelector {
            requirements: [req("tier", Exists, &[]), req(app, NotEquals, &["web"])]
                .into_iter()
                .flat_map(|s| s.requirements)
                .collect(),
        };
        assert_eq!(labels(&conn, &both), ["b", "c"]);
    }

    #[test]
    fn field_requirements() {
        let conn = db(&[("x", "a", &[]), ("y", "a", &[]), ("y", "b", &[])]);
        let sel = |reqs: &[(Field, FieldOp, &str)]| FieldSelector {
            requirements: reqs
                .iter()
                .map(|(field, op, value)| FieldRequirement {
                    field: *field,
                    op: *op,
                    value: (*value).to_owned(),
                })
                .collect(),
        };
        let run = |s: &FieldSelector| {
            let mut p = Predicate::default();
            p.fields(s);
            let sql = format!(
                "SELECT namespace || '/' || name FROM objects{} ORDER BY 1",
                p.where_sql()
            );
            let mut stmt = conn.prepare(&sql).expect("prepare");
            let rows = stmt
                .query_map(rusqlite::params_from_iter(p.params.iter()), |r| {
                    r.get::<_, String>(0)
                })
                .expect("query");
            rows.collect::<Result<Vec<_>, _>>().expect("rows")
        };
        assert_eq!(run(&sel(&[(Field::Name, FieldOp::Equals, "a")])), ["x/a", "y/a"]);
        assert_eq!(
            run(&sel(&[(Field::Namespace, FieldOp::NotEquals, "x")])),
            ["y/a", "y/b"]
        );
        assert_eq!(
            run(&sel(&[
                (Field::Namespace, FieldOp::Equals, "y"),
                (Field::Name, FieldOp::NotEquals, "a")
            ])),
            ["y/b"]
        );
        // A value that looks like SQL is just a value.
        assert!(run(&sel(&[(Field::Name, FieldOp::Equals, "a' OR '1'='1")])).is_empty());
    }

    mod agreement {
        use proptest::prelude::*;

        use super::*;

        const KEYS: &[&str] = &["app", "app.kubernetes.io/name", "tier", "example.com/a_b-c"];
        const VALUES: &[&str] = &["", "web", "db", "1", "007", "10", "-3", "x"];
        const OPERATORS: &[Operator] = &[
            Operator::Equals,
            Operator::NotEquals,
            Operator::In,
            Operator::NotIn,
            Operator::Exists,
            Operator::DoesNotExist,
            Operator::GreaterThan,
            Operator::LessThan,
        ];

        fn label_set() -> impl Strategy<Value = BTreeMap<String, String>> {
            prop::collection::btree_map(
                prop::sample::select(KEYS).prop_map(str::to_owned),
                prop::sample::select(VALUES).prop_map(str::to_owned),
                0..=KEYS.len(),
            )
        }

        fn requirement() -> impl Strategy<Value = Requirement> {
            (
                prop::sample::select(KEYS),
                prop::sample::select(OPERATORS),
                prop::collection::vec(prop::sample::select(VALUES).prop_map(str::to_owned), 1..4),
            )
                .prop_map(|(key, operator, mut values)| {
                    match operator {
                        Operator::Exists | Operator::DoesNotExist => values.clear(),
                        Operator::In | Operator::NotIn => {}
                        _ => values.truncate(1),
                    }
                    Requirement {
                        key: key.to_owned(),
                        operator,
                        values,
                    }
                })
        }

        proptest! {
            /// The SQL lowering selects exactly what the in-memory evaluator (used for watch
            /// events) matches.
            #[test]
            fn sql_agrees_with_in_memory_matching(
                objects in prop::collection::vec(label_set(), 1..10),
                requirements in prop::collection::vec(requirement(), 0..4),
            ) {
                let conn = empty_db();
                for (i, labels) in objects.iter().enumerate() {
                    insert(&conn, "ns", &format!("o{i:02}"), labels);
                }
                let selector = LabelSelector { requirements };
                let want: Vec<String> = objects
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| selector.matches(l))
                    .map(|(i, _)| format!("o{i:02}"))
                    .collect();
                prop_assert_eq!(labels(&conn, &selector), want, "{:?}", selector);
            }
        }
    }
}
