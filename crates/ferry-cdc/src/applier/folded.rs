//! The folded path: a run of changes reduced to one net change per row key
//! (`crate::fold`), applied per table by set-based statements inside a savepoint. If the
//! target refuses the folded form (a unique index other than the key meeting rows in an
//! order the source never had, a row the run expects that is not there), the savepoint is
//! rolled back and the run replayed change by change, which either succeeds or fails with the
//! change and table to blame.

use std::collections::HashMap;

use ferry_pg::sql_error;
use ferry_replication::pgoutput::{ColumnValue, LogicalMessage};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Statement;

use super::Applier;
use crate::bulk::{self, BulkOp};
use crate::fold::{row_key, NetChange, TableFold};
use crate::relations::Relation;
use crate::CdcError;

/// Why a folded run did not apply: the target's refusal, or its reply showing drift.
enum Refused {
    Error(CdcError),
    Rows {
        table: String,
        expected: usize,
        got: u64,
    },
}

impl From<CdcError> for Refused {
    fn from(e: CdcError) -> Self {
        Refused::Error(e)
    }
}

impl Applier {
    /// Adds a row change to the run; false if it must be applied in order instead.
    pub(super) fn fold(&mut self, message: &LogicalMessage) -> Result<bool, CdcError> {
        let rel_id = match message {
            LogicalMessage::Insert { rel_id, .. }
            | LogicalMessage::Update { rel_id, .. }
            | LogicalMessage::Delete { rel_id, .. } => *rel_id,
            _ => return Ok(false),
        };
        let rel = self.relations.get(rel_id)?;
        if rel.full_identity || rel.columns.is_empty() {
            return Ok(false);
        }
        let key: Vec<usize> = rel.key_columns().collect();
        let table = self.folds.entry(rel_id).or_default();
        Ok(match message {
            LogicalMessage::Insert { new, .. } if key.is_empty() => table.insert(None, new),
            LogicalMessage::Insert { new, .. } => match row_key(new, &key) {
                Some(k) => table.insert(Some(k), new),
                None => false,
            },
            _ if key.is_empty() => false,
            LogicalMessage::Update {
                key: k, old, new, ..
            } => {
                let new_key = row_key(new, &key);
                let old_key = match k.as_ref().or(old.as_ref()) {
                    Some(t) => row_key(t, &key),
                    None => new_key.clone(),
                };
                match (old_key, new_key) {
                    (Some(o), Some(n)) => table.update(o, n, new),
                    _ => false,
                }
            }
            LogicalMessage::Delete { key: k, old, .. } => {
                match k.as_ref().or(old.as_ref()).and_then(|t| row_key(t, &key)) {
                    Some(k) => table.delete(k),
                    None => false,
                }
            }
            _ => false,
        })
    }

    /// Applies the folded run, if any, leaving the target transaction open.
    pub(super) async fn apply_run(&mut self) -> Result<(), CdcError> {
        if self.run.is_empty() {
            self.folds.clear();
            return Ok(());
        }
        self.settle().await?;
        let folds = std::mem::take(&mut self.folds);
        let run = std::mem::take(&mut self.run);
        self.run_bytes = 0;
        self.target
            .batch_execute("SAVEPOINT ferry_run")
            .await
            .map_err(sql_error("opening a savepoint on the target"))?;
        let mut tables: Vec<(&u32, &TableFold)> = folds.iter().collect();
        tables.sort_by_key(|(id, _)| **id);
        let mut outcome = Ok(());
        for (rel_id, fold) in tables {
            outcome = self.apply_table(*rel_id, fold).await;
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Ok(()) => {
                self.target
                    .batch_execute("RELEASE SAVEPOINT ferry_run")
                    .await
                    .map_err(sql_error("releasing a savepoint on the target"))?;
                Ok(())
            }
            Err(refused) => {
                match &refused {
                    Refused::Error(e) => tracing::debug!(
                        error = %e,
                        changes = run.len(),
                        "the target refused a folded run: replaying it change by change"
                    ),
                    Refused::Rows {
                        table,
                        expected,
                        got,
                    } => tracing::debug!(
                        table,
                        expected,
                        got,
                        "a folded run touched other rows than expected: replaying it change by change"
                    ),
                }
                self.target
                    .batch_execute("ROLLBACK TO SAVEPOINT ferry_run; RELEASE SAVEPOINT ferry_run")
                    .await
                    .map_err(sql_error("rolling back a savepoint on the target"))?;
                for message in &run {
                    self.apply_ordered(message).await?;
                }
                self.settle().await
            }
        }
    }

