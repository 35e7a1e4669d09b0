//! The etcd reference: what the Kubernetes API server would store the reports in. A throwaway
//! etcd (Debian's `etcd-server`, found on `PATH`) on loopback ports with a temporary data
//! dir, driven through its v3 JSON gateway (`/v3/kv/put`, `/v3/kv/range`) with one
//! request per put, like the API server's one put per write.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use serde_json::{json, Value};

use crate::payload::Payload;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A running throwaway etcd, killed on drop.
pub struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn key(i: usize) -> String {
    B64.encode(format!(
        "/registry/wgpolicyk8s.io/policyreports/bench/bench-{i:07}"
    ))
}

impl Etcd {
    /// Starts etcd on two free loopback ports and waits until it answers.
    pub async fn start() -> anyhow::Result<Etcd> {
        let dir = tempfile::Builder::new().prefix("prext-etcd-").tempdir()?;
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new("etcd")
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args([
                "--initial-cluster",
                &format!("bench={peer_url}"),
                "--quota-backend-bytes",
                "8589934592",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting etcd (Debian: apt-get install etcd-server)")?;
        let etcd = Etcd {
            child,
            _dir: dir,
            base: client_url,
            client: Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while etcd.call("/v3/kv/range", json!({"key": key(0)})).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "etcd did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(etcd)
    }

    async fn call(&self, path: &str, body: Value) -> anyhow::Result<(Value, usize)> {
        let req = http::Request::post(format!("{}{path}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?;
        let resp = self.client.request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status.is_success(),
            "etcd {path} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        Ok((serde_json::from_slice(&bytes)?, bytes.len()))
    }

    /// Puts objects `0..n` (`updated` bodies for the update benchmark) with `c` requests in
    /// flight. Returns puts/s.
    pub async fn puts(&self, payload: &Payload, n: usize, c: usize, updated: bool) -> anyhow::Result<f64> {
        let bodies: Vec<Value> = (0..n)
            .map(|i| {
                let body = if updated {
                    payload.updated(i)
                } else {
                    payload.object("bench", i)
                };
                json!({"key": key(i), "value": B64.encode(body)})
            })
            .collect();
        let start = Instant::now();
        let results: Vec<anyhow::Result<(Value, usize)>> = futures::stream::iter(bodies)
            .map(|b| self.call("/v3/kv/put", b))
            .buffer_unordered(c.max(1))
            .collect()
            .await;
        let rate = n as f64 / start.elapsed().as_secs_f64();
        for r in results {
            r?;
        }
        Ok(rate)
    }

    /// Point reads (serializable=false: linearizable, like the API server's quorum reads).
    pub async fn gets(&self, indices: &[usize]) -> anyhow::Result<Vec<Duration>> {
        let mut out = Vec::with_capacity(indices.len());
        for i in indices {
            let start = Instant::now();
            let (v, _) = self.call("/v3/kv/range", json!({"key": key(*i)})).await?;
            out.push(start.elapsed());
            anyhow::ensure!(
                v["kvs"].as_array().is_some_and(|a| a.len() == 1),
                "key {i} not found"
            );
        }
        Ok(out)
    }

    /// Reads the prefix in ranges of `limit` keys, `walks` times. Returns each range's latency.
    pub async fn pages(&self, limit: usize, walks: usize) -> anyhow::Result<Vec<Duration>> {
        let prefix = "/registry/wgpolicyk8s.io/policyreports/bench/";
        let end = B64.encode("/registry/wgpolicyk8s.io/policyreports/bench0");
        let mut out = Vec::new();
        for _ in 0..walks {
            let mut from = B64.encode(prefix);
            loop {
                let start = Instant::now();
                let (v, _) = self
                    .call(
                        "/v3/kv/range",
                        json!({"key": from, "range_end": end, "limit": limit}),
                    )
                    .await?;
                out.push(start.elapsed());
                let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
                if !v["more"].as_bool().unwrap_or(false) {
                    break;
                }
                let last = kvs
                    .last()
                    .and_then(|kv| kv["key"].as_str())
                    .context("a page without keys")?;
                let mut next = B64.decode(last)?;
                next.push(0);
                from = B64.encode(next);
            }
        }
        Ok(out)
    }

    /// One range read of the whole prefix. Returns (seconds, decoded value bytes).
    pub async fn full_range(&self) -> anyhow::Result<(f64, usize)> {
        let start = Instant::now();
        let (v, _) = self
            .call(
                "/v3/kv/range",
                json!({"key": B64.encode("/registry/wgpolicyk8s.io/policyreports/bench/"),
                       "range_end": B64.encode("/registry/wgpolicyk8s.io/policyreports/bench0")}),
            )
            .await?;
        let mut bytes = 0;
        for kv in v["kvs"].as_array().map(Vec::as_slice).unwrap_or_default() {
            bytes += B64.decode(kv["value"].as_str().unwrap_or_default())?.len();
        }
        Ok((start.elapsed().as_secs_f64(), bytes))
    }

    /// Deletes every key, so the next load starts empty, and compacts and defragments.
    pub async fn clear(&self) -> anyhow::Result<()> {
        let (v, _) = self
            .call(
                "/v3/kv/deleterange",
                json!({"key": B64.encode("/registry/"), "range_end": B64.encode("/registry0")}),
            )
            .await?;
        if let Some(rev) = v["header"]["revision"].as_str() {
            self.call("/v3/kv/compaction", json!({"revision": rev, "physical": true}))
                .await?;
        }
        Ok(())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The etcd figures of a run, measured once and shared by every backend's rows.
pub struct EtcdReference {
    etcd: Etcd,
    writes: std::collections::HashMap<usize, (f64, f64)>,
    reads: Option<EtcdReads>,
}

/// etcd's read figures, with the store holding the benchmark's objects.
#[derive(Clone)]
pub struct EtcdReads {
    /// Sorted point-read latencies.
    pub gets: Vec<Duration>,
    /// Sorted range latencies (limit 500).
    pub pages: Vec<Duration>,
    /// The full range read: (seconds, bytes).
    pub full: (f64, usize),
}

impl EtcdReference {
    /// Starts etcd; `None` (with a note) when it cannot run here.
    pub async fn start() -> Option<EtcdReference> {
        match Etcd::start().await {
            Ok(etcd) => Some(EtcdReference {
                etcd,
                writes: Default::default(),
                reads: None,
            }),
            Err(e) => {
                println!("(no etcd reference: {e:#})");
                None
            }
        }
    }

    /// (puts/s of objects `0..n`, puts/s of their updates) with `c` in flight; measured on the
    /// first call for each `c`.
    pub async fn writes(&mut self, payload: &Payload, n: usize, c: usize) -> Option<(f64, f64)> {
        if let Some(w) = self.writes.get(&c) {
            return Some(*w);
        }
        let measured = async {
            self.etcd.clear().await?;
            let create = self.etcd.puts(payload, n, c, false).await?;
            let update = self.etcd.puts(payload, n, c, true).await?;
            anyhow::Ok((create, update))
        }
        .await;
        match measured {
            Ok(w) => {
                self.writes.insert(c, w);
                Some(w)
            }
            Err(e) => {
                println!("(etcd writes at {c} clients failed: {e:#})");
                None
            }
        }
    }

    /// The read figures; measured on the first call, which must follow [`Self::writes`].
    pub async fn reads(&mut self, indices: &[usize], limit: usize, walks: usize) -> Option<EtcdReads> {
        if self.reads.is_none() {
            let measured = async {
                let mut gets = self.etcd.gets(indices).await?;
                let mut pages = self.etcd.pages(limit, walks).await?;
                gets.sort();
                pages.sort();
                let full = self.etcd.full_range().await?;
                anyhow::Ok(EtcdReads { gets, pages, full })
            }
            .await;
            match measured {
                Ok(r) => self.reads = Some(r),
                Err(e) => println!("(etcd reads failed: {e:#})"),
            }
        }
        self.reads.clone()
    }
}
