//! CPU per create in the server, without a store: every stage a POST of a report goes through
//! between the HTTP body and the store's write call, run N times in this process and timed
//! stage by stage, against the cost of plain `serde_json::from_slice::<Value>` + `to_vec` of the
//! same bytes (the least any JSON server does with a body).
//!
//! ```sh
//! cargo run --release -p prext-server --example create_cpu -- [REPORT.yaml|json] [N]
//! ```
//!
//! The report defaults to `testdata/kyverno-pss.yaml` (7.4 KB as JSON, 17 results, the
//! benchmarks' medium payload); each of the N bodies gets its own name. Each stage runs over
//! all N objects in one loop and is timed with the thread's CPU clock
//! (`/proc/thread-self/schedstat`), so timing costs nothing per object. The stages are those
//! of `handlers::write::create` and `Registry::create`: decoding (with the duplicate-key
//! scan of `fieldValidation=Warn`, the default), the identity checks, `create::prepare`
//! (defaulting, validation with pruning, managedFields), the store write's columns and
//! index (`strategy::object_write`), and the serialization a store does in the caller's task
//! (`Unstamped::new`, the results digest, the stamp). The response of a JSON create is the
//! stamped body itself (nothing is rendered).
//!
//! Then each created object is updated the way `prext-bench` updates it (a PUT of the same
//! report with one more label, based on its resourceVersion) through the stages of
//! `handlers::write::update` and `Registry::update`: decoding, the stored object parsed,
//! `update::replacement` (identity, `BeforeUpdate`, validation, managedFields against the
//! stored object, the no-op comparison), and the same store write and serialization.

// `Status` is the error of every stage, as in the library.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;

use bytes::Bytes;
use prext_api::meta::{self, BodyFormat};
use prext_api::ResourceDef;
use prext_server::decode;
use prext_server::registry::strategy::{
    admit, check_finalizers, check_identity, object_write, parse_stored, resource_version_set,
};
use prext_server::registry::{create, FieldValidation, WriteOptions};
use prext_store::stamp::Unstamped;
use prext_store::{ObjectKey, StoredObject};
use serde_json::Value;

/// CPU nanoseconds this thread has run (the first field of `schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Runs `f` and returns its value with the CPU nanoseconds it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let start = thread_cpu_ns();
    let out = f();
    (out, thread_cpu_ns().saturating_sub(start))
}

/// The report to create: the first document of the file, without what the server sets.
/// Decodes every body as a request's is decoded (duplicate keys found in the same parse),
/// timed on the thread's CPU clock.
fn decode_all(
    bodies: &[Bytes],
    field_validation: FieldValidation,
) -> anyhow::Result<(Vec<decode::Decoded>, u64)> {
    let (decoded, t) = timed(|| {
        bodies
            .iter()
            .map(|b| decode::body_with_duplicates(b, BodyFormat::Json, field_validation))
            .collect::<Result<Vec<_>, _>>()
    });
    Ok((decoded.map_err(|s| anyhow::anyhow!("{}", s.message))?, t))
}

