//! Rollback: the source is given back exactly as it was before Ferry (the fence lifted as
//! recorded, Ferry's slot, publications and snapshot removed); the target is left for
//! inspection. After cutover, it says which writes the target took since it opened: those
//! are not on the source.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use ferry_flow::source::{self, Activity};
use ferry_flow::{Phase, SourceFence, TrafficControl};

use super::journal::{keys, Journal};
use crate::session::Session;

/// Lifts the fence if the store says one was (or was being) applied.
pub(crate) async fn lift_fence(session: &Session, journal: &Journal<'_>) -> Result<()> {
    let state = journal.value(keys::FENCE_STATE)?;
    if !matches!(state.as_deref(), Some("applying" | "applied")) {
        return Ok(());
    }
    let Some(record) = journal.value(keys::FENCE)? else {
        bail!("the store says a fence was applied but holds no record of it");
    };
    let source = session.source()?;
    let fence = SourceFence {
        source: &source,
        keep: String::new(),
        drain_timeout: session.plan.cutover.drain_timeout,
    };
    fence.restore(&record).await?;
    journal.set(keys::FENCE_STATE, "lifted")?;
    journal.event(
        "rollback",
        "fence lifted: the source's CONNECT privileges are as they were",
    );
    Ok(())
}

/// Rolls the migration back from its current phase (change capture must be stopped).
pub(crate) async fn roll_back(session: &Session, journal: &Journal<'_>) -> Result<()> {
    let phase = journal.phase()?;
    if !phase.can_roll_back() {
        bail!("the migration has ended ({phase}): there is nothing to roll back");
    }
    journal.event("rollback", &format!("rolling back from phase {phase}"));
    lift_fence(session, journal).await?;
    if phase == Phase::CutOver {
        for line in writes_since_open(session, journal).await? {
            journal.event("rollback", &line);
        }
    }
    clear_source(session, journal, "rollback").await?;
    journal.enter(Phase::RolledBack)?;
    journal.event(
        "rollback",
        &format!(
            "rolled back: users go to the source {} again; the target {} is left as it is for \
             inspection",
            session.plan.source.conninfo.identity(),
            session.plan.target.conninfo.identity()
        ),
    );
    Ok(())
}

/// Removes Ferry's slot, publications, snapshot holder and spool from the source (the
/// store keeps the history), each removal an event of `kind`.
pub(crate) async fn clear_source(
    session: &Session,
    journal: &Journal<'_>,
    kind: &str,
) -> Result<()> {
    let removed = ferry_copy::remove_from_source(
        &session.plan.name,
        &session.source()?,
        &session.plan.state_dir,
    )
    .await?;
    for r in removed {
        journal.event(kind, &r);
    }
    Ok(())
}

/// One sentence per table the target was written to since it opened, or one saying none
/// was: rows inserted or updated are counted from their `xmin` (exact), deletions from the
/// write statistics (which may lag a few seconds behind a session still connected).
async fn writes_since_open(session: &Session, journal: &Journal<'_>) -> Result<Vec<String>> {
    let before: BTreeMap<String, Activity> = match journal.value(keys::TARGET_ACTIVITY_AT_OPEN)? {
        Some(j) => serde_json::from_str(&j).unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let xid: Option<i64> = journal
        .value(keys::TARGET_XID_AT_OPEN)?
        .and_then(|v| v.parse().ok());
    let target = match session.target()?.connect().await {
        Ok(t) => t,
        Err(e) => {
            return Ok(vec![format!(
                "WARNING: the target cannot be reached ({e}): writes it took since cutover \
                 cannot be listed and are not on the source"
            )])
        }
    };
    let now = source::table_activity(&target).await?;
    let mut lines = Vec::new();
    for (table, n) in &now {
        let deleted = n
            .since(&before.get(table).copied().unwrap_or_default())
            .deleted;
        let written = match xid {
            Some(x) => {
                let (schema, name) = table.split_once('.').unwrap_or(("public", table));
                let quoted = format!(
                    "{}.{}",
                    ferry_pg::quote::ident(schema),
                    ferry_pg::quote::ident(name)
                );
                source::rows_written_since(&target, &quoted, x).await?
            }
            None => 0,
        };
        if written > 0 || deleted > 0 {
            lines.push(format!(
                "NOT on the source: {table}: {written} row(s) inserted or updated and {deleted} \
                 deleted on the target since cutover"
            ));
        }
    }
    if lines.is_empty() {
        lines.push("the target took no writes since cutover: nothing is lost".to_owned());
    }
    Ok(lines)
}
