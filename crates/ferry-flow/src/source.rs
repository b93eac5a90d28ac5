//! What the cutover reads on the source: the proof that the fence holds, the final position,
//! the tables' write counters and the WAL Ferry's slot retains.

use std::collections::BTreeMap;

use ferry_model::Lsn;
use ferry_pg::{sql_error, PgError};
use tokio_postgres::Client;

/// Sessions of the current database that hold a transaction, other than Ferry's own (same
/// role and application name as `client`), and prepared transactions waiting to commit there.
/// Each is a sentence; an empty list is the first half of the fence's proof.
pub async fn open_transactions(client: &Client) -> Result<Vec<String>, PgError> {
    let what = "looking for open transactions on the source";
    let rows = client
        .query(
            "SELECT format('session %s of role %s (%s, %s) holds a transaction since %s', \
                           pid, usename, COALESCE(NULLIF(application_name, ''), 'no application name'), \
                           state, xact_start) \
               FROM pg_stat_activity \
              WHERE datname = current_database() AND pid <> pg_backend_pid() \
                AND backend_type = 'client backend' AND xact_start IS NOT NULL \
                AND NOT (usename = current_user \
                         AND application_name = current_setting('application_name')) \
             UNION ALL \
             SELECT format('prepared transaction %L of role %s (prepared %s) may still commit', \
                           gid, owner, prepared) \
               FROM pg_prepared_xacts WHERE database = current_database()",
            &[],
        )
        .await
        .map_err(sql_error(what))?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(sql_error(what)))
        .collect()
}

/// The cutover's final position: a logical message written in a transaction of Ferry's that
/// commits synchronously, so every transaction committed before it is flushed and before
/// the returned position. Nothing is written to any table.
pub async fn final_lsn(client: &Client) -> Result<Lsn, PgError> {
    let what = "taking the source's final position";
    client
        .batch_execute(
            "SET synchronous_commit = on; BEGIN; \
             SELECT pg_logical_emit_message(true, 'ferry.final', ''); COMMIT",
        )
        .await
        .map_err(sql_error(what))?;
    let text: String = client
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(sql_error(what))?;
    text.parse().map_err(|_| PgError::Sql {
        what: what.into(),
        detail: format!("unexpected position {text:?}"),
        code: None,
    })
}

/// Rows written to one table since the statistics were last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Activity {
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
}

impl Activity {
    /// What was written between `before` and `self` (a reset counts as everything).
    pub fn since(&self, before: &Activity) -> Activity {
        let delta = |now: i64, then: i64| if now >= then { now - then } else { now };
        Activity {
            inserted: delta(self.inserted, before.inserted),
            updated: delta(self.updated, before.updated),
            deleted: delta(self.deleted, before.deleted),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Activity::default()
    }
}

/// Each user table's write counters (`pg_stat_user_tables`), by `schema.table` (names as
/// they are, unquoted).
pub async fn table_activity(client: &Client) -> Result<BTreeMap<String, Activity>, PgError> {
    let what = "reading the tables' write statistics";
    let rows = client
        .query(
            "SELECT schemaname::text || '.' || relname::text, n_tup_ins, n_tup_upd, n_tup_del \
               FROM pg_stat_user_tables",
            &[],
        )
        .await
        .map_err(sql_error(what))?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(sql_error(what))?,
                Activity {
                    inserted: r.try_get(1).map_err(sql_error(what))?,
                    updated: r.try_get(2).map_err(sql_error(what))?,
                    deleted: r.try_get(3).map_err(sql_error(what))?,
                },
            ))
        })
        .collect()
}

/// Ferry's slot as the source sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotWal {
    pub current: Lsn,
    pub confirmed: Lsn,
    /// WAL the slot holds back: current position minus its restart position.
    pub retained: u64,
    pub lost: bool,
    /// `safe_wal_size` (PostgreSQL 13+; `None` when unlimited or older).
    pub safe_wal_size: Option<i64>,
}

/// Reads Ferry's slot; `None` if it does not exist.
pub async fn slot_wal(client: &Client, slot: &str) -> Result<Option<SlotWal>, PgError> {
    let what = "reading the WAL Ferry's slot holds on the source";
    let has_status = ferry_pg::catalog::version_num(client).await? >= 130_000;
    let sql = format!(
        "SELECT pg_current_wal_lsn()::text, COALESCE(confirmed_flush_lsn, restart_lsn)::text, \
                COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8, {} \
           FROM pg_replication_slots WHERE slot_name = $1",
        if has_status {
            "wal_status = 'lost', safe_wal_size"
        } else {
            "false, NULL::int8"
        }
    );
    let Some(r) = client
        .query_opt(&sql, &[&slot])
        .await
        .map_err(sql_error(what))?
    else {
        return Ok(None);
    };
    let lsn = |i: usize| -> Result<Lsn, PgError> {
        let text: Option<String> = r.try_get(i).map_err(sql_error(what))?;
        Ok(text.and_then(|t| t.parse().ok()).unwrap_or(Lsn(0)))
    };
    Ok(Some(SlotWal {
        current: lsn(0)?,
        confirmed: lsn(1)?,
        retained: u64::try_from(r.try_get::<_, i64>(2).map_err(sql_error(what))?).unwrap_or(0),
        lost: r.try_get(3).map_err(sql_error(what))?,
        safe_wal_size: r.try_get(4).map_err(sql_error(what))?,
    }))
}

/// The target's next transaction id (32 bits), read when it opens: a row whose `xmin` is
/// younger was written after.
pub async fn next_xid(client: &Client) -> Result<i64, PgError> {
    client
        .query_one("SELECT (txid_current() % 4294967296)::int8", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(sql_error("reading the target's transaction id"))
}

/// Rows of `table` inserted or updated by transactions from `xid` on (a scan of the table).
pub async fn rows_written_since(client: &Client, table: &str, xid: i64) -> Result<i64, PgError> {
    client
        .query_one(
            &format!(
                "SELECT count(*) FROM ONLY {table} \
                  WHERE age(xmin) <= age(($1::int8 % 4294967296)::text::xid)"
            ),
            &[&xid],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(sql_error(format!("counting the rows written to {table}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_since_counts_writes_and_treats_a_reset_as_all_new() {
        let then = Activity {
            inserted: 10,
            updated: 5,
            deleted: 0,
        };
        let now = Activity {
            inserted: 12,
            updated: 5,
            deleted: 1,
        };
        assert_eq!(
            now.since(&then),
            Activity {
                inserted: 2,
                updated: 0,
                deleted: 1
            }
        );
        assert!(then.since(&then).is_zero());
        let reset = Activity {
            inserted: 3,
            ..Activity::default()
        };
        assert_eq!(reset.since(&then).inserted, 3);
    }
}
