//! What a copy reports at its end: per table rows, bytes and time, the sections' timings,
//! and (on request) row counts compared inside the snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_model::{TableName, UnitState};
use ferry_pg::catalog::TableInfo;
use ferry_pg::{quote, sql_error, Connector};
use ferry_store::{SectionRecord, StateStore};
use serde::Serialize;

use crate::CopyError;

#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    pub table: TableName,
    pub rows: u64,
    pub bytes: u64,
    pub parts: u32,
    /// Sum of the time its units took (ranges ran concurrently, so this can exceed wall time).
    pub copy_seconds: f64,
}

/// Rows on each side of one table: source read in the copy's snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct TableCount {
    pub table: TableName,
    pub source_rows: i64,
    pub target_rows: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopySummary {
    pub tables: Vec<TableSummary>,
    pub total_rows: u64,
    pub total_bytes: u64,
    pub elapsed_seconds: f64,
    pub sections: Vec<(String, Option<f64>)>,
    pub verification: Option<Vec<TableCount>>,
}

impl CopySummary {
    /// Tables whose counts differ (empty when verification was not asked for).
    pub fn mismatches(&self) -> Vec<&TableCount> {
        self.verification
            .iter()
            .flatten()
            .filter(|c| c.source_rows != c.target_rows)
            .collect()
    }
}

pub(crate) async fn build(
    store: &dyn StateStore,
    elapsed: Duration,
    verification: Option<Vec<TableCount>>,
) -> Result<CopySummary, CopyError> {
    let mut tables: BTreeMap<TableName, TableSummary> = BTreeMap::new();
    for u in store
        .units()?
        .into_iter()
        .filter(|u| u.state == UnitState::Done)
    {
        let e = tables
            .entry(u.table.clone())
            .or_insert_with(|| TableSummary {
                table: u.table.clone(),
                rows: 0,
                bytes: 0,
                parts: u.parts,
                copy_seconds: 0.0,
            });
        e.rows += u.rows;
        e.bytes += u.bytes;
        e.copy_seconds += u.duration.map_or(0.0, |d| d.as_secs_f64());
    }
    let tables: Vec<TableSummary> = tables.into_values().collect();
    let sections = store
        .sections()?
        .into_iter()
        .filter(|s: &SectionRecord| !s.name.starts_with("post-data "))
        .map(|s| (s.name, s.duration.map(|d| d.as_secs_f64())))
        .collect();
    Ok(CopySummary {
        total_rows: tables.iter().map(|t| t.rows).sum(),
        total_bytes: tables.iter().map(|t| t.bytes).sum(),
        tables,
        elapsed_seconds: elapsed.as_secs_f64(),
        sections,
        verification,
    })
}

/// Counts every table's rows on the source inside `snapshot` and on the target.
pub(crate) async fn count_rows(
    source: &Connector,
    target: &Connector,
    snapshot: &str,
    tables: &[TableInfo],
) -> Result<Vec<TableCount>, CopyError> {
    let src = source.connect().await?;
    src.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
        quote::literal(snapshot)
    ))
    .await
    .map_err(sql_error("importing the snapshot to verify"))?;
    let dst = target.connect().await?;
    let mut counts = Vec::new();
    for t in tables.iter().filter(|t| t.holds_rows()) {
        let sql = format!("SELECT count(*) FROM ONLY {}", quote::table(&t.name));
        let count = |c: tokio_postgres::Row| c.try_get::<_, i64>(0);
        let s = src
            .query_one(&sql, &[])
            .await
            .and_then(count)
            .map_err(sql_error(format!("counting {} on the source", t.name)))?;
        let d = dst
            .query_one(&sql, &[])
            .await
            .and_then(count)
            .map_err(sql_error(format!("counting {} on the target", t.name)))?;
        counts.push(TableCount {
            table: t.name.clone(),
            source_rows: s,
            target_rows: d,
        });
    }
    let _ = src.batch_execute("COMMIT").await;
    Ok(counts)
}
