//! Validation results and events in SQLite.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::{EventRecord, StoreError, StoredDifference, ValidationRecord, ValidationRun};

pub(super) fn record(
    tx: &Transaction<'_>,
    run: &ValidationRun,
    at: i64,
) -> Result<i64, StoreError> {
    const WHAT: &str = "recording a validation";
    tx.execute(
        "INSERT INTO validation (finished_at, result, tables, differences, unsettled, seconds) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            at,
            run.result,
            run.tables as i64,
            run.differences.len() as i64,
            run.unsettled as i64,
            run.seconds
        ],
    )
    .map_err(StoreError::db(WHAT))?;
    let id = tx.last_insert_rowid();
    let mut stmt = tx
        .prepare(
            "INSERT INTO validation_difference (validation_id, seq, table_name, kind, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(StoreError::db(WHAT))?;
    for (seq, d) in run.differences.iter().enumerate() {
        stmt.execute(params![id, seq as i64, d.table, d.kind, d.detail])
            .map_err(StoreError::db(WHAT))?;
    }
    Ok(id)
}

pub(super) fn last(conn: &Connection) -> Result<Option<ValidationRecord>, StoreError> {
    conn.query_row(
        "SELECT id, finished_at, result, tables, differences, unsettled, seconds \
           FROM validation ORDER BY id DESC LIMIT 1",
        [],
        |r| {
            Ok(ValidationRecord {
                id: r.get(0)?,
                finished_at: r.get(1)?,
                result: r.get(2)?,
                tables: r.get::<_, i64>(3)? as u64,
                differences: r.get::<_, i64>(4)? as u64,
                unsettled: r.get::<_, i64>(5)? as u64,
                seconds: r.get(6)?,
            })
        },
    )
    .optional()
    .map_err(StoreError::db("reading the last validation"))
}

pub(super) fn differences(conn: &Connection, id: i64) -> Result<Vec<StoredDifference>, StoreError> {
    const WHAT: &str = "reading a validation's differences";
    let mut stmt = conn
        .prepare(
            "SELECT table_name, kind, detail FROM validation_difference \
              WHERE validation_id = ?1 ORDER BY seq",
        )
        .map_err(StoreError::db(WHAT))?;
    let rows = stmt
        .query_map([id], |r| {
            Ok(StoredDifference {
                table: r.get(0)?,
                kind: r.get(1)?,
                detail: r.get(2)?,
            })
        })
        .map_err(StoreError::db(WHAT))?;
    rows.collect::<Result<_, _>>().map_err(StoreError::db(WHAT))
}

pub(super) fn event(
    tx: &Transaction<'_>,
    kind: &str,
    message: &str,
    at: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO event (at, kind, message) VALUES (?1, ?2, ?3)",
        params![at, kind, message],
    )
    .map_err(StoreError::db("recording an event"))?;
    Ok(())
}

pub(super) fn event_count(conn: &Connection, kind: &str) -> Result<u64, StoreError> {
    conn.query_row("SELECT count(*) FROM event WHERE kind = ?1", [kind], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .map_err(StoreError::db("counting events"))
}

pub(super) fn events(conn: &Connection) -> Result<Vec<EventRecord>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT at, kind, message FROM event ORDER BY id")
        .map_err(StoreError::db("reading events"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(EventRecord {
                at: r.get(0)?,
                kind: r.get(1)?,
                message: r.get(2)?,
            })
        })
        .map_err(StoreError::db("reading events"))?;
    rows.collect::<Result<_, _>>()
        .map_err(StoreError::db("reading events"))
}
