//! Copy-unit rows and their one-way lifecycle: `Started → Committing → Done`.

use ferry_model::{CopyUnit, RowRange, TableName, UnitState};
use rusqlite::{params, Connection, OptionalExtension};

use super::to_sql_int;
use crate::record::elapsed;
use crate::{StoreError, UnitRecord};

const WHAT: &str = "reading copy units";

pub(super) fn started(conn: &Connection, unit: &CopyUnit, now: i64) -> Result<(), StoreError> {
    let from = state(conn, unit)?;
    if from == Some(UnitState::Done) {
        return Err(refused(
            unit,
            from,
            UnitState::Started,
            "it is done; progress never moves backwards",
        ));
    }
    let (start_block, end_block) = match unit.range {
        Some(r) => (Some(to_sql_int(r.start_block)), r.end_block.map(to_sql_int)),
        None => (None, None),
    };
    conn.execute(
        "INSERT INTO unit (key, schema_name, table_name, part, parts, start_block, end_block, \
                           state, started_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'started', ?8) \
         ON CONFLICT (key) DO UPDATE SET \
             start_block = excluded.start_block, end_block = excluded.end_block, \
             state = 'started', target_xid = NULL, rows = 0, bytes = 0, \
             started_at = excluded.started_at, done_at = NULL",
        params![
            unit.key(),
            unit.table.schema,
            unit.table.name,
            unit.part,
            unit.parts,
            start_block,
            end_block,
            now
        ],
    )
    .map(drop)
    .map_err(StoreError::db("starting a copy unit"))
}

pub(super) fn committing(
    conn: &Connection,
    unit: &CopyUnit,
    target_xid: i64,
    rows: u64,
    bytes: u64,
) -> Result<(), StoreError> {
    let from = state(conn, unit)?;
    if from != Some(UnitState::Started) {
        let reason = "only a started unit can commit; start it first";
        return Err(refused(unit, from, UnitState::Committing, reason));
    }
    conn.execute(
        "UPDATE unit SET state = 'committing', target_xid = ?2, rows = ?3, bytes = ?4 \
         WHERE key = ?1",
        params![unit.key(), target_xid, to_sql_int(rows), to_sql_int(bytes)],
    )
    .map(drop)
    .map_err(StoreError::db("marking a copy unit committing"))
}

pub(super) fn done(
    conn: &Connection,
    unit: &CopyUnit,
    rows: u64,
    bytes: u64,
    now: i64,
) -> Result<(), StoreError> {
    let from = state(conn, unit)?;
    if !matches!(from, Some(UnitState::Started | UnitState::Committing)) {
        let reason = "only a started or committing unit can be done";
        return Err(refused(unit, from, UnitState::Done, reason));
    }
    conn.execute(
        "UPDATE unit SET state = 'done', rows = ?2, bytes = ?3, done_at = ?4 WHERE key = ?1",
        params![unit.key(), to_sql_int(rows), to_sql_int(bytes), now],
    )
    .map(drop)
    .map_err(StoreError::db("marking a copy unit done"))
}

pub(super) fn list(conn: &Connection) -> Result<Vec<UnitRecord>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT key, schema_name, table_name, part, parts, start_block, end_block, state, \
                    target_xid, rows, bytes, started_at, done_at \
             FROM unit ORDER BY key",
        )
        .map_err(StoreError::db(WHAT))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Row {
                key: r.get(0)?,
                schema: r.get(1)?,
                name: r.get(2)?,
                part: r.get(3)?,
                parts: r.get(4)?,
                start_block: r.get(5)?,
                end_block: r.get(6)?,
                state: r.get(7)?,
                target_xid: r.get(8)?,
                rows: r.get(9)?,
                bytes: r.get(10)?,
                started_at: r.get(11)?,
                done_at: r.get(12)?,
            })
        })
        .map_err(StoreError::db(WHAT))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(StoreError::db(WHAT))?.into_record()?);
    }
    Ok(out)
}

fn state(conn: &Connection, unit: &CopyUnit) -> Result<Option<UnitState>, StoreError> {
    let state: Option<String> = conn
        .query_row("SELECT state FROM unit WHERE key = ?1", [unit.key()], |r| {
            r.get(0)
        })
        .optional()
        .map_err(StoreError::db(WHAT))?;
    state.map(|s| parse_state(&s)).transpose()
}

fn parse_state(s: &str) -> Result<UnitState, StoreError> {
    match s {
        "started" => Ok(UnitState::Started),
        "committing" => Ok(UnitState::Committing),
        "done" => Ok(UnitState::Done),
        other => Err(corrupt(format!("state `{other}`"))),
    }
}

fn refused(
    unit: &CopyUnit,
    from: Option<UnitState>,
    to: UnitState,
    reason: &'static str,
) -> StoreError {
    StoreError::UnitRefused {
        unit: unit.key(),
        from,
        to,
        reason,
    }
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        what: "copy unit",
        detail,
    }
}

/// A unit row as stored, before its integers are checked.
struct Row {
    key: String,
    schema: String,
    name: String,
    part: i64,
    parts: i64,
    start_block: Option<i64>,
    end_block: Option<i64>,
    state: String,
    target_xid: Option<i64>,
    rows: i64,
    bytes: i64,
    started_at: i64,
    done_at: Option<i64>,
}

impl Row {
    fn into_record(self) -> Result<UnitRecord, StoreError> {
        let key = self.key;
        let bad = |field: &str, n: i64| corrupt(format!("{key}: {field} {n} is out of range"));
        let uint = |field: &str, n: i64| u64::try_from(n).map_err(|_| bad(field, n));
        let part = u32::try_from(self.part).map_err(|_| bad("part", self.part))?;
        let parts = u32::try_from(self.parts).map_err(|_| bad("parts", self.parts))?;
        let range = match self.start_block {
            Some(start) => Some(RowRange {
                start_block: uint("start_block", start)?,
                end_block: self.end_block.map(|e| uint("end_block", e)).transpose()?,
            }),
            None => None,
        };
        let rows = uint("rows", self.rows)?;
        let bytes = uint("bytes", self.bytes)?;
        Ok(UnitRecord {
            table: TableName::new(self.schema, self.name),
            part,
            parts,
            range,
            state: parse_state(&self.state)?,
            target_xid: self.target_xid,
            rows,
            bytes,
            started_at: self.started_at,
            done_at: self.done_at,
            duration: elapsed(self.started_at, self.done_at),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::state_name;

    /// `state_name` is the stored spelling; keep the two in step.
    #[test]
    fn stored_names_parse_back() {
        for s in [UnitState::Started, UnitState::Committing, UnitState::Done] {
            assert_eq!(parse_state(state_name(Some(s))).expect("known state"), s);
        }
    }
}
