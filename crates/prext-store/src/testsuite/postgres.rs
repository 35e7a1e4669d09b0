//! [`TempPostgres`]: a throwaway PostgreSQL cluster for tests, and [`PostgresTestDatabase`],
//! the PostgreSQL backend's [`TestDatabase`]. Other crates' tests can use them for a real
//! server that vanishes afterwards.
//!
//! The cluster is `initdb`-ed into a temporary directory and started with `pg_ctl` on a free
//! loopback port, TCP only (no Unix socket), `fsync` on, password (SCRAM) authentication for
//! the superuser `prext`. The binaries are looked up in `$PREXT_PG_BIN`, then `$PATH`, then
//! Debian's `/usr/lib/postgresql/<version>/bin` (newest first), so installing the
//! `postgresql` package is all a machine needs.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (CI containers), the cluster
//! runs as the unprivileged user `nobody` (`PREXT_PG_USER` names another): the temporary
//! directory is handed to it and every `initdb`/`pg_ctl` is spawned with its uid and gid.
//! The temporary directory must therefore be under a directory that user can traverse
//! (`/tmp` is; set `TMPDIR` otherwise).
//!
//! Test databases are created with an ICU `en-US` default collation (when the server has
//! ICU), under which `a` sorts before `B`: a test listing mixed-case names in byte order then
//! proves that prext's key columns compare byte-wise whatever the database's collation is.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::postgres::PostgresOptions;

mod database;

use self::database::connect;
pub use self::database::PostgresTestDatabase;

/// The superuser of the throwaway cluster.
pub const SUPERUSER: &str = "prext";

/// A running throwaway PostgreSQL cluster, stopped (immediately) and removed on drop.
#[derive(Debug)]
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    password: String,
    /// `(uid, gid)` to run the server as, when we are root.
    run_as: Option<(u32, u32)>,
    running: AtomicBool,
    databases: AtomicUsize,
}

