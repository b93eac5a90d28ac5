//! Exactly once across two systems: work on the target runs in one transaction whose id is
//! written to the store before COMMIT; after an interruption, `txid_status` on the target
//! says whether that transaction committed (ADR 4). Used for data units and for schema
//! scripts alike.

use std::time::Duration;

use ferry_model::UnitState;
use ferry_pg::{sql_error, Connector, PgError};
use ferry_store::StateStore;
use tokio_postgres::Client;

use crate::CopyError;

/// Whether target transaction `xid` committed. Waits while it is still in progress (its
/// session may not have noticed yet that its client is gone).
pub(crate) async fn committed(target: &Client, xid: i64) -> Result<bool, PgError> {
    loop {
        let status: Option<String> = target
            .query_one("SELECT txid_status($1)", &[&xid])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(sql_error(
                "asking the target whether an interrupted step committed",
            ))?;
        match status.as_deref() {
            Some("in progress") => tokio::time::sleep(Duration::from_millis(200)).await,
            other => return Ok(other == Some("committed")),
        }
    }
}

/// Runs `script` on the target in one transaction, once: a section already done is skipped,
/// one interrupted after its COMMIT is recognised and marked done, anything else is redone
/// from scratch (its transaction rolled back with its session).
pub(crate) async fn apply_once(
    store: &dyn StateStore,
    target: &Connector,
    section: &str,
    script: &str,
    what: &str,
) -> Result<(), CopyError> {
    if store.section(section)?.is_some_and(|s| s.done_at.is_some()) {
        return Ok(());
    }
    let key = format!("xid {section}");
    let client = target.connect().await?;
    if let Some(xid) = store.value(&key)?.and_then(|v| v.parse::<i64>().ok()) {
        if committed(&client, xid).await? {
            store.section_done(section)?;
            return Ok(());
        }
    }
    store.section_started(section)?;
    client
        .batch_execute("BEGIN")
        .await
        .map_err(sql_error(what))?;
    client
        .batch_execute(script)
        .await
        .map_err(sql_error(what))?;
    let xid: i64 = client
        .query_one("SELECT pg_catalog.txid_current()", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(sql_error(what))?;
    store.set_value(&key, &xid.to_string())?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(sql_error(what))?;
    store.section_done(section)?;
    Ok(())
}

/// Units caught between "about to commit" and "done" by an interruption: the target says
/// whether their transaction committed.
pub(crate) async fn resolve_committing(
    store: &dyn StateStore,
    target: &Client,
) -> Result<(), CopyError> {
    for u in store
        .units()?
        .into_iter()
        .filter(|u| u.state == UnitState::Committing)
    {
        let Some(xid) = u.target_xid else { continue };
        let committed = committed(target, xid).await?;
        if committed {
            let unit = ferry_model::CopyUnit {
                table: u.table,
                range: u.range,
                part: u.part,
                parts: u.parts,
            };
            store.unit_done(&unit, u.rows, u.bytes)?;
        }
    }
    Ok(())
}
