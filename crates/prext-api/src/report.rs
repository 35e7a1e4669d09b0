//! Extraction of a report's summary and results into flat rows for the result table, so that
//! questions about results are answered by SQL instead of by parsing every report.
//!
//! [`index`] runs after schema validation, but it never assumes a shape: a missing or
//! mistyped field becomes `None` (or `0` for summary counts, `{}`/`[]` for properties and
//! resources), never a panic. Values are taken as written: a summary that disagrees with the
//! results is kept as is, because producers routinely send truncated or partial reports.

use serde_json::{Map, Value};

use crate::resources::{ReportLayout, ResourceDef};

/// `summary` counts as written by the producer (they may disagree with `results`: kept as is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub pass: i64,
    pub fail: i64,
    pub warn: i64,
    pub error: i64,
    pub skip: i64,
}

/// The object a result is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
}

/// One result of a report, flattened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultRow {
    /// Position in `results`.
    pub index: i64,
    pub source: Option<String>,
    pub policy: Option<String>,
    pub rule: Option<String>,
    pub result: Option<String>,
    pub severity: Option<String>,
    pub category: Option<String>,
    pub scored: Option<bool>,
    pub message: Option<String>,
    /// `timestamp.seconds`, if present.
    pub timestamp: Option<i64>,
    /// `properties` as a JSON object (string values), `{}` when absent.
    pub properties: Value,
    /// The first entry of `resources`, else the report's `scope`.
    pub subject: Subject,
    /// All of `resources` (JSON array), `[]` when absent.
    pub resources: Value,
}

/// What the store indexes for one report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportIndex {
    pub summary: Summary,
    pub scope: Subject,
    pub results: Vec<ResultRow>,
}

impl ReportIndex {
    /// A digest of the result rows (everything the store writes per result, subjects
    /// included; not the summary or scope), so that a store can skip rewriting the rows of a
    /// report whose rewrite leaves them as they were (a label change, a new annotation, a
    /// summary fix). Stable across builds and platforms, as it is stored: the first 16 bytes of
    /// a SHA-256 over a length-prefixed encoding of every field. Stores also derive rows from
    /// the results (numeric properties, counts): a change to how those are derived must change
    /// the tag hashed first, so that stored digests no longer match and the rows are rewritten.
    pub fn results_digest(&self) -> [u8; 16] {
        use sha2::{Digest, Sha256};
        fn put(h: &mut Sha256, field: Option<&[u8]>) {
            match field {
                None => h.update([0u8]),
                Some(bytes) => {
                    h.update([1u8]);
                    h.update((bytes.len() as u64).to_le_bytes());
                    h.update(bytes);
                }
            }
        }
        let mut h = Sha256::new();
        let mut buf = Vec::new();
        h.update(b"prext results digest v1");
        h.update((self.results.len() as u64).to_le_bytes());
        for r in &self.results {
            put(&mut h, Some(&r.index.to_le_bytes()));
            let subject = &r.subject;
            for text in [
                &r.source,
                &r.policy,
                &r.rule,
                &r.result,
                &r.severity,
                &r.category,
                &r.message,
                &subject.api_version,
                &subject.kind,
                &subject.namespace,
                &subject.name,
                &subject.uid,
            ] {
                put(&mut h, text.as_deref().map(str::as_bytes));
            }
            put(&mut h, r.scored.map(|b| [u8::from(b)]).as_ref().map(|b| &b[..]));
            put(&mut h, r.timestamp.map(i64::to_le_bytes).as_ref().map(|b| &b[..]));
            // Serialized into one reused buffer (the bytes of `Value::to_string`).
            for value in [&r.properties, &r.resources] {
                buf.clear();
                // Writing a `Value` into a `Vec` cannot fail.
                let _ = serde_json::to_writer(&mut buf, value);
                put(&mut h, Some(&buf));
            }
        }
        let full = h.finalize();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&full[..16]);
        digest
    }
}