fn template(path: &PathBuf) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)?;
    let first = text.split("\n---\n").next().unwrap_or(&text);
    let mut v: Value = serde_norway::from_str(first)?;
    if let Some(items) = v.get("items").and_then(Value::as_array) {
        v = items.first().cloned().unwrap_or(Value::Null);
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
        ] {
            m.remove(f);
        }
    }
    Ok(v)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kyverno-pss.yaml"));
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let template = template(&path)?;
    let namespace = meta::meta_str(&template, "namespace")
        .unwrap_or("default")
        .to_string();
    let api_version = template["apiVersion"].as_str().unwrap_or("");
    let kind = template["kind"].as_str().unwrap_or("");
    let def = prext_api::resources::find_kind(api_version, kind)
        .ok_or_else(|| anyhow::anyhow!("{api_version} {kind} is not served"))?;
    let bodies: Vec<Bytes> = (0..n)
        .map(|i| {
            let mut v = template.clone();
            v["metadata"]["name"] = Value::from(format!("bench-{i:07}"));
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        })
        .collect();
    let size = bodies[0].len();
    let opts = WriteOptions {
        dry_run: false,
        field_validation: FieldValidation::Warn,
        field_manager: None,
        default_manager: "create_cpu".into(),
        force: None,
        duplicates: Vec::new(),
    };
    let key = ObjectKey::new(def.group_resource(), namespace.clone(), "");

    // Warm up the allocator and the schema's lazy statics.
    for b in bodies.iter().take(50) {
        let v: Value = serde_json::from_slice(b)?;
        std::hint::black_box(serde_json::to_vec(&v)?);
    }

    let (sizes, baseline) = timed(|| {
        bodies
            .iter()
            .map(|b| {
                let v: Value = serde_json::from_slice(b).unwrap_or_default();
                serde_json::to_vec(&v).map(|out| out.len()).unwrap_or(0)
            })
            .sum::<usize>()
    });
    std::hint::black_box(sizes);

    let mut stages: Vec<(&str, u64)> = Vec::new();
    let (decoded, t) = decode_all(&bodies, opts.field_validation)?;
    stages.push(("decode (+ duplicate keys)", t));

    let (objs, t) = timed(|| {
        decoded
            .into_iter()
            .map(|d| {
                let mut obj = d.value;
                std::hint::black_box(resource_version_set(&obj));
                meta::check_type(def, &obj)?;
                meta::ensure_namespace(def, &mut obj, Some(&namespace))?;
                std::hint::black_box(meta::meta_str(&obj, "name").is_none_or(str::is_empty));
                Ok((obj, d.duplicates))
            })
            .collect::<Result<Vec<_>, prext_api::status::Status>>()
    });
    let objs = objs.map_err(|s| anyhow::anyhow!("{}", s.message))?;
    stages.push(("identity checks", t));

    let now = jiff::Timestamp::now();
    let (prepared, t) = timed(|| {
        objs.into_iter()
            .map(|(mut obj, duplicates)| {
                let opts = WriteOptions {
                    duplicates,
                    ..opts.clone()
                };
                create::prepare(def, &mut obj, &opts, now).map(|w| (obj, w))
            })
            .collect::<Result<Vec<_>, _>>()
    });
    let prepared = prepared.map_err(|s| anyhow::anyhow!("{}", s.message))?;
    stages.push(("prepare: defaults, validation, managedFields", t));

    let (writes, t) = timed(|| {
        prepared
            .into_iter()
            .map(|(obj, _)| object_write(def, &key, obj))
            .collect::<Vec<_>>()
    });
    stages.push(("store write: columns and index", t));

    let (stamped, t) = timed(|| {
        writes
            .iter()
            .map(|w| {
                std::hint::black_box(w.index.results_digest());
                let body = Unstamped::new(&w.body).unwrap_or_else(|e| panic!("{e}"));
                Bytes::from(body.stamp(12345))
            })
            .collect::<Vec<_>>()
    });
    stages.push(("store: serialize, digest, stamp", t));
    std::hint::black_box(writes);

    let updates = update_stages(def, &namespace, &opts, &stamped)?;

    let total: u64 = stages.iter().map(|(_, t)| t).sum();
    let per = |ns: u64| ns as f64 / n as f64 / 1000.0;
    println!("{} creates of {size} bytes ({})", n, path.display());
    print_stages(("stage", "µs/create", "total"), &stages, n);
    print_stages(("update stage", "µs/update", "update total"), &updates, n);
    println!(
        "{:<48} {:>10.1}",
        "baseline: from_slice::<Value> + to_vec",
        per(baseline)
    );
    println!(
        "{:<48} {:>10.2}",
        "ratio total / baseline",
        total as f64 / baseline.max(1) as f64
    );
    Ok(())
}

