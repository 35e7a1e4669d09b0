//! Retention of findings over time: every hour (and at start-up), the findings resolved more
//! than `--history-days` ago are dropped from the store, so that findings and their trends
//! cover that many days (open findings are always kept).

use std::sync::Arc;
use std::time::Duration;

use prext_store::Store;
use tokio_util::sync::CancellationToken;

/// How often old findings are pruned.
const INTERVAL: Duration = Duration::from_secs(3600);

/// Prunes until `shutdown`.
pub async fn run(store: Arc<dyn Store>, days: u32, shutdown: CancellationToken) {
    loop {
        let before = prext_store::findings::now_ms() - i64::from(days) * 86_400_000;
        match store.prune_findings(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(findings = n, days, "pruned resolved findings"),
            Err(e) => tracing::warn!(error = %e, "pruning findings failed; retrying later"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
