//! Sequences: every sequence of the source, owned by a column or not, set on the target to the
//! state the source has (read after the data copy, so never behind the snapshot), including
//! one set with `setval(…, false)` whose next value is its last_value itself.

use ferry_pg::{quote, sql_error, PgError};
use tokio_postgres::Client;

/// Sets every target sequence that exists on both sides; returns how many were set.
pub async fn sync(source: &Client, target: &Client) -> Result<usize, PgError> {
    // pg_sequences shows no last_value for a sequence not yet called (fresh, or set with
    // is_called = false): those are read from the sequence itself when Ferry may.
    let rows = source
        .query(
            "SELECT schemaname::text, sequencename::text, last_value, \
                    last_value IS NULL AND has_sequence_privilege( \
                        format('%I.%I', schemaname, sequencename), 'SELECT') \
               FROM pg_sequences",
            &[],
        )
        .await
        .map_err(sql_error("reading the source's sequences"))?;
    let mut set = 0;
    for r in rows {
        let schema: String = r.try_get(0).map_err(sql_error("reading sequences"))?;
        let name: String = r.try_get(1).map_err(sql_error("reading sequences"))?;
        let last: Option<i64> = r.try_get(2).map_err(sql_error("reading sequences"))?;
        let uncalled: bool = r.try_get(3).map_err(sql_error("reading sequences"))?;
        let qualified = format!("{}.{}", quote::ident(&schema), quote::ident(&name));
        let (value, is_called) = match last {
            Some(v) => (v, true),
            None if uncalled => {
                let row = source
                    .query_one(
                        &format!("SELECT last_value, is_called FROM {qualified}"),
                        &[],
                    )
                    .await
                    .map_err(sql_error(format!("reading sequence {schema}.{name}")))?;
                (
                    row.try_get(0).map_err(sql_error("reading a sequence"))?,
                    row.try_get(1).map_err(sql_error("reading a sequence"))?,
                )
            }
            None => continue,
        };
        let n = target
            .execute(
                "SELECT setval(c, $2, $3) FROM (SELECT to_regclass($1) AS c) s WHERE c IS NOT NULL",
                &[&qualified, &value, &is_called],
            )
            .await
            .map_err(sql_error(format!(
                "setting sequence {schema}.{name} on the target"
            )))?;
        set += usize::try_from(n).unwrap_or(0);
    }
    Ok(set)
}
