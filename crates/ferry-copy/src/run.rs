//! `ferry copy`: the whole initial copy of one migration, fresh or resumed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ferry_model::{TableName, UnitState};
use ferry_pg::catalog::{self, RoleInfo, TableInfo};
use ferry_pg::{quote, sql_error, Connector};
use ferry_spec::Plan;
use ferry_store::{RunInvariants, StateStore};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::data::{copy_unit, UnitJob};
use crate::holder::{self, SnapshotInfo};
use crate::progress::Observer;
use crate::schema::{self, DumpFiles, Tools};
use crate::summary::{self, CopySummary};
use crate::toc::TocEntry;
use crate::units::{plan_units, PlannedUnit};
use crate::watch::Watch;
use crate::{commit, names, publication, sequences, CopyError};

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

    let snapshot = match (store.invariants()?, holder::current(&state_dir)) {
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
        (Some(_), _) if !options.restart => {
            return Err(CopyError::SnapshotGone {
                reason: "its holder process is no longer running".into(),
            })
        }
        (existing, _) => {
            if existing.is_some() {
                restart(input, store, &files, &source).await?;
            }
            start_fresh(input, &source, launcher, &state_dir).await?
        }
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
    store.set_value("phase", "copying")?;

    let mut watch = Watch::start(
        state_dir.clone(),
        input.source.clone(),
        snapshot.slot.clone(),
    );
    let result = tokio::select! {
        r = copy_in_snapshot(input, options, store, observer, &snapshot, &files, &source, cancel) => r,
        reason = watch.lost() => Err(CopyError::SlotLost { reason }),
    };
    drop(watch);
    let verification = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = store.record_error("copy", &e.to_string());
            return Err(e);
        }
    };
    store.section_done("copy")?;
    store.set_value("phase", "copied")?;
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
        create_roles(&target, &input.roles_to_create).await?;
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
    let planned = planned_units(input, store, source).await?;
    let entries = schema::listing(tools, &files.schema).await?;
    let pubs = names::publications(&input.plan.name);
    let entries: Vec<TocEntry> = entries
        .into_iter()
        .filter(|e| !e.is_publication_of(&pubs))
        .collect();
    let (per_table, final_batch) = split_post_data(source, &input.tables, entries).await?;
    std::fs::create_dir_all(&files.lists).map_err(CopyError::io("creating the list directory"))?;

    resolve_committing(store, &target).await?;
    let done: HashSet<String> = store
        .units()?
        .into_iter()
        .filter(|u| u.state == UnitState::Done)
        .map(|u| u.key)
        .collect();
    let mut remaining: HashMap<TableName, usize> = HashMap::new();
    let mut todo: VecDeque<PlannedUnit> = VecDeque::new();
    let (mut total, mut done_bytes) = (0, 0);
    for p in planned {
        total += p.estimated_bytes;
        if done.contains(&p.unit.key()) {
            done_bytes += p.estimated_bytes;
        } else {
            *remaining.entry(p.unit.table.clone()).or_default() += 1;
            todo.push_back(p);
        }
    }
    observer.planned(total, done_bytes, todo.len());
    observer.step("copying data");
    store.section_started("data")?;
    let mut ready: VecDeque<TableName> = VecDeque::new();
    for t in &input.tables {
        if !remaining.contains_key(&t.name) && !section_done(store, &post_data_section(&t.name))? {
            ready.push_back(t.name.clone());
        }
    }

    let shared = Arc::new(per_table);
    let columns_client = input.source.connect().await?;
    let jobs = input.plan.copy.jobs.max(1);
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < jobs {
            if let Some(table) = ready.pop_front() {
                let entries = shared.get(&table).cloned().unwrap_or_default();
                running.push(
                    post_data_task(
                        input,
                        store,
                        observer,
                        files,
                        table,
                        entries,
                        target_version,
                    )
                    .boxed(),
                );
            } else if let Some(p) = todo.pop_front() {
                let columns = catalog::copy_columns(&columns_client, p.table_oid).await?;
                let job = UnitJob {
                    unit: p.unit,
                    columns,
                    estimated_bytes: p.estimated_bytes,
                };
                running.push(
                    async move {
                        copy_unit(
                            &job,
                            &input.source,
                            &input.target,
                            &snap.snapshot,
                            store,
                            observer,
                        )
                        .await
                        .map(|_| Finished::Unit(job.unit.table))
                    }
                    .boxed(),
                );
            } else {
                break;
            }
        }
        let next = tokio::select! {
            () = cancel.cancelled() => return Err(CopyError::Cancelled),
            next = running.next() => next,
        };
        match next {
            None => break,
            Some(Err(e)) => return Err(e),
            Some(Ok(Finished::Unit(table))) => {
                if let Some(n) = remaining.get_mut(&table) {
                    *n -= 1;
                    if *n == 0 {
                        remaining.remove(&table);
                        ready.push_back(table);
                    }
                }
            }
            Some(Ok(Finished::PostData)) => {}
        }
    }
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
        store.section_started("analyze")?;
        target
            .batch_execute("ANALYZE")
            .await
            .map_err(sql_error("analyzing the target"))?;
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

enum Finished {
    Unit(TableName),
    PostData,
}

fn section_done(store: &dyn StateStore, name: &str) -> Result<bool, CopyError> {
    Ok(store.section(name)?.is_some_and(|s| s.done_at.is_some()))
}

fn post_data_section(table: &TableName) -> String {
    format!("post-data {table}")
}

