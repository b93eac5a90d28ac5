//! Sequences: every sequence of the source, owned by a column or not, set on the target to the
//! value the source has (read after the data copy, so never behind the snapshot).

use ferry_pg::{quote, sql_error, PgError};
use tokio_postgres::Client;

/// Sets every target sequence that exists on both sides; returns how many were set.
pub(crate) async fn sync(source: &Client, target: &Client) -> Result<usize, PgError> {
    let rows = source
        .query(
            "SELECT schemaname::text, sequencename::text, last_value FROM pg_sequences WHERE last_value IS NOT NULL",
            &[],
        )
        .await
        .map_err(sql_error("reading the source's sequences"))?;
    let mut set = 0;
    for r in rows {
        let schema: String = r.try_get(0).map_err(sql_error("reading sequences"))?;
        let name: String = r.try_get(1).map_err(sql_error("reading sequences"))?;
        let value: i64 = r.try_get(2).map_err(sql_error("reading sequences"))?;
        let qualified = format!("{}.{}", quote::ident(&schema), quote::ident(&name));
        let n = target
            .execute(
                "SELECT setval(c, $2, true) FROM (SELECT to_regclass($1) AS c) s WHERE c IS NOT NULL",
                &[&qualified, &value],
            )
            .await
            .map_err(sql_error(format!("setting sequence {schema}.{name} on the target")))?;
        set += usize::try_from(n).unwrap_or(0);
    }
    Ok(set)
}
