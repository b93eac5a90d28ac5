//! `ferry __snapshot-holder`: the process that keeps the copy's snapshot alive.

use std::process::ExitCode;

use anyhow::Result;
use ferry_copy::{holder, names};

use crate::cli::SpecArgs;
use crate::session::Session;

pub async fn run(args: &SpecArgs) -> Result<ExitCode> {
    let session = Session::open(args, false)?;
    let source = session.source()?;
    let slot = names::slot(&session.plan.name);
    holder::hold(
        &source,
        &slot,
        &session.plan.state_dir,
        session.plan.copy.snapshot_hold_timeout,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
