//! `findings` and `resulttrends` of `results.prext.io/v1alpha1` (see `docs/results-api.md`):
//! their query parameters, `Finding` and `ResultTrend` items and Table rows.
//!
//! Parameters (query parameters, or `fieldSelector` terms for plain kubectl):
//! * the field and label selectors of `policyresults` over the finding's fields;
//! * `open=true|false`;
//! * `since`, `until`: RFC 3339 times, or ages (`7d`, `12h`, `30m`, `90s`) before now;
//! * `event=active|opened|resolved` (findings): what `since`/`until` bound (default `active`:
//!   open at some moment of the window);
//! * `groupBy` (trends: `namespace`, `policy`, `rule`, `category`, `source`, `result`,
//!   `severity`, `subject.kind`) and `interval=day|hour`.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::filter::{self, FilterError};
use super::history::{Finding, FindingEvent, FindingFilter, Interval, TrendSeries};
use super::object::{kind_token, report_def};
use super::query::{Condition, ResultColumn};
use super::{resource, API_VERSION};
use crate::resources::Computed;

fn fail<T>(message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(message.into()))
}

/// The parameters of a findings or trends request.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryParams {
    pub filter: FindingFilter,
    pub group_by: ResultColumn,
    pub interval: Interval,
}

/// One parameter as a `(key, value)` pair, from the query or from `fieldSelector` terms.
const OWN_KEYS: [&str; 6] = ["open", "since", "until", "event", "groupBy", "interval"];

/// Parses a time: RFC 3339, or an age before `now` (`7d`, `12h`, `30m`, `90s`), to Unix ms.
pub fn parse_time(s: &str, now: Timestamp) -> Result<i64, FilterError> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let unit = match s.chars().last() {
        Some('d') => 86_400_000,
        Some('h') => 3_600_000,
        Some('m') => 60_000,
        Some('s') => 1_000,
        _ => 0,
    };
    let n: Option<i64> = s.get(..s.len().saturating_sub(1)).and_then(|n| n.parse().ok());
    match n {
        Some(n) if unit > 0 && n >= 0 => Ok(now.as_millisecond() - n.saturating_mul(unit)),
        _ => fail(format!(
            "invalid time {s:?}: an RFC 3339 time (2024-05-01T10:00:00Z) or an age (7d, 12h, 30m, 90s)"
        )),
    }
}

/// Splits a field selector into this module's terms (`open=true`, `since=7d`, …) and the rest.
fn split_own(selector: &str) -> (Vec<(String, String)>, String) {
    let mut own = Vec::new();
    let mut rest = Vec::new();
    let mut term = String::new();
    let mut escaped = false;
    let mut terms = Vec::new();
    for c in selector.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(std::mem::take(&mut term));
            continue;
        }
        term.push(c);
    }
    terms.push(term);
    for t in terms {
        let key = t.split(['=', '!']).next().unwrap_or_default();
        match t.split_once('=') {
            Some((k, v)) if OWN_KEYS.contains(&k) => {
                own.push((k.to_owned(), v.trim_start_matches('=').to_owned()))
            }
            _ if !t.is_empty() && !OWN_KEYS.contains(&key) => rest.push(t),
            _ if t.is_empty() => {}
            _ => rest.push(t),
        }
    }
    (own, rest.join(","))
}

/// The column a trend is grouped by.
pub fn parse_group_by(s: &str) -> Result<ResultColumn, FilterError> {
    Ok(match s {
        "" | "namespace" => ResultColumn::Namespace,
        "policy" => ResultColumn::Policy,
        "rule" => ResultColumn::Rule,
        "category" => ResultColumn::Category,
        "source" => ResultColumn::Source,
        "result" => ResultColumn::Result,
        "severity" => ResultColumn::Severity,
        "subject.kind" => ResultColumn::SubjectKind,
        other => {
            return fail(format!(
                "groupBy: unsupported value {other:?}: namespace, policy, rule, category, source, result, \
                 severity, subject.kind"
            ))
        }
    })
}

/// The name of a grouping column, as `groupBy` writes it.
pub fn group_by_name(c: ResultColumn) -> &'static str {
    match c {
        ResultColumn::Policy => "policy",
        ResultColumn::Rule => "rule",
        ResultColumn::Category => "category",
        ResultColumn::Source => "source",
        ResultColumn::Result => "result",
        ResultColumn::Severity => "severity",
        ResultColumn::SubjectKind => "subject.kind",
        _ => "namespace",
    }
}

