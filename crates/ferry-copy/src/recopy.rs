//! Copying a table again at cutover: an `append_only` table (published for INSERT and
//! TRUNCATE only) whose rows were updated or deleted on the source since the snapshot. The
//! source is fenced by then, so its current state is final; the target table is emptied and
//! filled in one transaction.

use ferry_model::TableName;
use ferry_pg::{quote, sql_error, PgError};
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::Client;

/// Replaces the target's rows of `table` with the source's; returns the rows copied.
pub async fn recopy(source: &Client, target: &Client, table: &TableName) -> Result<u64, PgError> {
    let name = quote::table(table);
    let fail = |what: &'static str| sql_error(format!("{what} ({table}, copied again)"));
    target
        .batch_execute(&format!(
            "BEGIN; SET LOCAL session_replication_role = replica; TRUNCATE ONLY {name}"
        ))
        .await
        .map_err(fail("emptying the target table"))?;
    let out = source
        .copy_out(&format!("COPY {name} TO STDOUT"))
        .await
        .map_err(fail("reading the source table"))?;
    let sink = target
        .copy_in(&format!("COPY {name} FROM STDIN"))
        .await
        .map_err(fail("writing the target table"))?;
    futures_util::pin_mut!(out);
    futures_util::pin_mut!(sink);
    while let Some(chunk) = out.next().await {
        let chunk = chunk.map_err(fail("reading the source table"))?;
        sink.feed(chunk)
            .await
            .map_err(fail("writing the target table"))?;
    }
    let rows = sink
        .as_mut()
        .finish()
        .await
        .map_err(fail("writing the target table"))?;
    target
        .batch_execute("COMMIT")
        .await
        .map_err(fail("committing the target table"))?;
    Ok(rows)
}
