//! The folded path: a run of changes reduced to one net change per row key
//! (`crate::fold`), applied per table by set-based statements inside a savepoint. If the
//! target refuses the folded form (a unique index other than the key meeting rows in an
//! order the source never had, a row the run expects that is not there), the savepoint is
//! rolled back and the run replayed change by change, which either succeeds or fails with the
//! change and table to blame.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ferry_pg::sql_error;
use ferry_replication::pgoutput::{ColumnValue, LogicalMessage};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::Statement;

use super::{Applier, Expect, Reply};
use crate::bulk::{self, BulkOp};
use crate::fold::{row_key, TableFold};
use crate::relations::Relation;
use crate::CdcError;

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
        self.begin_target().await?;
        self.send_run().await?;
        self.settle().await
    }

    /// Sends the folded run after a savepoint, without waiting: `settle` reads the replies,
    /// and replays the run in order if the target refused it.
    pub(super) async fn send_run(&mut self) -> Result<(), CdcError> {
        if self.run.is_empty() {
            self.folds.clear();
            return Ok(());
        }
        self.settle().await?;
        let folds = std::mem::take(&mut self.folds);
        self.sent_run = Some(std::mem::take(&mut self.run));
        self.run_bytes = 0;
        // Everything is prepared first: preparing waits for the server, which must not
        // happen once the run's statements are in flight.
        let mut tables: Vec<(u32, TableFold)> = folds.into_iter().collect();
        tables.sort_by_key(|(id, _)| *id);
        let mut planned = Vec::new();
        for (rel_id, fold) in tables {
            self.plan_table(rel_id, fold, &mut planned).await?;
        }
        let client = Arc::clone(&self.target);
        let savepoint = self.savepoint.clone();
        let reply: Reply = Box::pin(async move { client.execute(&savepoint, &[]).await });
        self.send(reply, Expect::Done, true).await?;
        for bulk in planned {
            self.send_bulk(bulk).await?;
        }
        Ok(())
    }

    /// One table's net changes: deletes, then updates (one statement per set of written
    /// columns), then inserts, so a key deleted and re-used by another row frees it first.
    async fn plan_table(
        &mut self,
        rel_id: u32,
        fold: TableFold,
        planned: &mut Vec<Bulk>,
    ) -> Result<(), CdcError> {
        let rel = self.relations.get(rel_id)?.clone();
        let key: Vec<usize> = rel.key_columns().collect();
        let net = fold.into_net();
        self.pick_samples(&rel, &net.deleted, net.updates.iter().chain(&net.inserts));

        if !net.deleted.is_empty() {
            let rows = net.deleted.len();
            let mut columns: Vec<Vec<Option<TextValue>>> =
                key.iter().map(|_| Vec::with_capacity(rows)).collect();
            for row_key in net.deleted {
                for (column, value) in columns.iter_mut().zip(row_key) {
                    column.push(Some(TextValue(value)));
                }
            }
            let statement = self
                .bulk_statement(&rel, rel_id, BulkOp::Delete, vec![], &key)
                .await?;
            planned.push(Bulk::new(statement, columns, rel_id, rows));
        }

        let mut shapes: HashMap<Vec<bool>, Vec<Vec<ColumnValue>>> = HashMap::new();
        for row in net.updates {
            let written: Vec<bool> = row
                .iter()
                .enumerate()
                .map(|(i, v)| !key.contains(&i) && !matches!(v, ColumnValue::UnchangedToast))
                .collect();
            shapes.entry(written).or_default().push(row);
        }
        let mut shapes: Vec<(Vec<bool>, Vec<Vec<ColumnValue>>)> = shapes.into_iter().collect();
        shapes.sort_by(|a, b| a.0.cmp(&b.0));
        for (written, rows) in shapes {
            let set: Vec<usize> = (0..written.len()).filter(|&i| written[i]).collect();
            let bound: Vec<usize> = set.iter().chain(&key).copied().collect();
            let count = rows.len();
            let columns = columns_of(rows, &bound)?;
            let statement = self
                .bulk_statement(&rel, rel_id, BulkOp::Update, written, &set)
                .await?;
            planned.push(Bulk::new(statement, columns, rel_id, count));
        }
        if !net.inserts.is_empty() {
            let all: Vec<usize> = (0..rel.columns.len()).collect();
            let count = net.inserts.len();
            let columns = columns_of(net.inserts, &all)?;
            let statement = self
                .bulk_statement(&rel, rel_id, BulkOp::Insert, vec![], &all)
                .await?;
            planned.push(Bulk::new(statement, columns, rel_id, count));
        }
        Ok(())
    }

    /// Sends one set-based statement of the run.
    async fn send_bulk(&mut self, bulk: Bulk) -> Result<(), CdcError> {
        let client = Arc::clone(&self.target);
        let Bulk {
            statement,
            columns,
            expect,
        } = bulk;
        let reply: Reply = Box::pin(async move {
            let params: Vec<&(dyn ToSql + Sync)> =
                columns.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            client.execute(&statement, &params).await
        });
        self.send(reply, expect, true).await
    }

    /// The prepared statement, prepared on first use (nothing may be in flight then).
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

/// One set-based statement of a run, with its values: it must touch exactly as many rows as
/// it has.
struct Bulk {
    statement: Statement,
    columns: Vec<Vec<Option<TextValue>>>,
    expect: Expect,
}

impl Bulk {
    fn new(
        statement: Statement,
        columns: Vec<Vec<Option<TextValue>>>,
        rel_id: u32,
        rows: usize,
    ) -> Bulk {
        Bulk {
            statement,
            columns,
            expect: Expect::Rows {
                rel_id,
                rows: rows as u64,
            },
        }
    }
}

/// A value in text form, bound as it came from the stream (no copy); the server checks it.
#[derive(Debug, Clone)]
struct TextValue(Bytes);

impl ToSql for TextValue {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }

    to_sql_checked!();
}

/// The bound columns of each row, as one array per column (the values move, no copy).
fn columns_of(
    rows: Vec<Vec<ColumnValue>>,
    bound: &[usize],
) -> Result<Vec<Vec<Option<TextValue>>>, CdcError> {
    let mut columns: Vec<Vec<Option<TextValue>>> = bound
        .iter()
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for mut row in rows {
        for (column, &i) in columns.iter_mut().zip(bound) {
            let value = match row
                .get_mut(i)
                .map(|v| std::mem::replace(v, ColumnValue::Null))
            {
                Some(ColumnValue::Null) => None,
                Some(ColumnValue::Text(b)) => Some(TextValue(b)),
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
