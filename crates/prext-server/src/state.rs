//! What every handler shares ([`AppState`]), built once by `server::run`.

use std::sync::Arc;

use prext_api::status::Status;
use prext_store::Store;
use tokio_util::sync::CancellationToken;

use crate::registry::{Admission, Registry};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The object rules over the store: every verb on a report goes through it.
    pub registry: Registry,
    /// The store itself, for what is not a report verb (results, readiness, metrics).
    pub store: Arc<dyn Store>,
    /// Cancelled when the server starts shutting down: long-running watches end cleanly.
    pub shutdown: CancellationToken,
    /// The change broadcaster every watch follows.
    pub fanout: Arc<crate::fanout::Fanout>,
    /// Namespace lifecycle admission (delegated mode only), also given to the registry.
    pub namespaces: Option<Arc<crate::auth::NamespaceLifecycle>>,
    /// Request metrics.
    pub metrics: crate::metrics::requests::RequestMetrics,
    /// Storage metrics (the store above is already wrapped in them).
    pub store_metrics: crate::metrics::store::StoreMetrics,
}

/// The pieces [`AppState`] is built from.
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub shutdown: CancellationToken,
    pub fanout: Arc<crate::fanout::Fanout>,
    pub namespaces: Option<Arc<crate::auth::NamespaceLifecycle>>,
    pub store_metrics: crate::metrics::store::StoreMetrics,
}

impl AppState {
    /// The state of a server over `parts.store`, with its registry.
    pub fn new(parts: Parts) -> Self {
        let admission = parts.namespaces.clone().map(|n| n as Arc<dyn Admission>);
        Self {
            registry: Registry::new(parts.store.clone(), admission),
            store: parts.store,
            shutdown: parts.shutdown,
            fanout: parts.fanout,
            namespaces: parts.namespaces,
            metrics: Default::default(),
            store_metrics: parts.store_metrics,
        }
    }
}

#[async_trait::async_trait]
impl Admission for crate::auth::NamespaceLifecycle {
    async fn admit_create(&self, namespace: &str) -> Result<(), Status> {
        crate::auth::NamespaceLifecycle::admit_create(self, namespace).await
    }
}
