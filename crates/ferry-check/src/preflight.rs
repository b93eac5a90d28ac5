//! The checks run before `ferry copy` creates anything.

use ferry_pg::binaries::{client_tool, ClientTool};
use ferry_pg::catalog;
use ferry_pg::{sql_error, PgError};
use ferry_spec::{MissingRoles, Plan};
use tokio_postgres::Client;

use crate::privileges::target_privilege_findings;
use crate::roles::missing_roles;
use crate::selection::{select_tables, TableSelection};
use crate::{CheckError, Finding, Severity};
use ferry_pg::catalog::RoleInfo;

/// What preflight needs besides the two sessions.
pub struct PreflightInput<'a> {
    pub plan: &'a Plan,
    pub source: &'a Client,
    pub target: &'a Client,
    /// The names Ferry will give its slot and publications on the source.
    pub slot: &'a str,
    pub publications: &'a [String],
    /// True when the state store holds no run yet: a slot or publication of Ferry's found on
    /// the source is then a leftover, and the target must be empty.
    pub fresh_run: bool,
    pub allow_nonempty_target: bool,
}

/// What a server is, as the store remembers it.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub version_num: u32,
    pub version: String,
    pub system_id: String,
}

impl ServerFacts {
    pub fn major(&self) -> u32 {
        if self.version_num >= 100_000 {
            self.version_num / 10_000
        } else {
            self.version_num / 100
        }
    }
}

/// The outcome of preflight: facts, the selected tables, and every finding.
#[derive(Debug)]
pub struct Preflight {
    pub source: ServerFacts,
    pub target: ServerFacts,
    pub selection: TableSelection,
    pub missing_roles: Vec<RoleInfo>,
    pub pg_dump: Option<ClientTool>,
    pub pg_restore: Option<ClientTool>,
    pub findings: Vec<Finding>,
}

impl Preflight {
    /// Findings that stop the run.
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    pub fn is_clear(&self) -> bool {
        self.blocking().next().is_none()
    }
}