    /// One table's net changes: deletes, then updates (one statement per set of written
    /// columns), then inserts, so a key deleted and re-used by another row frees it first.
    async fn apply_table(&mut self, rel_id: u32, fold: &TableFold) -> Result<(), Refused> {
        let rel = self.relations.get(rel_id)?.clone();
        let key: Vec<usize> = rel.key_columns().collect();

        let deleted: Vec<Vec<Option<&str>>> = fold
            .deleted_keys()
            .map(|k| k.iter().map(|b| text(b).map(Some)).collect())
            .collect::<Result<_, _>>()?;
        if !deleted.is_empty() {
            let columns = transpose(&deleted, key.len());
            self.run_bulk(
                &rel,
                rel_id,
                BulkOp::Delete,
                vec![],
                &key,
                columns,
                deleted.len(),
            )
            .await?;
        }

        let mut updates: HashMap<Vec<bool>, Vec<&[ColumnValue]>> = HashMap::new();
        let mut inserts: Vec<&[ColumnValue]> = Vec::new();
        for change in fold.net() {
            match change {
                NetChange::Update(row) => {
                    let written: Vec<bool> = row
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            !key.contains(&i) && !matches!(v, ColumnValue::UnchangedToast)
                        })
                        .collect();
                    updates.entry(written).or_default().push(row);
                }
                NetChange::Insert(row) => inserts.push(row),
                NetChange::Delete => {}
            }
        }
        let mut shapes: Vec<(Vec<bool>, Vec<&[ColumnValue]>)> = updates.into_iter().collect();
        shapes.sort_by(|a, b| a.0.cmp(&b.0));
        for (written, rows) in shapes {
            let set: Vec<usize> = (0..written.len()).filter(|&i| written[i]).collect();
            let bound: Vec<usize> = set.iter().chain(&key).copied().collect();
            let columns = columns_of(&rows, &bound)?;
            self.run_bulk(
                &rel,
                rel_id,
                BulkOp::Update,
                written,
                &set,
                columns,
                rows.len(),
            )
            .await?;
        }
        if !inserts.is_empty() {
            let all: Vec<usize> = (0..rel.columns.len()).collect();
            let columns = columns_of(&inserts, &all)?;
            self.run_bulk(
                &rel,
                rel_id,
                BulkOp::Insert,
                vec![],
                &all,
                columns,
                inserts.len(),
            )
            .await?;
        }
        Ok(())
    }

    /// Runs one set-based statement; it must touch exactly `rows` rows.
    #[allow(clippy::too_many_arguments)]
    async fn run_bulk(
        &mut self,
        rel: &Relation,
        rel_id: u32,
        op: BulkOp,
        shape: Vec<bool>,
        columns_bound: &[usize],
        values: Vec<Vec<Option<&str>>>,
        rows: usize,
    ) -> Result<(), Refused> {
        let statement = self
            .bulk_statement(rel, rel_id, op, shape, columns_bound)
            .await?;
        let params: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let got = self
            .target
            .execute(&statement, &params)
            .await
            .map_err(|e| {
                Refused::Error(sql_error(format!("applying changes to {}", rel.display))(e).into())
            })?;
        if got != rows as u64 {
            return Err(Refused::Rows {
                table: rel.display.clone(),
                expected: rows,
                got,
            });
        }
        Ok(())
    }

    async fn bulk_statement(
        &mut self,
        rel: &Relation,
        rel_id: u32,
        op: BulkOp,
        shape: Vec<bool>,
        columns_bound: &[usize],
    ) -> Result<Statement, CdcError> {
        let cache_key = (rel_id, op, shape);
        if let Some(s) = self.bulk_statements.get(&cache_key) {
            return Ok(s.clone());
        }
        let key: Vec<usize> = rel.key_columns().collect();
        let (sql, params) = match op {
            BulkOp::Insert => (bulk::insert(rel), rel.columns.len()),
            BulkOp::Delete => (bulk::delete(rel, &key), key.len()),
            BulkOp::Update => (
                bulk::update(rel, columns_bound, &key),
                columns_bound.len() + key.len(),
            ),
        };
        let statement = self
            .target
            .prepare_typed(&sql, &vec![Type::TEXT_ARRAY; params])
            .await
            .map_err(sql_error(format!("preparing changes to {}", rel.display)))?;
        self.bulk_statements.insert(cache_key, statement.clone());
        Ok(statement)
    }
}

fn text(bytes: &[u8]) -> Result<&str, CdcError> {
    std::str::from_utf8(bytes)
        .map_err(|_| CdcError::Stream("a text value is not valid UTF-8".into()))
}

/// The bound columns of each row, as one array per column.
fn columns_of<'a>(
    rows: &[&'a [ColumnValue]],
    bound: &[usize],
) -> Result<Vec<Vec<Option<&'a str>>>, CdcError> {
    let mut columns: Vec<Vec<Option<&str>>> = bound
        .iter()
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for row in rows {
        for (column, &i) in columns.iter_mut().zip(bound) {
            let value = match row.get(i) {
                Some(ColumnValue::Null) => None,
                Some(ColumnValue::Text(b)) => Some(text(b)?),
                _ => {
                    return Err(CdcError::Stream(format!(
                        "column {i} of a folded change has no value to write"
                    )))
                }
            };
            column.push(value);
        }
    }
    Ok(columns)
}

/// Rows of `width` values to one array per column.
fn transpose<'a>(rows: &[Vec<Option<&'a str>>], width: usize) -> Vec<Vec<Option<&'a str>>> {
    (0..width)
        .map(|c| rows.iter().map(|r| r.get(c).copied().flatten()).collect())
        .collect()
}
