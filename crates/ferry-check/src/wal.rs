//! What replication slots cost the source: WAL they hold back. Ferry's own slot will hold WAL
//! for as long as the copy runs, so the source needs a bound on it.

use ferry_pg::{catalog, sql_error, PgError};
use tokio_postgres::Client;

use crate::Finding;

/// Warnings about WAL retention on the source (`slot` is Ferry's own, left out).
pub(crate) async fn retention_findings(
    source: &Client,
    slot: &str,
    version_num: u32,
) -> Result<Vec<Finding>, PgError> {
    let mut findings = Vec::new();
    if version_num >= 130_000 && catalog::setting(source, "max_slot_wal_keep_size").await? == "-1" {
        findings.push(Finding::warning(
            "source.wal_retention_unbounded",
            "max_slot_wal_keep_size is unlimited: while the copy runs, Ferry's slot holds back WAL \
             on the source without bound, and a source whose disk fills stops taking writes",
            "set max_slot_wal_keep_size on the source (ALTER SYSTEM SET max_slot_wal_keep_size = \
             '100GB'; SELECT pg_reload_conf()) to a size its disk can hold; Ferry watches the slot \
             and stops cleanly if PostgreSQL invalidates it",
        ));
    }
    let rows = source
        .query(include_str!("../sql/slots.sql"), &[&slot])
        .await
        .map_err(sql_error("listing the source's replication slots"))?;
    let idle: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let name: String = r.try_get(0).ok()?;
            let kind: String = r.try_get(1).ok()?;
            let retained: String = r.try_get(2).ok()?;
            Some(format!("{name} ({kind}) holds {retained} of WAL"))
        })
        .collect();
    if !idle.is_empty() {
        findings.push(
            Finding::warning(
                "source.inactive_slots",
                "replication slots that nobody reads are holding WAL on the source",
                "drop the slots that are no longer used (SELECT pg_drop_replication_slot('name')); \
                 they retain WAL until the disk fills",
            )
            .with_evidence(idle),
        );
    }
    Ok(findings)
}
