//! The result query API (`results.prext.io/v1alpha1`, see `docs/results-api.md`): `get` and
//! `list` of `policyresults`, `list` of `resultsummaries`, answered from the store's result
//! rows in JSON, as a `meta.k8s.io` Table (kubectl) or as PartialObjectMetadata.
//!
//! Authorization happens before, from the path, like for the report kinds: a namespaced path
//! needs `list` (or `get`) on the resource in that namespace, the all-namespaces path needs it
//! cluster-wide; the handler then reads only that namespace's reports.
//!
//! A list without `limit` is read page by page from the store and streamed, so its size never
//! holds the server's memory; with `limit`, each page ends with a continue token.

mod findings;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use prext_api::resources::Computed;
use prext_api::results::filter::{self, FilterError};
use prext_api::results::query::{Condition, ResultColumn, ResultFilter, ResultRecord};
use prext_api::results::rank::{self, GroupCursor, GroupPage, GroupRank, SummaryPaging, SummaryToken};
use prext_api::results::summary::{self, GroupBy, SummaryItem};
use prext_api::results::token::ResultsToken;
use prext_api::results::{object, resource, GROUP};
use prext_api::status::{reason, Status, StatusDetails};
use prext_store::results::{ResultQuery, SummaryQuery};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::negotiate::{negotiate, IncludeObject, Output, Target};
use crate::render::json_bytes;
use crate::request::{parse_revision, Query, ResourcePath};
use crate::state::AppState;

/// Rows read per store call when a list has no limit.
const STREAM_PAGE: usize = 5_000;

/// Answers a `get` or `list` of a computed resource (the router has refused the verbs its
/// row of the resource table does not serve).
pub async fn handle(
    state: AppState,
    path: ResourcePath,
    query: Query,
    headers: HeaderMap,
) -> ApiResult<Response> {
    parse_revision(query.get("resourceVersion").unwrap_or(""))?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let target = if path.name.is_some() {
        Target::Object
    } else {
        Target::Collection
    };
    let output = negotiate(accept, target, query.get("includeObject"))?;
    if findings::serves(&path) {
        return findings::handle(&state, &path, &query, output).await;
    }
    let parsed = Parsed::from_query(&path, &query).map_err(|e| Status::bad_request(e.0))?;
    if path.def.computed() == Some(Computed::PolicyResults) {
        match &path.name {
            Some(name) => get_one(&state, name, parsed, output).await,
            None => list_results(state, parsed, &query, output).await,
        }
    } else {
        summaries(&state, &path, parsed, &query, output).await
    }
}

/// The filter parameters of a request.
struct Parsed {
    filter: ResultFilter,
    group_by: Option<String>,
}

impl Parsed {
    fn from_query(path: &ResourcePath, q: &Query) -> Result<Self, FilterError> {
        let (mut conditions, group_by) = filter::parse_field_selector(q.get("fieldSelector").unwrap_or(""))?;
        conditions.extend(filter::parse_label_selector(
            q.get("labelSelector").unwrap_or(""),
        )?);
        for p in q.all("property") {
            conditions.push(filter::parse_property(p)?);
        }
        if let Some(m) = q.get("message").filter(|m| !m.is_empty()) {
            conditions.push(Condition::MessageContains(m.to_owned()));
        }
        let group_by = q.get("groupBy").map(str::to_owned).or(group_by);
        Ok(Parsed {
            filter: ResultFilter {
                namespace: path.namespace.clone(),
                conditions,
            },
            group_by,
        })
    }
}

fn not_found(name: &str) -> Status {
    not_found_in(resource(Computed::PolicyResults).plural, name)
}

/// kube-apiserver's NotFound of a resource name (`<plural>.<group> "<name>" not found`).
fn not_found_in(plural: &str, name: &str) -> Status {
    Status::failure(
        404,
        reason::NOT_FOUND,
        format!("{plural}.{GROUP} \"{name}\" not found"),
    )
    .with_details(StatusDetails {
        name: name.into(),
        group: GROUP.into(),
        kind: plural.into(),
        ..Default::default()
    })
}

async fn get_one(state: &AppState, name: &str, parsed: Parsed, output: Output) -> ApiResult<Response> {
    let Some((resource, report, index)) = object::parse_name(name) else {
        return Err(not_found(name).into());
    };
    let mut filter = parsed.filter;
    filter.conditions.extend([
        Condition::In(ResultColumn::Resource, vec![resource]),
        Condition::In(ResultColumn::Report, vec![report]),
        Condition::Index(index),
    ]);
    let page = state
        .store
        .query_results(ResultQuery {
            filter,
            limit: 1,
            ..ResultQuery::default()
        })
        .await
        .map_err(ApiError::storage)?;
    let record = page.items.first().ok_or_else(|| not_found(name))?;
    let body = match output {
        Output::Json => object::to_object(record),
        Output::Metadata { .. } => partial(output, &object::to_object(record)),
        Output::Table { include, .. } => json!({
            "kind": "Table",
            "apiVersion": output.meta_api_version(),
            "metadata": {"resourceVersion": page.revision.to_string()},
            "columnDefinitions": object::column_definitions(),
            "rows": [row(record, output, include, jiff::Timestamp::now())],
        }),
    };
    Ok(json_bytes(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

/// `PartialObjectMetadata` of an item.
fn partial(output: Output, obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": output.meta_api_version(), "metadata": obj["metadata"]})
}

fn row(r: &ResultRecord, output: Output, include: IncludeObject, now: jiff::Timestamp) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(object::cells(r, now)));
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => {
            row.insert("object".into(), object::to_object(r));
        }
        IncludeObject::Metadata => {
            row.insert("object".into(), partial(output, &object::to_object(r)));
        }
    }
    Value::Object(row)
}

