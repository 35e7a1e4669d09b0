//! The OpenAPI query parameters and schemas of `findings` and `resulttrends` (see
//! [`crate::results::findings`]), used by [`super::results`] for the
//! `results.prext.io/v1alpha1` document.

use serde_json::{json, Value};

use super::meta;
use super::results::{gvk, integer, object, query, reference, string, type_meta};
use crate::resources::Computed;
use crate::results::resource;

fn boolean(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

/// The query parameters of a list of findings or (`trends`) of trends.
pub(super) fn params(trends: bool) -> Vec<Value> {
    let mut params = vec![
        query("fieldSelector", "string", "Equality on finding fields (result, severity, policy, rule, category, source, namespace, report.name, report.kind, subject.*), and open=true|false, since, until, event (and groupBy, interval for trends)."),
        query("labelSelector", "string", "Set expressions on the same fields: severity in (high,critical)."),
        query("open", "string", "true: open findings only; false: resolved ones only."),
        query("since", "string", "The window's start: RFC 3339, or an age before now (7d, 12h, 30m)."),
        query("until", "string", "The window's end (exclusive): RFC 3339, or an age before now."),
        query("resourceVersion", "string", "Accepted for compatibility; findings are read from the latest state."),
    ];
    if trends {
        params.push(query(
            "groupBy",
            "string",
            "namespace (default), policy, rule, category, source, result, severity or subject.kind.",
        ));
        params.push(query(
            "interval",
            "string",
            "day (default, the last 30 days) or hour (the last 48 hours).",
        ));
    } else {
        params.push(query("event", "string", "What since/until bound: active (default: open at some moment of the window), opened or resolved."));
        params.push(query("limit", "integer", "Page size (at most 10000)."));
        params.push(query(
            "continue",
            "string",
            "The continue token of the previous page.",
        ));
        params.push(query(
            "count",
            "boolean",
            "Also return the number of matching findings (all pages) in `total`.",
        ));
    }
    params
}

/// The schema of a `Finding`.
pub(super) fn finding() -> Value {
    let mut props: Vec<(&str, Value)> = type_meta(resource(Computed::Findings).kind).into();
    props.extend([
        ("metadata", meta::meta_property("ObjectMeta", "name is finding-<id>; namespace is the report's; creationTimestamp is firstSeen.")),
        ("policy", string("The policy.")),
        ("rule", string("The rule.")),
        ("result", string("fail, warn or error, as last written.")),
        ("severity", string("As last written.")),
        ("category", string("As last written.")),
        ("source", string("As last written.")),
        ("message", string("As last written.")),
        ("subject", reference("What the finding is about: its uid, else kind/namespace/name, identifies it with policy and rule.")),
        ("report", reference("The report that carried it last.")),
        ("open", boolean("Whether a report still carries it.")),
        ("firstSeen", string("The time of the write that opened it (RFC 3339, milliseconds).")),
        ("lastSeen", string("The time of the last write of a report carrying it.")),
        ("resolvedAt", string("The time of the write after which no report carried it; absent while open.")),
        ("firstSeenRevision", string("The resourceVersion of the write that opened it.")),
        ("lastSeenRevision", string("The resourceVersion of the last write that carried it.")),
        ("resolvedRevision", string("The resourceVersion of the write that resolved it.")),
    ]);
    let mut s = object(
        "A failing result over time: when it was first seen, last seen and resolved.",
        props,
    );
    s["x-kubernetes-group-version-kind"] = gvk(resource(Computed::Findings).kind);
    s
}

/// The schema of a `ResultTrend`.
pub(super) fn trend() -> Value {
    let mut props: Vec<(&str, Value)> = type_meta(resource(Computed::ResultTrends).kind).into();
    props.extend([
        (
            "metadata",
            meta::meta_property("ObjectMeta", "name is the group's value."),
        ),
        ("groupBy", string("What the findings are grouped by.")),
        ("group", string("The group's value (empty for a missing value).")),
        ("interval", string("day or hour.")),
        (
            "points",
            json!({"type": "array", "description": "One point per interval, oldest first.",
            "items": object("Open findings at the end of an interval (the last one: now).", vec![
                ("time", string("The interval's start (RFC 3339).")),
                ("count", integer("Findings open at its end.")),
            ])}),
        ),
        ("first", integer("The first point's count.")),
        ("last", integer("The last point's count.")),
        ("min", integer("The smallest count.")),
        ("max", integer("The largest count.")),
    ]);
    let mut s = object("Open findings of one group per day or hour.", props);
    s["x-kubernetes-group-version-kind"] = gvk(resource(Computed::ResultTrends).kind);
    s
}
