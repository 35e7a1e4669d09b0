//! Startup and shutdown: PKI and kubeconfig, the store, the listener, background
//! compaction, the ready line, and a graceful drain on shutdown.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use prext_store::Store;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::{pki, router, tls};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Cancelled when the server starts shutting down: long-running watches end cleanly.
    pub shutdown: CancellationToken,
    /// The change broadcaster every watch follows.
    pub fanout: Arc<crate::fanout::Fanout>,
    /// Namespace lifecycle admission (delegated mode only): creates call
    /// [`NamespaceLifecycle::admit_create`](crate::auth::NamespaceLifecycle::admit_create).
    pub namespaces: Option<Arc<crate::auth::NamespaceLifecycle>>,
}

/// Opens the store named by a URL (`sqlite:PATH`).
pub fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        let store = prext_store::sqlite::SqliteStore::open(Path::new(path), Default::default())
            .with_context(|| format!("opening SQLite store {path}"))?;
        return Ok(Arc::new(store));
    }
    anyhow::bail!("unsupported store URL {url:?}: expected sqlite:PATH")
}

/// Runs the server until `shutdown` is cancelled, then drains and closes the store.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let pki = pki::ensure(&config.data_dir, &config.extra_sans).context("preparing certificates")?;
    let store = open_store(&config.store_url())?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if local.ip().is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    let url = format!("https://{host}:{}", local.port());
    let security = crate::auth::setup::setup(&config.auth, &pki, &shutdown)
        .await
        .context("configuring authentication")?;
    // The admin kubeconfig only works while the generated CA is the client CA.
    let kubeconfig = if security.generated_client_ca {
        let path = pki::write_kubeconfig(&config.data_dir, &url, &pki).context("writing kubeconfig")?;
        path.display().to_string()
    } else {
        "none (delegated authentication)".to_owned()
    };

    let tls_config = tls::dynamic_server_config(security.serving.clone(), security.trust.verifier())
        .context("configuring TLS")?;
    let fanout = crate::fanout::Fanout::start(store.clone(), shutdown.clone());
    let state = AppState { store: store.clone(), shutdown: shutdown.clone(), fanout, namespaces: security.namespaces.clone() };
    let app = router::router(state).layer(axum::Extension(security.auth.clone()));

    let compaction = tokio::spawn(compact_loop(
        store.clone(),
        config.history_revisions,
        config.compaction_interval,
        shutdown.clone(),
    ));

    tracing::info!(url = %url, kubeconfig = %kubeconfig, "prext is ready");
    let options = tls::ServeOptions {
        shutdown_grace: config.shutdown_grace,
        client_classifier: Some(security.trust.clone()),
        ..Default::default()
    };
    let served = tls::serve_with(listener, tls_config, app, shutdown.clone(), options).await;
    shutdown.cancel();
    let _ = compaction.await;
    store.close().await;
    tracing::info!("prext stopped");
    served
}

async fn compact_loop(
    store: Arc<dyn Store>,
    keep: i64,
    every: std::time::Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                match store.compact(keep).await {
                    Ok(oldest) => tracing::debug!(oldest, "compacted change log"),
                    Err(e) => tracing::warn!(error = %e, "compaction failed"),
                }
            }
        }
    }
}
