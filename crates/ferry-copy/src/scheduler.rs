//! The data phase: `jobs` workers share copy units (largest first) and per-table post-data
//! batches, which start as soon as a table's last unit is in and take precedence over further
//! units, so index builds overlap the copy of other tables.

use std::collections::{HashMap, HashSet, VecDeque};

use ferry_model::{TableName, UnitState};
use ferry_pg::{catalog, quote};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::data::{copy_unit, UnitJob};
use crate::run::{section_done, Job};
use crate::toc::TocEntry;
use crate::units::PlannedUnit;
use crate::{commit, schema, CopyError};

/// What a worker finished.
enum Finished {
    /// A unit of this table.
    Unit(TableName),
    PostData,
}

/// The store's section for one table's post-data batch.
pub(crate) fn post_data_section(table: &TableName) -> String {
    format!("post-data {table}")
}

/// Copies every unit not yet done and builds every table's post-data batch not yet built.
pub(crate) async fn copy_data(
    job: &Job<'_>,
    planned: Vec<PlannedUnit>,
    mut per_table: HashMap<TableName, Vec<TocEntry>>,
    cancel: CancellationToken,
) -> Result<(), CopyError> {
    let (store, observer) = (job.store, job.observer);
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
    for t in &job.input.tables {
        if !remaining.contains_key(&t.name) && !section_done(store, &post_data_section(&t.name))? {
            ready.push_back(t.name.clone());
        }
    }

    let columns_client = job.input.source.connect().await?;
    let jobs = job.input.plan.copy.jobs.max(1);
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < jobs {
            if let Some(table) = ready.pop_front() {
                let entries = per_table.remove(&table).unwrap_or_default();
                running.push(post_data(job, table, entries).boxed());
            } else if let Some(p) = todo.pop_front() {
                let columns = catalog::copy_columns(&columns_client, p.table_oid).await?;
                let unit = UnitJob {
                    unit: p.unit,
                    columns,
                    estimated_bytes: p.estimated_bytes,
                };
                running.push(
                    async move {
                        let input = job.input;
                        copy_unit(
                            &unit,
                            &input.source,
                            &input.target,
                            job.snapshot,
                            store,
                            observer,
                        )
                        .await
                        .map(|_| Finished::Unit(unit.unit.table))
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
    Ok(())
}

/// One table's indexes, constraints, triggers, policies and rules, and its `ANALYZE`, in one
/// target transaction applied exactly once.
async fn post_data(
    job: &Job<'_>,
    table: TableName,
    entries: Vec<TocEntry>,
) -> Result<Finished, CopyError> {
    let section = post_data_section(&table);
    if !section_done(job.store, &section)? {
        let mut script = match entries.first() {
            None => String::new(),
            Some(first) => {
                let list = job.files.lists.join(format!("{}.list", first.object_oid));
                schema::script(
                    &job.input.tools,
                    &job.files.schema,
                    Some((&entries, &list)),
                    "post-data",
                    job.target_version,
                )
                .await?
            }
        };
        script.push_str(&format!("\nANALYZE {};\n", quote::table(&table)));
        let what = format!("building indexes and constraints of {table}");
        commit::apply_once(job.store, &job.input.target, &section, &script, &what).await?;
    }
    job.observer
        .note(&format!("{table}: indexes and constraints built"));
    Ok(Finished::PostData)
}
