//! The applied position, kept by a replication origin on the target: committed atomically
//! with each applied batch (`pg_replication_origin_xact_setup`), read back on start.

use ferry_model::Lsn;
use ferry_pg::{sql_error, PgError};
use tokio_postgres::Client;

/// Ferry's origin for a migration: `ferry_<name>` (the migration name is `[a-z0-9_-]+`).
pub fn origin_name(migration: &str) -> String {
    format!("ferry_{}", migration.replace('-', "_"))
}

/// One migration's replication origin on the target.
pub struct Origin {
    name: String,
}

impl Origin {
    /// Creates the origin if it does not exist yet.
    pub async fn ensure(target: &Client, name: &str) -> Result<Origin, PgError> {
        target
            .execute(
                "SELECT pg_replication_origin_create($1) \
                  WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
                &[&name],
            )
            .await
            .map_err(sql_error(format!(
                "creating replication origin {name} on the target"
            )))?;
        Ok(Origin {
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last position whose transaction committed on the target (0/0 before any).
    pub async fn progress(&self, target: &Client) -> Result<Lsn, PgError> {
        let row = target
            .query_one(
                "SELECT pg_replication_origin_progress($1, true)::text",
                &[&self.name],
            )
            .await
            .map_err(sql_error("reading the applied position"))?;
        let text: Option<String> = row
            .try_get(0)
            .map_err(sql_error("reading the applied position"))?;
        Ok(text.and_then(|t| t.parse().ok()).unwrap_or_default())
    }

    /// Binds the origin to this session, so commits record positions in it. After a crash the
    /// previous session may hold it for a moment longer (55006, "already active"): wait.
    pub(crate) async fn attach(&self, target: &Client) -> Result<(), PgError> {
        let mut attempt = 0;
        loop {
            match target
                .execute(
                    "SELECT pg_replication_origin_session_setup($1)",
                    &[&self.name],
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e)
                    if attempt < 100
                        && e.as_db_error().is_some_and(|d| d.code().code() == "55006") =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(sql_error(format!(
                        "attaching replication origin {}",
                        self.name
                    ))(e))
                }
            }
        }
    }

    /// Drops the origin if it exists (fresh copy, restart, abort). The function is only
    /// called when there is one, so roles without rights on origins are not stopped for nothing.
    pub async fn drop(target: &Client, name: &str) -> Result<(), PgError> {
        let exists: bool = target
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
                &[&name],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(sql_error(format!("looking for replication origin {name}")))?;
        if exists {
            target
                .execute("SELECT pg_replication_origin_drop($1)", &[&name])
                .await
                .map_err(sql_error(format!(
                    "dropping replication origin {name}, left by an earlier run (a superuser can: \
                 SELECT pg_replication_origin_drop('{name}'))"
                )))?;
        }
        Ok(())
    }
}
