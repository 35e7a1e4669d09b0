//! Tests of the copy loop against an in-memory source and a real SQLite store.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use prext_api::RESOURCES;
use prext_store::{ObjectKey, Store};
use serde_json::{json, Value};

use super::*;
use crate::migrate::summary::{Counts, EXIT_INCOMPLETE, EXIT_STOPPED};

/// Pages of `limit` objects with tokens `"<offset>"`, and scripted failures.
#[derive(Default)]
struct FakeSource {
    objects: BTreeMap<String, Vec<Value>>,
    /// Answer 403 for these resources.
    forbidden: Vec<String>,
    /// The next request with this token gets a 410 carrying this fresh token (if any).
    expire: RefCell<Option<(String, Option<String>)>>,
    /// Every request: (resource, token).
    calls: RefCell<Vec<(String, Option<String>)>>,
}

impl Source for FakeSource {
    async fn page(
        &self,
        def: &'static ResourceDef,
        limit: u32,
        token: Option<&str>,
    ) -> Result<Page, SourceError> {
        let resource = def.group_resource();
        self.calls
            .borrow_mut()
            .push((resource.clone(), token.map(str::to_string)));
        if self.forbidden.contains(&resource) {
            return Err(SourceError::Api {
                code: 403,
                message: "forbidden".into(),
            });
        }
        let expired = self
            .expire
            .borrow()
            .as_ref()
            .is_some_and(|(t, _)| Some(t.as_str()) == token);
        if expired {
            let (_, fresh) = self.expire.borrow_mut().take().unwrap_or_default();
            return Err(SourceError::Expired { fresh });
        }
        let Some(all) = self.objects.get(&resource) else {
            return Err(SourceError::NotServed);
        };
        let start: usize = token.and_then(|t| t.parse().ok()).unwrap_or(0);
        let end = (start + limit as usize).min(all.len());
        Ok(Page {
            items: all[start..end].to_vec(),
            next: (end < all.len()).then(|| end.to_string()),
        })
    }
}

fn polr(ns: &str, name: &str, pass: i64) -> Value {
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": ns, "uid": format!("src-{name}"), "resourceVersion": "7",
                     "labels": {"app": name}},
        "summary": {"pass": pass}
    })
}

fn cpolr(name: &str) -> Value {
    json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "ClusterPolicyReport",
           "metadata": {"name": name}, "summary": {"fail": 1}})
}

const POLR: &str = "policyreports.wgpolicyk8s.io";
const CPOLR: &str = "clusterpolicyreports.wgpolicyk8s.io";

fn source(n_polr: usize) -> FakeSource {
    let mut objects = BTreeMap::new();
    objects.insert(
        POLR.to_string(),
        (0..n_polr).map(|i| polr("ns", &format!("r{i}"), 1)).collect(),
    );
    objects.insert(CPOLR.to_string(), vec![cpolr("c0"), cpolr("c1")]);
    FakeSource {
        objects,
        ..Default::default()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = prext_store::sqlite::SqliteStore::open(&dir.path().join("prext.db"), Default::default())
            .expect("open store");
        Self {
            dir,
            store: Arc::new(store),
        }
    }

    fn file(&self) -> CheckpointFile {
        CheckpointFile::in_dir(self.dir.path())
    }

    /// Runs the engine over the first three served kinds (the third is not in any source).
    async fn run(&self, src: &FakeSource, max_objects: Option<u64>, dry_run: bool) -> (Summary, Vec<String>) {
        let plan = Plan {
            kinds: RESOURCES[..3].iter().collect(),
            page_size: 2,
            max_objects,
        };
        let target = if dry_run {
            Target::dry_run(Some(self.store.clone()))
        } else {
            Target::new(self.store.clone())
        };
        let file = self.file();
        let checkpoint = match (dry_run, file.load().expect("load checkpoint")) {
            (false, Some(cp)) => cp,
            _ => Checkpoint::new("fake"),
        };
        let mut lines = Vec::new();
        let mut progress = |l: &str| lines.push(l.to_string());
        let engine = Engine {
            source: src,
            target: &target,
            plan: &plan,
            checkpoint_file: (!dry_run).then_some(&file),
            progress: &mut progress,
        };
        let summary = engine.run(checkpoint, dry_run).await;
        (summary, lines)
    }

    async fn stored(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let key = ObjectKey::new(resource, ns, name);
        let obj = self.store.get(&key).await.expect("get")?;
        Some(serde_json::from_slice(&obj.body).expect("json"))
    }
}

