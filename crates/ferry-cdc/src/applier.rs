//! Applying the stream: each source transaction's changes in order, several source
//! transactions grouped into one target transaction, committed with the last one's end LSN
//! recorded in the replication origin, so the target always passes through the source's
//! commit order and the position never runs ahead of (or behind) what is durable.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use ferry_model::Lsn;
use ferry_pg::sql_error;
use ferry_replication::pgoutput::{ColumnValue, LogicalMessage, TupleData};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement};

use crate::origin::Origin;
use crate::relations::RelationCache;
use crate::statement::{self, Kind, Shape};
use crate::CdcError;

/// When a group of source transactions is committed on the target.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_transactions: usize,
    pub max_changes: usize,
    /// Commit at the latest this long after the group's first transaction.
    pub max_delay: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_transactions: 1000,
            max_changes: 50_000,
            max_delay: Duration::from_millis(200),
        }
    }
}

/// A group committed on the target: the source position now durable there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub lsn: Lsn,
    /// Commit time on the source of the group's last transaction (µs since 2000-01-01).
    pub commit_time_us: i64,
    pub transactions: usize,
    pub changes: usize,
}

type StatementKey = (u32, Kind, Vec<bool>, Vec<bool>);

/// Changes sent to the target whose replies have not been read yet, at most.
const MAX_IN_FLIGHT: usize = 512;

/// A change sent ahead of its reply (pipelining): the server runs statements in the order
/// they were sent; replies are checked in that order before anything else is awaited.
struct InFlight {
    reply: Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send>>,
    kind: Kind,
    rel_id: u32,
}

/// Applies decoded changes to one target session.
pub struct Applier {
    target: Arc<Client>,
    in_flight: VecDeque<InFlight>,
    origin: Origin,
    relations: RelationCache,
    statements: HashMap<StatementKey, (Statement, Shape)>,
    limits: BatchLimits,
    /// Everything up to here is committed on the target.
    applied: Lsn,
    /// A target transaction is open.
    batch_open: bool,
    batch_started: Option<Instant>,
    batch_transactions: usize,
    batch_changes: usize,
    /// The last source commit in the open batch: (end LSN, commit time in µs since 2000).
    last_commit: Option<(Lsn, i64)>,
    /// Inside a source transaction (between Begin and Commit).
    in_transaction: bool,
    /// The current source transaction was applied before (it is being resent): skip it.
    skipping: bool,
}

impl Applier {
    /// Prepares the session (`session_replication_role = replica`, so user triggers and
    /// foreign keys do not fire a second time) and returns it with the position to stream from.
    pub async fn start(
        target: Client,
        origin_name: &str,
        limits: BatchLimits,
    ) -> Result<(Applier, Lsn), CdcError> {
        target
            .batch_execute("SET session_replication_role = replica; SET synchronous_commit = on")
            .await
            .map_err(sql_error(
                "preparing the apply session (session_replication_role needs a superuser)",
            ))?;
        let origin = Origin::ensure(&target, origin_name).await?;
        let applied = origin.progress(&target).await?;
        origin.attach(&target).await?;
        let applier = Applier {
            target: Arc::new(target),
            in_flight: VecDeque::new(),
            origin,
            relations: RelationCache::default(),
            statements: HashMap::new(),
            limits,
            applied,
            batch_open: false,
            batch_started: None,
            batch_transactions: 0,
            batch_changes: 0,
            last_commit: None,
            in_transaction: false,
            skipping: false,
        };
        Ok((applier, applied))
    }

    /// The position committed on the target.
    pub fn applied(&self) -> Lsn {
        self.applied
    }