/// The stages of an update of each of `stored` (stamped create answers) by a body with one
/// more label, based on its resourceVersion: what `update::replacement` does, step by step.
fn update_stages(
    def: &'static ResourceDef,
    namespace: &str,
    opts: &WriteOptions,
    stored: &[Bytes],
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    const REVISION: i64 = 12345;
    let current: Vec<StoredObject> = stored
        .iter()
        .map(|body| {
            let v: Value = serde_json::from_slice(body)?;
            let name = meta::meta_str(&v, "name").unwrap_or("").to_string();
            Ok(StoredObject {
                key: ObjectKey::new(def.group_resource(), namespace, name),
                uid: meta::meta_str(&v, "uid").unwrap_or("").to_string(),
                revision: REVISION,
                body: body.clone(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    // The PUT body: the report as the client has it (no server-set metadata but the
    // resourceVersion), with one more label.
    let bodies: Vec<Bytes> = current
        .iter()
        .map(|c| {
            let mut v: Value = serde_json::from_slice(&c.body)?;
            if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                for f in ["uid", "creationTimestamp", "generation", "managedFields"] {
                    m.remove(f);
                }
            }
            v["metadata"]["labels"]["bench/updated"] = Value::from("true");
            Ok(Bytes::from(serde_json::to_vec(&v)?))
        })
        .collect::<anyhow::Result<_>>()?;

    let mut stages: Vec<(&str, u64)> = Vec::new();
    let (decoded, t) = decode_all(&bodies, opts.field_validation)?;
    stages.push(("update: decode (+ duplicate keys)", t));

    let (olds, t) = timed(|| current.iter().map(parse_stored).collect::<Result<Vec<_>, _>>());
    let olds = olds.map_err(|s| anyhow::anyhow!("{}", s.message))?;
    stages.push(("update: stored object parsed", t));

    let now = meta::format_time(jiff::Timestamp::now());
    let (replaced, t) = timed(|| {
        decoded
            .into_iter()
            .zip(&olds)
            .zip(&current)
            .map(|((d, old), cur)| {
                let mut new = d.value;
                let opts = WriteOptions {
                    duplicates: d.duplicates,
                    ..opts.clone()
                };
                check_identity(def, &mut new, Some(namespace), &cur.key.name)?;
                meta::prepare_update(old, &mut new)
                    .map_err(|e| prext_api::status::Status::bad_request(e.to_string()))?;
                let warnings = admit(def, &mut new, opts.field_validation, &opts.duplicates)?;
                prext_api::apply::record_update(def, Some(old), &mut new, opts.manager(), &now);
                check_finalizers(def, old, &new)?;
                meta::metadata_mut(&mut new)?
                    .insert("resourceVersion".into(), Value::String(cur.revision.to_string()));
                if prext_api::equal::equal(&new, old) {
                    return Err(prext_api::status::Status::internal("the update changed nothing"));
                }
                std::hint::black_box(warnings);
                Ok(object_write(def, &cur.key, new))
            })
            .collect::<Result<Vec<_>, prext_api::status::Status>>()
    });
    let writes = replaced.map_err(|s| anyhow::anyhow!("{}", s.message))?;
    stages.push(("update: replacement (checks, validation, managedFields)", t));

    let (stamped, t) = timed(|| {
        writes
            .iter()
            .map(|w| {
                std::hint::black_box(w.index.results_digest());
                let body = Unstamped::new(&w.body).unwrap_or_else(|e| panic!("{e}"));
                Bytes::from(body.stamp(REVISION + 1))
            })
            .collect::<Vec<_>>()
    });
    stages.push(("update: serialize, digest, stamp", t));
    std::hint::black_box((olds, stamped));
    Ok(stages)
}

/// Prints each stage's µs per operation (`n` of them) and share of the total, then the total.
fn print_stages((title, unit, total_name): (&str, &str, &str), stages: &[(&str, u64)], n: usize) {
    let total: u64 = stages.iter().map(|(_, t)| t).sum();
    let per = |ns: u64| ns as f64 / n as f64 / 1000.0;
    println!("{title:<48} {unit:>10} {:>8}", "share");
    for (name, t) in stages {
        println!(
            "{name:<48} {:>10.1} {:>7.0}%",
            per(*t),
            *t as f64 * 100.0 / total.max(1) as f64
        );
    }
    println!("{total_name:<48} {:>10.1}", per(total));
}
