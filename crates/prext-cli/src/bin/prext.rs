//! `prext`: the policy-report API server.
//!
//! `prext serve` runs the server on its embedded SQLite store with a generated PKI and an
//! admin kubeconfig under `--data-dir`, so that plain `kubectl` works against it at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "prext", version, about = "A Kubernetes aggregated API server for policy reports, backed by SQL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the report API.
    Serve(ServeArgs),
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
    /// Store URL. Default: sqlite:DATA_DIR/prext.db.
    #[arg(long, env = "PREXT_STORE")]
    store: Option<String>,
    /// Extra DNS names or IP addresses for the generated serving certificate (repeatable).
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// Revisions of change history kept for watches; older resourceVersions get 410 Expired.
    #[arg(long, default_value_t = 100_000)]
    history_revisions: i64,
    /// Seconds between compactions of the change history.
    #[arg(long, default_value_t = 60)]
    compaction_interval_seconds: u64,
    /// Seconds in-flight requests get to finish on SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace_seconds: u64,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_logging(args.log_format);
            let mut config = prext_server::Config::new(args.data_dir, args.listen);
            config.store = args.store;
            config.extra_sans = args.tls_sans;
            config.history_revisions = args.history_revisions;
            config.compaction_interval = Duration::from_secs(args.compaction_interval_seconds.max(1));
            config.shutdown_grace = Duration::from_secs(args.shutdown_grace_seconds);
            let token = CancellationToken::new();
            tokio::spawn(shutdown_signal(token.clone()));
            match prext_server::run(config, token).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("prext failed: {e:#}");
                    eprintln!("prext: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
