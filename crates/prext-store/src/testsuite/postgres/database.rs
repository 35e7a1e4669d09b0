//! [`PostgresTestDatabase`]: the PostgreSQL backend's [`TestDatabase`], one database (and
//! cluster name) of a [`TempPostgres`](super::TempPostgres).

use std::sync::Arc;

use crate::postgres::{PostgresOptions, PostgresStore};
use crate::testsuite::{IndexedResult, TestDatabase};
use crate::{ObjectKey, Store};

/// The PostgreSQL backend's [`TestDatabase`]: one database (and cluster name) of a
/// [`TempPostgres`].
#[derive(Debug, Clone)]
pub struct PostgresTestDatabase {
    url: String,
    opts: PostgresOptions,
}

impl PostgresTestDatabase {
    pub(super) fn new(url: String, opts: PostgresOptions) -> PostgresTestDatabase {
        PostgresTestDatabase { url, opts }
    }

    /// The same database, served as another cluster.
    pub fn with_cluster(&self, cluster: &str) -> PostgresTestDatabase {
        let mut other = self.clone();
        other.opts.cluster = cluster.to_owned();
        other
    }

    /// The same database and cluster, with other options (the password is kept).
    pub fn with_options(&self, opts: PostgresOptions) -> PostgresTestDatabase {
        let password = self.opts.password.clone();
        let mut other = self.clone();
        other.opts = PostgresOptions { password, ..opts };
        other
    }

    /// The store URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The options stores are opened with.
    pub fn options(&self) -> &PostgresOptions {
        &self.opts
    }

    /// Connects a store (a replica) to this database.
    pub async fn open_postgres(&self) -> Arc<PostgresStore> {
        let store = PostgresStore::connect(&self.url, self.opts.clone())
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url));
        Arc::new(store)
    }

    /// A superuser connection, the kind an analyst's tool would open.
    pub async fn analyst_client(&self) -> tokio_postgres::Client {
        connect(&self.url, self.opts.password.as_deref().unwrap_or_default()).await
    }
}

#[async_trait::async_trait]
impl TestDatabase for PostgresTestDatabase {
    async fn open(&self) -> Arc<dyn Store> {
        self.open_postgres().await
    }

    async fn result_rows(&self, key: &ObjectKey) -> Vec<IndexedResult> {
        // Through the documented view, as analysts read it.
        let client = self.analyst_client().await;
        let rows = client
            .query(
                "SELECT idx, policy, result, subject_name FROM report_results
                 WHERE cluster = $1 AND resource = $2 AND namespace = $3 AND report = $4 ORDER BY idx",
                &[&self.opts.cluster, &key.resource, &key.namespace, &key.name],
            )
            .await
            .unwrap_or_else(|e| panic!("query report_results: {e}"));
        rows.iter()
            .map(|r| IndexedResult {
                index: i64::from(r.get::<_, i32>(0)),
                policy: r.get(1),
                result: r.get(2),
                subject_name: r.get(3),
            })
            .collect()
    }

    async fn stored_result_rows(&self) -> u64 {
        let client = self.analyst_client().await;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM results WHERE cluster = $1",
                &[&self.opts.cluster],
            )
            .await
            .unwrap_or_else(|e| panic!("count results: {e}"))
            .get(0);
        u64::try_from(n).unwrap_or_default()
    }
}

pub(super) async fn connect(url: &str, password: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().unwrap_or_else(|e| panic!("parsing {url}: {e}"));
    config.password(password);
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(connection);
    client
}