/// Extracts the index of a (validated) report object.
///
/// `summary`, `scope` and `results` are read from the object's top level or from `spec`,
/// following `def.layout`. For the `spec` layout (Kyverno's ephemeral reports, which have no
/// `scope`), `spec.owner` stands in for the scope when `spec.scope` is absent.
pub fn index(def: &ResourceDef, obj: &Value) -> ReportIndex {
    let parent = def
        .layout()
        .map_or(&[][..], ReportLayout::parent)
        .iter()
        .try_fold(obj, |v, key| v.get(*key))
        .and_then(Value::as_object);
    let Some(parent) = parent else {
        return ReportIndex::default();
    };

    let mut scope = parent.get("scope").map(subject).unwrap_or_default();
    if def.layout() == Some(ReportLayout::Spec) && scope == Subject::default() {
        scope = parent.get("owner").map(subject).unwrap_or_default();
    }

    let results = parent
        .get("results")
        .and_then(Value::as_array)
        .map(|results| {
            results
                .iter()
                .enumerate()
                .map(|(i, r)| result_row(i, r, &scope))
                .collect()
        })
        .unwrap_or_default();

    ReportIndex {
        summary: parent.get("summary").map(summary).unwrap_or_default(),
        scope,
        results,
    }
}

fn summary(v: &Value) -> Summary {
    let count = |key: &str| v.get(key).map(integer).unwrap_or(0);
    Summary {
        pass: count("pass"),
        fail: count("fail"),
        warn: count("warn"),
        error: count("error"),
        skip: count("skip"),
    }
}

/// An integer as written; values beyond `i64` saturate, non-integers count as 0.
fn integer(v: &Value) -> i64 {
    v.as_i64().or_else(|| v.as_u64().map(|_| i64::MAX)).unwrap_or(0)
}

fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An `ObjectReference` (or `OwnerReference`); fields of the wrong type are ignored.
fn subject(v: &Value) -> Subject {
    Subject {
        api_version: string(v, "apiVersion"),
        kind: string(v, "kind"),
        namespace: string(v, "namespace"),
        name: string(v, "name"),
        uid: string(v, "uid"),
    }
}

