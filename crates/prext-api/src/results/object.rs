//! `PolicyResult` items: a stored result as a Kubernetes-style object, its name, and its
//! Table row.
//!
//! A result's name is `<report kind>.<report name>.<index>` (`polr.nginx-5fbc65fff.3`):
//! the report kind's short name (`polr`, `cpolr`, `reps`, `creps`, `ephr`, `cephr`, or
//! `prext-policyreport` for the compatibility group), the report's name, and the result's
//! position in the report's `results`. It is unique in its namespace and parses back, so
//! `get` of one result is a lookup, and its `resourceVersion` is the report's.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::query::ResultRecord;
use super::{resource, API_VERSION};
use crate::resources::Computed;
use crate::resources::{ResourceDef, RESOURCES};

/// The report kind served as `resource` (`plural.group`).
pub fn report_def(resource: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| {
        resource
            .strip_prefix(r.plural)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|group| group == r.group)
    })
}

/// The name token of a report kind: its short name, or `<first group label>-<singular>`.
pub fn kind_token(def: &ResourceDef) -> String {
    match def.short_names.first() {
        Some(short) => (*short).to_owned(),
        None => format!(
            "{}-{}",
            def.group.split('.').next().unwrap_or(def.group),
            def.singular
        ),
    }
}

/// The name of a result.
pub fn result_name(r: &ResultRecord) -> String {
    let token = report_def(&r.resource).map_or_else(|| r.resource.replace('.', "-"), kind_token);
    format!("{token}.{}.{}", r.report, r.index)
}

/// Parses a result name into `(resource, report name, index)`.
pub fn parse_name(name: &str) -> Option<(String, String, i64)> {
    let (token, rest) = name.split_once('.')?;
    let (report, index) = rest.rsplit_once('.')?;
    if report.is_empty() || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index: i64 = index.parse().ok()?;
    let def = RESOURCES.iter().find(|r| kind_token(r) == token)?;
    Some((def.group_resource(), report.to_owned(), index))
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.into(), Value::String(v.clone()));
    }
}

/// The `PolicyResult` object of a stored result.
pub fn to_object(r: &ResultRecord) -> Value {
    let def = report_def(&r.resource);
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(result_name(r)));
    if !r.namespace.is_empty() {
        metadata.insert("namespace".into(), json!(r.namespace));
    }
    metadata.insert("resourceVersion".into(), json!(r.report_revision.to_string()));
    metadata.insert("creationTimestamp".into(), json!(r.report_created));
    let mut report = Map::new();
    if let Some(def) = def {
        report.insert("apiVersion".into(), json!(def.api_version()));
        report.insert("kind".into(), json!(def.kind));
    }
    report.insert("name".into(), json!(r.report));
    if !r.namespace.is_empty() {
        report.insert("namespace".into(), json!(r.namespace));
    }
    report.insert("uid".into(), json!(r.report_uid));
    report.insert("resourceVersion".into(), json!(r.report_revision.to_string()));

    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(API_VERSION));
    obj.insert("kind".into(), json!(resource(Computed::PolicyResults).kind));
    obj.insert("metadata".into(), Value::Object(metadata));
    obj.insert("report".into(), Value::Object(report));
    obj.insert("index".into(), json!(r.index));
    for (key, value) in [
        ("policy", &r.policy),
        ("rule", &r.rule),
        ("result", &r.result),
        ("severity", &r.severity),
        ("category", &r.category),
        ("source", &r.source),
        ("message", &r.message),
    ] {
        insert_some(&mut obj, key, value);
    }
    if let Some(scored) = r.scored {
        obj.insert("scored".into(), json!(scored));
    }
    if let Some(seconds) = r.timestamp {
        obj.insert("timestamp".into(), json!({"seconds": seconds, "nanos": 0}));
    }
    let parse = |text: &str, empty: Value| serde_json::from_str::<Value>(text).unwrap_or(empty);
    obj.insert("properties".into(), parse(&r.properties, json!({})));
    obj.insert("resources".into(), parse(&r.resources, json!([])));
    let mut subject = Map::new();
    for (key, value) in [
        ("apiVersion", &r.subject_api_version),
        ("kind", &r.subject_kind),
        ("namespace", &r.subject_namespace),
        ("name", &r.subject_name),
        ("uid", &r.subject_uid),
    ] {
        insert_some(&mut subject, key, value);
    }
    if !subject.is_empty() {
        obj.insert("subject".into(), Value::Object(subject));
    }
    Value::Object(obj)
}

/// `(name, type, priority, description)` of every Table column.
const COLUMNS: [(&str, &str, i32, &str); 11] = [
    (
        "Report",
        "string",
        0,
        "The report holding the result: <kind>/<name>.",
    ),
    ("Policy", "string", 0, "The policy that produced the result."),
    ("Rule", "string", 0, "The rule of the policy."),
    ("Result", "string", 0, "pass, fail, warn, error or skip."),
    ("Severity", "string", 0, "critical, high, medium, low or info."),
    ("Subject", "string", 0, "What the result is about: <kind>/<name>."),
    (
        "Age",
        "date",
        0,
        "Time since the result's timestamp (else the report's creation).",
    ),
    ("Source", "string", 1, "The tool that produced the result."),
    ("Category", "string", 1, "The result's category."),
    (
        "Message",
        "string",
        1,
        "The result's message (first 100 characters).",
    ),
    (
        "Name",
        "string",
        1,
        "The result's name: <report kind>.<report name>.<index>.",
    ),
];

