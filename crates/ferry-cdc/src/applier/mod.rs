//! Applying the stream: each source transaction's changes in order, several source
//! transactions grouped into one target transaction, committed with the last one's end LSN
//! recorded in the replication origin, so the target always passes through the source's
//! commit order and the position never runs ahead of (or behind) what is durable.
//!
//! A group's statements are sent without waiting for them (`group.rs`): the target works on
//! group N while the stream of group N+1 is decoded and folded; N's replies are read and N is
//! committed before anything else is sent on the session.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_model::Lsn;
use ferry_pg::sql_error;
use ferry_replication::pgoutput::LogicalMessage;
use tokio_postgres::{Client, Statement};

use crate::bulk::BulkOp;
use crate::fold::TableFold;
use crate::origin::Origin;
use crate::relations::RelationCache;
use crate::statement::{Kind, Shape};
use crate::CdcError;

mod folded;
mod group;
mod ordered;
mod verify;

pub use verify::Mismatch;

/// When a group of source transactions is committed on the target.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_transactions: usize,
    pub max_changes: usize,
    /// Commit at the latest this long after the group's first transaction.
    pub max_delay: Duration,
    /// Fold each run of changes to one net change per row key, applied by set-based
    /// statements (docs/adr/0009-folded-apply.md); off: one statement per change.
    pub fold: bool,
    /// Online validation: every this-many-th row a folded run writes is read back after its
    /// group commits and compared with what was applied; 0: none.
    pub verify_every: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_transactions: 4_000,
            max_changes: 50_000,
            max_delay: Duration::from_millis(100),
            fold: true,
            verify_every: 0,
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

impl Committed {
    /// This group and a later one, committed one after the other.
    fn then(self, later: Committed) -> Committed {
        Committed {
            lsn: later.lsn,
            commit_time_us: later.commit_time_us,
            transactions: self.transactions + later.transactions,
            changes: self.changes + later.changes,
        }
    }
}

type StatementKey = (u32, Kind, Vec<bool>, Vec<bool>);

/// A set-based statement: table, operation, which columns it sets.
type BulkKey = (u32, BulkOp, Vec<bool>);

/// A folded run is applied once its changes hold this many bytes of values, even inside a
/// source transaction, so memory stays bounded whatever the transaction's size.
const MAX_RUN_BYTES: usize = 64 << 20;

/// Changes sent to the target whose replies have not been read yet, at most.
const MAX_IN_FLIGHT: usize = 512;

type Reply = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send>>;

/// What a reply must say.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// One change applied by itself: an UPDATE or DELETE touches exactly one row.
    Change { kind: Kind, rel_id: u32 },
    /// A set-based statement of a folded run: exactly this many rows.
    Rows { rel_id: u32, rows: u64 },
    /// Success (a savepoint).
    Done,
}

/// A statement sent ahead of its reply (pipelining): the server runs statements in the order
/// they were sent; replies are checked in that order before anything else is awaited.
struct InFlight {
    reply: Reply,
    expect: Expect,
    /// Part of a folded run: a failure means "replay the run in order", not "stop".
    in_run: bool,
}

/// A group whose statements are sent; committed (origin position, COMMIT) once its
/// replies are read.
#[derive(Debug, Clone, Copy)]
struct Closing {
    lsn: Lsn,
    time_us: i64,
    transactions: usize,
    changes: usize,
    opened: Option<Instant>,
    closed: Instant,
}

/// Applies decoded changes to one target session.
pub struct Applier {
    target: Arc<Client>,
    in_flight: VecDeque<InFlight>,
    origin: Origin,
    relations: RelationCache,
    statements: HashMap<StatementKey, (Statement, Shape)>,
    bulk_statements: HashMap<BulkKey, Statement>,
    savepoint: Statement,
    /// The run being folded, per table, and its changes as they came (replayed in order if
    /// the target refuses the folded form).
    folds: HashMap<u32, TableFold>,
    run: Vec<LogicalMessage>,
    run_bytes: usize,
    /// A run whose statements are in flight after `SAVEPOINT ferry_run`.
    sent_run: Option<Vec<LogicalMessage>>,
    /// Why the target refused the sent run, once a reply said so.
    refused: Option<String>,
    /// The group whose statements are in flight, not committed yet.
    closing: Option<Closing>,
    /// Committed since the caller last heard.
    done: Option<Committed>,
    limits: BatchLimits,
    /// Everything up to here is committed on the target.
    applied: Lsn,
    /// A group is open: a source transaction of it began.
    batch_open: bool,
    /// The open group's target transaction began (`BEGIN` is sent when first needed).
    begun: bool,
    batch_started: Option<Instant>,
    batch_transactions: usize,
    batch_changes: usize,
    /// The last source commit in the open batch: (end LSN, commit time in µs since 2000).
    last_commit: Option<(Lsn, i64)>,
    /// Inside a source transaction (between Begin and Commit).
    in_transaction: bool,
    /// The current source transaction was applied before (it is being resent): skip it.
    skipping: bool,
    /// Online validation: rows of the group in flight to read back after its commit, rows
    /// seen for the sampling, rows read back, and what did not match.
    samples: Vec<verify::Sample>,
    sample_seen: u64,
    verified: u64,
    mismatches: Vec<Mismatch>,
}

