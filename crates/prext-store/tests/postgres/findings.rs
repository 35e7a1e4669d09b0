//! Schema version 4 on PostgreSQL: a database at version 3 (built here from the migrations of
//! versions 1 to 3) upgrades in place when prext connects, its failing results becoming open
//! findings, which the next writes resolve.

use prext_store::postgres::PostgresStore;
use prext_store::testsuite::{fixtures, TempPostgres};
use prext_store::{ObjectKey, Preconditions, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_3_databases_upgrade_with_their_open_findings() {
    let pg = TempPostgres::new().await;
    let name = pg.create_database().await;
    let admin = pg.client(&name).await;
    for sql in [
        include_str!("../../src/postgres/migrations/0001_initial.sql"),
        include_str!("../../src/postgres/migrations/0002_result_queries.sql"),
        include_str!("../../src/postgres/migrations/0003_write_path.sql"),
    ] {
        admin.batch_execute(sql).await.expect("a version 1-3 migration");
    }
    // Two reports (by their ids) fail p1 on the same Pod; the second also warns p3.
    admin
        .batch_execute(
            r#"CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now());
               INSERT INTO schema_migrations (version, name) VALUES (1, 'initial'), (2, 'result_queries'), (3, 'write_path');
               INSERT INTO meta (cluster, revision) VALUES ('', 2);
               INSERT INTO objects (cluster, resource, namespace, name, uid, revision, created, body)
               VALUES ('', 'policyreports.wgpolicyk8s.io', 'ns-a', 'r1', 'u1', 1, '2024-01-01T00:00:00Z', '{}'),
                      ('', 'reports.openreports.io', 'ns-a', 'r2', 'u2', 2, '2024-01-01T00:00:00Z', '{}');
               INSERT INTO results (object_id, idx, cluster, policy, rule, result, subject_kind, subject_namespace, subject_name)
               SELECT id, 0, '', 'p1', 'check', 'fail', 'Pod', 'ns-a', 'pod-0' FROM objects;
               INSERT INTO results (object_id, idx, cluster, policy, rule, result, subject_kind, subject_namespace, subject_name)
               SELECT id, 1, '', 'p3', 'check', 'warn', 'Pod', 'ns-a', 'pod-1' FROM objects WHERE name = 'r2';"#,
        )
        .await
        .expect("version 3 rows");
    let before = prext_store::findings::now_ms();
    let store = PostgresStore::connect(&pg.url(&name), pg.options())
        .await
        .expect("upgrade on connect");
    let after = prext_store::findings::now_ms();
    let found = open(&store).await;
    assert_eq!(found.len(), 2, "{found:#?}");
    for f in &found {
        assert_eq!(f.first_seen_revision, 2);
        assert!(before - 1000 <= f.first_seen && f.first_seen <= after + 1000);
    }
    let carriers: i64 = admin
        .query_one("SELECT count(*) FROM finding_carriers", &[])
        .await
        .expect("carriers")
        .get(0);
    assert_eq!(carriers, 3, "p1 by both reports, p3 by r2");

    // r2 goes: p3 resolves, p1 stays (r1 carries it); then r1 goes too.
    let gone = store
        .delete(
            &ObjectKey::new(fixtures::REPS, "ns-a", "r2"),
            Preconditions::default(),
        )
        .await
        .expect("delete r2");
    let found = open(&store).await;
    assert_eq!(
        found.iter().map(|f| f.policy.as_str()).collect::<Vec<_>>(),
        ["p1"]
    );
    store
        .delete(
            &ObjectKey::new(fixtures::POLR, "ns-a", "r1"),
            Preconditions::default(),
        )
        .await
        .expect("delete r1");
    assert!(open(&store).await.is_empty());
    let p3_resolved: i64 = admin
        .query_one("SELECT resolved_revision FROM findings WHERE policy = 'p3'", &[])
        .await
        .expect("p3")
        .get(0);
    assert_eq!(p3_resolved, gone.revision);
    store.close().await;
}

async fn open(store: &PostgresStore) -> Vec<prext_store::findings::Finding> {
    let q = prext_store::findings::FindingQuery {
        filter: prext_store::findings::FindingFilter {
            open: Some(true),
            ..Default::default()
        },
        limit: 100,
        after: None,
        count: false,
    };
    store.query_findings(q).await.expect("findings").items
}