impl HistoryParams {
    /// Parses the parameters: `get(key)` reads a query parameter; `namespace` is the path's.
    pub fn parse<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
        namespace: Option<String>,
        now: Timestamp,
    ) -> Result<HistoryParams, FilterError> {
        let (mut own, fields) = split_own(get("fieldSelector").unwrap_or(""));
        for key in OWN_KEYS {
            if let Some(v) = get(key) {
                own.push((key.to_owned(), v.to_owned()));
            }
        }
        let (mut conditions, _) = filter::parse_field_selector(&fields)?;
        conditions.extend(filter::parse_label_selector(get("labelSelector").unwrap_or(""))?);
        if conditions
            .iter()
            .any(|c| !matches!(c, Condition::In(..) | Condition::NotIn(..)))
        {
            return fail("findings are filtered by their fields only: properties, message and metadata.name are not kept");
        }
        let mut p = HistoryParams {
            filter: FindingFilter {
                namespace,
                conditions,
                ..FindingFilter::default()
            },
            group_by: ResultColumn::Namespace,
            interval: Interval::Day,
        };
        for (key, value) in own {
            match key.as_str() {
                "open" => {
                    p.filter.open = match value.as_str() {
                        "true" => Some(true),
                        "false" => Some(false),
                        "" => None,
                        other => return fail(format!("open: invalid value {other:?}: true or false")),
                    }
                }
                "since" => p.filter.since = Some(parse_time(&value, now)?),
                "until" => p.filter.until = Some(parse_time(&value, now)?),
                "event" => {
                    p.filter.event = match value.as_str() {
                        "" | "active" => FindingEvent::Active,
                        "opened" | "new" => FindingEvent::Opened,
                        "resolved" => FindingEvent::Resolved,
                        other => {
                            return fail(format!(
                                "event: invalid value {other:?}: active, opened or resolved"
                            ))
                        }
                    }
                }
                "groupBy" => p.group_by = parse_group_by(&value)?,
                "interval" => {
                    p.interval = match value.as_str() {
                        "" | "day" => Interval::Day,
                        "hour" => Interval::Hour,
                        other => return fail(format!("interval: invalid value {other:?}: day or hour")),
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

/// Unix ms as RFC 3339 with milliseconds (`2024-05-01T10:00:00.123Z`).
pub fn rfc3339(ms: i64) -> String {
    Timestamp::from_millisecond(ms).map_or_else(|_| String::new(), |t| format!("{t:.3}"))
}

/// The name of a finding.
pub fn finding_name(f: &Finding) -> String {
    format!("finding-{}", f.id)
}

/// The `Finding` object.
pub fn finding_object(f: &Finding) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(finding_name(f)));
    if !f.namespace.is_empty() {
        metadata.insert("namespace".into(), json!(f.namespace));
    }
    let rv = f.resolved_revision.unwrap_or(f.last_seen_revision);
    metadata.insert("resourceVersion".into(), json!(rv.to_string()));
    let created =
        Timestamp::from_millisecond(f.first_seen).map_or_else(|_| String::new(), |t| format!("{t:.0}"));
    metadata.insert("creationTimestamp".into(), json!(created));
    let mut report = Map::new();
    if let Some(def) = report_def(&f.resource) {
        report.insert("apiVersion".into(), json!(def.api_version()));
        report.insert("kind".into(), json!(def.kind));
    }
    report.insert("name".into(), json!(f.report));
    if !f.namespace.is_empty() {
        report.insert("namespace".into(), json!(f.namespace));
    }
    let mut subject = Map::new();
    for (key, value) in [
        ("apiVersion", &f.subject.api_version),
        ("kind", &f.subject.kind),
        ("namespace", &f.subject.namespace),
        ("name", &f.subject.name),
        ("uid", &f.subject.uid),
    ] {
        if let Some(v) = value {
            subject.insert(key.into(), json!(v));
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(API_VERSION));
    obj.insert("kind".into(), json!(resource(Computed::Findings).kind));
    obj.insert("metadata".into(), Value::Object(metadata));
    obj.insert("policy".into(), json!(f.policy));
    obj.insert("rule".into(), json!(f.rule));
    obj.insert("result".into(), json!(f.result));
    for (key, value) in [
        ("severity", &f.severity),
        ("category", &f.category),
        ("source", &f.source),
        ("message", &f.message),
    ] {
        if let Some(v) = value {
            obj.insert(key.into(), json!(v));
        }
    }
    obj.insert("subject".into(), Value::Object(subject));
    obj.insert("report".into(), Value::Object(report));
    obj.insert("open".into(), json!(f.resolved_at.is_none()));
    obj.insert("firstSeen".into(), json!(rfc3339(f.first_seen)));
    obj.insert("lastSeen".into(), json!(rfc3339(f.last_seen)));
    if let Some(r) = f.resolved_at {
        obj.insert("resolvedAt".into(), json!(rfc3339(r)));
    }
    obj.insert(
        "firstSeenRevision".into(),
        json!(f.first_seen_revision.to_string()),
    );
    obj.insert("lastSeenRevision".into(), json!(f.last_seen_revision.to_string()));
    if let Some(r) = f.resolved_revision {
        obj.insert("resolvedRevision".into(), json!(r.to_string()));
    }
    Value::Object(obj)
}

/// `(name, type, priority, description)` of each Finding Table column.
const FINDING_COLUMNS: [(&str, &str, u8, &str); 11] = [
    ("Policy", "string", 0, "The policy."),
    ("Rule", "string", 0, "The rule."),
    ("Result", "string", 0, "fail, warn or error, as last written."),
    ("Severity", "string", 0, "As last written."),
    ("Subject", "string", 0, "<kind>/<name> of the subject."),
    ("Open", "boolean", 0, "Whether a report still carries it."),
    ("First Seen", "string", 0, "Since the write that opened it."),
    ("Resolved", "string", 0, "Since the write that resolved it."),
    (
        "Last Seen",
        "string",
        1,
        "Since the last write of a report carrying it.",
    ),
    (
        "Report",
        "string",
        1,
        "<kind short name>/<name> of the report that carried it last.",
    ),
    ("Source", "string", 1, "The producing tool."),
];

fn definitions(columns: &[(&str, &str, u8, &str)]) -> Value {
    Value::Array(
        columns
            .iter()
            .map(|(name, type_, priority, description)| {
                json!({"name": name, "type": type_, "format": "", "description": description, "priority": priority})
            })
            .collect(),
    )
}

/// The `columnDefinitions` of a Finding Table.
pub fn finding_columns() -> Value {
    definitions(&FINDING_COLUMNS)
}

fn age(ms: i64, now: Timestamp) -> String {
    crate::duration::human((now.as_millisecond() - ms).div_euclid(1000))
}

/// The Table cells of a finding.
pub fn finding_cells(f: &Finding, now: Timestamp) -> Vec<Value> {
    let opt = |v: &Option<String>| v.as_ref().map_or(Value::Null, |s| json!(s));
    let subject = match (&f.subject.kind, &f.subject.name) {
        (Some(k), Some(n)) => format!("{k}/{n}"),
        (None, Some(n)) => n.clone(),
        (Some(k), None) => k.clone(),
        (None, None) => String::new(),
    };
    let report = match report_def(&f.resource) {
        Some(def) => format!("{}/{}", kind_token(def), f.report),
        None => f.report.clone(),
    };
    vec![
        json!(f.policy),
        json!(f.rule),
        json!(f.result),
        opt(&f.severity),
        json!(subject),
        json!(f.resolved_at.is_none()),
        json!(age(f.first_seen, now)),
        f.resolved_at.map_or(json!("<none>"), |r| json!(age(r, now))),
        json!(age(f.last_seen, now)),
        json!(report),
        opt(&f.source),
    ]
}

/// first, last, min and max of a series' counts.
pub fn stats(s: &TrendSeries) -> (u64, u64, u64, u64) {
    let counts = s.points.iter().map(|p| p.1);
    (
        s.points.first().map_or(0, |p| p.1),
        s.points.last().map_or(0, |p| p.1),
        counts.clone().min().unwrap_or(0),
        counts.max().unwrap_or(0),
    )
}

/// A terminal sparkline of counts (`▁▂▃▄▅▆▇█`), scaled from 0 to the maximum.
pub fn sparkline(counts: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = counts.iter().copied().max().unwrap_or(0);
    counts
        .iter()
        .map(|&n| match max {
            0 => BARS[0],
            _ => BARS[usize::try_from(n * 7 / max).unwrap_or(7).min(7)],
        })
        .collect()
}

/// The `ResultTrend` object of a series.
pub fn trend_object(
    s: &TrendSeries,
    group_by: ResultColumn,
    interval: Interval,
    namespace: Option<&str>,
) -> Value {
    let (first, last, min, max) = stats(s);
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(s.group));
    if let Some(ns) = namespace {
        metadata.insert("namespace".into(), json!(ns));
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": resource(Computed::ResultTrends).kind,
        "metadata": metadata,
        "groupBy": group_by_name(group_by),
        "group": s.group,
        "interval": match interval { Interval::Day => "day", Interval::Hour => "hour" },
        "points": s.points.iter().map(|(t, n)| json!({"time": rfc3339(*t), "count": n})).collect::<Vec<_>>(),
        "first": first,
        "last": last,
        "min": min,
        "max": max,
    })
}

const TREND_COLUMNS: [(&str, &str, u8, &str); 6] = [
    ("Group", "string", 0, "The group's value."),
    ("Trend", "string", 0, "Open findings per interval, oldest first."),
    (
        "First",
        "integer",
        0,
        "Open findings at the end of the first interval.",
    ),
    ("Last", "integer", 0, "Open findings now (the last interval)."),
    ("Min", "integer", 0, "The fewest."),
    ("Max", "integer", 0, "The most."),
];

/// The `columnDefinitions` of a ResultTrend Table.
pub fn trend_columns() -> Value {
    definitions(&TREND_COLUMNS)
}

/// The Table cells of a series.
pub fn trend_cells(s: &TrendSeries) -> Vec<Value> {
    let (first, last, min, max) = stats(s);
    let counts: Vec<u64> = s.points.iter().map(|p| p.1).collect();
    vec![
        json!(s.group),
        json!(sparkline(&counts)),
        json!(first),
        json!(last),
        json!(min),
        json!(max),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-08T00:00:00Z".parse().expect("time")
    }

    #[test]
    fn times() {
        let n = now().as_millisecond();
        assert_eq!(parse_time("7d", now()), Ok(n - 7 * 86_400_000));
        assert_eq!(parse_time("90s", now()), Ok(n - 90_000));
        assert_eq!(parse_time("2024-05-07T00:00:00Z", now()), Ok(n - 86_400_000));
        assert!(parse_time("7w", now()).is_err());
        assert!(parse_time("d", now()).is_err());
        assert_eq!(rfc3339(n + 5), "2024-05-08T00:00:00.005Z");
    }

    #[test]
    fn parameters_from_the_query_and_the_field_selector() {
        let q = |k: &str| match k {
            "fieldSelector" => Some("result=fail,open=true,since=1d,policy!=a\\,b"),
            "interval" => Some("hour"),
            "groupBy" => Some("severity"),
            _ => None,
        };
        let p = HistoryParams::parse(q, Some("ns".into()), now()).expect("params");
        assert_eq!(p.filter.open, Some(true));
        assert_eq!(p.filter.since, Some(now().as_millisecond() - 86_400_000));
        assert_eq!(
            p.filter.conditions,
            vec![
                Condition::In(ResultColumn::Result, vec!["fail".into()]),
                Condition::NotIn(ResultColumn::Policy, vec!["a,b".into()]),
            ]
        );
        assert_eq!((p.group_by, p.interval), (ResultColumn::Severity, Interval::Hour));
        let bad = |k: &str| (k == "event").then_some("later");
        assert!(HistoryParams::parse(bad, None, now()).is_err());
        let prop = |k: &str| (k == "labelSelector").then_some("properties.score>7");
        assert!(HistoryParams::parse(prop, None, now()).is_err());
        let new = |k: &str| (k == "fieldSelector").then_some("event=opened");
        assert_eq!(
            HistoryParams::parse(new, None, now())
                .expect("params")
                .filter
                .event,
            FindingEvent::Opened
        );
    }

    #[test]
    fn sparklines_and_stats() {
        assert_eq!(sparkline(&[0, 7, 14]), "▁▄█");
        assert_eq!(sparkline(&[0, 0]), "▁▁");
        let s = TrendSeries {
            group: "a".into(),
            points: vec![(0, 3), (1, 1), (2, 5), (3, 2)],
        };
        assert_eq!(stats(&s), (3, 2, 1, 5));
    }
}
