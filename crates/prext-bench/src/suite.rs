//! One backend's run: for each concurrency level a fresh prext and a fresh reference, loaded
//! with the same objects (create, then update, throughput); on the first level the read
//! figures too (start to ready, idle RSS, bytes stored per report, get latency, paginated list,
//! full list with the server's peak RSS); last, watch delivery latency. etcd's figures, when
//! etcd runs, are measured once per run and shown on every backend's rows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::Backend;
use crate::cpu;
use crate::ops::{self, percentile_ms};
use crate::payload::Payload;
use crate::raw_etcd::EtcdReference;
use crate::server::{self, RssSampler};
use crate::table::{Row, Table};
use crate::watch;

/// What a run measures.
pub struct Plan {
    pub binary: PathBuf,
    pub payload: Arc<Payload>,
    pub objects: usize,
    pub concurrency: Vec<usize>,
    /// Point gets timed.
    pub gets: usize,
    /// Times the paginated list walks the whole collection.
    pub page_walks: usize,
    pub watchers: usize,
    pub watch_rate: u32,
    pub watch_seconds: u64,
}

const MB: f64 = 1024.0 * 1024.0;
const PAGE: usize = 500;

/// Runs every measure on `backend`, adding rows to `table`. `tmp` holds the data dirs.
pub async fn run(
    backend: &Backend,
    plan: &Plan,
    tmp: &Path,
    mut etcd: Option<&mut EtcdReference>,
    table: &mut Table,
) -> anyhow::Result<()> {
    let b = backend.name();
    let n = plan.objects;
    let row = |measure: &str, concurrency, unit, prext, reference, etcd| Row {
        backend: b,
        measure: measure.to_owned(),
        concurrency,
        unit,
        prext,
        reference,
        etcd,
    };
    for (level, &c) in plan.concurrency.iter().enumerate() {
        let reference = backend.reference(&tmp.join(format!("{b}-raw-c{c}"))).await?;
        // The reference's CPU: this process (the clients; raw SQLite itself) and the database.
        let ref_cpu = || cpu::this_process() + backend.database_cpu();
        let (before, db_before) = (ref_cpu(), backend.database_cpu());
        let ref_create = reference.inserts(&plan.payload, n, c).await?;
        let ref_create_cpu = cpu::per_op_ms(before, ref_cpu(), n);
        let ref_create_db = cpu::per_op_ms(db_before, backend.database_cpu(), n);
        let ref_bytes = reference.bytes().await? as f64;
        let before = ref_cpu();
        let ref_update = reference.updates(&plan.payload, n, c).await?;
        let ref_update_cpu = cpu::per_op_ms(before, ref_cpu(), n);
        let etcd_writes = match etcd.as_deref_mut() {
            Some(e) => e.writes(&plan.payload, n, c).await,
            None => None,
        };

        let (prext, stored) = backend
            .prext(&plan.binary, &tmp.join(format!("{b}-prext-c{c}")))
            .await?;
        let idle = server::rss(prext.pid());
        // prext's CPU: its server process and the database; the clients' apart.
        let server_cpu = || cpu::process(prext.pid()) + backend.database_cpu();
        let (before, client_before, db_before) = (server_cpu(), cpu::this_process(), backend.database_cpu());
        let (create, versions) = ops::create(&prext, &plan.payload, n, c).await?;
        let create_cpu = cpu::per_op_ms(before, server_cpu(), n);
        let create_db = cpu::per_op_ms(db_before, backend.database_cpu(), n);
        let client_cpu = cpu::per_op_ms(client_before, cpu::this_process(), n);
        table.add(row(
            "create",
            Some(c),
            "objects/s",
            create,
            Some(ref_create),
            etcd_writes.map(|w| w.0),
        ));
        let prext_bytes = backend.stored_bytes(&stored).await? as f64;
        let before = server_cpu();
        let update = ops::update(&prext, &plan.payload, &versions, c).await?;
        let update_cpu = cpu::per_op_ms(before, server_cpu(), n);
        table.add(row(
            "update (PUT)",
            Some(c),
            "objects/s",
            update,
            Some(ref_update),
            etcd_writes.map(|w| w.1),
        ));
        for (what, prext_ms, ref_ms) in [
            ("create", create_cpu, ref_create_cpu),
            ("update", update_cpu, ref_update_cpu),
        ] {
            table.add(row(
                &format!("CPU per {what}: server + database (raw: client + database)"),
                Some(c),
                "ms",
                prext_ms,
                Some(ref_ms),
                None,
            ));
        }
        if let Backend::Postgres(_) = backend {
            table.add(row(
                "CPU per create: of which PostgreSQL",
                Some(c),
                "ms",
                create_db,
                Some(ref_create_db),
                None,
            ));
        }
        table.add(row(
            "CPU per create: the benchmark's HTTPS client",
            Some(c),
            "ms",
            client_cpu,
            None,
            None,
        ));
        if level > 0 {
            prext.stop();
            continue;
        }
        table.add(row(
            "time from start to ready",
            None,
            "ms",
            prext.startup.as_secs_f64() * 1e3,
            None,
            None,
        ));
        table.add(row(
            "idle RSS (empty store)",
            None,
            "MB",
            idle as f64 / MB,
            None,
            None,
        ));
        table.add(row(
            &format!("bytes stored per report ({n} reports)"),
            None,
            "bytes",
            prext_bytes / n as f64,
            Some(ref_bytes / n as f64),
            None,
        ));
        table.add(row(
            &format!("RSS with {n} reports stored"),
            None,
            "MB",
            server::rss(prext.pid()) as f64 / MB,
            None,
            None,
        ));

        let indices = ops::sample_indices(n, plan.gets);
        let etcd_reads = match etcd.as_deref_mut() {
            Some(e) => e.reads(&indices, PAGE, plan.page_walks).await,
            None => None,
        };
        let mut got = ops::gets(&prext, &indices).await?;
        let mut ref_got = reference.gets(&indices).await?;
        got.sort();
        ref_got.sort();
        for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
            table.add(row(
                &format!("get latency {label} ({n} stored)"),
                None,
                "ms",
                percentile_ms(&got, p),
                Some(percentile_ms(&ref_got, p)),
                etcd_reads.as_ref().map(|r| percentile_ms(&r.gets, p)),
            ));
        }

        let mut pages = ops::pages(&prext, PAGE, plan.page_walks).await?;
        let mut ref_pages = reference.pages(PAGE, plan.page_walks).await?;
        pages.sort();
        ref_pages.sort();
        table.add(row(
            &format!("list page (limit {PAGE}) p99 ({n} stored)"),
            None,
            "ms",
            percentile_ms(&pages, 0.99),
            Some(percentile_ms(&ref_pages, 0.99)),
            etcd_reads.as_ref().map(|r| percentile_ms(&r.pages, 0.99)),
        ));

        let sampler = RssSampler::start(prext.pid());
        let (secs, bytes) = ops::full_list(&prext).await?;
        let peak = sampler.peak();
        drop(sampler);
        let (ref_secs, ref_bytes) = reference.full_scan().await?;
        let etcd_full = etcd_reads.as_ref().map(|r| r.full);
        table.add(row(
            &format!("full list of {n} (time)"),
            None,
            "ms",
            secs * 1e3,
            Some(ref_secs * 1e3),
            etcd_full.map(|f| f.0 * 1e3),
        ));
        table.add(row(
            &format!("full list of {n} (throughput)"),
            None,
            "MB/s",
            bytes as f64 / MB / secs,
            Some(ref_bytes as f64 / MB / ref_secs),
            etcd_full.map(|(secs, bytes)| bytes as f64 / MB / secs),
        ));
        table.add(row(
            &format!("server peak RSS during the full list of {n}"),
            None,
            "MB",
            peak as f64 / MB,
            None,
            None,
        ));
        prext.stop();
    }
    if plan.watchers > 0 {
        let (prext, _) = backend
            .prext(&plan.binary, &tmp.join(format!("{b}-prext-watch")))
            .await?;
        let w = watch::run(
            &prext,
            &plan.payload,
            plan.watchers,
            plan.watch_rate,
            plan.watch_seconds,
        )
        .await?;
        let label = format!(
            "watch delivery {{}} ({} watchers, {:.0} writes/s)",
            plan.watchers, w.achieved_rate
        );
        for (name, d) in [("p50", w.p50), ("p99", w.p99), ("max", w.max)] {
            table.add(row(
                &label.replace("{}", name),
                None,
                "ms",
                d.as_secs_f64() * 1e3,
                None,
                None,
            ));
        }
        println!(
            "          ({} events; latency: write sent to event received; no reference has watches)",
            w.events
        );
        prext.stop();
    }
    Ok(())
}
