//! `ferry copy`: the whole initial copy of one migration, fresh or resumed.

use std::path::Path;
use std::time::Instant;

use ferry_model::TableName;
use ferry_pg::catalog::{self, RoleInfo, TableInfo};
use ferry_pg::{sql_error, Connector};
use ferry_spec::Plan;
use ferry_store::{RunInvariants, StateStore};
use futures_util::future::{FusedFuture, FutureExt};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::holder::{self, SnapshotInfo};
use crate::progress::Observer;
use crate::schema::{self, DumpFiles, Tools};
use crate::spool::{self, Spooler};
use crate::summary::{self, CopySummary};
use crate::toc::TocEntry;
use crate::watch::Watch;
use crate::{commit, names, postdata, publication, roles, scheduler, sequences, units, CopyError};

/// What preflight decided, handed to the copy by the binary.
pub struct CopyInput {
    pub plan: Plan,
    pub source: Connector,
    pub target: Connector,
    /// Tables whose rows are copied.
    pub tables: Vec<TableInfo>,
    pub published: Vec<TableName>,
    pub append_only: Vec<TableName>,
    pub excluded: Vec<TableName>,
    /// Roles to create on the target before the schema (empty unless `missing_roles = "create"`).
    pub roles_to_create: Vec<RoleInfo>,
    pub tools: Tools,
    pub source_system_id: String,
    pub target_system_id: String,
    pub source_version_num: u32,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// Drop an earlier run whose snapshot is gone and start over.
    pub restart: bool,
    /// Compare row counts of every table, source (in the snapshot) against target.
    pub verify: bool,
}

/// Starts the snapshot holder process (the binary knows how to run itself).
pub trait HolderLauncher: Send + Sync {
    fn launch(&self) -> std::io::Result<std::process::Child>;
}

/// Runs or resumes the copy to its end.
pub async fn run(
    input: &CopyInput,
    options: CopyOptions,
    store: &dyn StateStore,
    observer: &dyn Observer,
    launcher: &dyn HolderLauncher,
    cancel: CancellationToken,
) -> Result<CopySummary, CopyError> {
    let started = Instant::now();
    let state_dir = input.plan.state_dir.clone();
    let files = DumpFiles::new(&state_dir);
    let source = input.source.connect().await?;

    let existing = store.invariants()?;
    let snapshot = match (existing, holder::current(&state_dir)) {
        // An explicit restart wins over everything, even a live snapshot.
        (Some(_), _) if options.restart => {
            restart(input, store, &files, &source).await?;
            start_fresh(input, &source, launcher, &state_dir).await?
        }
        (Some(inv), Some(info)) if inv.snapshot == info.snapshot => {
            observer.note(&format!(
                "resuming in snapshot {} held by pid {}",
                info.snapshot, info.pid
            ));
            info
        }
        (Some(_), _) if store.section("copy")?.is_some_and(|s| s.done_at.is_some()) => {
            observer.note("the copy already finished; nothing to do");
            return summary::build(store, started.elapsed(), None).await;
        }
        (Some(_), _) => {
            return Err(CopyError::SnapshotGone {
                reason: "its holder process is no longer running".into(),
            })
        }
        (None, _) => start_fresh(input, &source, launcher, &state_dir).await?,
    };
    let invariants = RunInvariants {
        source: input.source.identity(),
        source_system_id: input.source_system_id.clone(),
        target: input.target.identity(),
        target_system_id: input.target_system_id.clone(),
        snapshot: snapshot.snapshot.clone(),
        slot: snapshot.slot.clone(),
        publications: names::publications(&input.plan.name),
        consistent_lsn: snapshot.consistent_lsn,
        tables: sorted_names(&input.tables),
    };
    store.set_invariants(&invariants)?;
    store.set_value("phase", "copy")?;

    let mut watch = Watch::start(
        state_dir.clone(),
        input.source.clone(),
        snapshot.slot.clone(),
    );
    // The change stream goes to the spool while the copy runs (ADR 10).
    let spooler = Spooler {
        source: &input.source,
        slot: snapshot.slot.clone(),
        publications: names::publications(&input.plan.name),
        source_version_num: input.source_version_num,
        state_dir: state_dir.clone(),
        consistent_lsn: snapshot.consistent_lsn,
        store,
        max_bytes: input.plan.copy.max_spool,
    };
    let stop_spooling = CancellationToken::new();
    let mut spooling = Box::pin(spooler.run(stop_spooling.clone()).fuse());
    let result = tokio::select! {
        r = copy_in_snapshot(input, options, store, observer, &snapshot, &files, &source, cancel) => r,
        reason = watch.lost() => Err(CopyError::SlotLost { reason }),
        Err(e) = &mut spooling => Err(e),
    };
    drop(watch);
    // Last sync and confirmation; the rest of the stream stays in the slot for `ferry sync`.
    let spooled = if spooling.is_terminated() {
        Ok(())
    } else {
        stop_spooling.cancel();
        spooling.await
    };
    let result = result.and_then(|v| spooled.map(|()| v));
    let verification = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = store.record_error("copy", &e.to_string());
            if matches!(e, CopyError::SlotLost { .. }) {
                // Without its slot the snapshot leads nowhere: stop holding back the source.
                let _ = holder::release(&state_dir).await;
            }
            return Err(e);
        }
    };
    store.section_done("copy")?;
    store.set_value("phase", "sync")?;
    holder::release(&state_dir).await?;
    summary::build(store, started.elapsed(), verification).await
}

