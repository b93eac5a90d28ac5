//! Which post-data entries of the dump belong to one table (built as soon as that table's
//! data is in) and which wait for the end.

use std::collections::HashMap;

use ferry_model::TableName;
use ferry_pg::catalog::TableInfo;
use ferry_pg::sql_error;
use tokio_postgres::Client;

use crate::toc::TocEntry;
use crate::CopyError;

/// Per-table batches and the final batch.
pub(crate) type PostData = (HashMap<TableName, Vec<TocEntry>>, Vec<TocEntry>);

/// Splits post-data entries into per-table batches (indexes, constraints other than foreign
/// keys, triggers, policies, rules of one copied table) and the final batch (the rest).
pub(crate) async fn split_post_data(
    source: &Client,
    tables: &[TableInfo],
    entries: Vec<TocEntry>,
) -> Result<PostData, CopyError> {
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