fn result_row(index: usize, r: &Value, scope: &Subject) -> ResultRow {
    let resources = r
        .get("resources")
        .filter(|v| v.is_array())
        .cloned()
        .unwrap_or_else(|| Value::Array(Vec::new()));
    let subject = resources
        .as_array()
        .and_then(|a| a.first())
        .map(subject)
        .unwrap_or_else(|| scope.clone());
    ResultRow {
        index: i64::try_from(index).unwrap_or(i64::MAX),
        source: string(r, "source"),
        policy: string(r, "policy"),
        rule: string(r, "rule"),
        result: string(r, "result"),
        severity: string(r, "severity"),
        category: string(r, "category"),
        scored: r.get("scored").and_then(Value::as_bool),
        message: string(r, "message"),
        timestamp: r
            .get("timestamp")
            .and_then(|t| t.get("seconds"))
            .and_then(Value::as_i64),
        properties: r
            .get("properties")
            .filter(|v| v.is_object())
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
        subject,
        resources,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::RESOURCES;

    fn def(kind: &str, layout: ReportLayout) -> &'static ResourceDef {
        RESOURCES
            .iter()
            .find(|r| r.kind == kind && r.layout() == Some(layout))
            .expect("kind in the resource table")
    }

    fn pod(name: &str) -> Value {
        let uid = format!("uid-{name}");
        json!({"apiVersion": "v1", "kind": "Pod", "namespace": "ns", "name": name, "uid": uid})
    }

    #[test]
    fn top_level_report() {
        let obj = json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "PolicyReport",
            "metadata": {"name": "r", "namespace": "ns"},
            "scope": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "ns", "name": "web"},
            // Disagrees with the results, and partial: kept as written.
            "summary": {"pass": 8, "fail": 2},
            "results": [
                {
                    "source": "kyverno", "policy": "require-labels", "rule": "check-team",
                    "result": "fail", "severity": "high", "category": "Best Practices",
                    "scored": true, "message": "label 'team' is required",
                    "timestamp": {"seconds": 1679565894, "nanos": 1679565894},
                    "properties": {"score": "9.8"},
                    "resources": [pod("a"), pod("b")]
                },
                {"policy": "no-latest", "result": "pass"}
            ]
        });
        let idx = index(def("PolicyReport", ReportLayout::TopLevel), &obj);
        assert_eq!(
            idx.summary,
            Summary {
                pass: 8,
                fail: 2,
                ..Summary::default()
            }
        );
        assert_eq!(idx.scope.kind.as_deref(), Some("Deployment"));
        assert_eq!(idx.scope.uid, None);
        assert_eq!(idx.results.len(), 2);

        let first = &idx.results[0];
        assert_eq!(first.index, 0);
        assert_eq!(first.source.as_deref(), Some("kyverno"));
        assert_eq!(first.policy.as_deref(), Some("require-labels"));
        assert_eq!(first.rule.as_deref(), Some("check-team"));
        assert_eq!(first.result.as_deref(), Some("fail"));
        assert_eq!(first.severity.as_deref(), Some("high"));
        assert_eq!(first.category.as_deref(), Some("Best Practices"));
        assert_eq!(first.scored, Some(true));
        assert_eq!(first.message.as_deref(), Some("label 'team' is required"));
        assert_eq!(first.timestamp, Some(1679565894));
        assert_eq!(first.properties, json!({"score": "9.8"}));
        assert_eq!(first.resources, json!([pod("a"), pod("b")]));
        assert_eq!(first.subject.name.as_deref(), Some("a"));
        assert_eq!(first.subject.uid.as_deref(), Some("uid-a"));

        // No resources: the subject is the scope; absent fields are empty, not invented.
        let second = &idx.results[1];
        assert_eq!(second.index, 1);
        assert_eq!(second.subject, idx.scope);
        assert_eq!(second.properties, json!({}));
        assert_eq!(second.resources, json!([]));
        assert_eq!(
            (second.timestamp, second.scored, second.severity.as_deref()),
            (None, None, None)
        );
    }

    #[test]
    fn spec_layout_reads_spec_and_falls_back_to_owner() {
        let obj = json!({
            "apiVersion": "reports.kyverno.io/v1",
            "kind": "EphemeralReport",
            "metadata": {"name": "e", "namespace": "ns"},
            // Top-level fields are ignored for this layout.
            "results": [{"policy": "ignored"}],
            "spec": {
                "owner": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1"},
                "summary": {"pass": 1, "fail": 0, "warn": 0, "error": 0, "skip": 3},
                "results": [{"policy": "p1", "result": "skip"}]
            }
        });
        let idx = index(def("EphemeralReport", ReportLayout::Spec), &obj);
        assert_eq!(idx.summary.pass, 1);
        assert_eq!(idx.summary.skip, 3);
        assert_eq!(idx.scope.kind.as_deref(), Some("Pod"));
        assert_eq!(idx.scope.uid.as_deref(), Some("u1"));
        assert_eq!(idx.results.len(), 1);
        assert_eq!(idx.results[0].policy.as_deref(), Some("p1"));
        assert_eq!(idx.results[0].subject, idx.scope);

        // An explicit spec.scope wins over the owner.
        let mut with_scope = obj.clone();
        with_scope["spec"]["scope"] = json!({"kind": "Namespace", "name": "ns"});
        let idx = index(def("EphemeralReport", ReportLayout::Spec), &with_scope);
        assert_eq!(idx.scope.kind.as_deref(), Some("Namespace"));
    }

    #[test]
    fn missing_and_mistyped_fields_never_panic() {
        let polr = def("PolicyReport", ReportLayout::TopLevel);
        let ephr = def("EphemeralReport", ReportLayout::Spec);
        for obj in [
            json!(null),
            json!("text"),
            json!([1, 2]),
            json!({}),
            json!({"spec": 3}),
            json!({"summary": "x", "scope": 1, "results": {"a": 1}}),
            json!({"summary": {"pass": "1", "fail": 1.5, "warn": -2, "error": 18446744073709551615u64}}),
            json!({"results": [null, 1, "x", {"resources": "x", "properties": [1], "timestamp": 5,
                   "scored": "yes", "policy": 7, "message": null}]}),
        ] {
            let _ = index(ephr, &obj);
            let idx = index(polr, &obj);
            for row in &idx.results {
                assert!(row.properties.is_object());
                assert!(row.resources.is_array());
                assert_eq!(row.policy, None);
                assert_eq!(row.subject, Subject::default());
            }
        }
        let idx = index(
            polr,
            &json!({"summary": {"pass": "1", "fail": 1.5, "warn": -2, "error": 18446744073709551615u64}}),
        );
        assert_eq!(
            idx.summary,
            Summary {
                pass: 0,
                fail: 0,
                warn: -2,
                error: i64::MAX,
                skip: 0
            }
        );
        let idx = index(polr, &json!({"results": [null, {"resources": [3]}]}));
        assert_eq!(idx.results.len(), 2);
        assert_eq!(idx.results[1].index, 1);
        assert_eq!(idx.results[1].resources, json!([3]));
    }

    #[test]
    fn results_digest_follows_the_rows_only() {
        let polr = def("PolicyReport", ReportLayout::TopLevel);
        let report = json!({
            "metadata": {"name": "r", "labels": {"a": "1"}},
            "scope": pod("p"),
            "summary": {"pass": 1},
            "results": [
                {"policy": "p1", "result": "pass", "properties": {"k": "v"}},
                {"policy": "p2", "result": "fail", "resources": [pod("q")]},
            ],
        });
        let base = index(polr, &report).results_digest();
        assert_eq!(
            base,
            index(polr, &report.clone()).results_digest(),
            "deterministic"
        );

        let mut relabelled = report.clone();
        relabelled["metadata"]["labels"]["a"] = json!("2");
        relabelled["summary"] = json!({"pass": 7});
        assert_eq!(
            index(polr, &relabelled).results_digest(),
            base,
            "not the metadata or summary"
        );

        let mut changes: Vec<Value> = Vec::new();
        for (path, value) in [
            ("/results/0/result", json!("fail")),
            ("/results/0/message", json!("now with a message")),
            ("/results/0/properties/k", json!("w")),
            ("/results/1/resources/0/name", json!("other")),
            ("/results/0/timestamp", json!({"seconds": 5, "nanos": 0})),
        ] {
            let mut changed = report.clone();
            match changed.pointer_mut(path) {
                Some(slot) => *slot = value,
                None => {
                    let (parent, key) = path.rsplit_once('/').expect("a path");
                    changed.pointer_mut(parent).expect("parent")[key] = value;
                }
            }
            changes.push(changed);
        }
        // The scope is the subject of results without resources: it counts through them.
        let mut rescoped = report.clone();
        rescoped["scope"] = pod("elsewhere");
        changes.push(rescoped);
        let mut fewer = report.clone();
        fewer["results"].as_array_mut().expect("results").pop();
        changes.push(fewer);
        let mut digests: Vec<[u8; 16]> = changes.iter().map(|c| index(polr, c).results_digest()).collect();
        digests.push(base);
        let distinct: std::collections::BTreeSet<_> = digests.iter().collect();
        assert_eq!(
            distinct.len(),
            digests.len(),
            "every change of a row changes the digest"
        );
        // Pinned (computed independently: the first half of SHA-256 over the tag and a zero
        // count): the digest is stored, so it must not change between builds.
        assert_eq!(
            hex::encode(index(polr, &json!({"results": []})).results_digest()),
            "6c4a6988ef48f442b651080222e9b7e2"
        );
    }
}
