//! `prext`: the policy-report API server.
//!
//! `prext serve` runs the server on its embedded SQLite store with a generated PKI and an
//! admin kubeconfig under `--data-dir`, so that plain `kubectl` works against it at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use prext_cli::{backup, migrate};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc for small blocks: a request builds and drops thousands
/// of small JSON values, many of them freed on another thread (the store's writer) than the
/// one that allocated them, where glibc spends a fifth of the CPU of a write in `malloc`,
/// `free` and `malloc_consolidate`. Large blocks go to glibc ([`allocator::Split`]).
#[global_allocator]
static GLOBAL: allocator::Split = allocator::Split;

#[path = "prext/allocator.rs"]
mod allocator;

#[derive(Parser)]
#[command(
    name = "prext",
    version,
    about = "A Kubernetes aggregated API server for policy reports, backed by SQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at startup: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the report API.
    Serve(ServeArgs),
    /// Copy the reports stored as custom resources in a cluster into prext's store.
    Migrate(migrate::MigrateArgs),
    /// Copy the embedded SQLite store to a file while the server keeps writing.
    Backup(backup::BackupArgs),
    /// Put a backup in place of a store no server holds; its revision jumps past every old one.
    Restore(backup::RestoreArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory for the PKI, the admin kubeconfig and the default SQLite database.
    #[arg(long, default_value = "./prext-data", env = "PREXT_DATA_DIR")]
    data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (the kubeconfig names the real one).
    #[arg(long, default_value = "127.0.0.1:6443", env = "PREXT_LISTEN")]
    listen: SocketAddr,
    /// Store URL: sqlite:PATH (default sqlite:DATA_DIR/prext.db) or
    /// postgres://USER@HOST:PORT/DB?sslmode=disable|require|verify-ca|verify-full&sslrootcert=FILE.
    /// The PostgreSQL password comes from --store-password-file or PREXT_STORE_PASSWORD.
    #[arg(long, env = "PREXT_STORE")]
    store: Option<String>,
    /// File holding the PostgreSQL password.
    #[arg(long, env = "PREXT_STORE_PASSWORD_FILE")]
    store_password_file: Option<PathBuf>,
    /// This cluster's name when a fleet shares one PostgreSQL database (each cluster sees only its own reports).
    #[arg(long, default_value = "", env = "PREXT_CLUSTER_NAME")]
    cluster_name: String,
    /// PostgreSQL connections per replica.
    #[arg(long, default_value_t = 8)]
    store_pool_size: usize,
    /// Seconds connecting to PostgreSQL may take.
    #[arg(long, default_value_t = 5)]
    store_connect_timeout_seconds: u64,
    /// Seconds one PostgreSQL statement may run.
    #[arg(long, default_value_t = 30)]
    store_statement_timeout_seconds: u64,
    /// Extra DNS names or IP addresses for the generated serving certificate (repeatable).
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// Revisions of change history kept for watches; older resourceVersions get 410 Expired.
    #[arg(long, default_value_t = 100_000)]
    history_revisions: i64,
    /// Seconds of change history kept for watches, on top of --history-revisions (0: no age bound).
    #[arg(long, default_value_t = 300)]
    history_age_seconds: u64,
    /// Seconds between compactions of the change history.
    #[arg(long, default_value_t = 60)]
    compaction_interval_seconds: u64,
    /// Days resolved findings are kept (the findings and resulttrends of results.prext.io).
    #[arg(long, default_value_t = 90)]
    history_days: u32,
    /// Seconds in-flight requests get to finish on SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace_seconds: u64,
    /// Seconds a connection may stay open without a request in flight (watches are never idle).
    #[arg(long, default_value_t = 90)]
    idle_connection_timeout_seconds: u64,
    /// Seconds without a new request after which page caches and the allocator's free memory
    /// are given back to the system (0: never).
    #[arg(long, default_value_t = prext_server::idle::DEFAULT_AFTER.as_secs())]
    idle_memory_release_seconds: u64,
    /// Connections served before idle ones are closed to make room for new clients (default:
    /// derived from the open-file limit, which is raised to its hard limit at start-up).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Bytes the store may occupy before writes that grow it (create, update, patch, apply)
    /// are refused with 507; deletes and compaction still work (etcd's --quota-backend-bytes).
    /// 0: no quota.
    #[arg(long, value_name = "N", default_value_t = 0)]
    store_quota_bytes: u64,
    /// Bytes kept free next to the SQLite database (DB.reserve) and released when the disk
    /// fills, so that deletes can still commit and free space. 0: no reserve.
    #[arg(long, value_name = "N", default_value_t = prext_server::disk_reserve::DEFAULT_BYTES)]
    store_disk_reserve_bytes: u64,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    auth: AuthArgs,
}

