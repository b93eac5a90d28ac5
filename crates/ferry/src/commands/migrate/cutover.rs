//! The cutover with `[cutover] quiesce = "source"`: fence the source, prove the fence, wait
//! for the final position on the target, carry the sequences, copy again the append-only
//! tables that saw an UPDATE or DELETE, optionally validate the changed tables, then open
//! the target. Any failure before the target opens lifts the fence: the source takes writes
//! again and the migration is back at `ready`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ferry_flow::source::{self, Activity};
use ferry_flow::{Phase, SourceFence, TrafficControl};
use ferry_model::TableName;

use super::journal::{failpoint, keys, Journal};
use super::live::{answer, Driver};
use super::rollback;
use crate::commands::validate;

/// How long the target may take to apply up to the final position.
const APPLY_WAIT: Duration = Duration::from_secs(60);

/// What a finished cutover measured.
pub(crate) struct CutoverDone {
    /// From the fence's first change to the target's opening.
    pub pause: Duration,
    pub drained_idle: u32,
    pub drained_in_transaction: u32,
    pub sequences: usize,
    pub recopied: Vec<String>,
}

pub(super) async fn run(driver: &Driver<'_>) -> Result<CutoverDone> {
    let journal = driver.journal;
    let request = journal
        .value(keys::ANSWER)?
        .and_then(|a| a.strip_suffix(":going").map(str::to_owned));
    journal.enter(Phase::Cutover)?;
    let lag_at_cutover = driver.lag_now();
    let started = Instant::now();
    match steps(driver, started, lag_at_cutover).await {
        Ok(done) => {
            if let Some(id) = request {
                answer(
                    journal,
                    &id,
                    &format!(
                        "ok: cut over; writes paused {:.3} s",
                        done.pause.as_secs_f64()
                    ),
                );
            }
            Ok(done)
        }
        Err(e) => {
            let message = format!("the cutover failed and was rolled back to the source: {e:#}");
            driver.stop_sync().await;
            let lifted = rollback::lift_fence(driver.session, journal).await;
            let fix = match &lifted {
                Ok(()) => {
                    journal.enter(Phase::Ready)?;
                    "the source takes writes again. Fix the cause, then run `ferry migrate SPEC` \
                     again (it waits at the gate), or `ferry rollback SPEC`"
                }
                Err(_) => {
                    "the fence on the source could NOT be lifted (below): run `ferry rollback \
                     SPEC` as soon as the source is reachable; it lifts it exactly as recorded"
                }
            };
            journal.error(Phase::Cutover, &message, fix);
            if let Some(id) = request {
                answer(journal, &id, &format!("failed: {message}"));
            }
            match lifted {
                Ok(()) => Err(anyhow!("{message}\n{fix}")),
                Err(l) => Err(anyhow!("{message}\n{fix}\nlifting the fence: {l:#}")),
            }
        }
    }
}

