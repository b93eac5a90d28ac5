use std::fmt;

use serde::{Deserialize, Serialize};

use crate::TableName;

/// A slice of a table's heap, by block number: `ctid >= (start,0) AND ctid < (end,0)`.
/// `end == None` means "to the end of the table" (the last range also catches rows in pages
/// added after the size was read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RowRange {
    pub start_block: u64,
    pub end_block: Option<u64>,
}

/// One piece of copy work: a whole table, or one range of a table that was split.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CopyUnit {
    pub table: TableName,
    /// `None` for a whole table.
    pub range: Option<RowRange>,
    /// Index of the range within its table (0 for whole tables).
    pub part: u32,
    /// How many parts the table was split into (1 for whole tables).
    pub parts: u32,
}

impl CopyUnit {
    /// A stable key for the store: `schema.table#part/parts`.
    pub fn key(&self) -> String {
        format!("{}#{}/{}", self.table, self.part, self.parts)
    }
}

impl fmt::Display for CopyUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parts > 1 {
            write!(
                f,
                "{} (part {} of {})",
                self.table,
                self.part + 1,
                self.parts
            )
        } else {
            write!(f, "{}", self.table)
        }
    }
}

/// Where one copy unit stands. Persisted in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitState {
    /// Set by a copy worker before its COPY starts. A unit found in this state on resume was
    /// interrupted: its target transaction never committed, so it is simply redone.
    Started,
    /// Set by a copy worker just before it commits the target transaction whose id is stored
    /// with it. On resume, `txid_status` on the target decides between `Done` and redo.
    Committing,
    /// Set after the target transaction committed. Never redone.
    Done,
}
