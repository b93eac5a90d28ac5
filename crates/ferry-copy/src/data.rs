//! Copying one unit (a table or a range of one): `COPY … TO STDOUT` on the source inside the
//! run's snapshot, streamed into `COPY … FROM STDIN` on the target, never holding more than
//! one buffer in memory. Each unit is one target transaction; its transaction id is stored
//! before COMMIT so a resume can tell a committed unit from a lost one (`txid_status`).

use bytes::BytesMut;
use ferry_model::CopyUnit;
use ferry_pg::catalog::CopyColumn;
use ferry_pg::{quote, sql_error, Connector, PgError};
use ferry_store::StateStore;
use futures_util::{SinkExt, StreamExt};

use crate::progress::Observer;
use crate::CopyError;

/// Bytes gathered before one CopyData message goes to the target.
const BUFFER: usize = 256 * 1024;

/// Everything one worker needs to copy one unit.
pub(crate) struct UnitJob {
    pub unit: CopyUnit,
    pub columns: Vec<CopyColumn>,
    pub estimated_bytes: u64,
}

impl UnitJob {
    fn binary(&self) -> bool {
        self.columns.iter().all(|c| c.binary_ok)
    }

    fn column_list(&self) -> String {
        if self.columns.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                quote::ident_list(self.columns.iter().map(|c| c.name.as_str()))
            )
        }
    }

    fn source_sql(&self) -> String {
        let table = quote::table(&self.unit.table);
        let format = if self.binary() {
            " (FORMAT binary)"
        } else {
            ""
        };
        match self.unit.range {
            None => format!("COPY {table}{} TO STDOUT{format}", self.column_list()),
            Some(r) => {
                let cols = if self.columns.is_empty() {
                    String::new()
                } else {
                    quote::ident_list(self.columns.iter().map(|c| c.name.as_str()))
                };
                let upper = r
                    .end_block
                    .map(|e| format!(" AND ctid < '({e},0)'::tid"))
                    .unwrap_or_default();
                format!(
                    "COPY (SELECT {cols} FROM ONLY {table} WHERE ctid >= '({},0)'::tid{upper}) TO STDOUT{format}",
                    r.start_block
                )
            }
        }
    }

    fn target_sql(&self, freeze: bool) -> String {
        let mut options = Vec::new();
        if self.binary() {
            options.push("FORMAT binary");
        }
        if freeze {
            options.push("FREEZE");
        }
        let options = if options.is_empty() {
            String::new()
        } else {
            format!(" ({})", options.join(", "))
        };
        format!(
            "COPY {}{} FROM STDIN{options}",
            quote::table(&self.unit.table),
            self.column_list()
        )
    }
}

/// Copies one unit and records it in the store. Returns (rows, bytes).
pub(crate) async fn copy_unit(
    job: &UnitJob,
    source: &Connector,
    target: &Connector,
    snapshot: &str,
    store: &dyn StateStore,
    observer: &dyn Observer,
) -> Result<(u64, u64), CopyError> {
    let unit = &job.unit;
    let wrap = |e: PgError| CopyError::Unit {
        unit: Box::new(unit.clone()),
        source: e,
    };
    let src = source.connect().await.map_err(wrap)?;
    src.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
        quote::literal(snapshot)
    ))
    .await
    .map_err(|e| wrap(sql_error("importing the copy's snapshot")(e)))?;
    let dst = target.connect().await.map_err(wrap)?;
    // A whole table is emptied in the same transaction: that makes a redo clean after any
    // interruption and lets COPY FREEZE write rows already frozen.
    let whole = unit.range.is_none();
    let begin = if whole {
        format!("BEGIN; TRUNCATE ONLY {}", quote::table(&unit.table))
    } else {
        "BEGIN".to_owned()
    };
    dst.batch_execute(&begin)
        .await
        .map_err(|e| wrap(sql_error("starting the target transaction")(e)))?;
    store.unit_started(unit)?;
    observer.unit_started(unit, job.estimated_bytes);

    let out = src
        .copy_out(&job.source_sql())
        .await
        .map_err(|e| wrap(sql_error("reading from the source")(e)))?;
    let sink = dst
        .copy_in(&job.target_sql(whole))
        .await
        .map_err(|e| wrap(sql_error("writing to the target")(e)))?;
    futures_util::pin_mut!(out);
    futures_util::pin_mut!(sink);
    // PostgreSQL sends one CopyData message per row (binary format adds the trailer as one
    // more), so counting messages counts rows for progress; the exact count is COPY FROM's.
    let mut rows_seen = 0u64;
    let mut buf = BytesMut::with_capacity(BUFFER + 64 * 1024);
    let mut bytes = 0u64;
    loop {
        let chunk = out
            .next()
            .await
            .transpose()
            .map_err(|e| wrap(sql_error("reading from the source")(e)))?;
        if let Some(chunk) = &chunk {
            buf.extend_from_slice(chunk);
            rows_seen += 1;
        }
        let end = chunk.is_none();
        if buf.len() >= BUFFER || (end && !buf.is_empty()) {
            let n = buf.len() as u64;
            let rows = std::mem::take(&mut rows_seen);
            sink.send(buf.split().freeze())
                .await
                .map_err(|e| wrap(sql_error("writing to the target")(e)))?;
            bytes += n;
            observer.unit_progress(unit, n, rows);
        }
        if end {
            break;
        }
    }
    let rows = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| wrap(sql_error("finishing the COPY on the target")(e)))?;

    let xid: i64 = dst
        .query_one("SELECT txid_current()", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| wrap(sql_error("reading the target transaction id")(e)))?;
    store.unit_committing(unit, xid, rows, bytes)?;
    dst.batch_execute("COMMIT")
        .await
        .map_err(|e| wrap(sql_error("committing on the target")(e)))?;
    store.unit_done(unit, rows, bytes)?;
    let _ = src.batch_execute("COMMIT").await;
    observer.unit_finished(unit, rows, bytes);
    Ok((rows, bytes))
}
