//! What the store hands back: rows of its log, with times as unix milliseconds.

use std::time::Duration;

use ferry_model::{RowRange, TableName, UnitState};

/// One phase of a run (`schema_pre`, `copy`, `indexes`, ...), started and maybe done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionRecord {
    pub name: String,
    /// When it was last started (a restart of an unfinished section moves this).
    pub started_at: i64,
    pub done_at: Option<i64>,
    /// `done_at - started_at`, once done.
    pub duration: Option<Duration>,
}

/// Where one copy unit stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRecord {
    /// `CopyUnit::key()`: `schema.table#part/parts`.
    pub key: String,
    pub table: TableName,
    pub part: u32,
    pub parts: u32,
    pub range: Option<RowRange>,
    pub state: UnitState,
    /// The target transaction that carries the unit's rows, recorded when it is about to
    /// commit; a resume asks the target's `txid_status` whether it did.
    pub target_xid: Option<i64>,
    pub rows: u64,
    pub bytes: u64,
    /// When it was last started.
    pub started_at: i64,
    pub done_at: Option<i64>,
    pub duration: Option<Duration>,
}

/// An error recorded during a section, for `ferry status` and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord {
    pub at: i64,
    pub section: String,
    pub message: String,
}

/// One step of a migration worth keeping (a phase begun or ended, a fence applied, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Unix milliseconds.
    pub at: i64,
    pub kind: String,
    pub message: String,
}

/// One invocation of ferry, kept across resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    pub id: i64,
    pub argv: Vec<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// How it ended (`ok`, `failed: ...`, `interrupted`), as the caller put it.
    pub outcome: Option<String>,
}

/// Milliseconds from `from` to `to`, never negative (a wall clock may step back).
pub(crate) fn elapsed(from: i64, to: Option<i64>) -> Option<Duration> {
    to.map(|to| Duration::from_millis(u64::try_from(to.saturating_sub(from)).unwrap_or(0)))
}

/// A finished validation, as `ferry validate` hands it to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationRun {
    /// `equal` or `different`.
    pub result: String,
    pub tables: u64,
    pub differences: Vec<StoredDifference>,
    pub unsettled: u64,
    pub seconds: f64,
}

/// One difference: its table, kind and JSON report entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDifference {
    pub table: String,
    pub kind: String,
    pub detail: String,
}

/// A stored validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationRecord {
    pub id: i64,
    pub finished_at: i64,
    pub result: String,
    pub tables: u64,
    pub differences: u64,
    pub unsettled: u64,
    pub seconds: f64,
}
