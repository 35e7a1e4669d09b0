//! Request metrics, named after kube-apiserver's own so that existing dashboards apply:
//! `apiserver_request_total{verb,group,resource,code}`,
//! `apiserver_request_duration_seconds{verb,group,resource}` (watches excluded, as upstream),
//! and `apiserver_longrunning_requests{verb,group,resource}` (open watches).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::auth::attributes::Attributes;
use crate::state::AppState;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub code: String,
}

/// Labels of a request duration or a long-running request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: String,
    pub group: String,
    pub resource: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The request metric families (cheap to clone: families are shared handles).
#[derive(Clone)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily<VerbLabels>,
    longrunning: Family<VerbLabels, Gauge>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            longrunning: Family::default(),
        }
    }
}

impl RequestMetrics {
    /// Registers the families into a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "apiserver_request",
            "Requests by verb, API group, resource and HTTP code",
            self.requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Request latency by verb, API group and resource (watches excluded)",
            self.durations.clone(),
        );
        registry.register(
            "apiserver_longrunning_requests",
            "Requests in flight that stream (watches)",
            self.longrunning.clone(),
        );
    }

    /// Counts a watch as open until the returned guard is dropped.
    pub fn watch_started(&self, group: &str, resource: &str) -> WatchGuard {
        let labels = VerbLabels {
            verb: "watch".into(),
            group: group.into(),
            resource: resource.into(),
        };
        self.longrunning.get_or_create(&labels).inc();
        WatchGuard {
            gauge: self.longrunning.get_or_create(&labels).clone(),
        }
    }
}

/// Decrements the open-watch gauge when the watch ends.
pub struct WatchGuard {
    gauge: Gauge,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Middleware: counts and times every request.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let attrs = Attributes::of(req.method(), req.uri().path(), req.uri().query());
    let (verb, group, resource) = match &attrs {
        Attributes::Resource(r) => (r.verb.clone(), r.group.clone(), r.resource.clone()),
        Attributes::NonResource { verb, .. } => (verb.to_uppercase(), String::new(), String::new()),
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.requests
        .get_or_create(&RequestLabels {
            verb: verb.clone(),
            group: group.clone(),
            resource: resource.clone(),
            code: resp.status().as_u16().to_string(),
        })
        .inc();
    if verb != "watch" {
        m.durations
            .get_or_create(&VerbLabels {
                verb,
                group,
                resource,
            })
            .observe(started.elapsed().as_secs_f64());
    }
    resp
}
