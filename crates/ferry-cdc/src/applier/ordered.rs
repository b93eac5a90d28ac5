//! The ordered path: one statement per change, pipelined, for what cannot be folded
//! (tables with `REPLICA IDENTITY FULL`, key changes with unsent TOAST values) and to replay a
//! run the target refused in folded form.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use ferry_pg::sql_error;
use ferry_replication::pgoutput::{ColumnValue, LogicalMessage, TupleData};
use tokio_postgres::types::{ToSql, Type};

use super::{Applier, InFlight, StatementKey, MAX_IN_FLIGHT};
use crate::statement::{self, Kind};
use crate::CdcError;

impl Applier {
    /// Applies one row change (Insert, Update or Delete) by itself, pipelined.
    pub(super) async fn apply_ordered(&mut self, message: &LogicalMessage) -> Result<(), CdcError> {
        match message {
            LogicalMessage::Insert { rel_id, new, .. } => {
                self.change(*rel_id, Kind::Insert, Some(new), None).await
            }
            LogicalMessage::Update {
                rel_id,
                key,
                old,
                new,
                ..
            } => {
                let identify = key.as_ref().or(old.as_ref()).unwrap_or(new);
                self.change(*rel_id, Kind::Update, Some(new), Some(identify))
                    .await
            }
            LogicalMessage::Delete {
                rel_id, key, old, ..
            } => {
                let identify = key
                    .as_ref()
                    .or(old.as_ref())
                    .ok_or_else(|| CdcError::Stream("Delete without key or old row".into()))?;
                self.change(*rel_id, Kind::Delete, None, Some(identify))
                    .await
            }
            _ => Ok(()),
        }
    }

    pub(super) async fn change(
        &mut self,
        rel_id: u32,
        kind: Kind,
        new: Option<&TupleData>,
        identify: Option<&TupleData>,
    ) -> Result<(), CdcError> {
        let what = match kind {
            Kind::Insert => "insert",
            Kind::Update => "update",
            Kind::Delete => "delete",
        };
        let present = |t: Option<&TupleData>| -> Vec<bool> {
            t.map(|t| {
                t.0.iter()
                    .map(|v| !matches!(v, ColumnValue::UnchangedToast))
                    .collect()
            })
            .unwrap_or_default()
        };
        let key: StatementKey = (rel_id, kind, present(new), present(identify));
        if !self.statements.contains_key(&key) {
            self.settle().await?;
            let rel = self.relations.get(rel_id)?;
            if kind != Kind::Insert && !rel.full_identity && !rel.columns.iter().any(|c| c.key) {
                return Err(CdcError::TableMismatch {
                    table: rel.display.clone(),
                    detail: "an UPDATE or DELETE arrived for a table without replica identity"
                        .into(),
                });
            }
            let shape = match kind {
                Kind::Insert => statement::insert(rel),
                Kind::Update => statement::update(rel, &key.2, &key.3),
                Kind::Delete => statement::delete(rel, &key.3),
            };
            let types = vec![Type::TEXT; shape.set.len() + shape.identify.len()];
            let prepared = self
                .target
                .prepare_typed(&shape.sql, &types)
                .await
                .map_err(sql_error(format!(
                    "preparing the {what} for {}",
                    rel.display
                )))?;
            self.statements.insert(key.clone(), (prepared, shape));
        }
        let Some((prepared, shape)) = self.statements.get(&key) else {
            return Ok(());
        };
        let mut values: Vec<Option<String>> =
            Vec::with_capacity(shape.set.len() + shape.identify.len());
        for (tuple, indexes) in [(new, &shape.set), (identify, &shape.identify)] {
            for &i in indexes {
                values.push(text_value(tuple, i)?.map(str::to_owned));
            }
        }
        let client = Arc::clone(&self.target);
        let statement = prepared.clone();
        let mut reply: Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send>> =
            Box::pin(async move {
                let params: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                client.execute(&statement, &params).await
            });
        // The first poll sends the statement: do it now, so changes leave in stream order.
        match std::future::poll_fn(|cx| Poll::Ready(reply.as_mut().poll(cx))).await {
            Poll::Ready(result) => self.check(result, kind, rel_id)?,
            Poll::Pending => self.in_flight.push_back(InFlight {
                reply,
                kind,
                rel_id,
            }),
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            if let Some(oldest) = self.in_flight.pop_front() {
                let result = oldest.reply.await;
                self.check(result, oldest.kind, oldest.rel_id)?;
            }
        }
        Ok(())
    }

    /// Reads every outstanding reply, in order. Must run before anything else is awaited on
    /// the session: tokio-postgres delivers replies in order, and an unread one holds back
    /// all that follow.
    pub(super) async fn settle(&mut self) -> Result<(), CdcError> {
        while let Some(next) = self.in_flight.pop_front() {
            let result = next.reply.await;
            self.check(result, next.kind, next.rel_id)?;
        }
        Ok(())
    }

    /// One change's reply: an error names the table; an UPDATE or DELETE must touch one row.
    fn check(
        &self,
        result: Result<u64, tokio_postgres::Error>,
        kind: Kind,
        rel_id: u32,
    ) -> Result<(), CdcError> {
        let table = || {
            self.relations
                .get(rel_id)
                .map(|r| r.display.clone())
                .unwrap_or_default()
        };
        let what = match kind {
            Kind::Insert => "insert",
            Kind::Update => "update",
            Kind::Delete => "delete",
        };
        let rows =
            result.map_err(|e| sql_error(format!("applying an {what} to {}", table()))(e))?;
        if rows != 1 && kind != Kind::Insert {
            return Err(CdcError::RowMissing {
                table: table(),
                change: what,
            });
        }
        Ok(())
    }
}

pub(super) fn text_value(tuple: Option<&TupleData>, i: usize) -> Result<Option<&str>, CdcError> {
    let value = tuple
        .and_then(|t| t.0.get(i))
        .ok_or_else(|| CdcError::Stream(format!("a change lacks column {i}")))?;
    match value {
        ColumnValue::Null => Ok(None),
        ColumnValue::Text(b) => std::str::from_utf8(b)
            .map(Some)
            .map_err(|_| CdcError::Stream("a text value is not valid UTF-8".into())),
        ColumnValue::UnchangedToast | ColumnValue::Binary(_) => Err(CdcError::Stream(format!(
            "column {i} has no value to write"
        ))),
    }
}
