//! Whether the target's role can restore the source's schema: create its schemas, create in
//! schema public, and hand each object to its owner. Without this check a copy would create
//! its slot and snapshot on the source and only then fail in `pg_restore`.

use ferry_pg::{quote, sql_error, PgError};
use tokio_postgres::Client;

use crate::Finding;

/// At most this many schema names are spelled out in one line.
const SCHEMAS_SHOWN: usize = 5;

/// An error finding listing each missing privilege with its GRANT, or nothing (always nothing
/// for a superuser).
pub async fn target_privilege_findings(
    source: &Client,
    target: &Client,
) -> Result<Vec<Finding>, PgError> {
    let needs = source
        .query(include_str!("../sql/restore_needs.sql"), &[])
        .await
        .map_err(sql_error(
            "listing what restoring the source's schema needs",
        ))?;
    let (mut schemas, mut public, mut owners) = (Vec::new(), false, Vec::new());
    let mut public_owners = Vec::new();
    for row in &needs {
        let kind: String = row
            .try_get(0)
            .map_err(sql_error("reading the schema's needs"))?;
        let name: String = row
            .try_get(1)
            .map_err(sql_error("reading the schema's needs"))?;
        match kind.as_str() {
            "schema" => schemas.push(name),
            "public" => public = true,
            "public_owner" => public_owners.push(name),
            _ => owners.push(name),
        }
    }
    let read = || sql_error("reading the target role's privileges");
    let row = target
        .query_one(
            include_str!("../sql/target_privileges.sql"),
            &[&owners, &public_owners],
        )
        .await
        .map_err(read())?;
    let role: String = row.try_get("role").map_err(read())?;
    let database: String = row.try_get("database").map_err(read())?;
    let is_superuser: bool = row.try_get("is_superuser").map_err(read())?;
    let can_create_schemas: bool = row.try_get("can_create_schemas").map_err(read())?;
    let can_create_in_public: Option<bool> = row.try_get("can_create_in_public").map_err(read())?;
    let not_member_of: Vec<String> = row.try_get("not_member_of").map_err(read())?;
    let superuser_owners: Vec<String> = row.try_get("superuser_owners").map_err(read())?;
    let public_owners_without_create: Vec<String> = row
        .try_get("public_owners_without_create")
        .map_err(read())?;
    if is_superuser {
        return Ok(vec![]);
    }

    let grantee = quote::ident(&role);
    let mut missing = Vec::new();
    if !schemas.is_empty() && !can_create_schemas {
        let mut names = schemas
            .iter()
            .take(SCHEMAS_SHOWN)
            .cloned()
            .collect::<Vec<_>>();
        if schemas.len() > SCHEMAS_SHOWN {
            names.push(format!("… {} more", schemas.len() - SCHEMAS_SHOWN));
        }
        missing.push(format!(
            "create schemas ({}): GRANT CREATE ON DATABASE {} TO {grantee};",
            names.join(", "),
            quote::ident(&database)
        ));
    }
    // The restoring role creates in public; each new owner must be allowed to own there.
    let mut public_grantees = Vec::new();
    if public && can_create_in_public == Some(false) {
        public_grantees.push(grantee.clone());
    }
    public_grantees.extend(
        public_owners_without_create
            .iter()
            .filter(|o| **o != role)
            .map(|o| quote::ident(o)),
    );
    if !public_grantees.is_empty() {
        missing.push(format!(
            "create (or own) objects in schema public: GRANT CREATE ON SCHEMA public TO {};",
            public_grantees.join(", ")
        ));
    }
    for owner in &not_member_of {
        missing.push(format!(
            "make {owner} the owner of its objects: GRANT {} TO {grantee};",
            quote::ident(owner)
        ));
    }
    for owner in &superuser_owners {
        missing.push(format!(
            "restore objects owned by the superuser {owner}: only a superuser can (or give \
             them another owner on the source)"
        ));
    }
    if missing.is_empty() {
        return Ok(vec![]);
    }
    Ok(vec![Finding::error(
        "target.privileges",
        format!("role \"{role}\" on the target cannot restore the source's schema; it may not:"),
        "run the GRANT statements above on the target (as a superuser or the owner of the \
         objects), or use a superuser as the target's user",
    )
    .with_evidence(missing)])
}
