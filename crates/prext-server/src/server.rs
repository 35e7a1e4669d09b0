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
    let kubeconfig = pki::write_kubeconfig(&config.data_dir, &url, &pki).context("writing kubeconfig")?;

    let tls_config = tls::server_config(&pki.server_cert_pem, &pki.server_key_pem, &pki.ca_cert_pem)
        .context("configuring TLS")?;
    let state = AppState { store: store.clone(), shutdown: shutdown.clone() };
    let app = router::router(state);

    let compaction = tokio::spawn(compact_loop(
        store.clone(),
        config.history_revisions,
        config.compaction_interval,
        shutdown.clone(),
    ));

    tracing::info!(url = %url, kubeconfig = %kubeconfig.display(), "prext is ready");
    let options = tls::ServeOptions { shutdown_grace: config.shutdown_grace, ..Default::default() };
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