async fn steps(
    driver: &Driver<'_>,
    started: Instant,
    lag_at_cutover: Option<f64>,
) -> Result<CutoverDone> {
    let session = driver.session;
    let journal = driver.journal;
    let plan = &session.plan;
    let source = session.source()?;
    let admin = source.connect().await?;
    let target = session.target()?.connect().await?;

    // 1. Fence the source: the record is stored before anything changes.
    let keep: String = admin
        .query_one("SELECT current_user::text", &[])
        .await
        .context("reading Ferry's role on the source")?
        .get(0);
    let fence = SourceFence {
        source: &source,
        keep,
        drain_timeout: plan.cutover.drain_timeout,
    };
    let record = fence.plan().await?;
    journal.set(keys::FENCE, &record)?;
    journal.set(keys::FENCE_STATE, "applying")?;
    failpoint("cutover.before_fence");
    let fenced_at = Instant::now();
    let drained = fence.quiesce(&record).await?;
    journal.set(keys::FENCE_STATE, "applied")?;
    journal.event(
        "cutover",
        &format!(
            "fence: the source refuses every role but Ferry's; {} idle session(s) ended, {} \
             ended in a transaction at the drain timeout",
            drained.idle, drained.in_transaction
        ),
    );
    failpoint("cutover.fenced");

    // 2. The final position, and the first half of the proof: no transaction left open.
    let open = source::open_transactions(&admin).await?;
    if !open.is_empty() {
        bail!(
            "the fence did not hold: {} (a superuser, or a role granted CONNECT by another \
             grantor, is not kept out by the fence)",
            open.join("; ")
        );
    }
    let final_lsn = source::final_lsn(&admin).await?;
    driver.control.fence_at(final_lsn);
    driver.control.want(final_lsn);
    journal.set(keys::FINAL_LSN, &final_lsn.to_string())?;
    journal.event(
        "cutover",
        &format!("final position on the source: {final_lsn}"),
    );

    // 3. Wait until the target reflects it.
    let waited = Instant::now();
    while driver.control.position() < final_lsn {
        if driver.ended.is_cancelled() {
            bail!("change capture stopped before the final position was applied (above)");
        }
        if waited.elapsed() > APPLY_WAIT {
            bail!(
                "the target did not apply up to the final position {final_lsn} within {} s \
                 (it reflects {})",
                APPLY_WAIT.as_secs(),
                driver.control.position()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    journal.event(
        "cutover",
        &format!(
            "the target applied everything up to {final_lsn} ({:.3} s after the final position)",
            waited.elapsed().as_secs_f64()
        ),
    );
    failpoint("cutover.applied");

    // 4. Sequences, read after the fence.
    let sequences = ferry_copy::sync_sequences(&admin, &target)
        .await
        .context("carrying the sequences to the target")?;
    journal.event(
        "cutover",
        &format!("{sequences} sequence(s) set on the target"),
    );
    failpoint("cutover.sequences");

    // 5. Append-only tables that saw an UPDATE or DELETE since the snapshot.
    let recopied = recopy_append_only(session, &admin, &target, journal).await?;

    // 6. The changed tables validated again, inside the pause.
    if plan.cutover.final_validation == ferry_spec::FinalValidation::Changed {
        final_validation(driver, &admin).await?;
    }

    // The second half of the proof: no change after the final position came through, and
    // none will: change capture is stopped, then the stream's verdict read.
    driver.stop_sync().await;
    if let Some(at) = driver.control.leaked() {
        bail!(
            "the fence leaked: a transaction committed at {at}, after the final position \
             {final_lsn}, changed a migrated table (a superuser, or the role Ferry connects as, \
             still writes on the source)"
        );
    }
    // 7. Open the target: Ferry's apply sessions are gone; what the target has been written
    // since is what a later rollback could not carry back.
    settle_target(&target).await;
    let opened = source::table_activity(&target).await?;
    journal.set(
        keys::TARGET_ACTIVITY_AT_OPEN,
        &serde_json::to_string(&opened)?,
    )?;
    journal.set(
        keys::TARGET_XID_AT_OPEN,
        &source::next_xid(&target).await?.to_string(),
    )?;
    let pause = fenced_at.elapsed();
    journal.finish(Phase::Cutover)?;
    journal.enter(Phase::CutOver)?;
    journal.set(keys::PAUSE_MS, &pause.as_millis().to_string())?;
    if let Some(l) = lag_at_cutover {
        journal.set(keys::LAG_AT_CUTOVER, &format!("{l:.3}"))?;
    }
    journal.event(
        "cutover",
        &format!(
            "target open: {} (writes were paused {:.3} s; the cutover took {:.3} s)",
            plan.target.conninfo.identity(),
            pause.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ),
    );
    failpoint("cut_over");
    Ok(CutoverDone {
        pause,
        drained_idle: drained.idle,
        drained_in_transaction: drained.in_transaction,
        sequences,
        recopied,
    })
}

/// Copies again each append-only table whose rows were updated or deleted on the source
/// since the snapshot (all of them when the counters from before the snapshot are missing).
async fn recopy_append_only(
    session: &crate::session::Session,
    admin: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
    journal: &Journal<'_>,
) -> Result<Vec<String>> {
    let publication = ferry_copy::names::append_only_publication(&session.plan.name);
    let rows = admin
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables \
              WHERE pubname = $1 ORDER BY 1, 2",
            &[&publication],
        )
        .await
        .context("listing the append-only tables")?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let before: Option<BTreeMap<String, Activity>> = journal
        .value(keys::ACTIVITY_AT_SNAPSHOT)?
        .and_then(|j| serde_json::from_str(&j).ok());
    let now = source::table_activity(admin).await?;
    let mut recopied = Vec::new();
    for r in rows {
        let table = TableName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        let key = format!("{}.{}", table.schema, table.name);
        let changed = match (before.as_ref(), now.get(&key)) {
            (Some(b), Some(n)) => {
                let d = n.since(&b.get(&key).copied().unwrap_or_default());
                d.updated > 0 || d.deleted > 0
            }
            _ => true,
        };
        if !changed {
            continue;
        }
        let n = ferry_copy::recopy(admin, target, &table)
            .await
            .with_context(|| format!("copying {table} again"))?;
        journal.event(
            "cutover",
            &format!("{table} (append-only) saw UPDATE or DELETE since the snapshot: copied again, {n} rows"),
        );
        recopied.push(table.to_string());
    }
    Ok(recopied)
}

/// `[cutover] final_validation = "changed"`: the tables written since the last full
/// validation are validated again within `final_validation_budget`.
async fn final_validation(driver: &Driver<'_>, admin: &tokio_postgres::Client) -> Result<()> {
    let session = driver.session;
    let before: Option<BTreeMap<String, Activity>> = driver
        .journal
        .value(keys::ACTIVITY_AT_VALIDATION)?
        .and_then(|j| serde_json::from_str(&j).ok());
    let now = source::table_activity(admin).await?;
    let changed: Vec<String> = now
        .iter()
        .filter(|(k, n)| {
            before
                .as_ref()
                .is_none_or(|b| !n.since(&b.get(*k).copied().unwrap_or_default()).is_zero())
        })
        .map(|(k, _)| k.clone())
        .collect();
    if changed.is_empty() {
        driver.journal.event(
            "cutover",
            "final validation: no table changed since the last validation",
        );
        return Ok(());
    }
    let budget = session.plan.cutover.final_validation_budget;
    let flags = validate::Flags {
        tables: changed.clone(),
        json: true,
        jobs: 2,
        rows_per_second: None,
        settle_for: Duration::from_secs(5),
        recheck_after: Duration::from_millis(250),
        max_differences: 100,
        wait_for_sync: budget,
    };
    let report = tokio::time::timeout(budget, validate::validate(session, &flags))
        .await
        .map_err(|_| {
            anyhow!(
                "the final validation of {} changed table(s) did not finish within \
                 [cutover] final_validation_budget ({} s)",
                changed.len(),
                budget.as_secs()
            )
        })??;
    if !report.differences.is_empty() || !report.unsettled.is_empty() {
        validate::print(&report);
        bail!(
            "the final validation found {} difference(s) and {} unsettled row(s) in the \
             changed tables",
            report.differences.len(),
            report.unsettled.len()
        );
    }
    driver.journal.event(
        "cutover",
        &format!(
            "final validation: {} changed table(s) equal ({:.1} s)",
            changed.len(),
            report.seconds
        ),
    );
    Ok(())
}

/// Waits (briefly) until the target has no other session of Ferry's role: the apply
/// sessions have ended and their write counters are flushed.
async fn settle_target(target: &tokio_postgres::Client) {
    for _ in 0..50 {
        let others = target
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                    AND usename = current_user AND pid <> pg_backend_pid() \
                    AND application_name = current_setting('application_name')",
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        if others == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
