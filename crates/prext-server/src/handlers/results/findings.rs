//! `findings` and `resulttrends` of `results.prext.io/v1alpha1` (see `docs/results-api.md`):
//! lists read from the store's findings, in JSON, as a Table (kubectl) or as
//! PartialObjectMetadata. Reached from [`super`] (the results handler) after its checks (read-only, no
//! watch) and the same authorization as the rest of the group.

use axum::response::Response;
use http::StatusCode;
use prext_api::resources::Computed;
use prext_api::results::findings::{self, HistoryParams};
use prext_api::results::history::{Finding, Interval};
use prext_api::results::query::{ResultCursor, ResultOrder};
use prext_api::results::token::ResultsToken;
use prext_api::results::{resource, API_VERSION};
use prext_api::status::Status;
use prext_store::findings::{FindingQuery, TrendQuery};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::negotiate::{IncludeObject, Output};
use crate::render::json_bytes;
use crate::request::{Query, ResourcePath};
use crate::state::AppState;

/// Findings read per store call when a list has no limit.
const PAGE: usize = 5_000;
/// The `report` of a findings continue token's cursor (tokens of result lists do not resume
/// a findings list).
const TOKEN_MARK: &str = "findings";
/// How far back hourly trends go.
const HOURLY_SPAN_MS: i64 = 48 * 3_600_000;

/// Whether this module serves `resource`.
pub fn serves(path: &ResourcePath) -> bool {
    matches!(
        path.def.computed(),
        Some(Computed::Findings | Computed::ResultTrends)
    )
}

/// Answers a list of `findings` or `resulttrends`.
pub async fn handle(state: &AppState, path: &ResourcePath, q: &Query, output: Output) -> ApiResult<Response> {
    if path.name.is_some() && !path.def.serves("get") {
        return Err(Status::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {} can only be listed",
            path.def.plural
        ))
        .into());
    }
    let now = jiff::Timestamp::now();
    let params = HistoryParams::parse(|k| q.get(k), path.namespace.clone(), now)
        .map_err(|e| Status::bad_request(e.0))?;
    if path.def.computed() == Some(Computed::Findings) {
        list_findings(state, params, q, output, now).await
    } else {
        trends(state, path, params, output, now).await
    }
}

fn partial(output: Output, obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": output.meta_api_version(), "metadata": obj["metadata"]})
}

