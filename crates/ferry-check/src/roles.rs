//! Roles the schema names that the target lacks.

use tokio_postgres::Client;

use ferry_pg::catalog::RoleInfo;
use ferry_pg::{sql_error, PgError};

/// Roles used by the source database's schema that do not exist on the target.
pub async fn missing_roles(source: &Client, target: &Client) -> Result<Vec<RoleInfo>, PgError> {
    let rows = source
        .query(include_str!("../sql/roles_used.sql"), &[])
        .await
        .map_err(sql_error("listing the roles the schema uses"))?;
    let mut used = Vec::with_capacity(rows.len());
    for r in rows {
        let read = sql_error("reading roles");
        used.push(RoleInfo {
            name: r.try_get(0).map_err(read)?,
            can_login: r.try_get(1).map_err(sql_error("reading roles"))?,
            inherit: r.try_get(2).map_err(sql_error("reading roles"))?,
            create_db: r.try_get(3).map_err(sql_error("reading roles"))?,
            create_role: r.try_get(4).map_err(sql_error("reading roles"))?,
        });
    }
    let names: Vec<&str> = used.iter().map(|r| r.name.as_str()).collect();
    let present = target
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
            &[&names],
        )
        .await
        .map_err(sql_error("listing the target's roles"))?;
    let present: Vec<String> = present.iter().filter_map(|r| r.try_get(0).ok()).collect();
    Ok(used
        .into_iter()
        .filter(|r| !present.contains(&r.name))
        .collect())
}
