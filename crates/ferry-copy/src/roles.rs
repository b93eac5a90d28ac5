//! Roles the schema needs that the target lacks, created when the spec says
//! `missing_roles = "create"`.

use ferry_pg::catalog::RoleInfo;
use ferry_pg::{quote, sql_error};
use tokio_postgres::Client;

use crate::CopyError;

/// Creates roles the schema needs, without passwords and without SUPERUSER, REPLICATION or
/// BYPASSRLS (an operator grants those deliberately). A target role that is not a superuser is
/// made a member of each, so the restore can make them owners.
pub(crate) async fn create_roles(target: &Client, roles: &[RoleInfo]) -> Result<(), CopyError> {
    let superuser: bool = target
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(sql_error("reading the target role's attributes"))?;
    for r in roles {
        let attrs = [
            if r.can_login { "LOGIN" } else { "NOLOGIN" },
            if r.inherit { "INHERIT" } else { "NOINHERIT" },
            if r.create_db {
                "CREATEDB"
            } else {
                "NOCREATEDB"
            },
            if r.create_role {
                "CREATEROLE"
            } else {
                "NOCREATEROLE"
            },
        ];
        let sql = format!("CREATE ROLE {} {}", quote::ident(&r.name), attrs.join(" "));
        match target.batch_execute(&sql).await {
            Ok(()) => {
                tracing::info!(role = %r.name, "created role on the target");
                if !superuser {
                    // A role that is not a superuser may only hand objects to roles it is a
                    // member of; the schema restore makes this role their owner.
                    let grant = format!("GRANT {} TO CURRENT_USER", quote::ident(&r.name));
                    target
                        .batch_execute(&grant)
                        .await
                        .map_err(sql_error(format!(
                            "granting role {} to Ferry's role on the target",
                            r.name
                        )))?;
                }
            }
            // 42710: someone created it meanwhile; fine.
            Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "42710") => {}
            Err(e) => {
                return Err(sql_error(format!("creating role {} on the target", r.name))(e).into())
            }
        }
    }
    Ok(())
}
