//! The source fence of a cutover with `quiesce = "source"`: the database refuses new
//! connections to every role but Ferry's (CONNECT revoked from PUBLIC and from each role
//! granted it), open transactions may finish until the drain timeout, then the remaining
//! sessions are ended. What was revoked is recorded first, so [`undo`] restores it exactly.
//!
//! Limits, by PostgreSQL's rules: superusers do not need CONNECT, and a grant made by a role
//! other than the database owner is not revoked by the owner; both are why the cutover proves
//! the fence afterwards (no open transaction, no change after the final LSN) instead of
//! trusting it.

use std::time::{Duration, Instant};

use ferry_pg::{quote, sql_error, PgError};
use tokio_postgres::Client;

/// One CONNECT grant the fence revoked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevokedGrant {
    /// A role name, or `PUBLIC`.
    pub grantee: String,
    pub grantable: bool,
}

/// Everything the fence changed on the source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FenceRecord {
    pub database: String,
    /// The role that keeps connecting (Ferry's).
    pub keep: String,
    pub revoked: Vec<RevokedGrant>,
    /// CONNECT was granted to `keep` by the fence (it had it through PUBLIC only).
    pub granted_keep: bool,
}

/// How the drain ended the other sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drained {
    /// Sessions ended between transactions.
    pub idle: u32,
    /// Sessions still in a transaction at the drain timeout, ended with it.
    pub in_transaction: u32,
}

/// What fencing the current database for `keep` would revoke (nothing changes yet): store it
/// before [`apply`].
pub async fn plan(client: &Client, keep: &str) -> Result<FenceRecord, PgError> {
    let what = "reading who may connect to the source database";
    let rows = client
        .query(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, \
                    a.is_grantable, current_database()::text \
               FROM pg_database d, \
                    aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a \
              WHERE d.datname = current_database() AND a.privilege_type = 'CONNECT' \
              ORDER BY 1",
            &[],
        )
        .await
        .map_err(sql_error(what))?;
    let database: String = match rows.first() {
        Some(r) => r.try_get(2).map_err(sql_error(what))?,
        None => client
            .query_one("SELECT current_database()::text", &[])
            .await
            .map_err(sql_error(what))?
            .get(0),
    };
    let mut revoked = Vec::new();
    let mut keep_has_own = false;
    for r in &rows {
        let grantee: String = r.try_get(0).map_err(sql_error(what))?;
        if grantee == keep {
            keep_has_own = true;
            continue;
        }
        revoked.push(RevokedGrant {
            grantee,
            grantable: r.try_get(1).map_err(sql_error(what))?,
        });
    }
    Ok(FenceRecord {
        database,
        keep: keep.to_owned(),
        revoked,
        granted_keep: !keep_has_own,
    })
}

fn grantee_sql(grantee: &str) -> String {
    if grantee == "PUBLIC" {
        "PUBLIC".to_owned()
    } else {
        quote::ident(grantee)
    }
}

/// Closes the database to new connections of every role but `record.keep`, in one
/// transaction.
pub async fn apply(client: &Client, record: &FenceRecord) -> Result<(), PgError> {
    let db = quote::ident(&record.database);
    let mut sql = vec!["BEGIN".to_owned()];
    if record.granted_keep {
        sql.push(format!(
            "GRANT CONNECT ON DATABASE {db} TO {}",
            quote::ident(&record.keep)
        ));
    }
    for g in &record.revoked {
        sql.push(format!(
            "REVOKE CONNECT ON DATABASE {db} FROM {}",
            grantee_sql(&g.grantee)
        ));
    }
    sql.push("COMMIT".to_owned());
    client
        .batch_execute(&sql.join(";\n"))
        .await
        .map_err(sql_error("fencing the source database"))
}

/// Ends the other roles' sessions of the database: each as soon as it is between
/// transactions, the rest when `timeout` is up.
pub async fn drain(client: &Client, keep: &str, timeout: Duration) -> Result<Drained, PgError> {
    let deadline = Instant::now() + timeout;
    let mut drained = Drained::default();
    loop {
        let late = Instant::now() >= deadline;
        let rows = client
            .query(
                "SELECT pid, state IS DISTINCT FROM 'idle' FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid() \
                    AND backend_type = 'client backend' AND usename IS DISTINCT FROM $1",
                &[&keep],
            )
            .await
            .map_err(sql_error("listing the source's other sessions"))?;
        if rows.is_empty() {
            return Ok(drained);
        }
        for r in &rows {
            let (pid, busy): (i32, bool) = (r.get(0), r.get(1));
            if busy && !late {
                continue;
            }
            client
                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .map_err(sql_error("ending a session on the source"))?;
            if busy {
                drained.in_transaction += 1;
            } else {
                drained.idle += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Gives back what [`apply`] took, exactly as `record` says.
pub async fn undo(client: &Client, record: &FenceRecord) -> Result<(), PgError> {
    let db = quote::ident(&record.database);
    let mut sql = vec!["BEGIN".to_owned()];
    for g in &record.revoked {
        sql.push(format!(
            "GRANT CONNECT ON DATABASE {db} TO {}{}",
            grantee_sql(&g.grantee),
            if g.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        ));
    }
    if record.granted_keep {
        sql.push(format!(
            "REVOKE CONNECT ON DATABASE {db} FROM {}",
            quote::ident(&record.keep)
        ));
    }
    sql.push("COMMIT".to_owned());
    client
        .batch_execute(&sql.join(";\n"))
        .await
        .map_err(sql_error("lifting the fence on the source database"))
}
