//! The registry's rules, one test each, on a real SQLite store in a temporary directory
//! (no HTTP). Upstream: `k8s.io/apiserver/pkg/registry/generic/registry/store_test.go`.

use std::sync::Arc;

use prext_api::status::Status;
use prext_api::ResourceDef;
use prext_store::{Preconditions, Store};
use serde_json::{json, Value};

use super::delete::{CollectionRequest, Deleted};
use super::guaranteed_update::{Action, Loop, OnConflict, Outcome};
use super::strategy::object_write;
use super::*;

fn def() -> &'static ResourceDef {
    prext_api::resources::find("wgpolicyk8s.io", "v1alpha2", "policyreports").expect("served")
}

struct Fixture {
    registry: Registry,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

fn fixture_with(admission: Option<Arc<dyn Admission>>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = prext_store::sqlite::SqliteStore::open(&dir.path().join("prext.db"), Default::default())
        .expect("open sqlite");
    let store: Arc<dyn Store> = Arc::new(store);
    Fixture {
        registry: Registry::new(store.clone(), admission),
        store,
        _dir: dir,
    }
}

fn fixture() -> Fixture {
    fixture_with(None)
}

fn report(name: &str) -> Value {
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": "team-a", "labels": {"app": "web"}},
        "results": [{"policy": "require-labels", "result": "pass", "source": "kyverno"}]
    })
}

fn opts() -> WriteOptions {
    WriteOptions {
        dry_run: false,
        field_validation: FieldValidation::Warn,
        field_manager: None,
        default_manager: "kubectl".into(),
        force: None,
        duplicates: Vec::new(),
    }
}

fn target(name: &str) -> ObjectRef {
    ObjectRef {
        def: def(),
        namespace: Some("team-a".into()),
        name: name.into(),
    }
}

fn body(written: &Written) -> Value {
    serde_json::from_slice(&written.body).expect("json")
}

async fn create(f: &Fixture, name: &str) -> Value {
    let w = f
        .registry
        .create(def(), Some("team-a"), report(name), &opts())
        .await
        .expect("created");
    body(&w)
}

async fn stored(f: &Fixture, name: &str) -> Option<Value> {
    f.store
        .get(&target(name).key())
        .await
        .expect("get")
        .map(|s| serde_json::from_slice(&s.body).expect("json"))
}