impl Applier {
    /// Prepares the session (`session_replication_role = replica`, so user triggers and
    /// foreign keys do not fire a second time; joins by key lookups only, so a folded run of
    /// a few thousand rows never scans a large table) and returns it with the position to
    /// stream from.
    pub async fn start(
        target: Client,
        origin_name: &str,
        limits: BatchLimits,
    ) -> Result<(Applier, Lsn), CdcError> {
        target
            .batch_execute(
                "SET session_replication_role = replica; SET synchronous_commit = on; \
                 SET enable_hashjoin = off; SET enable_mergejoin = off",
            )
            .await
            .map_err(sql_error(
                "preparing the apply session (session_replication_role needs a superuser)",
            ))?;
        let origin = Origin::ensure(&target, origin_name).await?;
        let applied = origin.progress(&target).await?;
        origin.attach(&target).await?;
        let savepoint = target
            .prepare("SAVEPOINT ferry_run")
            .await
            .map_err(sql_error("preparing the apply session"))?;
        let applier = Applier {
            target: Arc::new(target),
            in_flight: VecDeque::new(),
            origin,
            relations: RelationCache::default(),
            statements: HashMap::new(),
            bulk_statements: HashMap::new(),
            savepoint,
            folds: HashMap::new(),
            run: Vec::new(),
            run_bytes: 0,
            sent_run: None,
            refused: None,
            closing: None,
            done: None,
            limits,
            applied,
            batch_open: false,
            begun: false,
            batch_started: None,
            batch_transactions: 0,
            batch_changes: 0,
            last_commit: None,
            in_transaction: false,
            skipping: false,
            samples: Vec::new(),
            sample_seen: 0,
            verified: 0,
            mismatches: Vec::new(),
        };
        Ok((applier, applied))
    }

    /// The position committed on the target.
    pub fn applied(&self) -> Lsn {
        self.applied
    }

    /// Applies one message; returns what got committed, when groups were committed.
    pub async fn apply(&mut self, message: LogicalMessage) -> Result<Option<Committed>, CdcError> {
        self.reap().await?;
        self.take(message).await?;
        Ok(self.done.take())
    }

    async fn take(&mut self, message: LogicalMessage) -> Result<(), CdcError> {
        match message {
            LogicalMessage::Begin { final_lsn, .. } => {
                if self.in_transaction {
                    return Err(CdcError::Stream("Begin inside a transaction".into()));
                }
                self.in_transaction = true;
                self.skipping = final_lsn < self.applied;
                if !self.skipping && !self.batch_open {
                    self.batch_open = true;
                    self.begun = false;
                    self.batch_started = Some(Instant::now());
                }
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
                    return Ok(());
                }
                self.batch_transactions += 1;
                self.last_commit = Some((end_lsn, commit_time_us));
                if self.batch_full() {
                    self.close_group().await?;
                }
            }
            LogicalMessage::Relation {
                rel_id,
                namespace,
                name,
                replica_identity,
                columns,
                ..
            } => {
                // The run so far was folded with the old definition.
                self.apply_run().await?;
                self.ready().await?;
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
                self.bulk_statements.retain(|k, _| k.0 != rel_id);
            }
            _ if self.skipping => {}
            LogicalMessage::Insert { .. }
            | LogicalMessage::Update { .. }
            | LogicalMessage::Delete { .. } => {
                self.require_transaction("a row change")?;
                self.batch_changes += 1;
                if self.limits.fold && self.fold(&message)? {
                    self.run_bytes += message_bytes(&message);
                    self.run.push(message);
                    if self.run.len() >= self.limits.max_changes || self.run_bytes >= MAX_RUN_BYTES
                    {
                        self.apply_run().await?;
                    }
                } else {
                    // Applied in order, after the run before it.
                    self.apply_run().await?;
                    self.begin_target().await?;
                    self.apply_ordered(&message).await?;
                }
            }
            LogicalMessage::Truncate {
                options, rel_ids, ..
            } => {
                self.require_transaction("Truncate")?;
                self.apply_run().await?;
                self.begin_target().await?;
                self.settle().await?;
                // The stream lists every table the source truncated, children included.
                let mut names = Vec::with_capacity(rel_ids.len());
                for id in rel_ids {
                    let rel = self.relations.get(id)?;
                    names.push(format!("{}{}", rel.only, rel.qualified));
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
            }
            LogicalMessage::Type { .. }
            | LogicalMessage::Origin { .. }
            | LogicalMessage::Message { .. } => {}
            other => {
                return Err(CdcError::Stream(format!(
                    "unexpected message {other:?} (streaming was not requested)"
                )))
            }
        }
        Ok(())
    }

    /// Whether changes are received but not yet committed on the target.
    pub fn pending(&self) -> bool {
        self.in_transaction || self.batch_open || self.closing.is_some()
    }

    /// Whether `flush` should run now: a group waits for its commit, or for its age.
    pub fn due(&self) -> bool {
        self.closing.is_some()
            || (!self.in_transaction
                && self
                    .batch_started
                    .is_some_and(|t| t.elapsed() >= self.limits.max_delay))
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

    /// The origin this applier records positions in.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

/// The bytes of values a row change holds.
fn message_bytes(message: &LogicalMessage) -> usize {
    let tuple_bytes = |t: Option<&ferry_replication::pgoutput::TupleData>| {
        t.map_or(0, |t| {
            t.0.iter()
                .map(|v| match v {
                    ferry_replication::pgoutput::ColumnValue::Text(b)
                    | ferry_replication::pgoutput::ColumnValue::Binary(b) => b.len() + 16,
                    _ => 16,
                })
                .sum()
        })
    };
    match message {
        LogicalMessage::Insert { new, .. } => tuple_bytes(Some(new)),
        LogicalMessage::Update { key, old, new, .. } => {
            tuple_bytes(Some(new)) + tuple_bytes(key.as_ref()) + tuple_bytes(old.as_ref())
        }
        LogicalMessage::Delete { key, old, .. } => {
            tuple_bytes(key.as_ref()) + tuple_bytes(old.as_ref())
        }
        _ => 0,
    }
}
