//! Startup and shutdown: PKI and kubeconfig, the store, the listener, background
//! compaction, memory released when idle, the ready line, and a graceful drain on shutdown.

use std::sync::Arc;

use anyhow::Context;
use prext_store::Store;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, StoreSettings};
use crate::state::{AppState, Parts};
use crate::{pki, router, tls};

/// The store options of the server's settings.
pub fn open_options(settings: &StoreSettings) -> prext_store::OpenOptions {
    prext_store::OpenOptions {
        postgres: prext_store::postgres::PostgresOptions {
            cluster: settings.cluster_name.clone(),
            password_file: settings.password_file.clone(),
            pool_size: settings.pool_size,
            connect_timeout: settings.connect_timeout,
            statement_timeout: settings.statement_timeout,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Opens the store named by a URL: `sqlite:PATH` or `postgres://USER@HOST:PORT/DB?sslmode=…`.
pub async fn open_store(url: &str, settings: &StoreSettings) -> anyhow::Result<Arc<dyn Store>> {
    Ok(prext_store::open(url, open_options(settings)).await?)
}

/// Runs the server until `shutdown` is cancelled, then drains and closes the store.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let nofile = crate::connections::raise_open_file_limit();
    let mut connections = crate::connections::ConnectionLimits::for_open_file_limit(nofile);
    connections.idle_timeout = config.idle_connection_timeout;
    if let Some(max) = config.max_connections {
        connections.max_connections = max.max(1);
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let pki = pki::ensure(&config.data_dir, &config.extra_sans).context("preparing certificates")?;
    let store = open_store(&config.store_url(), &config.store_settings).await?;
    let store_metrics = crate::metrics::store::StoreMetrics::default();
    let store = crate::quota::wrap(store, &config, store_metrics.quota.clone());
    let store: Arc<dyn Store> = Arc::new(crate::metrics::store::MeteredStore::new(
        store,
        store_metrics.clone(),
    ));

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
    let state = AppState::new(Parts {
        store: store.clone(),
        shutdown: shutdown.clone(),
        fanout,
        namespaces: security.namespaces.clone(),
        store_metrics,
    });
    let activity = Arc::new(crate::idle::Activity::default());
    let app = router::router(state)
        .layer(axum::Extension(security.auth.clone()))
        .layer(axum::middleware::from_fn_with_state(
            activity.clone(),
            crate::idle::touch,
        ));

    let retention = crate::compaction::Retention {
        revisions: config.history_revisions,
        age: config.history_age,
    };
    let compaction = tokio::spawn(crate::compaction::run(
        store.clone(),
        retention,
        config.compaction_interval,
        shutdown.clone(),
    ));
    let history = tokio::spawn(crate::history::run(
        store.clone(),
        config.history_days,
        shutdown.clone(),
    ));

    let idle = tokio::spawn(crate::idle::run(
        store.clone(),
        activity,
        config.idle.clone(),
        shutdown.clone(),
    ));

    tracing::info!(url = %url, kubeconfig = %kubeconfig, "prext is ready");
    let options = tls::ServeOptions {
        shutdown_grace: config.shutdown_grace,
        client_classifier: Some(security.trust.clone()),
        connections,
        ..Default::default()
    };
    let served = tls::serve_with(listener, tls_config, app, shutdown.clone(), options).await;
    shutdown.cancel();
    let _ = compaction.await;
    let _ = history.await;
    let _ = idle.await;
    store.close().await;
    tracing::info!("prext stopped");
    served
}
