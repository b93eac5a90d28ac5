//! Ferry's publications on the source: one for tables streamed with every change, one for
//! `append_only` tables (INSERT and TRUNCATE only, so the source's own UPDATE and DELETE on
//! tables without identity keep working).

use ferry_model::TableName;
use ferry_pg::{quote, sql_error, PgError};
use tokio_postgres::Client;

/// Creates both publications in one transaction: both exist afterwards, or neither.
pub(crate) async fn create(
    source: &Client,
    full: &str,
    append: &str,
    published: &[TableName],
    append_only: &[TableName],
) -> Result<(), PgError> {
    let list = |tables: &[TableName]| {
        if tables.is_empty() {
            String::new()
        } else {
            format!(
                " FOR TABLE {}",
                tables
                    .iter()
                    .map(quote::table)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let sql = format!(
        "BEGIN; CREATE PUBLICATION {}{}; CREATE PUBLICATION {}{} WITH (publish = 'insert, truncate'); COMMIT",
        quote::ident(full),
        list(published),
        quote::ident(append),
        list(append_only)
    );
    let result = source
        .batch_execute(&sql)
        .await
        .map_err(sql_error("creating Ferry's publications on the source"));
    if result.is_err() {
        let _ = source.batch_execute("ROLLBACK").await;
    }
    result
}

/// Drops whichever of `names` exist; returns the ones dropped.
pub(crate) async fn drop_existing(
    source: &Client,
    names: &[String],
) -> Result<Vec<String>, PgError> {
    let rows = source
        .query(
            "SELECT pubname::text FROM pg_publication WHERE pubname = ANY($1)",
            &[&names],
        )
        .await
        .map_err(sql_error("looking for Ferry's publications"))?;
    let mut dropped = Vec::new();
    for r in rows {
        let name: String = r.try_get(0).map_err(sql_error("reading publications"))?;
        source
            .batch_execute(&format!(
                "DROP PUBLICATION IF EXISTS {}",
                quote::ident(&name)
            ))
            .await
            .map_err(sql_error(format!("dropping publication {name}")))?;
        dropped.push(name);
    }
    Ok(dropped)
}

/// Drops Ferry's slot if it exists, ending the session that holds it first. Returns whether
/// it existed.
pub(crate) async fn drop_slot(source: &Client, slot: &str) -> Result<bool, PgError> {
    let row = source
        .query_opt(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(sql_error("looking for Ferry's slot"))?;
    let Some(row) = row else { return Ok(false) };
    let pid: Option<i32> = row.try_get(0).map_err(sql_error("reading the slot"))?;
    if let Some(pid) = pid {
        source
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .map_err(sql_error("ending the session holding Ferry's slot"))?;
    }
    for attempt in 0..50 {
        match source
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
        {
            Ok(_) => return Ok(true),
            // 55006: the slot is still active while the ended session goes away.
            Err(e)
                if attempt < 49 && e.as_db_error().is_some_and(|d| d.code().code() == "55006") =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(sql_error(format!("dropping replication slot {slot}"))(e)),
        }
    }
    Ok(true)
}
