//! Folding a run of changes to one net change per row key (docs/adr/0009-folded-apply.md).
//!
//! Inside one target transaction only the state at COMMIT is visible, and that state is the
//! source's state after the group's last transaction whether the rows got there one change at
//! a time or by one net change each. So a run of changes to tables with a key is reduced to,
//! per key: nothing, an insert, an update of the columns the run wrote, or a delete. What the
//! fold cannot express exactly (a key change that leaves a TOASTed value unsent, a change
//! that contradicts the run so far) it refuses, and the caller applies that change in order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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

/// A run's net changes to one table (in no particular order: the statements sort by key).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Net {
    /// Keys of rows that were there and are gone.
    pub deleted: Vec<RowKey>,
    /// Rows that were there, with their new values (`UnchangedToast`: leave alone).
    pub updates: Vec<Vec<ColumnValue>>,
    /// Rows that were not there.
    pub inserts: Vec<Vec<ColumnValue>>,
}

/// One table's folded changes.
#[derive(Debug, Default)]
pub(crate) struct TableFold {
    rows: HashMap<RowKey, NetRow, BuildHasherDefault<KeyHasher>>,
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

    /// The net changes, taken apart for the statements that apply them.
    pub fn into_net(self) -> Net {
        let mut net = Net {
            inserts: self.appended,
            ..Net::default()
        };
        for (key, row) in self.rows {
            match (row.existed, row.now) {
                (false, None) => {}
                (false, Some(v)) => net.inserts.push(v),
                (true, Some(v)) => net.updates.push(v),
                (true, None) => net.deleted.push(key),
            }
        }
        net
    }

    /// The row at `key`, created as "there before, untouched" (`existed`) or "absent".
    fn entry(&mut self, key: RowKey, existed: bool) -> &mut NetRow {
        self.rows.entry(key).or_insert_with(|| NetRow {
            existed,
            now: existed.then(Vec::new),
        })
    }
}

/// A fast hash for row keys (the fold hashes every change's key; SipHash's resistance to
/// chosen collisions buys little for keys the source already holds unique, and costs ~5% of
/// apply's CPU): 8 bytes at a time, multiply and rotate, then a full mix.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    /// The state mixed so every output bit depends on every input bit (the table indexes
    /// by the low bits, which the multiplications alone leave blind to high input bits).
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
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