/// Runs every check; creates nothing.
pub async fn preflight(input: PreflightInput<'_>) -> Result<Preflight, CheckError> {
    let mut findings = Vec::new();
    let source = input.source;
    let facts = source
        .query_one(include_str!("../sql/source_facts.sql"), &[])
        .await
        .map_err(sql_error("reading the source's settings"))?;
    let get_err = || sql_error("reading the source's settings");
    let version_num: i32 = facts.try_get("version_num").map_err(get_err())?;
    let wal_level: String = facts.try_get("wal_level").map_err(get_err())?;
    let free_slots: i32 = facts.try_get("free_slots").map_err(get_err())?;
    let free_senders: i32 = facts.try_get("free_senders").map_err(get_err())?;
    let can_replicate: bool = facts.try_get("can_replicate").map_err(get_err())?;
    let is_superuser: bool = facts.try_get("is_superuser").map_err(get_err())?;
    let can_create: bool = facts.try_get("can_create").map_err(get_err())?;
    let role: String = facts.try_get("role").map_err(get_err())?;

    let source_facts = ServerFacts {
        version_num: u32::try_from(version_num).unwrap_or(0),
        version: facts.try_get("version").map_err(get_err())?,
        system_id: catalog::system_identifier(source).await?,
    };
    let target_facts = ServerFacts {
        version_num: catalog::version_num(input.target).await?,
        version: catalog::setting(input.target, "server_version").await?,
        system_id: catalog::system_identifier(input.target).await?,
    };

    if source_facts.version_num < 100_000 {
        findings.push(Finding::error(
            "source.version",
            format!(
                "the source runs PostgreSQL {}; logical replication needs 10 or later",
                source_facts.version
            ),
            "upgrade the source to PostgreSQL 10+ in place first, or use mode = \"physical\"",
        ));
    }
    if target_facts.major() < source_facts.major() {
        findings.push(Finding::error(
            "target.version",
            format!(
                "the target runs PostgreSQL {} but the source runs {}: moving to an older major is not supported",
                target_facts.version, source_facts.version
            ),
            "use a target of the same or a newer major version",
        ));
    }
    if wal_level != "logical" {
        findings.push(Finding::error(
            "source.wal_level",
            format!("the source's wal_level is {wal_level}; change capture needs logical"),
            "run ALTER SYSTEM SET wal_level = logical on the source and restart it",
        ));
    }
    if !can_replicate {
        findings.push(Finding::error(
            "source.replication_privilege",
            format!("role \"{role}\" on the source may not open replication connections"),
            format!(
                "run ALTER ROLE {} REPLICATION on the source (or use a role that has it)",
                ferry_pg::quote::ident(&role)
            ),
        ));
    }
    if !can_create && !is_superuser {
        findings.push(Finding::error(
            "source.create_privilege",
            format!("role \"{role}\" may not create publications in the source database"),
            format!(
                "GRANT CREATE ON DATABASE … TO {}",
                ferry_pg::quote::ident(&role)
            ),
        ));
    }
    findings.append(
        &mut crate::wal::retention_findings(source, input.slot, source_facts.version_num).await?,
    );
    let ours_exist = leftovers(source, input.slot, input.publications).await?;
    let needs_slot =
        input.fresh_run || !ours_exist.iter().any(|l| l.starts_with("replication slot"));
    if needs_slot && free_slots < 1 {
        findings.push(Finding::error(
            "source.replication_slots",
            "the source has no free replication slot (max_replication_slots is used up)",
            "drop unused slots (SELECT slot_name FROM pg_replication_slots WHERE NOT active) or raise \
             max_replication_slots and restart the source",
        ));
    }
    if needs_slot && free_senders < 1 {
        findings.push(Finding::error(
            "source.wal_senders",
            "the source has no free WAL sender (max_wal_senders is used up)",
            "raise max_wal_senders on the source and restart it",
        ));
    } else if free_senders < 1 + i32::from(needs_slot) {
        findings.push(Finding::warning(
            "source.wal_senders",
            "the source lacks a free WAL sender to spool the change stream during the copy \
             (the snapshot holder takes one, the spooler another), so the slot holds the \
             source's WAL until `ferry sync` runs",
            "raise max_wal_senders on the source (and restart it) so the copy can spool changes",
        ));
    }
    if input.fresh_run && !ours_exist.is_empty() {
        findings.push(
            Finding::error(
                "source.leftovers",
                "Ferry objects from an earlier run of this migration exist on the source, but the state directory has no record of that run",
                "run `ferry abort SPEC` to remove them (or point --state at the earlier run's state directory)",
            )
            .with_evidence(ours_exist),
        );
    }

    let tables = catalog::tables(source).await?;
    let not_owned: Vec<String> = tables
        .iter()
        .filter(|t| !t.owned && !is_superuser)
        .map(|t| t.name.to_string())
        .collect();
    let (selection, mut table_findings) = select_tables(tables, &input.plan.tables);
    findings.append(&mut table_findings);
    if !not_owned.is_empty() {
        findings.push(
            Finding::error(
                "source.table_ownership",
                format!("role \"{role}\" does not own every table; only an owner (or a superuser) can add a table to a publication"),
                "migrate as the tables' owner or a superuser, or grant the owner role to Ferry's role",
            )
            .with_evidence(not_owned),
        );
    }
    if selection.copied.is_empty() {
        findings.push(Finding::warning(
            "tables.none",
            "no table is selected for the migration: only the schema will be copied",
            "check [tables] exclude in the spec",
        ));
    }

    if input.fresh_run {
        let existing = relations(input.target, "listing the target's tables").await?;
        if !input.allow_nonempty_target && !existing.is_empty() {
            findings.push(
                Finding::error(
                    "target.not_empty",
                    format!("the target database already holds {} relation(s); Ferry never overwrites data it did not write", existing.len()),
                    "point the target at an empty database, or pass --allow-nonempty-target if these objects are unrelated and must stay",
                )
                .with_evidence(existing),
            );
        } else if !existing.is_empty() {
            // Allowed to share the database, never a name: the schema restore would fail
            // halfway, after the slot and the snapshot exist.
            let excluded: Vec<String> =
                selection.excluded.iter().map(ToString::to_string).collect();
            let clashes: Vec<String> = relations(source, "listing the source's relations")
                .await?
                .into_iter()
                .filter(|r| existing.contains(r) && !excluded.contains(r))
                .collect();
            if !clashes.is_empty() {
                findings.push(
                    Finding::error(
                        "target.name_clash",
                        format!("{} relation(s) of the source already exist on the target; Ferry never writes into objects it did not create", clashes.len()),
                        "drop or rename them on the target, or leave the tables out with [tables] exclude",
                    )
                    .with_evidence(clashes),
                );
            }
        }
    }

    if input.fresh_run {
        findings.append(&mut target_privilege_findings(source, input.target).await?);
    }
    findings.append(&mut extension_findings(source, input.target).await?);

    let missing = missing_roles(source, input.target).await?;
    if !missing.is_empty() && input.plan.copy.missing_roles == MissingRoles::Refuse {
        findings.push(
            Finding::error(
                "target.missing_roles",
                format!("the schema names {} role(s) that do not exist on the target", missing.len()),
                "create them on the target, or set [copy] missing_roles = \"create\" to let Ferry create them (without passwords)",
            )
            .with_evidence(missing.iter().map(|r| r.name.clone()).collect()),
        );
    }

    let (pg_dump, pg_restore) = match find_tools(source_facts.major(), target_facts.major()) {
        Ok(tools) => (Some(tools.0), Some(tools.1)),
        Err(e) => {
            let finding = match e {
                PgError::Binary { what, fix } => Finding::error("tools.pg_dump", what, fix),
                other => Finding::error(
                    "tools.pg_dump",
                    other.to_string(),
                    "install the PostgreSQL client tools (pg_dump, pg_restore) of the source's \
                     major or newer, or set FERRY_PG_BIN to their directory",
                ),
            };
            findings.push(finding);
            (None, None)
        }
    };

    Ok(Preflight {
        source: source_facts,
        target: target_facts,
        selection,
        missing_roles: missing,
        pg_dump,
        pg_restore,
        findings,
    })
}

