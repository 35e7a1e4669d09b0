//! `prext backup` and `prext restore`: consistent online copies of the embedded SQLite store,
//! and putting one back in place (see `docs/deploy.md`, "Backup and restore").
//!
//! `prext backup --to FILE` makes one copy while the server keeps writing. With `--to-dir DIR
//! --every DURATION --keep N` it runs until stopped, making a copy at every interval and
//! keeping the newest N: the chart runs it this way as a sidecar of the StatefulSet's pod,
//! which is the only pod that can mount the store's ReadWriteOnce volume.
//!
//! `prext restore --from FILE` refuses while a server holds the store, and jumps the
//! revision past every one the old store may have handed out (`--bump-revision`), with the
//! older history marked compacted: clients that resume a watch from an old resourceVersion
//! get 410 Expired and relist. PostgreSQL is backed up with its own tools (`pg_dump`, PITR).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use prext_store::sqlite::{self, DEFAULT_REVISION_BUMP};

/// Where the store is: `--store sqlite:PATH`, else `DATA_DIR/prext.db`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreLocation {
    /// Directory of the store (its database is DIR/prext.db).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./prext-data",
        env = "PREXT_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// The store's URL instead: sqlite:PATH. PostgreSQL is backed up with pg_dump (docs/deploy.md).
    #[arg(long, value_name = "URL", env = "PREXT_STORE")]
    pub store: Option<String>,
}

impl StoreLocation {
    /// The SQLite database file.
    pub fn database(&self) -> anyhow::Result<PathBuf> {
        match &self.store {
            None => Ok(self.data_dir.join("prext.db")),
            Some(url) => match url.strip_prefix("sqlite:") {
                Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
                _ if url.starts_with("postgres") => bail!(
                    "prext backs up and restores only its embedded SQLite store; back PostgreSQL up \
                     with pg_dump or point-in-time recovery (docs/deploy.md)"
                ),
                _ => bail!("unsupported store URL {url:?} (expected sqlite:PATH)"),
            },
        }
    }
}

/// The flags of `prext backup`.
#[derive(clap::Args, Debug, Clone)]
pub struct BackupArgs {
    #[command(flatten)]
    pub location: StoreLocation,
    /// The backup file to create (it must not exist).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "to_dir",
        conflicts_with = "to_dir"
    )]
    pub to: Option<PathBuf>,
    /// Directory of timestamped backups (prext-YYYYMMDDTHHMMSSZ.db), for --every.
    #[arg(long, value_name = "DIR", requires = "every")]
    pub to_dir: Option<PathBuf>,
    /// Keep running, one backup into --to-dir per interval (Go duration, e.g. 6h).
    #[arg(long, value_name = "DURATION", requires = "to_dir",
          value_parser = prext_server::config::parse_go_duration)]
    pub every: Option<Duration>,
    /// Backups kept in --to-dir (the oldest are deleted).
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
}

/// The flags of `prext restore`.
#[derive(clap::Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The backup file made by `prext backup`.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    #[command(flatten)]
    pub location: StoreLocation,
    /// How far the restored store's revision jumps past the backup's: more than the writes
    /// the old store may have made after the backup was taken.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_REVISION_BUMP,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub bump_revision: i64,
}

/// Runs `prext backup`.
pub async fn backup_main(args: BackupArgs) -> ExitCode {
    report(run_backup(args).await)
}

/// Runs `prext restore`.
pub async fn restore_main(args: RestoreArgs) -> ExitCode {
    report(run_restore(args).await)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prext: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_backup(args: BackupArgs) -> anyhow::Result<()> {
    let db = args.location.database()?;
    match (args.to, args.to_dir, args.every) {
        (Some(to), _, _) => backup_once(db, to).await,
        (None, Some(dir), Some(every)) => backup_every(&db, &dir, every, args.keep as usize).await,
        _ => bail!("--to FILE, or --to-dir DIR with --every DURATION, is required"),
    }
}

async fn backup_once(db: PathBuf, to: PathBuf) -> anyhow::Result<()> {
    let (src, dest) = (db.clone(), to.clone());
    let info = tokio::task::spawn_blocking(move || sqlite::backup(&src, &dest))
        .await
        .context("the backup task failed")?
        .with_context(|| format!("backing up {} to {}", db.display(), to.display()))?;
    println!(
        "backed up {} to {}: resourceVersion {}, {} objects, {} bytes",
        db.display(),
        to.display(),
        info.revision,
        info.objects,
        info.bytes
    );
    Ok(())
}

/// One backup into `dir` per `every`, keeping the newest `keep`; a failed one is logged and
/// retried at the next interval. Ends on SIGTERM or interrupt.
async fn backup_every(db: &Path, dir: &Path, every: Duration, keep: usize) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
    // A backup longer than the interval delays the next one rather than bunching them up.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticks.tick() => {}
        }
        let name = format!("prext-{}.db", jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"));
        if let Err(e) = backup_once(db.to_owned(), dir.join(name)).await {
            tracing::error!("backup failed: {e:#}");
            continue;
        }
        if let Err(e) = prune(dir, keep) {
            tracing::error!("pruning old backups failed: {e:#}");
        }
    }
}

/// Deletes all but the newest `keep` backups of `dir` (their names sort by time).
fn prune(dir: &Path, keep: usize) -> anyhow::Result<()> {
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("prext-") && n.ends_with(".db"))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    for old in &backups[..excess] {
        std::fs::remove_file(old).with_context(|| format!("deleting {}", old.display()))?;
    }
    Ok(())
}

async fn run_restore(args: RestoreArgs) -> anyhow::Result<()> {
    let db = args.location.database()?;
    let (from, target, bump) = (args.from.clone(), db.clone(), args.bump_revision);
    let info = tokio::task::spawn_blocking(move || sqlite::restore(&from, &target, bump))
        .await
        .context("the restore task failed")?
        .with_context(|| format!("restoring {} to {}", args.from.display(), db.display()))?;
    if let Some(previous) = &info.previous {
        println!("moved the previous database to {}", previous.display());
    }
    println!(
        "restored {} to {}: {} objects; the backup's resourceVersion {} jumps to {}, and watches \
         from any older resourceVersion get 410 Expired (clients relist)",
        args.from.display(),
        db.display(),
        info.objects,
        info.backup_revision,
        info.revision
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_location_resolves_sqlite_and_refuses_postgres() {
        let loc = |store: Option<&str>| StoreLocation {
            data_dir: PathBuf::from("/d"),
            store: store.map(str::to_string),
        };
        assert_eq!(
            loc(None).database().expect("default"),
            PathBuf::from("/d/prext.db")
        );
        assert_eq!(
            loc(Some("sqlite:/x/y.db")).database().expect("sqlite"),
            PathBuf::from("/x/y.db")
        );
        let err = loc(Some("postgres://u@h/db")).database().expect_err("postgres");
        assert!(err.to_string().contains("pg_dump"), "{err}");
        assert!(loc(Some("mysql://x")).database().is_err());
    }

    #[test]
    fn prune_keeps_the_newest_backups_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "prext-20260101T000000Z.db",
            "prext-20260102T000000Z.db",
            "prext-20260103T000000Z.db",
            "other.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        prune(dir.path(), 2).expect("prune");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "other.txt",
                "prext-20260102T000000Z.db",
                "prext-20260103T000000Z.db"
            ]
        );
    }
}