/// rustls warns about every ClientHello whose SNI is an IP address (RFC 6066 forbids it, yet
/// Node.js, Ruby and others send one when connecting to `https://127.0.0.1`): normal client
/// behaviour, not an operator's concern. Its SNI parser is quieted unless `RUST_LOG` names
/// rustls itself.
const QUIET_SNI: &str = "rustls::msgs::handshake=error";

fn init_logging(format: LogFormat) {
    let env = std::env::var("RUST_LOG").unwrap_or_default();
    let base = if env.trim().is_empty() {
        "info"
    } else {
        env.as_str()
    };
    let directives = if base.contains("rustls") {
        base.to_string()
    } else {
        format!("{base},{QUIET_SNI}")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("info,{QUIET_SNI}")));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received, draining"),
        _ = token.cancelled() => return,
    }
    token.cancel();
}

fn main() -> std::process::ExitCode {
    allocator::configure();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(allocator::collect_if_asked)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("prext: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_logging(args.log_format);
            prext_server::panic::install_hook();
            let mut config = prext_server::Config::new(args.data_dir, args.listen);
            config.store = args.store;
            config.store_settings = prext_server::config::StoreSettings {
                cluster_name: args.cluster_name,
                password_file: args.store_password_file,
                pool_size: args.store_pool_size.max(1),
                connect_timeout: Duration::from_secs(args.store_connect_timeout_seconds.max(1)),
                statement_timeout: Duration::from_secs(args.store_statement_timeout_seconds.max(1)),
            };
            config.extra_sans = args.tls_sans;
            config.history_revisions = args.history_revisions;
            config.history_age = Duration::from_secs(args.history_age_seconds);
            config.compaction_interval = Duration::from_secs(args.compaction_interval_seconds.max(1));
            config.history_days = args.history_days.max(1);
            config.shutdown_grace = Duration::from_secs(args.shutdown_grace_seconds);
            config.idle_connection_timeout = Duration::from_secs(args.idle_connection_timeout_seconds.max(1));
            config.max_connections = args.max_connections;
            config.store_quota_bytes = args.store_quota_bytes;
            config.store_disk_reserve_bytes = args.store_disk_reserve_bytes;
            config.auth = args.auth.into_config();
            config.idle = prext_server::idle::IdleSettings {
                after: Duration::from_secs(args.idle_memory_release_seconds),
                hook: Some(std::sync::Arc::new(allocator::release)),
            };
            let token = CancellationToken::new();
            tokio::spawn(shutdown_signal(token.clone()));
            match prext_server::run(config, token).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    // Once: the log goes to stderr too.
                    tracing::error!("prext failed: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Migrate(args) => {
            init_logging(LogFormat::Text);
            migrate::main(args).await
        }
        Command::Backup(args) => {
            init_logging(LogFormat::Text);
            backup::backup_main(args).await
        }
        Command::Restore(args) => {
            init_logging(LogFormat::Text);
            backup::restore_main(args).await
        }
    }
}

