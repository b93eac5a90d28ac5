//! `ferry migrate`: one command runs a whole migration as a durable workflow (ADR 13):
//! check → prepare → copy → sync → validate → ready → cutover → cut_over, each phase
//! persisted before its side effect. Killed at any point, it resumes from the recorded step;
//! `ferry cutover`, `ferry rollback` and `ferry finalize` steer or end it.

mod cutover;
pub(crate) mod journal;
mod live;
pub(crate) mod report;
pub(crate) mod rollback;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use ferry_flow::Phase;
use ferry_store::StateStore;

use self::journal::{failpoint, keys, Journal};
use crate::cli::SpecArgs;
use crate::session::Session;
use crate::BadInput;

pub struct Flags {
    pub allow_nonempty_target: bool,
    pub verify_sample: f64,
    pub retry_for: Duration,
}

pub async fn run(args: &SpecArgs, flags: Flags) -> Result<ExitCode> {
    let session = Session::open(args, true)?;
    let id = session.log_command()?;
    let result = migrate(&session, &flags).await;
    session.finish_command(
        id,
        &match &result {
            Ok(code) if *code == ExitCode::SUCCESS => "ok".to_owned(),
            Ok(_) => "stopped".to_owned(),
            Err(e) => format!("failed: {e}"),
        },
    );
    result
}

async fn migrate(session: &Session, flags: &Flags) -> Result<ExitCode> {
    let journal = Journal::new(&session.store);
    same_endpoints(session)?;
    let mut phase = journal.phase()?;
    match phase {
        Phase::CutOver => {
            println!(
                "{} is already cut over to {}: `ferry finalize SPEC` removes Ferry's slot from \
                 the source; `ferry rollback SPEC` sends users back to the source",
                session.plan.name,
                session.plan.target.conninfo.identity()
            );
            return Ok(ExitCode::SUCCESS);
        }
        p if p.is_end() => {
            return Err(BadInput::wrap(anyhow::anyhow!(
                "migration {} has ended ({p}); `ferry abort SPEC` clears its state to start \
                 over",
                session.plan.name
            )));
        }
        Phase::Cutover => {
            // Killed inside a cutover: the target never opened. Give the source back first.
            rollback::lift_fence(session, &journal).await?;
            journal.enter(Phase::Ready)?;
            journal.event(
                "cutover",
                "an interrupted cutover was undone: the source takes writes again; the gate \
                 decides anew",
            );
            phase = Phase::Ready;
        }
        _ => {}
    }
    let steps = [Phase::Check, Phase::Prepare, Phase::Copy];
    for step in steps {
        if phase > step || journal.is_done(step)? {
            continue;
        }
        journal.enter(step)?;
        let outcome = match step {
            Phase::Check => check(session, flags).await,
            Phase::Prepare => prepare(session).await,
            _ => copy(session, flags).await,
        };
        if let Err(e) = outcome {
            journal.error(
                step,
                &format!("{e:#}"),
                &format!(
                    "fix the cause, then run `ferry migrate SPEC` again: it resumes in phase \
                     {step} (or `ferry abort SPEC` to stop and clean up the source)"
                ),
            );
            return Err(e);
        }
        journal.finish(step)?;
        failpoint(step.as_str());
        phase = step.next().unwrap_or(step);
    }
    live::run(session, &journal, phase.max(Phase::Sync), flags).await
}

/// A resume must talk to the servers the migration began with.
fn same_endpoints(session: &Session) -> Result<()> {
    let now = format!(
        "{} -> {}",
        session.plan.source.conninfo.identity(),
        session.plan.target.conninfo.identity()
    );
    match session.store.value("endpoints")? {
        Some(then) if then != now => Err(BadInput::wrap(anyhow::anyhow!(
            "the spec's source or target changed since this migration began (was {then}, now \
             {now}): put the spec back, or `ferry abort SPEC` to start over"
        ))),
        Some(_) => Ok(()),
        None => Ok(session.store.set_value("endpoints", &now)?),
    }
}

async fn check(session: &Session, flags: &Flags) -> Result<()> {
    let fresh = session.store.invariants()?.is_none();
    let report = super::check::run_preflight(session, fresh, flags.allow_nonempty_target).await?;
    super::check::print_findings(&report);
    if !report.is_clear() {
        bail!(
            "preflight found {} problem(s) (above); nothing was created on either server",
            report.blocking().count()
        );
    }
    Ok(())
}

/// Before the snapshot: the source tables' write counters, so that an `append_only` table
/// updated or deleted from since is copied again at cutover.
async fn prepare(session: &Session) -> Result<()> {
    let source = session.source()?.connect().await?;
    let activity = ferry_flow::source::table_activity(&source).await?;
    session.store.set_value(
        keys::ACTIVITY_AT_SNAPSHOT,
        &serde_json::to_string(&activity)?,
    )?;
    Ok(())
}

async fn copy(session: &Session, flags: &Flags) -> Result<()> {
    let code = super::copy::copy(
        session,
        &super::copy::Flags {
            allow_nonempty_target: flags.allow_nonempty_target,
            restart: false,
            verify: false,
        },
    )
    .await?;
    if code != ExitCode::SUCCESS {
        bail!("the copy did not finish (above)");
    }
    Ok(())
}