    /// Applies one message; returns what got committed, when a group was committed.
    pub async fn apply(&mut self, message: LogicalMessage) -> Result<Option<Committed>, CdcError> {
        match message {
            LogicalMessage::Begin { final_lsn, .. } => {
                if self.in_transaction {
                    return Err(CdcError::Stream("Begin inside a transaction".into()));
                }
                self.in_transaction = true;
                self.skipping = final_lsn < self.applied;
                if !self.skipping && !self.batch_open {
                    self.settle().await?;
                    self.target
                        .batch_execute("BEGIN")
                        .await
                        .map_err(sql_error("starting a target transaction"))?;
                    self.batch_open = true;
                    self.batch_started = Some(Instant::now());
                }
                Ok(None)
            }
            LogicalMessage::Commit {
                end_lsn,
                commit_time_us,
                ..
            } => {
                if !self.in_transaction {
                    return Err(CdcError::Stream("Commit outside a transaction".into()));
                }
                self.in_transaction = false;
                if std::mem::take(&mut self.skipping) {
                    return Ok(None);
                }
                self.batch_transactions += 1;
                self.last_commit = Some((end_lsn, commit_time_us));
                if self.batch_full() {
                    return self.flush().await;
                }
                Ok(None)
            }
            LogicalMessage::Relation {
                rel_id,
                namespace,
                name,
                replica_identity,
                columns,
                ..
            } => {
                self.settle().await?;
                self.relations
                    .define(
                        &self.target,
                        rel_id,
                        &namespace,
                        &name,
                        replica_identity,
                        &columns,
                    )
                    .await?;
                self.statements.retain(|k, _| k.0 != rel_id);
                Ok(None)
            }
            _ if self.skipping => Ok(None),
            LogicalMessage::Insert { rel_id, new, .. } => {
                self.change(rel_id, Kind::Insert, Some(&new), None).await
            }
            LogicalMessage::Update {
                rel_id,
                key,
                old,
                new,
                ..
            } => {
                let identify = key.as_ref().or(old.as_ref()).unwrap_or(&new);
                self.change(rel_id, Kind::Update, Some(&new), Some(identify))
                    .await
            }
            LogicalMessage::Delete {
                rel_id, key, old, ..
            } => {
                let identify = key
                    .or(old)
                    .ok_or_else(|| CdcError::Stream("Delete without key or old row".into()))?;
                self.change(rel_id, Kind::Delete, None, Some(&identify))
                    .await
            }
            LogicalMessage::Truncate {
                options, rel_ids, ..
            } => {
                self.require_transaction("Truncate")?;
                self.settle().await?;
                let mut names = Vec::with_capacity(rel_ids.len());
                for id in rel_ids {
                    names.push(self.relations.get(id)?.qualified.clone());
                }
                let mut sql = format!("TRUNCATE {}", names.join(", "));
                if options & 2 != 0 {
                    sql.push_str(" RESTART IDENTITY");
                }
                if options & 1 != 0 {
                    sql.push_str(" CASCADE");
                }
                self.target
                    .batch_execute(&sql)
                    .await
                    .map_err(sql_error("applying a TRUNCATE"))?;
                self.batch_changes += 1;
                Ok(None)
            }
            LogicalMessage::Type { .. }
            | LogicalMessage::Origin { .. }
            | LogicalMessage::Message { .. } => Ok(None),
            other => Err(CdcError::Stream(format!(
                "unexpected message {other:?} (streaming was not requested)"
            ))),
        }
    }

    /// Commits the open group if it holds whole transactions and nothing is in flight; called
    /// when the stream goes quiet so the position advances without waiting for a full group.
    pub async fn flush(&mut self) -> Result<Option<Committed>, CdcError> {
        if self.in_transaction || !self.batch_open {
            return Ok(None);
        }
        self.settle().await?;
        let Some((lsn, time_us)) = self.last_commit.take() else {
            return Ok(None);
        };
        self.target
            .execute(
                "SELECT pg_replication_origin_xact_setup($1::text::pg_lsn, \
                        to_timestamp(946684800 + $2::float8 / 1000000))",
                &[&lsn.to_string(), &(time_us as f64)],
            )
            .await
            .map_err(sql_error("recording the applied position"))?;
        self.target
            .batch_execute("COMMIT")
            .await
            .map_err(sql_error("committing applied changes on the target"))?;
        let committed = Committed {
            lsn,
            commit_time_us: time_us,
            transactions: self.batch_transactions,
            changes: self.batch_changes,
        };
        self.applied = lsn;
        self.batch_open = false;
        self.batch_started = None;
        self.batch_transactions = 0;
        self.batch_changes = 0;
        Ok(Some(committed))
    }

    /// Whether changes are received but not yet committed on the target.
    pub fn pending(&self) -> bool {
        self.in_transaction || self.batch_open
    }

    /// Whether a group is waiting for `flush` because of its age.
    pub fn due(&self) -> bool {
        !self.in_transaction
            && self
                .batch_started
                .is_some_and(|t| t.elapsed() >= self.limits.max_delay)
    }

    fn batch_full(&self) -> bool {
        self.batch_transactions >= self.limits.max_transactions
            || self.batch_changes >= self.limits.max_changes
            || self
                .batch_started
                .is_some_and(|t| t.elapsed() >= self.limits.max_delay)
    }

    fn require_transaction(&self, what: &str) -> Result<(), CdcError> {
        if self.in_transaction && self.batch_open {
            Ok(())
        } else {
            Err(CdcError::Stream(format!("{what} outside a transaction")))
        }
    }

    async fn change(
        &mut self,
        rel_id: u32,
        kind: Kind,
        new: Option<&TupleData>,
        identify: Option<&TupleData>,
    ) -> Result<Option<Committed>, CdcError> {
        let what = match kind {
            Kind::Insert => "insert",
            Kind::Update => "update",
            Kind::Delete => "delete",
        };
        self.require_transaction(what)?;
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
            return Ok(None);
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
        self.batch_changes += 1;
        Ok(None)
    }

    /// Reads every outstanding reply, in order. Must run before anything else is awaited on
    /// the session: tokio-postgres delivers replies in order, and an unread one holds back
    /// all that follow.
    async fn settle(&mut self) -> Result<(), CdcError> {
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

    /// The origin this applier records positions in.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

fn text_value(tuple: Option<&TupleData>, i: usize) -> Result<Option<&str>, CdcError> {
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
