//! The schema as analysts and operators meet it: migrations (also when replicas start at
//! once), the tables and view, the read-only role of docs/postgres.md, data PostgreSQL text
//! cannot hold, and credentials.

use prext_store::postgres::{PostgresOptions, PostgresStore};
use prext_store::testsuite::{fixtures, TempPostgres};
use prext_store::{Error, Store};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_startup_runs_migrations_once() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let (a, b, c) = tokio::join!(
        PostgresStore::connect(db.url(), db.options().clone()),
        PostgresStore::connect(db.url(), db.with_cluster("two").options().clone()),
        PostgresStore::connect(db.url(), db.with_cluster("three").options().clone()),
    );
    let stores = [a, b, c].map(|s| s.expect("every replica starts"));
    let client = db.analyst_client().await;
    let versions: Vec<i32> = client
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .expect("schema_migrations")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
        "every migration applied exactly once"
    );
    // Debian's PostgreSQL has LZ4: migration 3 switched the bodies to it.
    let compression: Vec<String> = client
        .query(
            "SELECT attrelid::regclass::text || '.' || attname || '=' || attcompression::text
             FROM pg_attribute
             WHERE attrelid IN ('objects'::regclass, 'changes'::regclass) AND attname = 'body'
             ORDER BY 1",
            &[],
        )
        .await
        .expect("pg_attribute")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(compression, ["changes.body=l", "objects.body=l"]);
    let clusters: Vec<String> = client
        .query("SELECT cluster FROM meta ORDER BY cluster", &[])
        .await
        .expect("meta")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(clusters, ["", "three", "two"]);
    for s in &stores {
        fixtures::create(s, fixtures::report(fixtures::POLR, "ns", "after-start")).await;
        s.close().await;
    }
    // Reconnecting changes nothing.
    db.open_postgres().await.close().await;
    let applied: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(applied, 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    db.open_postgres().await.close().await;
    db.analyst_client()
        .await
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')",
            &[],
        )
        .await
        .expect("insert");
    let err = PostgresStore::connect(db.url(), db.options().clone())
        .await
        .expect_err("a newer schema");
    assert!(err.to_string().contains("newer than this prext"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyst_tables_and_read_only_role() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await.with_cluster("prod-eu");
    let store = db.open_postgres().await;
    let mut w = fixtures::report(fixtures::POLR, "team-a", "pod-report");
    fixtures::set_labels(&mut w, &[("app.kubernetes.io/managed-by", "kyverno")]);
    fixtures::set_results(
        &mut w,
        &[("disallow-privileged", "fail"), ("require-labels", "pass")],
    );
    w.body["summary"] = json!({"pass": 8, "fail": 2});
    w.body["scope"] =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "team-a", "name": "web"});
    fixtures::reindex(&mut w);
    let created = fixtures::create(&*store, w).await;

    // The read-only analyst role exactly as docs/postgres.md sets it up.
    let admin = db.analyst_client().await;
    let database: String = admin
        .query_one("SELECT current_database()", &[])
        .await
        .expect("database")
        .get(0);
    admin
        .batch_execute(&format!(
            "CREATE ROLE prext_analyst LOGIN PASSWORD 'analyst-pw';
             GRANT CONNECT ON DATABASE {database} TO prext_analyst;
             GRANT USAGE ON SCHEMA public TO prext_analyst;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO prext_analyst;
             ALTER DEFAULT PRIVILEGES FOR ROLE prext IN SCHEMA public GRANT SELECT ON TABLES TO prext_analyst;
             ALTER ROLE prext_analyst SET default_transaction_read_only = on;"
        ))
        .await
        .expect("analyst role");
    let mut config: tokio_postgres::Config = format!(
        "postgres://prext_analyst@127.0.0.1:{}/{database}?sslmode=disable",
        pg.port()
    )
    .parse()
    .expect("url");
    config.password("analyst-pw");
    let (analyst, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("analyst connects");
    tokio::spawn(connection);

    let row = analyst
        .query_one(
            "SELECT revision, labels->>'app.kubernetes.io/managed-by', summary_pass, summary_fail,
                    scope_kind, scope_name, deleting, body
             FROM objects WHERE cluster = 'prod-eu' AND namespace = 'team-a' AND name = 'pod-report'",
            &[],
        )
        .await
        .expect("objects row");
    assert_eq!(row.get::<_, i64>(0), created.revision);
    assert_eq!(row.get::<_, String>(1), "kyverno");
    assert_eq!(
        (row.get::<_, i64>(2), row.get::<_, i64>(3)),
        (8, 2),
        "the summary as written"
    );
    assert_eq!(
        (row.get::<_, String>(4), row.get::<_, String>(5)),
        ("Deployment".into(), "web".into())
    );
    assert!(!row.get::<_, bool>(6));
    assert_eq!(
        row.get::<_, String>(7).as_bytes(),
        &created.body[..],
        "the exact JSON served"
    );

    let failing: Vec<(String, String, String)> = analyst
        .query(
            "SELECT cluster, policy, subject_name FROM report_results
             WHERE result = 'fail' AND severity = 'medium' ORDER BY policy",
            &[],
        )
        .await
        .expect("report_results")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        failing,
        [("prod-eu".into(), "disallow-privileged".into(), "pod-0".into())]
    );
    let prop: String = analyst
        .query_one(
            "SELECT properties->>'index' FROM results WHERE policy = 'require-labels'",
            &[],
        )
        .await
        .expect("properties")
        .get(0);
    assert_eq!(prop, "1");
    let indexes = super::upgrades::index_names(&analyst, "results").await;
    assert_eq!(
        indexes,
        [
            "results_pkey",
            "results_policy_rule",
            "results_result_severity",
            "results_severity",
            "results_subject",
            "results_subject_uid"
        ]
    );

    for write in [
        "DELETE FROM objects",
        "UPDATE meta SET revision = 0",
        "INSERT INTO changes SELECT * FROM changes",
    ] {
        let err = analyst.batch_execute(write).await.expect_err(write);
        assert!(err.code().is_some(), "{write}: {err}");
    }
    assert_eq!(store.get(&created.key).await.expect("get"), Some(created));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_the_database_cannot_hold_is_kept_in_the_body() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let mut w = fixtures::with_results("ns", "nul", &[("p", "fail")]);
    w.body["results"][0]["message"] = json!("bad\u{0}byte");
    w.body["results"][0]["properties"] = json!({"k\u{0}": "v\u{0}"});
    fixtures::reindex(&mut w);
    let created = fixtures::create(&*store, w.clone()).await;
    assert_eq!(
        fixtures::body_json(&created),
        fixtures::stamped(&w.body, created.revision)
    );
    assert_eq!(store.get(&created.key).await.expect("get"), Some(created));
    let row = db
        .analyst_client()
        .await
        .query_one("SELECT message, properties->>'k\u{FFFD}' FROM results", &[])
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), "bad\u{FFFD}byte");
    assert_eq!(row.get::<_, String>(1), "v\u{FFFD}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_the_database_refuses_fails_alone() {
    // jsonb cannot hold U+0000: the database refuses these labels. The write must fail on
    // its own, take no revision, and leave the writes batched with it alone.
    let pg = TempPostgres::new().await;
    let store = pg.database().await.open_postgres().await;
    let mut bad = fixtures::report(fixtures::POLR, "ns", "bad");
    fixtures::set_labels(&mut bad, &[("nul\u{0}key", "v")]);
    let mut writes = Vec::new();
    for i in 0..20 {
        let w = if i == 10 {
            bad.clone()
        } else {
            fixtures::report(fixtures::POLR, "ns", &format!("good-{i:02}"))
        };
        let store = std::sync::Arc::clone(&store);
        writes.push(tokio::spawn(async move { store.create(w).await }));
    }
    let mut revisions = Vec::new();
    for (i, w) in writes.into_iter().enumerate() {
        match (i, w.await.expect("task")) {
            (10, Err(Error::Internal(m))) => assert!(m.contains("refused"), "{m}"),
            (10, other) => panic!("the bad write: want Internal, got {other:?}"),
            (_, Ok(o)) => revisions.push(o.revision),
            (_, Err(e)) => panic!("a good write failed with its batch: {e}"),
        }
    }
    revisions.sort_unstable();
    assert_eq!(
        revisions,
        (1..=19).collect::<Vec<i64>>(),
        "gap-free: the refused write took no revision"
    );
    assert_eq!(store.get(&bad.key).await.expect("get"), None);
    assert_eq!(store.changes(0, 100).await.expect("changes").len(), 19);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials() {
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let from_file = PostgresOptions {
        password: None,
        password_file: Some(pg.password_file()),
        ..db.options().clone()
    };
    let store = PostgresStore::connect(db.url(), from_file)
        .await
        .expect("password file");
    store.ping().await.expect("ping");
    store.close().await;

    let wrong = PostgresOptions {
        password: Some("wrong".into()),
        ..db.options().clone()
    };
    match PostgresStore::connect(db.url(), wrong).await {
        Err(Error::Unavailable(m)) => assert!(m.contains("password"), "{m}"),
        other => panic!("wrong password: want Unavailable, got {other:?}"),
    }
    match PostgresStore::connect(
        "postgres://prext@127.0.0.1:1/x?sslmode=bogus",
        db.options().clone(),
    )
    .await
    {
        Err(Error::Internal(m)) => assert!(m.contains("sslmode"), "{m}"),
        other => panic!("bad URL: want Internal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_results_are_not_rewritten() {
    // Schema 3 keeps a digest of each report's result rows: an update that leaves them as
    // they were rewrites the report but not its rows (their xmin, the inserting transaction,
    // stays); one that changes them rewrites them.
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    let store = db.open_postgres().await;
    let analyst = db.analyst_client().await;
    let xmins = || async {
        analyst
            .query("SELECT xmin::text FROM results ORDER BY idx", &[])
            .await
            .expect("results")
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let mut w = fixtures::with_results("ns", "digest", &[("p0", "fail"), ("p1", "pass")]);
    let v1 = fixtures::create(&*store, w.clone()).await;
    let written = xmins().await;
    assert_eq!(written.len(), 2);

    fixtures::set_labels(&mut w, &[("team", "a")]);
    let v2 = store.update(w.clone(), v1.revision).await.expect("relabel");
    assert_eq!(xmins().await, written, "a relabel leaves the result rows alone");

    fixtures::set_results(&mut w, &[("p0", "pass"), ("p1", "pass")]);
    store.update(w.clone(), v2.revision).await.expect("new results");
    let rewritten = xmins().await;
    assert_eq!(rewritten.len(), 2);
    assert!(
        rewritten.iter().all(|x| !written.contains(x)),
        "{written:?} -> {rewritten:?}"
    );
    let digests: i64 = analyst
        .query_one(
            "SELECT count(*) FROM objects WHERE length(results_digest) = 16",
            &[],
        )
        .await
        .expect("digest")
        .get(0);
    assert_eq!(digests, 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_define_the_same_analyst_views() {
    // The stable views are written once per SQL dialect; their columns must not drift apart
    // (PostgreSQL adds only the cluster column).
    let sqlite = prext_store::testsuite::TempSqlite::new();
    sqlite.open_sqlite().await.close().await;
    let conn = sqlite.analyst_connection();
    let pg = TempPostgres::new().await;
    let db = pg.database().await;
    db.open_postgres().await.close().await;
    let analyst = db.analyst_client().await;
    for view in ["report_results", "reports_v1", "results_v1", "findings_v1"] {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{view}') ORDER BY cid"
            ))
            .expect("pragma");
        let sqlite_columns: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .expect("columns")
            .map(|c| c.expect("column"))
            .collect();
        let pg_columns: Vec<String> = analyst
            .query(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_name = $1 AND column_name <> 'cluster' ORDER BY ordinal_position",
                &[&view],
            )
            .await
            .expect("information_schema")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!sqlite_columns.is_empty(), "{view} exists in SQLite");
        assert_eq!(sqlite_columns, pg_columns, "the columns of {view}");
    }
}
