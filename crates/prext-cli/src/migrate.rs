//! `prext migrate`: copies the reports that live as custom resources in a Kubernetes cluster
//! today into prext's store, so that a group can be switched from its CRD to prext without
//! losing reports (the procedure is in `docs/migration.md`).
//!
//! The copy is paginated (`limit`/`continue`, `--page-size`), idempotent (an object whose
//! stored copy has the same content is left alone, a changed one is updated, nothing is
//! duplicated), resumable (`DATA_DIR/migrate-checkpoint.json` records the completed kinds
//! and the continue token of the kind in progress), and goes through the server's own
//! admission (`prext_api::meta`, `prext_api::schema`) and the [`prext_store::Store`] trait.
//!
//! Layout: [`convert`] is the pure part (kind selection, admission of one object, content
//! comparison); [`source`] reads pages from a Kubernetes API; [`target`] writes to the
//! store; [`checkpoint`] persists the resume point; [`engine`] is the copy loop;
//! [`summary`] reports what happened.

pub mod checkpoint;
pub mod convert;
pub mod engine;
pub mod source;
pub mod summary;
pub mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use prext_store::Store;

use checkpoint::{Checkpoint, CheckpointFile};
use engine::{Engine, Plan};
use source::KubeSource;
use summary::Summary;
use target::Target;

/// The flags of `prext migrate`.
#[derive(clap::Args, Debug, Clone)]
pub struct MigrateArgs {
    /// Kubeconfig of the cluster whose report custom resources are copied.
    #[arg(long, value_name = "PATH")]
    pub from_kubeconfig: PathBuf,
    /// Context of that kubeconfig to use (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Store to copy into. Default: sqlite:DATA_DIR/prext.db.
    #[arg(long, value_name = "URL", env = "PREXT_STORE")]
    pub store: Option<String>,
    /// The cluster to migrate into when several share one PostgreSQL database.
    #[arg(long, default_value = "", env = "PREXT_CLUSTER_NAME")]
    pub cluster_name: String,
    /// Directory of the checkpoint file and of the default SQLite store.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./prext-data",
        env = "PREXT_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// Kinds to copy, comma-separated or repeated: plural.group (policyreports.wgpolicyk8s.io),
    /// or a plural, kind or short name for that kind in every group. Default: every served kind.
    #[arg(long, value_delimiter = ',', value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Objects per list request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// Read everything and report what would be created or updated; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop after this many objects; the next run continues from the checkpoint.
    #[arg(long, value_name = "N")]
    pub max_objects: Option<u64>,
}

/// Runs `prext migrate`: progress on stderr, the summary on stdout.
///
/// Exit status: 0 when everything was copied; 2 when objects were refused by validation or a
/// kind could not be listed (see the summary); 3 when stopped by `--max-objects`; 1 on any
/// other error (the checkpoint is kept: running the same command again resumes).
pub async fn main(args: MigrateArgs) -> ExitCode {
    match run(args).await {
        Ok(summary) => {
            print!("{}", summary.render());
            ExitCode::from(summary.exit_code())
        }
        Err(e) => {
            eprintln!("prext migrate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: MigrateArgs) -> anyhow::Result<Summary> {
    let kinds = convert::select_kinds(&args.kinds).map_err(anyhow::Error::msg)?;
    let source = KubeSource::connect(&args.from_kubeconfig, args.context.as_deref()).await?;
    let url = args
        .store
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", args.data_dir.join("prext.db").display()));
    let mut options = prext_store::OpenOptions::default();
    options.postgres.cluster = args.cluster_name.clone();
    let store = if args.dry_run {
        open_existing(&url, options).await?
    } else {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
        Some(prext_store::open(&url, options).await?)
    };
    let target = match (&store, args.dry_run) {
        (Some(store), false) => Target::new(store.clone()),
        _ => Target::dry_run(store.clone()),
    };

    let file = CheckpointFile::in_dir(&args.data_dir);
    let checkpoint = if args.dry_run {
        Checkpoint::new(source.identity())
    } else {
        resume_point(&file, source.identity())?
    };
    let plan = Plan {
        kinds,
        page_size: args.page_size,
        max_objects: args.max_objects,
    };
    eprintln!(
        "prext migrate: copying {} kinds from {} into {url}{}",
        plan.kinds.len(),
        source.identity(),
        if args.dry_run { " (dry run)" } else { "" }
    );
    let mut progress = |line: &str| eprintln!("{line}");
    let engine = Engine {
        source: &source,
        target: &target,
        plan: &plan,
        checkpoint_file: (!args.dry_run).then_some(&file),
        progress: &mut progress,
    };
    let summary = engine.run(checkpoint, args.dry_run).await;
    if let Some(store) = store {
        store.close().await;
    }
    Ok(summary)
}

/// The checkpoint to start from: the saved one if it was made against the same source.
fn resume_point(file: &CheckpointFile, identity: &str) -> anyhow::Result<Checkpoint> {
    match file.load()? {
        Some(saved) if saved.source == identity => {
            eprintln!(
                "prext migrate: resuming from {} ({} kinds already done)",
                file.path().display(),
                saved.completed.len()
            );
            Ok(saved)
        }
        Some(saved) => {
            eprintln!(
                "prext migrate: ignoring {}: it was made against {}, not {identity}",
                file.path().display(),
                saved.source
            );
            Ok(Checkpoint::new(identity))
        }
        None => Ok(Checkpoint::new(identity)),
    }
}

/// The store at `url` for a dry run: `None` when it is a SQLite file that does not exist
/// yet (a dry run must not create it).
async fn open_existing(
    url: &str,
    options: prext_store::OpenOptions,
) -> anyhow::Result<Option<Arc<dyn Store>>> {
    let url = prext_store::StoreUrl::parse(url)?;
    if url.sqlite_path().is_some_and(|path| !path.exists()) {
        return Ok(None);
    }
    Ok(Some(prext_store::open_url(url, options).await?))
}