/// The `columnDefinitions` of a PolicyResult Table.
pub fn column_definitions() -> Value {
    Value::Array(
        COLUMNS
            .iter()
            .map(|(name, type_, priority, description)| {
                json!({"name": name, "type": type_, "format": "", "description": description, "priority": priority})
            })
            .collect(),
    )
}

/// Longest message shown in a Table cell, in characters.
const MESSAGE_CELL: usize = 100;

/// The Table cells of a result, one per [`column_definitions`] entry.
pub fn cells(r: &ResultRecord, now: Timestamp) -> Vec<Value> {
    let text = |v: &Option<String>| v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()));
    let report = match report_def(&r.resource) {
        Some(def) => format!("{}/{}", kind_token(def), r.report),
        None => r.report.clone(),
    };
    let subject = match (&r.subject_kind, &r.subject_name) {
        (Some(kind), Some(name)) => Value::String(format!("{kind}/{name}")),
        (None, Some(name)) => Value::String(name.clone()),
        (Some(kind), None) => Value::String(kind.clone()),
        (None, None) => Value::Null,
    };
    let message = r.message.as_ref().map_or(Value::Null, |m| {
        let first_line = m.lines().next().unwrap_or_default();
        let mut shown: String = first_line.chars().take(MESSAGE_CELL).collect();
        if shown.len() < m.len() {
            shown.push('…');
        }
        Value::String(shown)
    });
    vec![
        Value::String(report),
        text(&r.policy),
        text(&r.rule),
        text(&r.result),
        text(&r.severity),
        subject,
        Value::String(age(r, now)),
        text(&r.source),
        text(&r.category),
        message,
        Value::String(result_name(r)),
    ]
}

/// The result's age as kubectl prints it: from its timestamp, else from its report's creation.
fn age(r: &ResultRecord, now: Timestamp) -> String {
    let since = match r.timestamp.filter(|s| *s > 0) {
        Some(seconds) => Timestamp::from_second(seconds).ok(),
        None => r.report_created.parse::<Timestamp>().ok(),
    };
    match since {
        Some(t) => crate::duration::human(now.duration_since(t).as_secs()),
        None => "<unknown>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ResultRecord {
        ResultRecord {
            namespace: "team-a".into(),
            resource: "policyreports.wgpolicyk8s.io".into(),
            report: "trivy.nginx".into(),
            report_uid: "u1".into(),
            report_revision: 42,
            report_created: "2024-05-01T10:00:00Z".into(),
            index: 7,
            policy: Some("CVE-2020-27350".into()),
            result: Some("fail".into()),
            severity: Some("high".into()),
            timestamp: Some(1_714_557_600),
            message: Some("apt: integer overflows\nsecond line".into()),
            properties: r#"{"score":"8.1"}"#.into(),
            resources: "[]".into(),
            subject_kind: Some("Pod".into()),
            subject_name: Some("nginx".into()),
            ..ResultRecord::default()
        }
    }

    #[test]
    fn names_parse_back_for_every_kind() {
        let mut r = record();
        for def in RESOURCES {
            r.resource = def.group_resource();
            let name = result_name(&r);
            assert!(!kind_token(def).contains('.'), "{name}");
            assert_eq!(
                parse_name(&name),
                Some((def.group_resource(), "trivy.nginx".into(), 7)),
                "{name}"
            );
        }
        assert_eq!(result_name(&record()), "polr.trivy.nginx.7");
        for bad in [
            "polr",
            "polr.x",
            "polr..1",
            "polr.x.-1",
            "nope.x.1",
            "polr.x.1a",
            "",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn object_shape() {
        let obj = to_object(&record());
        assert_eq!(obj["kind"], "PolicyResult");
        assert_eq!(obj["metadata"]["name"], "polr.trivy.nginx.7");
        assert_eq!(obj["metadata"]["namespace"], "team-a");
        assert_eq!(obj["metadata"]["resourceVersion"], "42");
        assert_eq!(obj["report"]["kind"], "PolicyReport");
        assert_eq!(obj["report"]["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(obj["properties"]["score"], "8.1");
        assert_eq!(obj["timestamp"]["seconds"], 1_714_557_600);
        assert_eq!(obj["subject"], json!({"kind": "Pod", "name": "nginx"}));
        assert!(obj.get("rule").is_none() && obj.get("scored").is_none());
        let mut cluster = record();
        cluster.namespace = String::new();
        cluster.resource = "clusterpolicyreports.wgpolicyk8s.io".into();
        let obj = to_object(&cluster);
        assert!(obj["metadata"].get("namespace").is_none());
        assert_eq!(obj["report"]["kind"], "ClusterPolicyReport");
    }

    #[test]
    fn table_cells() {
        let now = Timestamp::from_second(1_714_557_600 + 3 * 3600).expect("time");
        let cells = cells(&record(), now);
        assert_eq!(cells.len(), COLUMNS.len());
        assert_eq!(column_definitions().as_array().map(Vec::len), Some(COLUMNS.len()));
        assert_eq!(cells[0], "polr/trivy.nginx");
        assert_eq!(cells[2], Value::Null);
        assert_eq!(cells[5], "Pod/nginx");
        assert_eq!(cells[6], "3h");
        assert_eq!(cells[9], "apt: integer overflows…");
        let mut old = record();
        old.timestamp = None;
        old.report_created = "2024-04-29T10:00:00Z".into();
        assert_eq!(super::cells(&old, now)[6], "2d3h");
    }
}