fn item(f: &Finding, output: Output, now: jiff::Timestamp) -> Value {
    let obj = findings::finding_object(f);
    match output {
        Output::Json => obj,
        Output::Metadata { .. } => partial(output, &obj),
        Output::Table { include, .. } => {
            let mut row = json!({"cells": findings::finding_cells(f, now)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Object => row["object"] = obj,
                IncludeObject::Metadata => row["object"] = partial(output, &obj),
            }
            row
        }
    }
}

/// The list document around `items`.
fn list(output: Output, kind: &str, columns: Value, meta: Value, items: Vec<Value>) -> Value {
    match output {
        Output::Json => json!({"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "items": items}),
        Output::Metadata { .. } => json!({
            "apiVersion": output.meta_api_version(), "kind": "PartialObjectMetadataList",
            "metadata": meta, "items": items,
        }),
        Output::Table { .. } => json!({
            "apiVersion": output.meta_api_version(), "kind": "Table",
            "metadata": meta, "columnDefinitions": columns, "rows": items,
        }),
    }
}

async fn list_findings(
    state: &AppState,
    params: HistoryParams,
    q: &Query,
    output: Output,
    now: jiff::Timestamp,
) -> ApiResult<Response> {
    let limit = match q.get("limit").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let n: i64 = s.parse().map_err(|_| {
                Status::bad_request(format!("limit: invalid value {s:?}: must be an integer"))
            })?;
            usize::try_from(n).ok().filter(|n| *n > 0)
        }
    };
    let (after, pinned) = match q.get("continue").filter(|s| !s.is_empty()) {
        Some(token) => {
            let t = ResultsToken::decode(token, ResultOrder::Report)
                .map_err(|e| Status::bad_request(e.to_string()))?;
            if t.cursor.report != TOKEN_MARK {
                return Err(Status::bad_request("invalid continue token: not a findings list").into());
            }
            (Some(t.cursor.index), Some(t.revision))
        }
        None => (None, None),
    };
    let mut query = FindingQuery {
        filter: params.filter,
        limit: limit.unwrap_or(PAGE),
        after,
        count: q.flag("count"),
    };
    let mut items = Vec::new();
    let mut revision = None;
    let mut total = None;
    let mut next = None;
    loop {
        let page = state
            .store
            .query_findings(query.clone())
            .await
            .map_err(ApiError::storage)?;
        let rv = *revision.get_or_insert(pinned.unwrap_or(page.revision));
        total = total.or(page.total);
        items.extend(page.items.iter().map(|f| item(f, output, now)));
        let last = page.items.last().map(|f| f.id);
        match (page.more, last, limit) {
            (true, Some(id), Some(_)) => {
                let cursor = ResultCursor {
                    key: 0,
                    namespace: String::new(),
                    report: TOKEN_MARK.into(),
                    resource: String::new(),
                    index: id,
                };
                next = Some(
                    ResultsToken {
                        revision: rv,
                        order: ResultOrder::Report,
                        cursor,
                    }
                    .encode(),
                );
                break;
            }
            (true, Some(id), None) => {
                query.after = Some(id);
                query.count = false;
            }
            _ => break,
        }
    }
    let mut meta = json!({"resourceVersion": revision.unwrap_or_default().to_string()});
    if let Some(t) = next {
        meta["continue"] = json!(t);
    }
    let mut body = list(
        output,
        resource(Computed::Findings).list_kind,
        findings::finding_columns(),
        meta,
        items,
    );
    if let (Some(total), Output::Json) = (total, output) {
        body["total"] = json!(total);
    }
    Ok(json_bytes(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

async fn trends(
    state: &AppState,
    path: &ResourcePath,
    params: HistoryParams,
    output: Output,
    now: jiff::Timestamp,
) -> ApiResult<Response> {
    let now_ms = now.as_millisecond();
    let until = params.filter.until.unwrap_or(now_ms + 1);
    let default_span = match params.interval {
        Interval::Day => 30 * 86_400_000,
        Interval::Hour => HOURLY_SPAN_MS,
    };
    let since = params.filter.since.unwrap_or(until - default_span);
    if params.interval == Interval::Hour && since < now_ms - HOURLY_SPAN_MS - 3_600_000 {
        return Err(Status::bad_request(
            "interval=hour covers the last 48 hours: use a later since, or interval=day",
        )
        .into());
    }
    if until <= since {
        return Err(Status::bad_request("until must be after since").into());
    }
    let trends = state
        .store
        .finding_trends(TrendQuery {
            filter: params.filter,
            group_by: params.group_by,
            interval: params.interval,
            since,
            until,
        })
        .await
        .map_err(ApiError::storage)?;
    let namespace = path.namespace.as_deref();
    let items: Vec<Value> = trends
        .series
        .iter()
        .map(|s| {
            let obj = findings::trend_object(s, params.group_by, params.interval, namespace);
            match output {
                Output::Json => obj,
                Output::Metadata { .. } => partial(output, &obj),
                Output::Table { include, .. } => {
                    let mut row = json!({"cells": findings::trend_cells(s)});
                    match include {
                        IncludeObject::None => {}
                        IncludeObject::Object => row["object"] = obj,
                        IncludeObject::Metadata => row["object"] = partial(output, &obj),
                    }
                    row
                }
            }
        })
        .collect();
    let meta = json!({"resourceVersion": trends.revision.to_string()});
    let body = list(
        output,
        resource(Computed::ResultTrends).list_kind,
        findings::trend_columns(),
        meta,
        items,
    );
    Ok(json_bytes(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}