/// A server certificate and key (PEM) for a cluster with TLS.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TempPostgres {
    /// Creates and starts a cluster without TLS.
    pub async fn new() -> TempPostgres {
        TempPostgres::build(None).await
    }

    /// Creates and starts a cluster that only accepts TLS connections (`hostssl`), with the
    /// given server certificate.
    pub async fn with_tls(tls: ServerTls) -> TempPostgres {
        TempPostgres::build(Some(tls)).await
    }

    async fn build(tls: Option<ServerTls>) -> TempPostgres {
        let dir = tempfile::Builder::new()
            .prefix("prext-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
        let run_as = run_as(dir.path());
        let password = format!(
            "pw-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let pg = TempPostgres {
            bin: find_bin(),
            port: 0,
            password,
            run_as,
            running: AtomicBool::new(false),
            databases: AtomicUsize::new(0),
            dir,
        };
        pg.write_file("pwfile", &pg.password, 0o600);
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data_dir().to_string_lossy(),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pg.dir.path().join("pwfile").display()),
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        .await;
        let mut conf = String::from(
            "\n# prext throwaway cluster\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n\
             fsync = on\nsynchronous_commit = on\nmax_connections = 300\n",
        );
        let hba_type = if let Some(tls) = &tls {
            pg.write_file("data/server.crt", &tls.cert_pem, 0o644);
            pg.write_file("data/server.key", &tls.key_pem, 0o600);
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            "hostssl"
        } else {
            "host"
        };
        let existing = std::fs::read_to_string(pg.data_dir().join("postgresql.conf"))
            .unwrap_or_else(|e| panic!("reading postgresql.conf: {e}"));
        pg.write_file("data/postgresql.conf", &(existing + &conf), 0o600);
        pg.write_file(
            "data/pg_hba.conf",
            &format!("{hba_type} all all 127.0.0.1/32 scram-sha-256\n"),
            0o600,
        );
        pg.start_on_free_port().await
    }

    /// Starts on a free port, trying a few in case another process takes one first.
    async fn start_on_free_port(mut self) -> TempPostgres {
        for _ in 0..5 {
            self.port = free_port();
            if self.try_start().await.is_ok() {
                return self;
            }
        }
        panic!("PostgreSQL did not start; log:\n{}", self.log_tail());
    }

    async fn try_start(&self) -> Result<(), String> {
        let port = format!("-p {}", self.port);
        let log = self.dir.path().join("postgres.log");
        self.try_run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().to_string_lossy(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &port,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .await?;
        self.running.store(true, Ordering::Release);
        Ok(())
    }

    /// Starts the cluster again after [`Self::stop`], on the same port, with the same data.
    pub async fn start(&self) {
        if let Err(e) = self.try_start().await {
            panic!("restarting PostgreSQL: {e}\nlog:\n{}", self.log_tail());
        }
    }

    /// Stops the cluster the hard way (`pg_ctl stop -m immediate`: like a crash, clients see
    /// their connections reset and the next start runs crash recovery).
    pub async fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
        .await;
        self.running.store(false, Ordering::Release);
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A file holding the superuser's password (for [`PostgresOptions::password_file`]).
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("pwfile")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The store URL of `database`, without password and TLS: `postgres://prext@127.0.0.1:PORT/DB?sslmode=disable`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// Options suited to tests: the password set, short timeouts.
    pub fn options(&self) -> PostgresOptions {
        PostgresOptions {
            password: Some(self.password.clone()),
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(15),
            ..PostgresOptions::default()
        }
    }

    /// A superuser connection to `database` (its connection task is spawned).
    pub async fn client(&self, database: &str) -> tokio_postgres::Client {
        connect(&self.url(database), &self.password).await
    }

    /// Creates a new, empty database and returns its name.
    pub async fn create_database(&self) -> String {
        let name = format!("prext_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let admin = self.client("postgres").await;
        let icu = format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        );
        if admin.batch_execute(&icu).await.is_err() {
            // A server without ICU: the C collation only.
            admin
                .batch_execute(&format!(
                    "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
                ))
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        }
        name
    }

    /// A fresh database, served as the cluster `""`.
    pub async fn database(&self) -> PostgresTestDatabase {
        let name = self.create_database().await;
        PostgresTestDatabase::new(self.url(&name), self.options())
    }

    fn write_file(&self, relative: &str, contents: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(relative);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        self.hand_over(&path);
    }

    /// Gives `path` to the unprivileged user the server runs as (when we are root).
    fn hand_over(&self, path: &Path) {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.bin.join(program));
        for var in [
            "PGDATA",
            "PGPORT",
            "PGHOST",
            "PGUSER",
            "PGDATABASE",
            "PGOPTIONS",
            "PGPASSWORD",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("LC_ALL", "C").current_dir(self.dir.path());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    async fn try_run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .await
            .map_err(|e| format!("running {}: {e}", self.bin.join(program).display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {args:?} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    async fn run(&self, program: &str, args: &[&str]) {
        if let Err(e) = self.try_run(program, args).await {
            panic!("{e}\nlog:\n{}", self.log_tail());
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if !self.running.load(Ordering::Acquire) {
            return;
        }
        let mut cmd = std::process::Command::new(self.bin.join("pg_ctl"));
        cmd.args([
            "-D",
            &self.data_dir().to_string_lossy(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        let _ = cmd.status();
    }
}

/// The user to run the server as: `None` unless we are root (the owner of a directory we just
/// created is uid 0), then `$PREXT_PG_USER` or `nobody` (uid/gid from `/etc/passwd`).
fn run_as(dir: &Path) -> Option<(u32, u32)> {
    let owner = std::fs::metadata(dir)
        .unwrap_or_else(|e| panic!("stat {}: {e}", dir.display()))
        .uid();
    if owner != 0 {
        return None;
    }
    let user = std::env::var("PREXT_PG_USER").unwrap_or_else(|_| "nobody".into());
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&user.as_str()) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    });
    let (uid, gid) =
        ids.unwrap_or_else(|| panic!("running as root, and there is no user {user:?} to run PostgreSQL as"));
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
    Some((uid, gid))
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin() -> PathBuf {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PREXT_PG_BIN").map(PathBuf::from) {
        assert!(
            has_tools(&dir),
            "PREXT_PG_BIN={} holds no initdb and pg_ctl",
            dir.display()
        );
        return dir;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse().ok()?;
                    Some((version, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    debian.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    on_path
        .into_iter()
        .chain(debian.into_iter().map(|(_, dir)| dir))
        .find(|d| has_tools(d))
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found: install the postgresql \
                 package or set PREXT_PG_BIN"
            )
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"))
}
