//! Create: defaulting, generateName, validation, field validation, dry run, admission.

use super::*;

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
