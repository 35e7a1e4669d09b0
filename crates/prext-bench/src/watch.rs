//! Watch delivery latency: `watchers` concurrent watches while one client writes at a steady
//! rate; the latency of an event is the time from the write's request being sent to the
//! event's arrival at a watcher (an event often arrives before the write's 201 does, so the
//! acknowledgment cannot be the start).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use http_body_util::BodyExt;

use crate::payload::Payload;
use crate::server::Prext;

/// The figures of one run.
pub struct WatchFigures {
    pub events: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub achieved_rate: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// The name of the report an ADDED event carries, or `None` for any other event.
///
/// A hundred watchers on the same two cores as the server would otherwise spend a core or more
/// parsing every 7 KB event into a `serde_json::Value`, and the figure would measure the
/// benchmark's clients rather than the server: the event's type and the report's name
/// (`bench-NNNNNNN`, a name nothing else in the payload has) are found by scanning the line,
/// and only a line where the scan fails is parsed in full.
fn added_name(line: &[u8]) -> Option<String> {
    const ADDED: &[u8] = br#"{"type":"ADDED""#;
    const NAME: &[u8] = br#""name":"bench-"#;
    if !line.starts_with(br#"{"type":""#) {
        return parse_added_name(line);
    }
    if !line.starts_with(ADDED) {
        return None;
    }
    let at = line.windows(NAME.len()).position(|w| w == NAME)?;
    let start = at + NAME.len() - "bench-".len();
    let len = line[start..].iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&line[start..start + len])
        .ok()
        .map(str::to_owned)
}

fn parse_added_name(line: &[u8]) -> Option<String> {
    let ev = serde_json::from_slice::<serde_json::Value>(line).ok()?;
    (ev["type"] == "ADDED").then(|| ev["object"]["metadata"]["name"].as_str().unwrap_or("").to_owned())
}

/// Runs `watchers` watches and writes `rate` creates per second for `seconds`.
pub async fn run(
    prext: &Prext,
    payload: &Payload,
    watchers: usize,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<WatchFigures> {
    let coll = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/watchbench/policyreports";
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let received: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let (_, _) = prext.send(http::Method::GET, coll, vec![]).await?;
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let req = http::Request::builder()
            .uri(format!("{coll}?watch=1&timeoutSeconds={}", seconds + 30))
            .body(kube::client::Body::empty())?;
        let resp = prext.client.send(req).await?;
        anyhow::ensure!(resp.status() == 200, "watch answered {}", resp.status());
        let received = received.clone();
        tasks.push(tokio::spawn(async move {
            let mut body = resp.into_body();
            let mut buf = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else { continue };
                let now = Instant::now();
                buf.extend_from_slice(&data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if let Some(name) = added_name(&line) {
                        received.lock().map(|mut r| r.push((name, now))).ok();
                    }
                }
            }
        }));
    }
    // Let every watch establish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = rate as u64 * seconds;
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = futures::stream::FuturesUnordered::new();
    for i in 0..total as usize {
        ticker.tick().await;
        let body = payload.object("watchbench", i);
        let name = format!("bench-{i:07}");
        let acked = acked.clone();
        inflight.push(async move {
            let sent = Instant::now();
            let r = prext.send(http::Method::POST, coll, body).await;
            if let Ok((201, _)) = r {
                acked.lock().map(|mut a| a.insert(name, sent)).ok();
            }
        });
        while let Some(Some(())) = futures::FutureExt::now_or_never(inflight.next()) {}
    }
    while inflight.next().await.is_some() {}
    let achieved_rate = total as f64 / start.elapsed().as_secs_f64();
    // Wait for the tail of the events.
    let expected = total as usize * watchers;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.lock().map(|r| r.len()).unwrap_or(0) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        t.abort();
    }
    let acked = acked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let received = received.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let mut lat: Vec<Duration> = received
        .iter()
        .filter_map(|(name, at)| acked.get(name).map(|a| at.saturating_duration_since(*a)))
        .collect();
    lat.sort();
    Ok(WatchFigures {
        events: received.len(),
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
        achieved_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::added_name;

    #[test]
    fn finds_the_report_name_of_added_events_only() {
        let added = br#"{"type":"ADDED","object":{"kind":"PolicyReport","metadata":{"name":"bench-0000042","namespace":"w"},"results":[{"resources":[{"name":"pod-1"}]}]}}"#;
        assert_eq!(added_name(added).as_deref(), Some("bench-0000042"));
        let modified = br#"{"type":"MODIFIED","object":{"metadata":{"name":"bench-0000042"}}}"#;
        assert_eq!(added_name(modified), None);
        let other_order = br#"{"object":{"metadata":{"name":"bench-0000007"}},"type":"ADDED"}"#;
        assert_eq!(added_name(other_order).as_deref(), Some("bench-0000007"));
        assert_eq!(added_name(b"not json"), None);
    }
}
