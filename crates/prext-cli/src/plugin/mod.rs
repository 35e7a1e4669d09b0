//! The `kubectl prext` plugin: the commands of the original prototype (`create -f`,
//! `apply -f`, `get`, `delete`) for every report kind, plus `results` and `summary` over the
//! result query API (`results.prext.io`), with `--fail-on` exit codes for CI.
//!
//! Exit codes: 0 success; 1 an error (shown as kubectl shows it); 2 bad usage; 3 `--fail-on`
//! found a failing result at or above the threshold.
//!
//! Modules: [`client`] (kubeconfig, requests, errors), [`reports`] (the prototype's
//! commands), [`results`] (results and summaries), [`history`] (findings and trends),
//! [`table`] (text, CSV and colors).

mod client;
mod history;
mod reports;
mod results;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use client::{Conn, ConnectionArgs, PluginResult};

/// The exit code of bad usage (an invalid flag value), as clap exits for unknown flags.
const EXIT_USAGE: u8 = 2;
/// The exit code of `--fail-on` when it finds a failing result.
const EXIT_FAIL_ON: u8 = 3;

#[derive(Parser)]
#[command(
    name = "kubectl prext",
    bin_name = "kubectl prext",
    version,
    about = "Policy reports stored by prext: manage reports, query results, summarize them"
)]
struct Cli {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create reports from files (YAML or JSON; `-` for stdin).
    Create {
        /// Files to read.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Create or update reports from files (server-side apply).
    Apply {
        /// Files to read.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Show reports: `get polr|cpolr|reps|… [NAME]`.
    Get {
        /// The report kind: polr, cpolr, reps, creps, ephr, cephr, or a kind or plural.
        kind: String,
        /// One report's name.
        name: Option<String>,
        /// Across all namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum)]
        output: Option<reports::GetOutput>,
        /// Keep watching for changes after listing.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Delete reports: `delete polr|cpolr NAME…`.
    Delete {
        /// The report kind.
        kind: String,
        /// The reports to delete.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List policy results matching filters.
    Results {
        #[command(flatten)]
        filters: results::Filters,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: results::ResultsOutput,
        /// Order: report (default), severity (most severe first) or timestamp (newest first).
        #[arg(long)]
        sort: Option<String>,
        /// Show at most this many results.
        #[arg(long)]
        limit: Option<usize>,
        /// Exit 3 when a failing (fail or error) result of this severity or above matches.
        #[arg(long, value_name = "SEVERITY")]
        fail_on: Option<String>,
    },
    /// Findings over time: `--new` (first seen) or `--resolved` in a window.
    Findings {
        #[command(flatten)]
        filters: results::Filters,
        #[command(flatten)]
        which: history::Which,
        /// The window's start: an age (7d, 12h, 30m) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// The window's end (exclusive), like --since.
        #[arg(long)]
        until: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: history::HistoryOutput,
    },
    /// Open findings per day (or hour) by group, each series drawn as a sparkline.
    Trend {
        #[command(flatten)]
        filters: results::Filters,
        /// Group by: namespace, policy, rule, category, source, result, severity, subject.kind.
        #[arg(long, default_value = "namespace")]
        by: String,
        /// day or hour (the last 48 hours).
        #[arg(long, default_value = "day")]
        interval: String,
        /// The range's start: an age (30d) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// The range's end, like --since.
        #[arg(long)]
        until: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: history::HistoryOutput,
    },
    /// Count results by result, grouped by namespace, policy, source or report kind.
    Summary {
        #[command(flatten)]
        filters: results::Filters,
        /// Group by: namespace, policy, rule, category, source, report.kind, subject.kind.
        #[arg(long, default_value = "namespace")]
        by: String,
        /// Color the counts.
        #[arg(long, value_enum, default_value = "auto")]
        color: table::ColorChoice,
        /// Exit 3 when a failing (fail or error) result of this severity or above matches.
        #[arg(long, value_name = "SEVERITY")]
        fail_on: Option<String>,
        /// Only the N groups ranked first by --sort (default: most failures first).
        #[arg(long, value_name = "N")]
        top: Option<usize>,
        /// Rank groups by: total, a result (fail, warn, …) or a result.severity cell
        /// (fail.critical), descending; default: by group.
        #[arg(long)]
        sort: Option<String>,
    },
}

/// Runs the plugin and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(client::PluginError::Closed) => ExitCode::SUCCESS,
        Err(e @ client::PluginError::BadFlag(_)) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> PluginResult<ExitCode> {
    // Flag values are checked before connecting, so that bad usage is exit 2 anywhere.
    if let Command::Results { fail_on: Some(t), .. } | Command::Summary { fail_on: Some(t), .. } =
        &cli.command
    {
        results::fail_on_selector(t)?;
    }
    let conn = Conn::new(&cli.connection).await?;
    let fail_on = match cli.command {
        Command::Create { files } => return reports::create(&conn, &files).await.map(|()| ExitCode::SUCCESS),
        Command::Apply { files } => return reports::apply(&conn, &files).await.map(|()| ExitCode::SUCCESS),
        Command::Delete { kind, names } => {
            return reports::delete(&conn, &kind, &names)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Get {
            kind,
            name,
            all_namespaces,
            output,
            watch,
        } => {
            let options = reports::GetOptions {
                kind: &kind,
                name: name.as_deref(),
                all_namespaces,
                output,
                watch,
            };
            return reports::get(&conn, options).await.map(|()| ExitCode::SUCCESS);
        }
        Command::Findings {
            filters,
            which,
            since,
            until,
            output,
        } => {
            let options = history::FindingsOptions {
                filters: &filters,
                which,
                since: since.as_deref(),
                until: until.as_deref(),
                output,
            };
            return history::findings(&conn, options)
                .await
                .map(|()| ExitCode::SUCCESS);
        }
        Command::Trend {
            filters,
            by,
            interval,
            since,
            until,
            output,
        } => {
            let options = history::TrendOptions {
                filters: &filters,
                by: &by,
                interval: &interval,
                since: since.as_deref(),
                until: until.as_deref(),
                output,
            };
            return history::trend(&conn, options).await.map(|()| ExitCode::SUCCESS);
        }
        Command::Results {
            filters,
            output,
            sort,
            limit,
            fail_on,
        } => {
            if let Some(t) = &fail_on {
                results::fail_on_selector(t)?;
            }
            let options = results::ResultsOptions {
                filters: &filters,
                output,
                sort: sort.as_deref(),
                limit,
            };
            results::results(&conn, options).await?;
            fail_on.map(|t| (filters, t))
        }
        Command::Summary {
            filters,
            by,
            color,
            fail_on,
            top,
            sort,
        } => {
            if let Some(t) = &fail_on {
                results::fail_on_selector(t)?;
            }
            let options = results::SummaryOptions {
                filters: &filters,
                by: &by,
                color,
                top,
                sort: sort.as_deref(),
            };
            results::summary(&conn, options).await?;
            fail_on.map(|t| (filters, t))
        }
    };
    if let Some((filters, threshold)) = fail_on {
        if results::fails(&conn, &filters, &threshold).await? {
            eprintln!("error: failing results of severity {threshold} or above were found");
            return Ok(ExitCode::from(EXIT_FAIL_ON));
        }
    }
    Ok(ExitCode::SUCCESS)
}