fn rejected_code(e: &Error) -> u16 {
    match e {
        Error::Rejected(s) => s.code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn create_defaults_system_metadata_and_records_the_manager() {
    let f = fixture();
    let obj = create(&f, "r1").await;
    let m = &obj["metadata"];
    assert_eq!(m["uid"].as_str().map(str::len), Some(36));
    assert_eq!(m["generation"], 1);
    assert!(m["creationTimestamp"].is_string());
    assert!(m["resourceVersion"].is_string());
    assert_eq!(m["managedFields"][0]["manager"], "kubectl");
    assert_eq!(m["managedFields"][0]["operation"], "Update");
    assert_eq!(stored(&f, "r1").await, Some(obj));
}

#[tokio::test]
async fn create_with_generate_name_picks_a_free_name() {
    let f = fixture();
    let mut obj = report("");
    obj["metadata"] = json!({"generateName": "gen-", "namespace": "team-a"});
    let w = f
        .registry
        .create(def(), Some("team-a"), obj, &opts())
        .await
        .expect("created");
    let name = body(&w)["metadata"]["name"].as_str().unwrap_or("").to_string();
    assert!(name.starts_with("gen-") && name.len() > 4, "{name}");
    assert!(stored(&f, &name).await.is_some());
}

#[tokio::test]
async fn an_invalid_create_is_refused_and_writes_nothing() {
    let f = fixture();
    let mut obj = report("Not_A_Name");
    obj["results"][0]["result"] = json!("maybe");
    let err = f
        .registry
        .create(def(), Some("team-a"), obj, &opts())
        .await
        .expect_err("invalid");
    assert_eq!(rejected_code(&err), 422);
    assert_eq!(f.store.revision().await.expect("revision"), 0);
}

#[tokio::test]
async fn create_of_a_taken_name_is_already_exists() {
    let f = fixture();
    create(&f, "r1").await;
    let err = f
        .registry
        .create(def(), Some("team-a"), report("r1"), &opts())
        .await
        .expect_err("taken");
    assert!(
        matches!(
            &err,
            Error::Store {
                source: prext_store::Error::AlreadyExists { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn field_validation_strict_refuses_warn_warns_ignore_prunes_silently() {
    let f = fixture();
    let mut obj = report("r1");
    obj["extra"] = json!(1);
    let strict = WriteOptions {
        field_validation: FieldValidation::Strict,
        ..opts()
    };
    let err = f
        .registry
        .create(def(), Some("team-a"), obj.clone(), &strict)
        .await
        .expect_err("strict");
    assert_eq!(rejected_code(&err), 400);
    let w = f
        .registry
        .create(def(), Some("team-a"), obj.clone(), &opts())
        .await
        .expect("warn");
    assert_eq!(w.warnings, vec!["unknown field \"extra\"".to_string()]);
    assert!(body(&w).get("extra").is_none(), "pruned");
    obj["metadata"]["name"] = json!("r2");
    let ignore = WriteOptions {
        field_validation: FieldValidation::Ignore,
        ..opts()
    };
    let w = f
        .registry
        .create(def(), Some("team-a"), obj, &ignore)
        .await
        .expect("ignore");
    assert!(w.warnings.is_empty());
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let f = fixture();
    let dry = WriteOptions {
        dry_run: true,
        ..opts()
    };
    let w = f
        .registry
        .create(def(), Some("team-a"), report("r1"), &dry)
        .await
        .expect("dry");
    assert!(w.created);
    assert!(stored(&f, "r1").await.is_none());
    let obj = create(&f, "r1").await;
    let mut new = obj.clone();
    new["metadata"]["labels"]["app"] = json!("api");
    f.registry
        .update(&target("r1"), new, &dry)
        .await
        .expect("dry update");
    let gone = DeleteOptions {
        dry_run: true,
        ..Default::default()
    };
    let deleted = f.registry.delete(&target("r1"), &gone).await.expect("dry delete");
    assert!(matches!(deleted, Deleted::Gone(_)));
    assert_eq!(stored(&f, "r1").await, Some(obj));
}

#[tokio::test]
async fn update_needs_the_current_resource_version() {
    let f = fixture();
    let obj = create(&f, "r1").await;
    let mut missing = obj.clone();
    missing["metadata"]
        .as_object_mut()
        .map(|m| m.remove("resourceVersion"));
    assert_eq!(
        rejected_code(
            &f.registry
                .update(&target("r1"), missing, &opts())
                .await
                .expect_err("no rv")
        ),
        422
    );
    let mut stale = obj.clone();
    stale["metadata"]["resourceVersion"] = json!("999");
    let err = f
        .registry
        .update(&target("r1"), stale, &opts())
        .await
        .expect_err("stale");
    assert!(matches!(err, Error::Modified { .. }), "{err:?}");
    let err = f
        .registry
        .update(&target("r9"), obj, &opts())
        .await
        .expect_err("missing");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn an_update_that_changes_nothing_keeps_the_resource_version() {
    let f = fixture();
    let obj = create(&f, "r1").await;
    let before = f.store.revision().await.expect("revision");
    let w = f
        .registry
        .update(&target("r1"), obj.clone(), &opts())
        .await
        .expect("no-op");
    assert_eq!(
        body(&w)["metadata"]["resourceVersion"],
        obj["metadata"]["resourceVersion"]
    );
    assert_eq!(f.store.revision().await.expect("revision"), before);
}

#[tokio::test]
async fn update_keeps_immutable_metadata() {
    let f = fixture();
    let obj = create(&f, "r1").await;
    let mut new = obj.clone();
    new["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    let err = f
        .registry
        .update(&target("r1"), new, &opts())
        .await
        .expect_err("uid");
    // A failed uid precondition, worded once by the server's error mapping (409).
    assert!(
        matches!(
            &err,
            Error::Precondition {
                failed: prext_store::Conflict::Uid { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let status = crate::error::ApiError::from(err).0;
    assert_eq!(status.code, 409);
    assert!(
        status
            .message
            .contains("Precondition failed: UID in precondition: 00000000-0000-0000-0000-000000000000, UID in object meta: "),
        "{}",
        status.message
    );
    let mut renamed = obj;
    renamed["metadata"]["name"] = json!("other");
    let err = f
        .registry
        .update(&target("r1"), renamed, &opts())
        .await
        .expect_err("name");
    assert_eq!(rejected_code(&err), 400);
}

#[tokio::test]
async fn patch_applies_to_the_live_object_and_a_pinned_stale_version_is_modified() {
    let f = fixture();
    create(&f, "r1").await;
    let patch = Patch::Merge(json!({"metadata": {"labels": {"tier": "gold"}}}));
    let w = f
        .registry
        .patch(&target("r1"), &patch, &opts())
        .await
        .expect("patched");
    assert_eq!(
        body(&w)["metadata"]["labels"],
        json!({"app": "web", "tier": "gold"})
    );
    let pinned = Patch::Merge(json!({"metadata": {"resourceVersion": "1", "labels": {"x": "y"}}}));
    let err = f
        .registry
        .patch(&target("r1"), &pinned, &opts())
        .await
        .expect_err("stale");
    assert!(matches!(err, Error::Modified { .. }), "{err:?}");
    let forced = WriteOptions {
        force: Some(true),
        ..opts()
    };
    assert_eq!(
        rejected_code(
            &f.registry
                .patch(&target("r1"), &patch, &forced)
                .await
                .expect_err("force")
        ),
        422
    );
}

/// The loop reads again and decides again after losing a race, unless told not to
/// (`GuaranteedUpdate`'s retry on `ErrCodeResourceVersionConflicts`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guaranteed_update_retries_a_lost_race_and_reports_a_pinned_one() {
    let f = fixture();
    create(&f, "r1").await;
    for (on_conflict, retried) in [(OnConflict::Retry, true), (OnConflict::Modified, false)] {
        let mut calls = 0;
        let how = Loop {
            create_missing: false,
            on_conflict,
            dry_run: false,
        };
        let store = f.store.clone();
        let result = f
            .registry
            .guaranteed_update(&target("r1"), how, |current| {
                calls += 1;
                let current = current.expect("exists");
                let mut obj: Value = serde_json::from_slice(&current.body).expect("json");
                obj["metadata"]["labels"]["n"] = json!(calls.to_string());
                if calls == 1 {
                    // Another writer commits between this read and this write.
                    let w = object_write(def(), &current.key, obj.clone());
                    let store = store.clone();
                    let revision = current.revision;
                    std::thread::spawn(move || {
                        futures::executor::block_on(store.update(w, revision)).expect("racing write")
                    })
                    .join()
                    .expect("racer");
                }
                Ok(Action::Update(object_write(def(), &current.key, obj)))
            })
            .await;
        if retried {
            assert!(matches!(result, Ok(Outcome::Updated(_))));
            assert_eq!(calls, 2);
        } else {
            assert!(matches!(result, Err(Error::Modified { .. })));
            assert_eq!(calls, 1);
        }
    }
}

#[tokio::test]
async fn delete_honours_uid_and_resource_version_preconditions() {
    let f = fixture();
    let obj = create(&f, "r1").await;
    let wrong_uid = DeleteOptions {
        preconditions: Preconditions {
            uid: Some("other".into()),
            resource_version: None,
        },
        ..Default::default()
    };
    let err = f
        .registry
        .delete(&target("r1"), &wrong_uid)
        .await
        .expect_err("uid");
    assert!(
        matches!(
            &err,
            Error::Precondition {
                failed: prext_store::Conflict::Uid { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let wrong_rv = DeleteOptions {
        preconditions: Preconditions {
            uid: None,
            resource_version: Some(999),
        },
        ..Default::default()
    };
    let err = f.registry.delete(&target("r1"), &wrong_rv).await.expect_err("rv");
    assert!(
        matches!(
            &err,
            Error::Precondition {
                failed: prext_store::Conflict::ResourceVersion { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(stored(&f, "r1").await.is_some());
    let right = DeleteOptions {
        preconditions: Preconditions {
            uid: obj["metadata"]["uid"].as_str().map(str::to_string),
            resource_version: None,
        },
        ..Default::default()
    };
    let deleted = f.registry.delete(&target("r1"), &right).await.expect("deleted");
    assert!(matches!(deleted, Deleted::Gone(_)));
    assert!(stored(&f, "r1").await.is_none());
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_the_last_is_removed() {
    let f = fixture();
    let mut obj = report("r1");
    obj["metadata"]["finalizers"] = json!(["example.com/keep"]);
    f.registry
        .create(def(), Some("team-a"), obj, &opts())
        .await
        .expect("created");
    let marked = f
        .registry
        .delete(&target("r1"), &DeleteOptions::default())
        .await
        .expect("marked");
    let Deleted::Marked(marked) = marked else {
        panic!("expected the object to be marked");
    };
    let marked: Value = serde_json::from_slice(&marked).expect("json");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let mut more = marked.clone();
    more["metadata"]["finalizers"] = json!(["example.com/keep", "example.com/new"]);
    let err = f
        .registry
        .update(&target("r1"), more, &opts())
        .await
        .expect_err("no new finalizer");
    assert_eq!(rejected_code(&err), 422);
    let mut released = marked;
    released["metadata"]["finalizers"] = json!([]);
    f.registry
        .update(&target("r1"), released, &opts())
        .await
        .expect("released");
    assert!(
        stored(&f, "r1").await.is_none(),
        "deleted with its last finalizer"
    );
}

#[tokio::test]
async fn apply_creates_then_merges_by_field_ownership() {
    let f = fixture();
    let no_manager = f.registry.apply(&target("r1"), report("r1"), &opts()).await;
    assert_eq!(rejected_code(&no_manager.expect_err("manager required")), 422);
    let alice = WriteOptions {
        field_manager: Some("alice".into()),
        ..opts()
    };
    let w = f
        .registry
        .apply(&target("r1"), report("r1"), &alice)
        .await
        .expect("created");
    assert!(w.created);
    let w = f
        .registry
        .apply(&target("r1"), report("r1"), &alice)
        .await
        .expect("same again");
    assert!(!w.created);
    let bob = WriteOptions {
        field_manager: Some("bob".into()),
        ..opts()
    };
    let mut theirs = report("r1");
    theirs["metadata"]["labels"]["app"] = json!("api");
    let err = f
        .registry
        .apply(&target("r1"), theirs.clone(), &bob)
        .await
        .expect_err("conflict");
    assert_eq!(rejected_code(&err), 409);
    let forced = WriteOptions {
        force: Some(true),
        ..bob
    };
    let w = f
        .registry
        .apply(&target("r1"), theirs, &forced)
        .await
        .expect("forced");
    assert_eq!(body(&w)["metadata"]["labels"]["app"], "api");
}

struct Refuse;

#[async_trait::async_trait]
impl Admission for Refuse {
    async fn admit_create(&self, namespace: &str) -> Result<(), Status> {
        Err(Status::failure(
            403,
            "Forbidden",
            format!("namespace {namespace} is terminating"),
        ))
    }
}

#[tokio::test]
async fn create_admission_refuses_creates_but_not_updates() {
    let f = fixture();
    let obj = create(&f, "r1").await;
    let refusing = Registry::new(f.store.clone(), Some(Arc::new(Refuse)));
    let err = refusing
        .create(def(), Some("team-a"), report("r2"), &opts())
        .await
        .expect_err("refused");
    assert_eq!(rejected_code(&err), 403);
    let alice = WriteOptions {
        field_manager: Some("alice".into()),
        ..opts()
    };
    let err = refusing
        .apply(&target("r3"), report("r3"), &alice)
        .await
        .expect_err("apply create");
    assert_eq!(rejected_code(&err), 403);
    let mut new = obj;
    new["metadata"]["labels"]["app"] = json!("api");
    refusing
        .update(&target("r1"), new, &opts())
        .await
        .expect("updates are not admitted");
}

#[tokio::test]
async fn delete_collection_deletes_what_the_selector_selects() {
    let f = fixture();
    create(&f, "r1").await;
    let mut other = report("r2");
    other["metadata"]["labels"]["app"] = json!("db");
    f.registry
        .create(def(), Some("team-a"), other, &opts())
        .await
        .expect("created");
    let request = CollectionRequest {
        namespace: Some("team-a".into()),
        labels: prext_api::labels::LabelSelector::parse("app=web").expect("selector"),
        ..Default::default()
    };
    f.registry
        .delete_collection(def(), request, &DeleteOptions::default())
        .await
        .expect("deleted");
    assert!(stored(&f, "r1").await.is_none());
    assert!(stored(&f, "r2").await.is_some());
}

#[tokio::test]
async fn list_pages_with_continue_tokens_and_refuses_bad_ones() {
    let f = fixture();
    for name in ["a", "b", "c"] {
        create(&f, name).await;
    }
    let first = f
        .registry
        .list(
            def(),
            ListRequest {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .expect("list");
    let revision = f.store.revision().await.expect("revision");
    assert_eq!(first.revision, revision);
    let err = f
        .registry
        .list(
            def(),
            ListRequest {
                continue_token: Some("garbage".into()),
                ..Default::default()
            },
        )
        .await
        .err()
        .expect("bad token");
    assert!(matches!(err, Error::InvalidContinue(_)), "{err:?}");
    let err = f.registry.get(&target("zz")).await.expect_err("missing");
    assert!(err.is_not_found());
}

#[tokio::test]
async fn a_revision_not_reached_is_too_large_after_the_wait() {
    let f = fixture();
    create(&f, "r1").await;
    let err = f
        .registry
        .list(
            def(),
            ListRequest {
                revision: Some(1_000_000),
                ..Default::default()
            },
        )
        .await
        .err()
        .expect("too large");
    assert!(
        matches!(err, Error::TooLargeRevision { requested: 1_000_000 }),
        "{err:?}"
    );
}
