//! The ordered path: one statement per change, pipelined, for what cannot be folded
//! (tables with `REPLICA IDENTITY FULL`, key changes with unsent TOAST values) and to replay a
//! run the target refused in folded form.

use std::sync::Arc;
use std::task::Poll;

use ferry_pg::sql_error;
use ferry_replication::pgoutput::{ColumnValue, LogicalMessage, TupleData};
use tokio_postgres::types::{ToSql, Type};

use super::{Applier, Expect, InFlight, Reply, StatementKey, MAX_IN_FLIGHT};
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
            self.drain().await?;
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
        let reply: Reply = Box::pin(async move {
            let params: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            client.execute(&statement, &params).await
        });
        self.send(reply, Expect::Change { kind, rel_id }, false)
            .await
    }

    /// Sends a statement (its future's first poll does) and queues its reply; the oldest reply
    /// is read once too many wait.
    pub(super) async fn send(
        &mut self,
        mut reply: Reply,
        expect: Expect,
        in_run: bool,
    ) -> Result<(), CdcError> {
        // Statements leave in the order they are sent; a reply already here is kept for its
        // turn.
        if let Poll::Ready(result) =
            std::future::poll_fn(|cx| Poll::Ready(reply.as_mut().poll(cx))).await
        {
            reply = Box::pin(std::future::ready(result));
        }
        self.in_flight.push_back(InFlight {
            reply,
            expect,
            in_run,
        });
        if self.in_flight.len() >= MAX_IN_FLIGHT && !in_run {
            self.drain_one().await?;
        }
        Ok(())
    }

    /// Reads every outstanding reply, in order, and settles a sent run: released if every
    /// reply was right, else rolled back to its savepoint and replayed change by change. Must
    /// run before anything else is awaited on the session: tokio-postgres delivers replies in
    /// order, and an unread one holds back all that follow.
    pub(super) async fn settle(&mut self) -> Result<(), CdcError> {
        let refused = self.drain().await?;
        let Some(run) = self.sent_run.take() else {
            return Ok(());
        };
        let Some(why) = refused else {
            return Ok(());
        };
        tracing::debug!(
            reason = %why,
            changes = run.len(),
            "the target refused a folded run: replaying it change by change"
        );
        self.target
            .batch_execute("ROLLBACK TO SAVEPOINT ferry_run")
            .await
            .map_err(sql_error("rolling back a savepoint on the target"))?;
        for message in &run {
            self.apply_ordered(message).await?;
        }
        self.drain().await?;
        Ok(())
    }

    /// Reads every outstanding reply; a failed change stops apply, a refused run is reported
    /// (the first reason) for `settle` to replay.
    async fn drain(&mut self) -> Result<Option<String>, CdcError> {
        let mut refused = self.refused.take();
        while !self.in_flight.is_empty() {
            if let Some(why) = self.drain_one().await? {
                refused.get_or_insert(why);
            }
        }
        Ok(refused)
    }

    /// Reads the oldest reply: Ok(Some(reason)) for a refused run's statement, Ok(None) for a
    /// good reply (or none left).
    async fn drain_one(&mut self) -> Result<Option<String>, CdcError> {
        let Some(next) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let result = next.reply.await;
        self.take_reply(result, next.expect, next.in_run)
    }

    fn take_reply(
        &mut self,
        result: Result<u64, tokio_postgres::Error>,
        expect: Expect,
        in_run: bool,
    ) -> Result<Option<String>, CdcError> {
        if in_run {
            return Ok(self.refusal(result, expect));
        }
        self.check(result, expect)?;
        Ok(None)
    }

    /// Reads the replies already here, without waiting; once a closed group's replies are
    /// all in, commits it, so a group's commit waits for the target, not for the next group.
    pub(super) async fn reap(&mut self) -> Result<(), CdcError> {
        if self.closing.is_none() {
            return Ok(());
        }
        while let Some(front) = self.in_flight.front_mut() {
            let polled =
                std::future::poll_fn(|cx| Poll::Ready(front.reply.as_mut().poll(cx))).await;
            let Poll::Ready(result) = polled else {
                return Ok(());
            };
            if let Some(next) = self.in_flight.pop_front() {
                if let Some(why) = self.take_reply(result, next.expect, next.in_run)? {
                    self.refused.get_or_insert(why);
                }
            }
        }
        self.ready().await
    }

    /// Why a run's reply is not what the fold expects, if it is not.
    fn refusal(
        &self,
        result: Result<u64, tokio_postgres::Error>,
        expect: Expect,
    ) -> Option<String> {
        match (result, expect) {
            (Err(e), _) => Some(sql_error("a folded statement")(e).to_string()),
            (Ok(got), Expect::Rows { rel_id, rows }) if got != rows => Some(format!(
                "{} rows of {} touched, {rows} expected",
                got,
                self.table_name(rel_id)
            )),
            _ => None,
        }
    }

    fn table_name(&self, rel_id: u32) -> String {
        self.relations
            .get(rel_id)
            .map(|r| r.display.clone())
            .unwrap_or_default()
    }

    /// One change's reply: an error names the table; an UPDATE or DELETE must touch one row.
    fn check(
        &self,
        result: Result<u64, tokio_postgres::Error>,
        expect: Expect,
    ) -> Result<(), CdcError> {
        let Expect::Change { kind, rel_id } = expect else {
            result.map_err(sql_error("applying changes on the target"))?;
            return Ok(());
        };
        let table = || self.table_name(rel_id);
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
