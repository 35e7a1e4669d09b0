//! The operations measured on a running prext, through its HTTP API as a client would: create
//! and update at a given concurrency, point gets, paginated and full lists.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::payload::Payload;
use crate::server::Prext;

/// The collection every benchmark object lives in.
pub const COLLECTION: &str = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/bench/policyreports";

/// Creates objects `0..n` with `c` requests in flight. Returns objects/s and each object's
/// resourceVersion (for the updates).
pub async fn create(
    prext: &Prext,
    payload: &Arc<Payload>,
    n: usize,
    c: usize,
) -> anyhow::Result<(f64, Vec<String>)> {
    let bodies: Vec<(usize, Vec<u8>)> = (0..n).map(|i| (i, payload.object("bench", i))).collect();
    let start = Instant::now();
    let results: Vec<anyhow::Result<(usize, u16, Vec<u8>)>> = futures::stream::iter(bodies)
        .map(|(i, b)| async move {
            let (status, body) = prext.send_body(http::Method::POST, COLLECTION, b).await?;
            Ok((i, status, body))
        })
        .buffer_unordered(c.max(1))
        .collect()
        .await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let mut versions = vec![String::new(); n];
    for r in results {
        let (i, status, body) = r?;
        anyhow::ensure!(
            status == 201,
            "create answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        versions[i] = resource_version(&body)?;
    }
    Ok((rate, versions))
}

fn resource_version(body: &[u8]) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    v["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("a created object without resourceVersion"))
}

/// Replaces objects `0..n` (PUT based on `versions`, adding a label) with `c` requests in
/// flight. Returns objects/s.
pub async fn update(
    prext: &Prext,
    payload: &Arc<Payload>,
    versions: &[String],
    c: usize,
) -> anyhow::Result<f64> {
    let bodies: Vec<(usize, Vec<u8>)> = versions
        .iter()
        .enumerate()
        .map(|(i, rv)| (i, payload.updated_at(i, rv)))
        .collect();
    let n = bodies.len();
    let start = Instant::now();
    let results: Vec<anyhow::Result<(u16, usize)>> = futures::stream::iter(bodies)
        .map(|(i, b)| async move {
            prext
                .send(http::Method::PUT, &format!("{COLLECTION}/bench-{i:07}"), b)
                .await
        })
        .buffer_unordered(c.max(1))
        .collect()
        .await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    for r in results {
        let (status, _) = r?;
        anyhow::ensure!(status == 200, "update answered {status}");
    }
    Ok(rate)
}

/// GETs the objects at `indices`, one at a time (after one warm-up request).
pub async fn gets(prext: &Prext, indices: &[usize]) -> anyhow::Result<Vec<Duration>> {
    prext
        .send(http::Method::GET, &format!("{COLLECTION}/bench-0000000"), vec![])
        .await?;
    let mut out = Vec::with_capacity(indices.len());
    for i in indices {
        let start = Instant::now();
        let (status, _) = prext
            .send(http::Method::GET, &format!("{COLLECTION}/bench-{i:07}"), vec![])
            .await?;
        out.push(start.elapsed());
        anyhow::ensure!(status == 200, "get answered {status}");
    }
    Ok(out)
}

/// Lists the collection in pages of `limit` (following `continue`), `walks` times. Returns
/// each page's latency.
pub async fn pages(prext: &Prext, limit: usize, walks: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::new();
    for _ in 0..walks {
        let mut token = String::new();
        loop {
            let mut path = format!("{COLLECTION}?limit={limit}");
            if !token.is_empty() {
                path.push_str("&continue=");
                path.push_str(&token);
            }
            let start = Instant::now();
            let (status, body) = prext.send_body(http::Method::GET, &path, vec![]).await?;
            out.push(start.elapsed());
            anyhow::ensure!(status == 200, "list page answered {status}");
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            match v["metadata"]["continue"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_owned(),
                _ => break,
            }
        }
    }
    Ok(out)
}

/// One full list of the collection. Returns (seconds, body bytes).
pub async fn full_list(prext: &Prext) -> anyhow::Result<(f64, usize)> {
    let start = Instant::now();
    let (status, bytes) = prext.send(http::Method::GET, COLLECTION, vec![]).await?;
    anyhow::ensure!(status == 200, "list answered {status}");
    Ok((start.elapsed().as_secs_f64(), bytes))
}

/// `count` object indices below `n`, spread deterministically (xorshift).
pub fn sample_indices(n: usize, count: usize) -> Vec<usize> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n.max(1) as u64) as usize
        })
        .collect()
}

/// The `p` percentile (0..=1) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&d, 0.5), 51.0);
        assert_eq!(percentile_ms(&d, 0.99), 99.0);
        assert!(percentile_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn sample_indices_stay_below_n_and_spread() {
        let s = sample_indices(1000, 500);
        assert!(s.iter().all(|i| *i < 1000));
        let distinct: std::collections::HashSet<_> = s.iter().collect();
        assert!(distinct.len() > 300, "{} distinct", distinct.len());
    }
}