async fn post_data_task(
    input: &CopyInput,
    store: &dyn StateStore,
    observer: &dyn Observer,
    files: &DumpFiles,
    table: TableName,
    entries: Vec<TocEntry>,
    target_version: u32,
) -> Result<Finished, CopyError> {
    let section = post_data_section(&table);
    if !section_done(store, &section)? {
        let list = files.lists.join(format!(
            "{}.list",
            entries.first().map_or(0, |e| e.object_oid)
        ));
        let mut script = if entries.is_empty() {
            String::new()
        } else {
            schema::script(
                &input.tools,
                &files.schema,
                Some((&entries, &list)),
                "post-data",
                target_version,
            )
            .await?
        };
        script.push_str(&format!("\nANALYZE {};\n", quote::table(&table)));
        commit::apply_once(
            store,
            &input.target,
            &section,
            &script,
            &format!("building indexes and constraints of {table}"),
        )
        .await?;
    }
    observer.note(&format!("{table}: indexes and constraints built"));
    Ok(Finished::PostData)
}

/// The stored cut of the tables into units, or a new one (stored before any unit starts).
async fn planned_units(
    input: &CopyInput,
    store: &dyn StateStore,
    source: &Client,
) -> Result<Vec<PlannedUnit>, CopyError> {
    if let Some(json) = store.value("units")? {
        if let Ok(units) = serde_json::from_str::<Vec<PlannedUnit>>(&json) {
            return Ok(units);
        }
    }
    let units = plan_units(
        source,
        &input.tables,
        input.plan.copy.split_tables_larger_than,
        input.source_version_num,
    )
    .await?;
    let json = serde_json::to_string(&units).map_err(|e| CopyError::Tool {
        what: "saving the unit plan".into(),
        detail: e.to_string(),
    })?;
    store.set_value("units", &json)?;
    Ok(units)
}

/// Units caught between "about to commit" and "done" by an interruption: the target says
/// whether their transaction committed.
async fn resolve_committing(store: &dyn StateStore, target: &Client) -> Result<(), CopyError> {
    for u in store
        .units()?
        .into_iter()
        .filter(|u| u.state == UnitState::Committing)
    {
        let Some(xid) = u.target_xid else { continue };
        let committed = commit::committed(target, xid).await?;
        if committed {
            let unit = ferry_model::CopyUnit {
                table: u.table,
                range: u.range,
                part: u.part,
                parts: u.parts,
            };
            store.unit_done(&unit, u.rows, u.bytes)?;
        }
    }
    Ok(())
}

/// Splits post-data entries into per-table batches (indexes, constraints other than foreign
/// keys, triggers, policies, rules of one copied table) and the final batch (the rest).
async fn split_post_data(
    source: &Client,
    tables: &[TableInfo],
    entries: Vec<TocEntry>,
) -> Result<(HashMap<TableName, Vec<TocEntry>>, Vec<TocEntry>), CopyError> {
    let oids: Vec<i64> = entries
        .iter()
        .filter(|e| e.is_per_table_kind())
        .map(|e| i64::from(e.object_oid))
        .collect();
    let rows = source
        .query(include_str!("../sql/post_data_owners.sql"), &[&oids])
        .await
        .map_err(sql_error("mapping indexes and constraints to their tables"))?;
    let mut owner: HashMap<(i64, i64), (i64, i64)> = HashMap::new();
    for r in rows {
        let key = (
            r.try_get::<_, i64>(0)
                .map_err(sql_error("reading owners"))?,
            r.try_get::<_, i64>(1)
                .map_err(sql_error("reading owners"))?,
        );
        owner.insert(
            key,
            (
                r.try_get(2).map_err(sql_error("reading owners"))?,
                r.try_get(3).map_err(sql_error("reading owners"))?,
            ),
        );
    }
    let by_oid: HashMap<i64, &TableName> =
        tables.iter().map(|t| (i64::from(t.oid), &t.name)).collect();
    let mut per_table: HashMap<TableName, Vec<TocEntry>> = HashMap::new();
    let mut rest = Vec::new();
    for e in entries {
        let table = e
            .is_per_table_kind()
            .then(|| owner.get(&(i64::from(e.catalog_oid), i64::from(e.object_oid))))
            .flatten()
            .filter(|(_, other)| *other == 0)
            .and_then(|(rel, _)| by_oid.get(rel));
        match table {
            Some(t) => per_table.entry((*t).clone()).or_default().push(e),
            None => rest.push(e),
        }
    }
    Ok((per_table, rest))
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

/// Creates roles the schema needs, without passwords and without SUPERUSER, REPLICATION or
/// BYPASSRLS (an operator grants those deliberately).
async fn create_roles(target: &Client, roles: &[RoleInfo]) -> Result<(), CopyError> {
    for r in roles {
        let attrs = [
            if r.can_login { "LOGIN" } else { "NOLOGIN" },
            if r.inherit { "INHERIT" } else { "NOINHERIT" },
            if r.create_db {
                "CREATEDB"
            } else {
                "NOCREATEDB"
            },
            if r.create_role {
                "CREATEROLE"
            } else {
                "NOCREATEROLE"
            },
        ];
        let sql = format!("CREATE ROLE {} {}", quote::ident(&r.name), attrs.join(" "));
        match target.batch_execute(&sql).await {
            Ok(()) => tracing::info!(role = %r.name, "created role on the target"),
            // 42710: someone created it meanwhile; fine.
            Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "42710") => {}
            Err(e) => {
                return Err(sql_error(format!("creating role {} on the target", r.name))(e).into())
            }
        }
    }
    Ok(())
}
