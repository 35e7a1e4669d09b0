//! The change feed of a replica: learning about revisions committed by other replicas.
//!
//! Writers send `NOTIFY prext_changes, '<cluster>:<revision>'` inside their transaction;
//! PostgreSQL delivers it at commit, in commit order. Each replica keeps one dedicated
//! connection that `LISTEN`s and publishes the revisions of its own cluster. Notifications are
//! only a hint: they are lost while that connection is down, so the listener reconnects by
//! itself (with backoff), and a poller reads the counter row at least every
//! [`PostgresOptions::poll_interval`](super::PostgresOptions::poll_interval) and right after
//! each reconnect. A lost notification costs latency, never an event: watches read the
//! `changes` table, which is the source of truth.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::{pg_error, pool_error, timed_out};
use super::writer::CHANNEL;
use super::{publish, reader};
use crate::{Error, Result};

/// What the feed's tasks need.
#[derive(Clone)]
pub(crate) struct Feed {
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) tls: MakeRustlsConnect,
    pub(crate) pool: Pool,
    pub(crate) cluster: String,
    pub(crate) published: Arc<watch::Sender<i64>>,
    pub(crate) poll_interval: Duration,
    /// Client-side limit of one poll.
    pub(crate) poll_timeout: Duration,
}

/// Starts the listener and the poller; abort the handles to stop them.
pub(crate) fn spawn(feed: Feed) -> [JoinHandle<()>; 2] {
    let nudge = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(feed.clone(), Arc::clone(&nudge)));
    let poller = tokio::spawn(poll(feed, nudge));
    [listener, poller]
}

/// The revision in a notification payload, if it is about `cluster`.
pub(crate) fn parse_payload(payload: &str, cluster: &str) -> Option<i64> {
    let (c, rev) = payload.rsplit_once(':')?;
    (c == cluster).then(|| rev.parse().ok()).flatten()
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

async fn listen(feed: Feed, nudge: Arc<Notify>) {
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0u32;
    loop {
        let mut listening = false;
        let outcome = session(&feed, || {
            listening = true;
            // Catch up on whatever was committed while not listening.
            nudge.notify_one();
        })
        .await;
        if listening {
            backoff = MIN_BACKOFF;
            failures = 0;
        }
        failures += 1;
        match outcome {
            // Logged once per outage, then quietly retried.
            Err(e) if failures == 1 => {
                tracing::warn!(error = %e, "the change notification connection failed; reconnecting")
            }
            Err(e) => tracing::debug!(error = %e, failures, "change notification connection still down"),
            Ok(()) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One LISTEN connection, until it fails. Calls `on_listening` once `LISTEN` took effect.
async fn session(feed: &Feed, on_listening: impl FnOnce()) -> Result<()> {
    let (client, mut connection) = feed.pg.connect(feed.tls.clone()).await.map_err(pg_error)?;
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let listen_sql = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&listen_sql);
    tokio::pin!(listen);
    let mut on_listening = Some(on_listening);
    loop {
        tokio::select! {
            done = &mut listen, if on_listening.is_some() => {
                done.map_err(pg_error)?;
                if let Some(f) = on_listening.take() {
                    f();
                }
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Some(revision) = parse_payload(n.payload(), &feed.cluster) {
                        publish(&feed.published, revision);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(pg_error(e)),
                None => return Err(Error::Unavailable("postgres: the notification connection closed".into())),
            },
        }
    }
}

async fn poll(feed: Feed, nudge: Arc<Notify>) {
    let mut tick = tokio::time::interval(feed.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = nudge.notified() => {}
        }
        let read = async {
            let client = feed.pool.get().await.map_err(pool_error)?;
            reader::meta(&client, &feed.cluster).await
        };
        match tokio::time::timeout(feed.poll_timeout, read)
            .await
            .unwrap_or_else(|_| Err(timed_out("the revision poll")))
        {
            Ok((revision, _)) => publish(&feed.published, revision),
            Err(e) => tracing::debug!(error = %e, "polling the revision failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(parse_payload(":42", ""), Some(42));
        assert_eq!(parse_payload("prod:7", "prod"), Some(7));
        assert_eq!(
            parse_payload("a:b:9", "a:b"),
            Some(9),
            "a cluster name may hold ':'"
        );
        assert_eq!(parse_payload("prod:7", "dev"), None);
        assert_eq!(parse_payload("prod:7", ""), None);
        assert_eq!(parse_payload("prod:x", "prod"), None);
        assert_eq!(parse_payload("7", ""), None);
    }
}
