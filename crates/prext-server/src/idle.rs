//! Memory given back when the server goes idle.
//!
//! A burst of writes leaves memory behind that nothing will use until the next burst: SQLite's
//! page caches (up to 2 MB per connection, in the C heap) and the allocator's pages that the
//! threads which served the burst still own. The [`Activity`] layer counts the requests that
//! start; [`run`] looks at that count every [`IdleSettings::after`] and, once a whole period
//! passed without a new request after some activity, asks the store to release its caches
//! ([`prext_store::Store::release_memory`]) and runs the process's hook (the `prext` binary
//! returns the allocator's free pages to the kernel). Once per idle period: a server left
//! alone does nothing more until a request comes. Watches in progress do not count as
//! activity (they start once and hold little).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prext_store::Store;
use tokio_util::sync::CancellationToken;

/// What the process adds to the store's release (the allocator's, in the `prext` binary).
pub type IdleHook = Arc<dyn Fn() + Send + Sync>;

/// When and how memory is released.
#[derive(Clone)]
pub struct IdleSettings {
    /// A whole period of this length without a new request is idle (zero: never release).
    pub after: Duration,
    /// Run after the store released its caches, on a blocking thread.
    pub hook: Option<IdleHook>,
}

impl Default for IdleSettings {
    fn default() -> Self {
        Self {
            after: DEFAULT_AFTER,
            hook: None,
        }
    }
}

impl std::fmt::Debug for IdleSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleSettings")
            .field("after", &self.after)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

/// The default idle period: long enough that a client pausing between requests does not
/// make the server drop caches it will need again at once, short enough that a server
/// done with a burst is small again within seconds.
pub const DEFAULT_AFTER: Duration = Duration::from_secs(2);

/// The count of requests started, shared by the layer and the idle task.
#[derive(Debug, Default)]
pub struct Activity {
    started: AtomicU64,
}

/// The layer: counts every request that reaches the router.
pub async fn touch(State(activity): State<Arc<Activity>>, req: Request, next: Next) -> Response {
    activity.started.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
}

/// Releases memory once per idle period until `shutdown`.
pub async fn run(
    store: Arc<dyn Store>,
    activity: Arc<Activity>,
    settings: IdleSettings,
    shutdown: CancellationToken,
) {
    if settings.after.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval(settings.after);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The count at the last tick, and at the last release (none yet: the start-up is not
    // worth a release).
    let mut seen = activity.started.load(Ordering::Relaxed);
    let mut released = seen;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let now = activity.started.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            continue;
        }
        if now == released {
            continue;
        }
        released = now;
        release(&store, settings.hook.clone()).await;
    }
}

/// One release: the store's caches, then the process's hook (each release is timed as the
/// store operation `release_memory` in `/metrics`).
async fn release(store: &Arc<dyn Store>, hook: Option<IdleHook>) {
    store.release_memory().await;
    if let Some(hook) = hook {
        if let Err(e) = tokio::task::spawn_blocking(move || hook()).await {
            tracing::warn!(error = %e, "releasing memory failed");
        }
    }
    tracing::debug!("idle: memory released");
}
