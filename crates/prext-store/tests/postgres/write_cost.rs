//! Schema version 10 (fewer indexes per write, cheaper `ANALYZE`) on a database version 9 left.

use prext_store::testsuite::{fixtures, TempPostgres};
use prext_store::{ListOptions, Store};

/// Migration 10 on a database version 9 left: the two objects indexes no query searches are
/// gone, the columns the planner never estimates from have no statistics target, and the
/// reports written before are read and listed as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_9_databases_drop_the_unsearched_indexes() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let mut written = Vec::new();
    for (ns, name) in [("a", "r1"), ("a", "r2"), ("b", "r1")] {
        let w = fixtures::with_results(ns, name, &[("p", "fail"), ("q", "pass")]);
        written.push(fixtures::create(&*store, w).await);
    }
    store.close().await;

    // Back to what version 9 left.
    let admin = db.analyst_client().await;
    super::upgrades::forget_versions_from(
        &admin,
        10,
        "CREATE INDEX objects_namespace ON objects (cluster, namespace, resource);
             CREATE INDEX objects_scope ON objects (cluster, scope_kind, scope_namespace, scope_name);
             ALTER TABLE results ALTER COLUMN properties SET STATISTICS -1,
                                 ALTER COLUMN resources SET STATISTICS -1;
             ALTER TABLE objects ALTER COLUMN body SET STATISTICS -1;",
    )
    .await;

    let store = db.open_postgres().await;
    let indexes = super::upgrades::index_names(&admin, "objects").await;
    assert_eq!(
        indexes,
        [
            "objects_cluster_resource_namespace_name_key",
            "objects_labels",
            "objects_order",
            "objects_pkey"
        ]
    );
    let targets: Vec<(String, i32)> = admin
        .query(
            "SELECT attrelid::regclass::text || '.' || attname, attstattarget::integer
             FROM pg_attribute
             WHERE (attrelid = 'results'::regclass AND attname IN ('properties', 'resources', 'message'))
                OR (attrelid = 'objects'::regclass AND attname IN ('body', 'labels'))
             ORDER BY 1",
            &[],
        )
        .await
        .expect("pg_attribute")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        targets,
        [
            ("objects.body".to_owned(), 0),
            ("objects.labels".to_owned(), -1),
            ("results.message".to_owned(), -1),
            ("results.properties".to_owned(), 0),
            ("results.resources".to_owned(), 0),
        ]
    );
    admin
        .batch_execute("ANALYZE objects, results")
        .await
        .expect("ANALYZE still runs");

    for w in &written {
        assert_eq!(store.get(&w.key).await.expect("get").as_ref(), Some(w));
    }
    let in_a = ListOptions {
        resource: fixtures::POLR.into(),
        namespace: Some("a".into()),
        ..ListOptions::default()
    };
    assert_eq!(
        fixtures::list_keys(&*store, in_a).await,
        fixtures::keys(&[("a", "r1"), ("a", "r2")])
    );
    let everywhere = ListOptions {
        resource: fixtures::POLR.into(),
        ..ListOptions::default()
    };
    assert_eq!(
        fixtures::list_keys(&*store, everywhere).await,
        fixtures::keys(&[("a", "r1"), ("a", "r2"), ("b", "r1")])
    );
    store.close().await;
}
