//! What a validation found: per table, the differences Ferry confirmed (each a real
//! difference: it persisted through the re-checks) and the rows it could not settle (still
//! changing on the source while it looked).

use std::collections::BTreeMap;

use serde::Serialize;

/// A column value as text (`None` is SQL NULL).
pub type Value = Option<String>;

/// The whole run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// `equal` or `different`.
    pub result: String,
    pub seconds: f64,
    /// Whether the target's reads were fenced by the applied position (change capture of
    /// this migration present on the target).
    pub fenced: bool,
    pub tables: Vec<TableReport>,
    pub differences: Vec<Difference>,
    pub unsettled: Vec<Unsettled>,
}

impl Report {
    pub fn is_equal(&self) -> bool {
        self.differences.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    /// The key the rows were compared by; empty for a table without one (compared as a
    /// multiset of rows).
    pub key: Vec<String>,
    pub source_rows: u64,
    pub target_rows: u64,
    /// Key ranges hashed (bisection included).
    pub chunks: u64,
    /// `equal`, `different` or `unsettled`.
    pub status: String,
    pub seconds: f64,
}

/// How a row (or table) differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Both sides have the key; `columns` lists what differs.
    Changed,
    /// The source has the row (or more copies of it), the target not.
    MissingOnTarget,
    /// The target has the row (or more copies of it), the source not.
    ExtraOnTarget,
    /// The table is not on the target.
    TableMissing,
    /// A column is on one side only (`columns` names it; values null).
    ColumnMissing,
    /// More rows differ than `--max-differences`: `ranges` key ranges that differ were not
    /// drilled down to their rows.
    MoreDifferences,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnDifference {
    pub column: String,
    pub source: Value,
    pub target: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub table: String,
    pub kind: Kind,
    /// The key's columns and values; `None` for a table without a key.
    pub key: Option<BTreeMap<String, String>>,
    pub columns: Vec<ColumnDifference>,
    /// A table without a key: the whole row, and how many more copies one side has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<BTreeMap<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copies: Option<u64>,
    /// `more_differences`: the differing key ranges left undrilled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranges: Option<u64>,
}

/// A row that differed at every look but was changing on the source meanwhile (or the
/// target never caught up with the source's position): neither confirmed nor cleared.
#[derive(Debug, Clone, Serialize)]
pub struct Unsettled {
    pub table: String,
    pub key: Option<BTreeMap<String, String>>,
    pub why: String,
}
