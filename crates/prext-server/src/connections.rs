//! Connection limits: an idle timeout, a cap on open connections, and the open-file limit.
//!
//! * A connection with no request in flight for [`ConnectionLimits::idle_timeout`] is closed
//!   gracefully (kube-apiserver's HTTP/2 `IdleTimeout` is 90 s). A request is in flight from the
//!   moment hyper hands it over until its response body has been sent, so a watch is never idle.
//! * At most [`ConnectionLimits::max_connections`] connections are served normally. When a new
//!   one arrives at the cap, one line is logged (once per episode), and every connection idle for
//!   at least [`ConnectionLimits::pressure_grace`] (or still in its TLS handshake for that long)
//!   is closed: idle hostile connections make room for new clients such as kubectl instead of
//!   locking them out. Past the cap plus [`ConnectionLimits::headroom`], new connections are
//!   dropped at once so that the process keeps file descriptors for its own work.
//! * [`raise_open_file_limit`] raises the soft `RLIMIT_NOFILE` to the hard limit at start-up, as
//!   Go servers do, and [`ConnectionLimits::for_open_file_limit`] derives the cap from it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// File descriptors kept for everything but client connections (database, WAL, listener, logs).
const RESERVED_FDS: u64 = 128;

/// The tunables.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// How long a connection may stay open without a request in flight.
    pub idle_timeout: Duration,
    /// How many connections are served before idle ones are closed to make room.
    pub max_connections: usize,
    /// How many connections beyond `max_connections` are accepted while idle ones close.
    pub headroom: usize,
    /// How long a connection must have been idle to be closed to make room.
    pub pressure_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(90),
            max_connections: 10_000,
            headroom: 64,
            pressure_grace: Duration::from_secs(1),
        }
    }
}

impl ConnectionLimits {
    /// The defaults, with the cap lowered to fit an open-file limit of `nofile` descriptors.
    pub fn for_open_file_limit(nofile: Option<u64>) -> Self {
        let mut limits = Self::default();
        if let Some(n) = nofile {
            let usable = n.saturating_sub(RESERVED_FDS) as usize;
            limits.headroom = (usable / 8).clamp(8, 64);
            limits.max_connections = limits
                .max_connections
                .min(usable.saturating_sub(limits.headroom))
                .max(16);
        }
        limits
    }
}

/// Raises the soft open-file limit to the hard limit; returns the soft limit in force after.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::info!(
                from = ?limit.current,
                to = ?limit.maximum,
                "raised the open-file limit to its hard limit"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The open connections of one server.
#[derive(Debug)]
pub struct Tracker {
    limits: ConnectionLimits,
    open: AtomicUsize,
    at_cap: AtomicBool,
    pressure: Notify,
    /// Signalled whenever a connection closes.
    closed: Notify,
    epoch: Instant,
}

/// What the accept loop does with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Serve,
    Drop,
}