/// `pg_dump` able to read the source, and the `pg_restore` of the same major. The newest
/// major not above the target's is preferred; without one, the oldest that can read the
/// source: a newer `pg_dump` emits settings an older target rejects (17+ writes
/// `SET transaction_timeout`).
fn find_tools(source_major: u32, target_major: u32) -> Result<(ClientTool, ClientTool), PgError> {
    let readers: Vec<ClientTool> = ferry_pg::binaries::client_tools("pg_dump")
        .into_iter()
        .filter(|t| t.major >= source_major)
        .collect();
    let fitting = readers
        .iter()
        .filter(|t| t.major <= target_major)
        .max_by_key(|t| t.major);
    let dump = match fitting.or_else(|| readers.iter().min_by_key(|t| t.major)) {
        Some(t) => t.clone(),
        None => client_tool("pg_dump", source_major)?,
    };
    let restore = ferry_pg::binaries::client_tools("pg_restore")
        .into_iter()
        .find(|t| t.major == dump.major)
        .map_or_else(|| client_tool("pg_restore", dump.major), Ok)?;
    Ok((dump, restore))
}

/// `schema.name` of every user relation of a database (`sql/target_objects.sql`).
async fn relations(client: &Client, what: &str) -> Result<Vec<String>, PgError> {
    let rows = client
        .query(include_str!("../sql/target_objects.sql"), &[])
        .await
        .map_err(sql_error(what))?;
    Ok(rows.iter().filter_map(|r| r.try_get(0).ok()).collect())
}

async fn leftovers(
    source: &Client,
    slot: &str,
    publications: &[String],
) -> Result<Vec<String>, PgError> {
    let mut found = Vec::new();
    let slots = source
        .query(
            "SELECT slot_name::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(sql_error("looking for Ferry's slot"))?;
    for r in slots {
        let name: String = r.try_get(0).map_err(sql_error("reading slots"))?;
        found.push(format!("replication slot {name}"));
    }
    let pubs = source
        .query(
            "SELECT pubname::text FROM pg_publication WHERE pubname = ANY($1)",
            &[&publications],
        )
        .await
        .map_err(sql_error("looking for Ferry's publications"))?;
    for r in pubs {
        let name: String = r.try_get(0).map_err(sql_error("reading publications"))?;
        found.push(format!("publication {name}"));
    }
    Ok(found)
}

async fn extension_findings(source: &Client, target: &Client) -> Result<Vec<Finding>, PgError> {
    let used = source
        .query(
            "SELECT extname::text FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
            &[],
        )
        .await
        .map_err(sql_error("listing the source's extensions"))?;
    let used: Vec<String> = used.iter().filter_map(|r| r.try_get(0).ok()).collect();
    let available = target
        .query(
            "SELECT name::text FROM pg_available_extensions WHERE name = ANY($1)",
            &[&used],
        )
        .await
        .map_err(sql_error("listing the target's available extensions"))?;
    let available: Vec<String> = available.iter().filter_map(|r| r.try_get(0).ok()).collect();
    let missing: Vec<String> = used
        .into_iter()
        .filter(|e| !available.contains(e))
        .collect();
    if missing.is_empty() {
        return Ok(vec![]);
    }
    Ok(vec![Finding::error(
        "target.extensions",
        "the source uses extensions that are not installed on the target server",
        "install the extensions' packages on the target server (CREATE EXTENSION runs during the schema copy)",
    )
    .with_evidence(missing)])
}