/// One item in the negotiated representation.
fn item(r: &ResultRecord, output: Output, now: jiff::Timestamp) -> Value {
    match output {
        Output::Json => object::to_object(r),
        Output::Metadata { .. } => partial(output, &object::to_object(r)),
        Output::Table { include, .. } => row(r, output, include, now),
    }
}

async fn list_results(state: AppState, parsed: Parsed, q: &Query, output: Output) -> ApiResult<Response> {
    let order = filter::parse_order(q.get("sort"), q.get("order")).map_err(|e| Status::bad_request(e.0))?;
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
            let t = ResultsToken::decode(token, order).map_err(|e| Status::bad_request(e.to_string()))?;
            (Some(t.cursor), Some(t.revision))
        }
        None => (None, None),
    };
    let first = ResultQuery {
        filter: parsed.filter,
        order,
        limit: limit.unwrap_or(STREAM_PAGE),
        after,
        count: q.flag("count"),
    };
    let page = state
        .store
        .query_results(first.clone())
        .await
        .map_err(ApiError::storage)?;
    let revision = pinned.unwrap_or(page.revision);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let kind = resource(Computed::PolicyResults).list_kind;
    tokio::spawn(async move {
        let now = jiff::Timestamp::now();
        let mut buf = match output {
            Output::Json => format!(
                "{{\"apiVersion\":\"{}\",\"kind\":\"{kind}\",\"items\":[",
                prext_api::results::API_VERSION
            ),
            Output::Metadata { .. } => format!(
                "{{\"apiVersion\":\"{}\",\"kind\":\"PartialObjectMetadataList\",\"items\":[",
                output.meta_api_version()
            ),
            Output::Table { .. } => format!(
                "{{\"apiVersion\":\"{}\",\"kind\":\"Table\",\"columnDefinitions\":{},\"rows\":[",
                output.meta_api_version(),
                object::column_definitions()
            ),
        }
        .into_bytes();
        let total = page.total;
        let mut page = page;
        let mut query = first;
        let mut first_item = true;
        let mut next_token = None;
        loop {
            for r in &page.items {
                if !first_item {
                    buf.push(b',');
                }
                first_item = false;
                buf.extend_from_slice(&serde_json::to_vec(&item(r, output, now)).unwrap_or_default());
            }
            let last = page.items.last().map(|r| r.cursor(order));
            if tx.send(Ok(Bytes::from(std::mem::take(&mut buf)))).await.is_err() {
                return; // The client went away.
            }
            match (page.more, last, limit) {
                (true, Some(cursor), Some(_)) => {
                    next_token = Some(
                        ResultsToken {
                            revision,
                            order,
                            cursor,
                        }
                        .encode(),
                    );
                    break;
                }
                (true, Some(cursor), None) => {
                    query.after = Some(cursor);
                    query.count = false;
                    page = match state.store.query_results(query.clone()).await {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(error = %e, "result list aborted by a storage error");
                            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                            return;
                        }
                    };
                }
                _ => break,
            }
        }
        let mut meta = Map::new();
        meta.insert("resourceVersion".into(), json!(revision.to_string()));
        if let Some(t) = next_token {
            meta.insert("continue".into(), json!(t));
        }
        buf.extend_from_slice(b"],\"metadata\":");
        buf.extend_from_slice(&serde_json::to_vec(&meta).unwrap_or_default());
        if let (Some(total), Output::Json) = (total, output) {
            buf.extend_from_slice(format!(",\"total\":{total}").as_bytes());
        }
        buf.push(b'}');
        let _ = tx.send(Ok(Bytes::from(buf))).await;
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(json_bytes(StatusCode::OK, body))
}

