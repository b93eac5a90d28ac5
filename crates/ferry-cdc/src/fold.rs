//! Folding a run of changes to one net change per row key (docs/adr/0009-folded-apply.md).
//!
//! Inside one target transaction only the state at COMMIT is visible, and that state is the
//! source's state after the group's last transaction whether the rows got there one change at
//! a time or by one net change each. So a run of changes to tables with a key is reduced to,
//! per key: nothing, an insert, an update of the columns the run wrote, or a delete. What the
//! fold cannot express exactly (a key change that leaves a TOASTed value unsent, a change
//! that contradicts the run so far) it refuses, and the caller applies that change in order.

use std::collections::HashMap;

use bytes::Bytes;
use ferry_replication::pgoutput::{ColumnValue, TupleData};

/// A row's key: the text of its key columns, in the relation's column order.
pub(crate) type RowKey = Vec<Bytes>;

/// What the run did to one key so far.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NetRow {
    /// The row was there before the run (its first change was an update or a delete).
    existed: bool,
    /// The row now, when it exists: written values, `UnchangedToast` for a column the run
    /// never wrote (the target's value stays); empty until the first update of a row that
    /// was there.
    now: Option<Vec<ColumnValue>>,
}

/// The net change of one key, as the target must apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NetChange<'a> {
    Insert(&'a [ColumnValue]),
    /// The row's new values; `UnchangedToast` marks a column to leave alone.
    Update(&'a [ColumnValue]),
    Delete,
}

/// One table's folded changes.
#[derive(Debug, Default)]
pub(crate) struct TableFold {
    rows: HashMap<RowKey, NetRow>,
    /// First-seen order of the keys, so the statements are deterministic.
    order: Vec<RowKey>,
    /// Inserts into a table without a key (append-only): kept as they came.
    appended: Vec<Vec<ColumnValue>>,
}

impl TableFold {
    /// Folds an insert; false if it contradicts the run (the key exists already).
    pub fn insert(&mut self, key: Option<RowKey>, new: &TupleData) -> bool {
        if has_unsent(&new.0) {
            return false;
        }
        let Some(key) = key else {
            self.appended.push(new.0.clone());
            return true;
        };
        if self.rows.get(&key).is_some_and(|r| r.now.is_some()) {
            return false;
        }
        self.entry(key, false).now = Some(new.0.clone());
        true
    }

    /// Folds an update of the row at `old_key` to `new` (whose key is `new_key`); false if
    /// it cannot be folded exactly.
    pub fn update(&mut self, old_key: RowKey, new_key: RowKey, new: &TupleData) -> bool {
        if self.rows.get(&old_key).is_some_and(|r| r.now.is_none()) {
            return false;
        }
        if old_key == new_key {
            let row = self.entry(old_key, true);
            let Some(now) = row.now.as_mut() else {
                return false;
            };
            if now.is_empty() {
                // First change of a row that was there: every column still the target's.
                now.resize(new.0.len(), ColumnValue::UnchangedToast);
            }
            if now.len() != new.0.len() {
                return false;
            }
            for (slot, value) in now.iter_mut().zip(&new.0) {
                if !matches!(value, ColumnValue::UnchangedToast) {
                    *slot = value.clone();
                }
            }
            return true;
        }
        // A key change: the row leaves `old_key` and appears at `new_key`. An unsent TOAST
        // value would have to come from the old row, which the run may not hold.
        if has_unsent(&new.0) || self.rows.get(&new_key).is_some_and(|r| r.now.is_some()) {
            return false;
        }
        self.entry(old_key, true).now = None;
        self.entry(new_key, false).now = Some(new.0.clone());
        true
    }

    /// Folds a delete; false if the run already removed the row.
    pub fn delete(&mut self, key: RowKey) -> bool {
        let row = self.entry(key, true);
        if row.now.is_none() {
            return false;
        }
        row.now = None;
        true
    }

    /// The net changes, in first-seen key order, then the key-less inserts.
    pub fn net(&self) -> impl Iterator<Item = NetChange<'_>> {
        let keyed = self.order.iter().filter_map(|k| {
            let row = self.rows.get(k)?;
            match (row.existed, row.now.as_deref()) {
                (false, None) => None,
                (false, Some(v)) => Some(NetChange::Insert(v)),
                (true, Some(v)) => Some(NetChange::Update(v)),
                (true, None) => Some(NetChange::Delete),
            }
        });
        keyed.chain(self.appended.iter().map(|v| NetChange::Insert(v)))
    }

    /// The keys of the net deletes.
    pub fn deleted_keys(&self) -> impl Iterator<Item = &RowKey> {
        self.order.iter().filter(|k| {
            self.rows
                .get(*k)
                .is_some_and(|r| r.existed && r.now.is_none())
        })
    }

    /// The row at `key`, created as "there before, untouched" (`existed`) or "absent".
    fn entry(&mut self, key: RowKey, existed: bool) -> &mut NetRow {
        let order = &mut self.order;
        self.rows.entry(key).or_insert_with_key(|k| {
            order.push(k.clone());
            NetRow {
                existed,
                now: existed.then(Vec::new),
            }
        })
    }
}

fn has_unsent(values: &[ColumnValue]) -> bool {
    values
        .iter()
        .any(|v| matches!(v, ColumnValue::UnchangedToast))
}

/// The key of a row from the tuple that identifies it, or None when a key column carries no
/// text (NULL, unsent, binary): such a change is applied in order instead.
pub(crate) fn row_key(tuple: &TupleData, key_columns: &[usize]) -> Option<RowKey> {
    key_columns
        .iter()
        .map(|&i| match tuple.0.get(i) {
            Some(ColumnValue::Text(b)) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
