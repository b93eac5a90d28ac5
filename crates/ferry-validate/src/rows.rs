//! Rows fetched from both sides and compared one by one: by key, or as a multiset for a table
//! without one.

use std::collections::{BTreeMap, HashMap};

use ferry_pg::sql_error;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use crate::query::Key;
use crate::report::{ColumnDifference, Difference, Kind, Value};
use crate::shape::Shape;
use crate::ValidateError;

/// One row as read: each column's text, and what it is compared by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RowValues {
    pub shown: Vec<Value>,
    pub compared: Vec<Value>,
}

impl RowValues {
    fn read(shape: &Shape, row: &Row) -> Result<RowValues, ValidateError> {
        let what = || sql_error(format!("reading rows of {}", shape.table));
        let n = shape.columns.len();
        let shown = (0..n)
            .map(|i| row.try_get::<_, Option<String>>(i).map_err(what()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut compared = shown.clone();
        let mut next = n;
        for (i, c) in shape.columns.iter().enumerate() {
            if c.compared_apart() {
                compared[i] = row.try_get(next).map_err(what())?;
                next += 1;
            }
        }
        Ok(RowValues { shown, compared })
    }

    fn key(&self, shape: &Shape) -> Key {
        shape
            .key
            .iter()
            .map(|&i| self.shown[i].clone().unwrap_or_default())
            .collect()
    }
}

/// Runs `sql` and reads its rows.
pub(crate) async fn fetch(
    client: &Client,
    shape: &Shape,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<RowValues>, ValidateError> {
    let rows = client
        .query(sql, params)
        .await
        .map_err(sql_error(format!("reading rows of {}", shape.table)))?;
    rows.iter().map(|r| RowValues::read(shape, r)).collect()
}

/// Rows by key.
pub(crate) fn by_key(shape: &Shape, rows: Vec<RowValues>) -> HashMap<Key, RowValues> {
    rows.into_iter().map(|r| (r.key(shape), r)).collect()
}

/// The keys whose rows differ (missing on one side or not equal), with both sides' rows.
pub(crate) fn differing(
    source: &HashMap<Key, RowValues>,
    target: &HashMap<Key, RowValues>,
) -> Vec<Key> {
    let mut keys: Vec<Key> = source
        .iter()
        .filter(|(k, s)| target.get(*k).is_none_or(|t| t.compared != s.compared))
        .map(|(k, _)| k.clone())
        .chain(target.keys().filter(|k| !source.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys
}

/// The report entry for a key whose rows differ.
pub(crate) fn difference(
    shape: &Shape,
    key: &Key,
    source: Option<&RowValues>,
    target: Option<&RowValues>,
) -> Difference {
    let (kind, columns) = match (source, target) {
        (Some(s), Some(t)) => {
            let columns = shape
                .columns
                .iter()
                .enumerate()
                .filter(|(i, _)| s.compared[*i] != t.compared[*i])
                .map(|(i, c)| ColumnDifference {
                    column: c.name.clone(),
                    source: s.shown[i].clone(),
                    target: t.shown[i].clone(),
                })
                .collect();
            (Kind::Changed, columns)
        }
        (Some(_), None) => (Kind::MissingOnTarget, Vec::new()),
        _ => (Kind::ExtraOnTarget, Vec::new()),
    };
    Difference {
        table: shape.table.to_string(),
        kind,
        key: Some(key_map(shape, key)),
        columns,
        row: None,
        copies: None,
        ranges: None,
    }
}

pub(crate) fn key_map(shape: &Shape, key: &Key) -> BTreeMap<String, String> {
    shape
        .key_names()
        .into_iter()
        .zip(key.iter().cloned())
        .collect()
}

/// A table without a key: how many more copies of each row one side has (positive: the
/// source), for the rows whose counts differ.
pub(crate) fn multiset_diff(
    source: Vec<RowValues>,
    target: Vec<RowValues>,
) -> BTreeMap<Vec<Value>, (i64, RowValues)> {
    let mut counts: HashMap<Vec<Value>, (i64, RowValues)> = HashMap::new();
    for (rows, sign) in [(source, 1), (target, -1)] {
        for r in rows {
            counts.entry(r.compared.clone()).or_insert_with(|| (0, r)).0 += sign;
        }
    }
    counts.into_iter().filter(|(_, (n, _))| *n != 0).collect()
}

/// The report entry for a keyless row whose copies differ by `n` (positive: the source has
/// more).
pub(crate) fn multiset_difference(shape: &Shape, n: i64, row: &RowValues) -> Difference {
    Difference {
        table: shape.table.to_string(),
        kind: if n > 0 {
            Kind::MissingOnTarget
        } else {
            Kind::ExtraOnTarget
        },
        key: None,
        columns: Vec::new(),
        row: Some(
            shape
                .columns
                .iter()
                .map(|c| c.name.clone())
                .zip(row.shown.iter().cloned())
                .collect(),
        ),
        copies: Some(n.unsigned_abs()),
        ranges: None,
    }
}

/// Past `--max-differences`: how many differing key ranges (or hash buckets) were not drilled
/// down to their rows.
pub(crate) fn more_differences(shape: &Shape, ranges: u64) -> Difference {
    Difference {
        table: shape.table.to_string(),
        kind: Kind::MoreDifferences,
        key: None,
        columns: Vec::new(),
        row: None,
        copies: None,
        ranges: Some(ranges),
    }
}