fn counts(s: &Summary, resource: &str) -> Counts {
    s.kinds
        .iter()
        .find(|k| k.resource == resource)
        .map(|k| k.counts)
        .unwrap_or_default()
}

#[tokio::test]
async fn copies_every_page_then_finds_everything_unchanged() {
    let fx = Fixture::new();
    let src = source(5);
    let (first, lines) = fx.run(&src, None, false).await;
    assert_eq!(first.exit_code(), 0, "{}", first.render());
    assert_eq!(
        counts(&first, POLR),
        Counts {
            listed: 5,
            created: 5,
            ..Default::default()
        }
    );
    assert_eq!(counts(&first, CPOLR).created, 2);
    assert_eq!(first.kinds[2].state, KindState::NotServed);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{POLR}: page 3: 5 listed"))),
        "{lines:?}"
    );
    let copy = fx.stored(POLR, "ns", "r4").await.expect("copied");
    assert_eq!(copy["metadata"]["labels"], json!({"app": "r4"}));
    assert_ne!(copy["metadata"]["uid"], "src-r4");
    assert!(!fx.file().path().exists(), "a complete run leaves no checkpoint");

    let (second, _) = fx.run(&src, None, false).await;
    assert_eq!(
        counts(&second, POLR),
        Counts {
            listed: 5,
            unchanged: 5,
            ..Default::default()
        }
    );
    assert_eq!(second.total().created + second.total().updated, 0);
    assert_eq!(
        fx.stored(POLR, "ns", "r4").await.expect("copied")["metadata"]["uid"],
        copy["metadata"]["uid"]
    );

    let mut changed = source(5);
    changed.objects.get_mut(POLR).expect("polr")[1] = polr("ns", "r1", 9);
    let (third, _) = fx.run(&changed, None, false).await;
    assert_eq!(
        counts(&third, POLR),
        Counts {
            listed: 5,
            updated: 1,
            unchanged: 4,
            ..Default::default()
        }
    );
    assert_eq!(
        fx.stored(POLR, "ns", "r1").await.expect("copied")["summary"]["pass"],
        9
    );
}

