//! Cutting the tables into units of work: whole tables, and tables above the split threshold
//! cut into ranges of heap blocks (TID range scans, PostgreSQL 14+). The cut is stored on
//! the first run and reused on resume, so a range's identity never changes under it.

use ferry_model::{CopyUnit, RowRange};
use ferry_pg::catalog::TableInfo;
use ferry_pg::{sql_error, PgError};
use ferry_store::StateStore;
use tokio_postgres::Client;

use crate::CopyError;

/// Most ranges one table is cut into.
const MAX_PARTS: u64 = 64;

/// First server version with TID range scans; older servers would read the whole table once
/// per range, so tables there are copied whole.
const TID_RANGE_SCAN: u32 = 140_000;

/// A unit with the estimate used to order the work (largest first) and draw progress.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PlannedUnit {
    pub unit: CopyUnit,
    pub table_oid: u32,
    pub estimated_bytes: u64,
}

/// Cuts `tables` into units, largest first.
async fn plan_units(
    source: &Client,
    tables: &[TableInfo],
    split_above: Option<u64>,
    version_num: u32,
) -> Result<Vec<PlannedUnit>, PgError> {
    let block_size: i64 = source
        .query_one("SELECT current_setting('block_size')::int8", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(sql_error("reading block_size"))?;
    let mut units = Vec::new();
    for t in tables.iter().filter(|t| t.holds_rows()) {
        let parts = match split_above {
            Some(above) if version_num >= TID_RANGE_SCAN && t.bytes > above => {
                t.bytes.div_ceil(above.max(1)).min(MAX_PARTS)
            }
            _ => 1,
        };
        let blocks = if parts > 1 {
            let heap: i64 = source
                .query_one(
                    "SELECT pg_relation_size($1::int8::oid)",
                    &[&i64::from(t.oid)],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(sql_error(format!("reading the size of {}", t.name)))?;
            u64::try_from(heap / block_size.max(1)).unwrap_or(0)
        } else {
            0
        };
        if parts <= 1 || blocks < parts {
            units.push(PlannedUnit {
                unit: CopyUnit {
                    table: t.name.clone(),
                    range: None,
                    part: 0,
                    parts: 1,
                },
                table_oid: t.oid,
                estimated_bytes: t.bytes,
            });
            continue;
        }
        let step = blocks.div_ceil(parts);
        let parts32 = u32::try_from(parts).unwrap_or(1);
        for i in 0..parts32 {
            let start = u64::from(i) * step;
            let end = (i + 1 < parts32).then_some(start + step);
            units.push(PlannedUnit {
                unit: CopyUnit {
                    table: t.name.clone(),
                    range: Some(RowRange {
                        start_block: start,
                        end_block: end,
                    }),
                    part: i,
                    parts: parts32,
                },
                table_oid: t.oid,
                estimated_bytes: t.bytes / parts,
            });
        }
    }
    units.sort_by(|a, b| {
        b.estimated_bytes
            .cmp(&a.estimated_bytes)
            .then_with(|| a.unit.key().cmp(&b.unit.key()))
    });
    Ok(units)
}

/// The stored cut of the tables into units, or a new one (stored before any unit starts).
pub(crate) async fn stored_or_planned(
    store: &dyn StateStore,
    source: &Client,
    tables: &[TableInfo],
    split_above: Option<u64>,
    version_num: u32,
) -> Result<Vec<PlannedUnit>, CopyError> {
    if let Some(json) = store.value("units")? {
        if let Ok(units) = serde_json::from_str::<Vec<PlannedUnit>>(&json) {
            return Ok(units);
        }
    }
    let units = plan_units(source, tables, split_above, version_num).await?;
    let json = serde_json::to_string(&units).map_err(|e| CopyError::Tool {
        what: "saving the unit plan".into(),
        detail: e.to_string(),
    })?;
    store.set_value("units", &json)?;
    Ok(units)
}