fn sorted_names(tables: &[TableInfo]) -> Vec<TableName> {
    let mut names: Vec<TableName> = tables.iter().map(|t| t.name.clone()).collect();
    names.sort();
    names
}

/// Creates the publications and the slot (through the holder). On failure nothing of
/// Ferry's is left on the source.
async fn start_fresh(
    input: &CopyInput,
    source: &Client,
    launcher: &dyn HolderLauncher,
    state_dir: &Path,
) -> Result<SnapshotInfo, CopyError> {
    // Dumps left by a run the store no longer knows belong to another snapshot.
    let files = DumpFiles::new(state_dir);
    for f in [&files.schema, &files.large_objects] {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir_all(&files.lists);
    spool::remove(state_dir).await?;
    let pubs = names::publications(&input.plan.name);
    publication::create(
        source,
        &pubs[0],
        &pubs[1],
        &input.published,
        &input.append_only,
    )
    .await?;
    let started = launcher
        .launch()
        .map_err(CopyError::io("starting the snapshot holder process"));
    let outcome = match started {
        Ok(mut child) => holder::wait_for_snapshot(state_dir, &mut child).await,
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        let _ = publication::drop_existing(source, &pubs).await;
        let _ = publication::drop_slot(source, &names::slot(&input.plan.name)).await;
    }
    outcome
}

/// `--restart`: removes the earlier run from both servers and from the store.
async fn restart(
    input: &CopyInput,
    store: &dyn StateStore,
    files: &DumpFiles,
    source: &Client,
) -> Result<(), CopyError> {
    holder::release(&input.plan.state_dir).await?;
    publication::drop_slot(source, &names::slot(&input.plan.name)).await?;
    publication::drop_existing(source, &names::publications(&input.plan.name)).await?;
    if files.schema.exists() {
        let drops = schema::drop_statements(&input.tools, &files.schema).await?;
        let target = input.target.connect().await?;
        let script = format!("BEGIN;\n{}\nCOMMIT;", drops.join("\n"));
        target.batch_execute(&script).await.map_err(sql_error(
            "removing what the earlier run restored on the target",
        ))?;
    }
    for f in [&files.schema, &files.large_objects] {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir_all(&files.lists);
    spool::remove(&input.plan.state_dir).await?;
    store.reset()?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn copy_in_snapshot(
    input: &CopyInput,
    options: CopyOptions,
    store: &dyn StateStore,
    observer: &dyn Observer,
    snap: &SnapshotInfo,
    files: &DumpFiles,
    source: &Client,
    cancel: CancellationToken,
) -> Result<Option<Vec<summary::TableCount>>, CopyError> {
    store.section_started("copy")?;
    let target = input.target.connect().await?;
    let target_version = catalog::version_num(&target).await?;
    let tools = &input.tools;

    if !section_done(store, "roles")? {
        store.section_started("roles")?;
        roles::create_roles(&target, &input.roles_to_create).await?;
        store.section_done("roles")?;
    }
    if !files.schema.exists() {
        observer.step("dumping the schema");
        schema::dump_schema(
            tools,
            &input.source,
            &snap.snapshot,
            &input.excluded,
            &files.schema,
        )
        .await?;
    }
    if !section_done(store, "pre-data")? {
        observer.step("restoring the schema (pre-data)");
        let script = schema::script(tools, &files.schema, None, "pre-data", target_version).await?;
        commit::apply_once(
            store,
            &input.target,
            "pre-data",
            &script,
            "restoring the schema (pre-data) on the target",
        )
        .await?;
    }

    // The work: units not yet done, and post-data batches per table.
    let planned = units::stored_or_planned(
        store,
        source,
        &input.tables,
        input.plan.copy.split_tables_larger_than,
        input.source_version_num,
    )
    .await?;
    let entries = schema::listing(tools, &files.schema).await?;
    let pubs = names::publications(&input.plan.name);
    let entries: Vec<TocEntry> = entries
        .into_iter()
        .filter(|e| !e.is_publication_of(&pubs))
        .collect();
    let (per_table, final_batch) =
        postdata::split_post_data(source, &input.tables, entries).await?;
    std::fs::create_dir_all(&files.lists).map_err(CopyError::io("creating the list directory"))?;

    commit::resolve_committing(store, &target).await?;
    let job = Job {
        input,
        store,
        observer,
        files,
        snapshot: &snap.snapshot,
        target_version,
    };
    scheduler::copy_data(&job, planned, per_table, cancel).await?;
    store.section_done("data")?;

    if !section_done(store, "large-objects")? {
        store.section_started("large-objects")?;
        if has_large_objects(source).await? {
            observer.step("copying large objects");
            schema::dump_large_objects(tools, &input.source, &snap.snapshot, &files.large_objects)
                .await?;
            schema::restore(
                tools,
                &input.target,
                &files.large_objects,
                "restoring large objects",
            )
            .await?;
        }
        store.section_done("large-objects")?;
    }
    if !section_done(store, "post-data")? {
        observer.step("restoring the rest of the schema (post-data)");
        let list = files.lists.join("post-data.list");
        let script = schema::script(
            tools,
            &files.schema,
            Some((&final_batch, &list)),
            "post-data",
            target_version,
        )
        .await?;
        commit::apply_once(
            store,
            &input.target,
            "post-data",
            &script,
            "restoring post-data (foreign keys, materialized views, …)",
        )
        .await?;
    }
    store.section_started("sequences")?;
    let n = sequences::sync(source, &target).await?;
    observer.note(&format!("{n} sequences set"));
    store.section_done("sequences")?;
    if !section_done(store, "analyze")? {
        // Tables were analyzed with their indexes; partitioned parents gather their own.
        store.section_started("analyze")?;
        target
            .batch_execute(include_str!("../sql/analyze_partitioned.sql"))
            .await
            .map_err(sql_error("analyzing partitioned tables on the target"))?;
        store.section_done("analyze")?;
    }
    let verification = if options.verify {
        observer.step("verifying row counts");
        Some(
            summary::count_rows(&input.source, &input.target, &snap.snapshot, &input.tables)
                .await?,
        )
    } else {
        None
    };
    Ok(verification)
}

/// What the steps of one copy share.
pub(crate) struct Job<'a> {
    pub input: &'a CopyInput,
    pub store: &'a dyn StateStore,
    pub observer: &'a dyn Observer,
    pub files: &'a DumpFiles,
    pub snapshot: &'a str,
    pub target_version: u32,
}

pub(crate) fn section_done(store: &dyn StateStore, name: &str) -> Result<bool, CopyError> {
    Ok(store.section(name)?.is_some_and(|s| s.done_at.is_some()))
}

async fn has_large_objects(source: &Client) -> Result<bool, CopyError> {
    let row = source
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata)", &[])
        .await
        .map_err(sql_error("looking for large objects"))?;
    Ok(row
        .try_get(0)
        .map_err(sql_error("looking for large objects"))?)
}