#[tokio::test]
async fn bad_objects_are_skipped_and_reported_without_stopping() {
    let fx = Fixture::new();
    let mut src = source(3);
    let list = src.objects.get_mut(POLR).expect("polr");
    list[1]["metadata"]["name"] = json!("Bad_Name");
    list[2]["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    let (summary, _) = fx.run(&src, None, false).await;
    assert_eq!(
        counts(&summary, POLR),
        Counts {
            listed: 3,
            created: 1,
            skipped: 2,
            ..Default::default()
        }
    );
    assert_eq!(counts(&summary, CPOLR).created, 2, "the run went on");
    assert_eq!(summary.skipped.len(), 2);
    assert_eq!(summary.skipped[0].name, "Bad_Name");
    assert!(matches!(summary.skipped[0].reason, Rejection::Invalid(_)));
    assert_eq!(summary.skipped[1].reason, Rejection::BeingDeleted);
    assert_eq!(summary.exit_code(), EXIT_INCOMPLETE);
}

#[tokio::test]
async fn stops_at_max_objects_and_resumes_from_the_checkpoint() {
    let fx = Fixture::new();
    let src = source(5);
    let (first, _) = fx.run(&src, Some(3), false).await;
    assert_eq!(first.exit_code(), EXIT_STOPPED);
    assert_eq!(counts(&first, POLR).created, 3);
    assert_eq!(
        first.kinds[1].state,
        KindState::Pending,
        "later kinds are listed as not reached"
    );
    assert!(first.render().contains("not reached"));
    let saved = fx.file().load().expect("load").expect("checkpoint kept");
    assert_eq!(
        saved.start_of(POLR),
        Some("2".to_string()),
        "the interrupted page is read again"
    );
    assert!(fx.stored(POLR, "ns", "r3").await.is_none());

    src.calls.borrow_mut().clear();
    let (second, lines) = fx.run(&src, None, false).await;
    assert_eq!(second.exit_code(), 0, "{}", second.render());
    assert_eq!(src.calls.borrow()[0], (POLR.to_string(), Some("2".to_string())));
    assert!(lines[0].contains("resuming from the checkpoint"), "{lines:?}");
    assert_eq!(
        counts(&second, POLR),
        Counts {
            listed: 3,
            created: 2,
            unchanged: 1,
            ..Default::default()
        }
    );
    assert!(fx.stored(POLR, "ns", "r4").await.is_some());
    assert!(!fx.file().path().exists());
}

#[tokio::test]
async fn completed_kinds_are_not_read_again() {
    let fx = Fixture::new();
    let src = source(2);
    let (first, _) = fx.run(&src, Some(3), false).await;
    assert_eq!(first.exit_code(), EXIT_STOPPED);
    src.calls.borrow_mut().clear();
    let (second, _) = fx.run(&src, None, false).await;
    assert_eq!(second.kinds[0].state, KindState::DoneEarlier);
    assert!(
        src.calls.borrow().iter().all(|(r, _)| r != POLR),
        "{:?}",
        src.calls.borrow()
    );
    assert_eq!(
        counts(&second, CPOLR),
        Counts {
            listed: 2,
            created: 1,
            unchanged: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn expired_tokens_go_on_from_a_fresh_snapshot_or_restart_the_kind() {
    let fx = Fixture::new();
    let src = source(5);
    *src.expire.borrow_mut() = Some(("2".into(), Some("4".into())));
    let (fresh, lines) = fx.run(&src, None, false).await;
    assert!(
        lines.iter().any(|l| l.contains("going on from a newer snapshot")),
        "{lines:?}"
    );
    assert_eq!(counts(&fresh, POLR).listed, 3, "pages 0-1 then 4");

    let fx = Fixture::new();
    *src.expire.borrow_mut() = Some(("2".into(), None));
    let (restarted, _) = fx.run(&src, None, false).await;
    assert_eq!(
        counts(&restarted, POLR),
        Counts {
            listed: 7,
            created: 5,
            unchanged: 2,
            ..Default::default()
        }
    );
    assert_eq!(restarted.exit_code(), 0);
}

#[tokio::test]
async fn a_forbidden_kind_fails_alone_and_keeps_the_checkpoint() {
    let fx = Fixture::new();
    let mut src = source(1);
    src.forbidden.push(POLR.to_string());
    let (summary, _) = fx.run(&src, None, false).await;
    assert!(matches!(&summary.kinds[0].state, KindState::Failed(m) if m.contains("403")));
    assert_eq!(counts(&summary, CPOLR).created, 2);
    assert_eq!(summary.exit_code(), EXIT_INCOMPLETE);
    let saved = fx.file().load().expect("load").expect("kept for a retry");
    assert!(!saved.is_completed(POLR));
    assert!(saved.is_completed(CPOLR));
}

#[tokio::test]
async fn dry_runs_write_nothing() {
    let fx = Fixture::new();
    let (summary, _) = fx.run(&source(3), None, true).await;
    assert!(summary.dry_run);
    assert_eq!(counts(&summary, POLR).created, 3);
    assert!(fx.stored(POLR, "ns", "r0").await.is_none());
    assert!(!fx.file().path().exists());
}
