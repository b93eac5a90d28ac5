//! `ferry check`: preflight only.

use std::process::ExitCode;

use anyhow::Result;
use ferry_check::{preflight, Preflight, PreflightInput};
use ferry_copy::names;
use ferry_store::StateStore;

use crate::cli::SpecArgs;
use crate::session::Session;

pub async fn run(args: &SpecArgs, allow_nonempty_target: bool) -> Result<ExitCode> {
    let session = Session::open(args, false)?;
    let fresh = session.store.invariants()?.is_none();
    let report = run_preflight(&session, fresh, allow_nonempty_target).await?;
    print_findings(&report);
    if report.is_clear() {
        println!(
            "preflight passed: {} table(s) to migrate",
            report.selection.copied.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// Connects to both sides and runs every check.
pub async fn run_preflight(
    session: &Session,
    fresh_run: bool,
    allow_nonempty_target: bool,
) -> Result<Preflight> {
    let source = session.source()?.connect().await?;
    let target = session.target()?.connect().await?;
    let publications = names::publications(&session.plan.name);
    let report = preflight(PreflightInput {
        plan: &session.plan,
        source: &source,
        target: &target,
        slot: &names::slot(&session.plan.name),
        publications: &publications,
        fresh_run,
        allow_nonempty_target,
    })
    .await?;
    Ok(report)
}

pub fn print_findings(report: &Preflight) {
    for f in &report.findings {
        eprintln!("{f}\n");
    }
}
