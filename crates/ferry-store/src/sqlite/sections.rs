//! Section (phase) rows: started, maybe done, with timings.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::record::elapsed;
use crate::{SectionRecord, StoreError};

const WHAT: &str = "reading sections";

pub(super) fn started(conn: &Connection, name: &str, now: i64) -> Result<(), StoreError> {
    match get(conn, name)? {
        Some(s) if s.done_at.is_some() => Err(StoreError::SectionRefused {
            section: name.to_owned(),
            reason: "it is already done and its work must not run twice; use `--restart` to \
                     start the run over",
        }),
        Some(_) => conn
            .execute(
                "UPDATE section SET started_at = ?2 WHERE name = ?1",
                params![name, now],
            )
            .map(drop)
            .map_err(StoreError::db("restarting a section")),
        None => conn
            .execute(
                "INSERT INTO section (name, seq, started_at) \
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM section), ?2)",
                params![name, now],
            )
            .map(drop)
            .map_err(StoreError::db("starting a section")),
    }
}

pub(super) fn done(conn: &Connection, name: &str, now: i64) -> Result<(), StoreError> {
    match get(conn, name)? {
        None => Err(StoreError::SectionRefused {
            section: name.to_owned(),
            reason: "it was never started; record section_started before its work begins",
        }),
        Some(s) if s.done_at.is_some() => Ok(()),
        Some(_) => conn
            .execute(
                "UPDATE section SET done_at = ?2 WHERE name = ?1",
                params![name, now],
            )
            .map(drop)
            .map_err(StoreError::db("finishing a section")),
    }
}

pub(super) fn get(conn: &Connection, name: &str) -> Result<Option<SectionRecord>, StoreError> {
    conn.query_row(
        "SELECT name, started_at, done_at FROM section WHERE name = ?1",
        [name],
        from_row,
    )
    .optional()
    .map_err(StoreError::db(WHAT))
}

pub(super) fn list(conn: &Connection) -> Result<Vec<SectionRecord>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT name, started_at, done_at FROM section ORDER BY seq")
        .map_err(StoreError::db(WHAT))?;
    let rows = stmt.query_map([], from_row).map_err(StoreError::db(WHAT))?;
    rows.collect::<Result<_, _>>().map_err(StoreError::db(WHAT))
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<SectionRecord> {
    let started_at = r.get(1)?;
    let done_at = r.get(2)?;
    Ok(SectionRecord {
        name: r.get(0)?,
        started_at,
        done_at,
        duration: elapsed(started_at, done_at),
    })
}