impl Tracker {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: AtomicUsize::new(0),
            at_cap: AtomicBool::new(false),
            pressure: Notify::new(),
            closed: Notify::new(),
            epoch: Instant::now(),
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Decides on a new connection; when it is served, its [`Connection`] must live as long as it.
    pub fn admit(self: &Arc<Self>) -> (Admission, Option<Arc<Connection>>) {
        let open = self.open.load(Ordering::Relaxed);
        if open >= self.limits.max_connections {
            if !self.at_cap.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    open,
                    max = self.limits.max_connections,
                    "connection limit reached: closing idle connections to make room"
                );
            }
            self.pressure.notify_waiters();
            if open >= self.limits.max_connections + self.limits.headroom {
                return (Admission::Drop, None);
            }
        } else if open + 1 < self.limits.max_connections * 9 / 10 {
            self.at_cap.store(false, Ordering::Relaxed);
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Connection {
            tracker: self.clone(),
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(self.now_ms()),
        });
        (Admission::Serve, Some(conn))
    }

    /// [`admit`](Self::admit), but when the server is full, waits up to `patience` for the idle
    /// connections asked to close to make room (they close within milliseconds), then decides.
    pub async fn admit_patiently(self: &Arc<Self>, patience: Duration) -> Option<Arc<Connection>> {
        let deadline = Instant::now() + patience;
        loop {
            let closed = self.closed.notified();
            match self.admit() {
                (Admission::Serve, conn) => return conn,
                (Admission::Drop, _) => {
                    if tokio::time::timeout_at(deadline, closed).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// One open connection: its requests in flight and when it was last active.
#[derive(Debug)]
pub struct Connection {
    tracker: Arc<Tracker>,
    in_flight: AtomicUsize,
    last_active_ms: AtomicU64,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.tracker.open.fetch_sub(1, Ordering::Relaxed);
        self.tracker.closed.notify_waiters();
    }
}

/// Held while a request (and its response body) is in flight.
#[derive(Debug)]
pub struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    /// Marks a request in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    fn touch(&self) {
        self.last_active_ms
            .store(self.tracker.now_ms(), Ordering::Relaxed);
    }

    /// How long the connection has been idle (`None` while a request is in flight).
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = self.last_active_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(self.tracker.now_ms().saturating_sub(last)))
    }

    /// Resolves when the connection should be closed: idle for the idle timeout, or idle for the
    /// pressure grace while the server is at its connection cap.
    pub async fn closable(&self) {
        let limits = &self.tracker.limits;
        loop {
            let wait = match self.idle_for() {
                Some(idle) if idle >= limits.idle_timeout => return,
                Some(idle) => limits.idle_timeout - idle,
                None => limits.idle_timeout.min(Duration::from_secs(5)),
            };
            let pressure = self.tracker.pressure.notified();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = pressure => {
                    if self.idle_for().is_some_and(|idle| idle >= limits.pressure_grace) {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, headroom: usize) -> ConnectionLimits {
        ConnectionLimits {
            idle_timeout: Duration::from_secs(3600),
            max_connections: max,
            headroom,
            pressure_grace: Duration::ZERO,
        }
    }

    #[test]
    fn the_cap_follows_the_open_file_limit() {
        let l = ConnectionLimits::for_open_file_limit(Some(1024));
        assert!(l.max_connections + l.headroom <= 1024 - 128, "{l:?}");
        assert!(l.max_connections >= 800, "{l:?}");
        assert_eq!(
            ConnectionLimits::for_open_file_limit(None).max_connections,
            10_000
        );
        assert_eq!(
            ConnectionLimits::for_open_file_limit(Some(1 << 20)).max_connections,
            10_000
        );
    }

    #[tokio::test]
    async fn idle_connections_make_room_at_the_cap_and_busy_ones_stay() {
        let tracker = Tracker::new(limits(2, 1));
        let (_, idle) = tracker.admit();
        let (_, busy) = tracker.admit();
        let (idle, busy) = (idle.expect("served"), busy.expect("served"));
        let guard = busy.begin();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let idle_closes = tokio::spawn({
            let idle = idle.clone();
            async move { idle.closable().await }
        });
        let busy_closes = tokio::spawn({
            let busy = busy.clone();
            async move { busy.closable().await }
        });
        tokio::task::yield_now().await;
        // At the cap: served within the headroom, and the idle connection is asked to close.
        let (admission, third) = tracker.admit();
        assert_eq!(admission, Admission::Serve);
        tokio::time::timeout(Duration::from_secs(5), idle_closes)
            .await
            .expect("the idle connection closes")
            .expect("task");
        assert!(
            !busy_closes.is_finished(),
            "a connection with a request in flight stays"
        );
        assert_eq!(tracker.open(), 3);
        // Past the headroom: dropped.
        assert_eq!(tracker.admit().0, Admission::Drop);
        drop((idle, third, guard));
        assert_eq!(tracker.open(), 1);
        busy_closes.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_closable_after_the_idle_timeout() {
        let tracker = Tracker::new(ConnectionLimits {
            idle_timeout: Duration::from_secs(90),
            ..limits(10, 1)
        });
        let (_, conn) = tracker.admit();
        let conn = conn.expect("served");
        let guard = conn.begin();
        assert_eq!(conn.idle_for(), None);
        drop(guard);
        let closes = tokio::spawn({
            let conn = conn.clone();
            async move { conn.closable().await }
        });
        tokio::time::sleep(Duration::from_secs(89)).await;
        assert!(!closes.is_finished(), "idle for 89 s of 90");
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::yield_now().await;
        assert!(closes.is_finished(), "idle for 91 s");
        closes.abort();
    }
}