async fn summaries(
    state: &AppState,
    path: &ResourcePath,
    parsed: Parsed,
    q: &Query,
    output: Output,
) -> ApiResult<Response> {
    let group_by = GroupBy::parse(parsed.group_by.as_deref()).map_err(|e| Status::bad_request(e.0))?;
    let namespace = path.namespace.as_deref();
    let bad = |e: FilterError| Status::bad_request(e.0);
    let paging = rank::parse_paging(
        q.get("sort"),
        q.get("limit"),
        q.get("continue"),
        group_by.as_str(),
    )
    .map_err(bad)?;
    let mut filter = parsed.filter;
    if let Some(name) = &path.name {
        // A summary's name is its group's value.
        filter.conditions.push(match group_by {
            GroupBy::ReportKind => Condition::In(ResultColumn::Resource, filter::resources_of_kind(name)),
            g => Condition::In(g.column(), vec![name.clone()]),
        });
    }
    // Report kinds merge several resources: their few groups are ranked here, not in SQL.
    let store_page = match &paging {
        SummaryPaging::Page { page, .. } if group_by != GroupBy::ReportKind && path.name.is_none() => {
            Some(page.clone())
        }
        _ => None,
    };
    let summary = state
        .store
        .summarize_results(SummaryQuery {
            filter,
            group_by: vec![group_by.column(), ResultColumn::Result, ResultColumn::Severity],
            page: store_page,
        })
        .await
        .map_err(ApiError::storage)?;
    let mut items = summary::build(
        group_by,
        summary.rows.iter().map(|r| (r.keys.as_slice(), r.count)),
    );
    let mut next: Option<GroupCursor> = None;
    let mut pinned = None;
    match (&paging, &summary.page) {
        (SummaryPaging::Page { revision, .. }, Some(p)) => {
            pinned = *revision;
            let groups: Vec<String> = p.groups.iter().map(|g| g.group.clone()).collect();
            items = rank::in_order(items, &groups);
            next = p.more.then(|| p.groups.last()).flatten().map(|g| GroupCursor {
                value: g.value,
                group: g.group.clone(),
            });
        }
        (SummaryPaging::Page { page, revision }, None) if path.name.is_none() => {
            pinned = *revision;
            let (kept, more) = rank::page_items(items, page);
            next = more.then(|| kept.last()).flatten().map(|i| GroupCursor {
                value: page.rank.value(i),
                group: i.group.clone(),
            });
            items = kept;
        }
        (SummaryPaging::Sorted(order), _) => {
            let all = GroupPage {
                rank: order.clone(),
                limit: usize::MAX,
                after: None,
            };
            items = rank::page_items(items, &all).0;
        }
        _ => {}
    }
    let revision = pinned.unwrap_or(summary.revision);
    if let Some(name) = &path.name {
        let item = items
            .iter()
            .find(|i| &i.group == name)
            .ok_or_else(|| not_found_in(resource(Computed::ResultSummaries).plural, name))?;
        let obj = summary::to_object(item, group_by, summary::item_namespace(item, group_by, namespace));
        let body = match output {
            Output::Json => obj,
            Output::Metadata { .. } => partial(output, &obj),
            Output::Table { include, .. } => json!({
                "kind": "Table",
                "apiVersion": output.meta_api_version(),
                "metadata": {"resourceVersion": revision.to_string()},
                "columnDefinitions": summary::column_definitions(group_by, true),
                "rows": [summary_row(item, obj, true, output, include)],
            }),
        };
        return Ok(json_bytes(
            StatusCode::OK,
            serde_json::to_vec(&body).unwrap_or_default(),
        ));
    }
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if let Some(cursor) = next {
        let token = SummaryToken {
            revision,
            group_by: group_by.as_str().to_owned(),
            rank: paging_rank(&paging),
            cursor,
        };
        meta["continue"] = json!(token.encode());
    }
    let object =
        |i: &SummaryItem| summary::to_object(i, group_by, summary::item_namespace(i, group_by, namespace));
    let body = match output {
        Output::Json => json!({
            "apiVersion": prext_api::results::API_VERSION,
            "kind": resource(Computed::ResultSummaries).list_kind,
            "metadata": meta,
            "items": items.iter().map(object).collect::<Vec<_>>(),
        }),
        Output::Metadata { .. } => json!({
            "apiVersion": output.meta_api_version(),
            "kind": "PartialObjectMetadataList",
            "metadata": meta,
            "items": items.iter().map(|i| partial(output, &object(i))).collect::<Vec<_>>(),
        }),
        Output::Table { include, .. } => {
            let with_group = summary::group_column(group_by, namespace);
            let rows: Vec<Value> = items
                .iter()
                .map(|i| summary_row(i, object(i), with_group, output, include))
                .collect();
            json!({
                "kind": "Table",
                "apiVersion": output.meta_api_version(),
                "metadata": meta,
                "columnDefinitions": summary::column_definitions(group_by, with_group),
                "rows": rows,
            })
        }
    };
    Ok(json_bytes(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

/// The order of a summary list.
fn paging_rank(paging: &SummaryPaging) -> GroupRank {
    match paging {
        SummaryPaging::All => GroupRank::Key,
        SummaryPaging::Sorted(r) => r.clone(),
        SummaryPaging::Page { page, .. } => page.rank.clone(),
    }
}

/// One Table row of a summary.
fn summary_row(
    item: &SummaryItem,
    obj: Value,
    with_group: bool,
    output: Output,
    include: IncludeObject,
) -> Value {
    let mut row = json!({"cells": summary::cells(item, with_group)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => row["object"] = obj,
        IncludeObject::Metadata => row["object"] = partial(output, &obj),
    }
    row
}