/// Serving certificate, authentication and authorization: kube's delegated-auth flags, with
/// kube's names and defaults. Without any of them prext runs standalone (its generated CA
/// authenticates clients and every authenticated request is allowed).
#[derive(clap::Args)]
#[command(next_help_heading = "Authentication and authorization")]
struct AuthArgs {
    /// PEM serving certificate (chain); reloaded when the file changes. Default: the generated one.
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long)]
    tls_private_key_file: Option<PathBuf>,
    /// CA bundle whose client certificates authenticate (CN = user, O = groups).
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// CA bundle of the front proxy's client certificate (kube-apiserver's aggregator).
    #[arg(long)]
    requestheader_client_ca_file: Option<PathBuf>,
    /// Front-proxy certificate common names accepted (empty: any).
    #[arg(long, value_delimiter = ',')]
    requestheader_allowed_names: Vec<String>,
    /// Headers naming the user (the first non-empty wins).
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-User")]
    requestheader_username_headers: Vec<String>,
    /// Headers carrying the user's groups.
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Group")]
    requestheader_group_headers: Vec<String>,
    /// Prefixes of headers carrying extra user attributes.
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Extra-")]
    requestheader_extra_headers_prefix: Vec<String>,
    /// Headers carrying the user's UID.
    #[arg(long, value_delimiter = ',')]
    requestheader_uid_headers: Vec<String>,
    /// Kubeconfig for TokenReview and the kube-system/extension-apiserver-authentication ConfigMap
    /// ("in-cluster": the pod's service account).
    #[arg(long)]
    authentication_kubeconfig: Option<PathBuf>,
    /// Do not read the authentication ConfigMap.
    #[arg(long)]
    authentication_skip_lookup: bool,
    /// How long TokenReview answers are cached (Go duration).
    #[arg(long, default_value = "10s", value_parser = prext_server::config::parse_go_duration)]
    authentication_token_webhook_cache_ttl: Duration,
    /// Kubeconfig for SubjectAccessReview ("in-cluster": the pod's service account); without it
    /// every authenticated request is allowed.
    #[arg(long)]
    authorization_kubeconfig: Option<PathBuf>,
    /// Paths allowed without SubjectAccessReview (a trailing * matches a prefix).
    #[arg(long, value_delimiter = ',', default_value = "/healthz,/readyz,/livez")]
    authorization_always_allow_paths: Vec<String>,
    /// Groups allowed without SubjectAccessReview.
    #[arg(long, value_delimiter = ',', default_value = "system:masters")]
    authorization_always_allow_groups: Vec<String>,
    /// How long allowed SubjectAccessReview answers are cached (Go duration).
    #[arg(long, default_value = "10s", value_parser = prext_server::config::parse_go_duration)]
    authorization_webhook_cache_authorized_ttl: Duration,
    /// How long denied SubjectAccessReview answers are cached (Go duration).
    #[arg(long, default_value = "10s", value_parser = prext_server::config::parse_go_duration)]
    authorization_webhook_cache_unauthorized_ttl: Duration,
}

impl AuthArgs {
    fn into_config(self) -> prext_server::config::AuthConfig {
        let non_empty = |v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect();
        prext_server::config::AuthConfig {
            tls_cert_file: self.tls_cert_file,
            tls_private_key_file: self.tls_private_key_file,
            client_ca_file: self.client_ca_file,
            requestheader: prext_server::config::RequestHeaderOptions {
                client_ca_file: self.requestheader_client_ca_file,
                allowed_names: non_empty(self.requestheader_allowed_names),
                username_headers: non_empty(self.requestheader_username_headers),
                uid_headers: non_empty(self.requestheader_uid_headers),
                group_headers: non_empty(self.requestheader_group_headers),
                extra_headers_prefix: non_empty(self.requestheader_extra_headers_prefix),
            },
            authentication_kubeconfig: self.authentication_kubeconfig,
            authentication_skip_lookup: self.authentication_skip_lookup,
            authentication_cache_ttl: self.authentication_token_webhook_cache_ttl,
            authorization_kubeconfig: self.authorization_kubeconfig,
            always_allow_paths: non_empty(self.authorization_always_allow_paths),
            always_allow_groups: non_empty(self.authorization_always_allow_groups),
            authorization_allow_ttl: self.authorization_webhook_cache_authorized_ttl,
            authorization_deny_ttl: self.authorization_webhook_cache_unauthorized_ttl,
            ..Default::default()
        }
    }
}
