//! `ferry abort`: removes Ferry's objects from the source.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::SpecArgs;
use crate::session::Session;

pub async fn run(args: &SpecArgs) -> Result<ExitCode> {
    let session = Session::open(args, true)?;
    let id = session.log_command()?;
    let source = session.source()?;
    // A fence left by a cutover that stopped is lifted first, exactly as recorded.
    super::migrate::rollback::lift_fence(
        &session,
        &super::migrate::journal::Journal::new(&session.store),
    )
    .await?;
    if let Err(e) = super::copy::reset_origin(&session.target()?, &session.plan.name).await {
        // The source is what must be cleaned; an unreachable target only keeps its origin.
        eprintln!("warning: could not remove the replication origin on the target: {e}");
    }
    let result = ferry_copy::abort(
        &session.plan.name,
        &source,
        &session.store,
        &session.plan.state_dir,
    )
    .await;
    let removed = match result {
        Ok(r) => r,
        Err(e) => {
            session.finish_command(id, &format!("failed: {e}"));
            return Err(e.into());
        }
    };
    if removed.is_empty() {
        println!(
            "nothing of Ferry's was left on the source ({}); the run's state is cleared",
            source.identity()
        );
    }
    for r in &removed {
        println!("{r}");
    }
    println!("the target was not touched: drop its database or objects yourself if you no longer need them");
    session.finish_command(id, "ok");
    Ok(ExitCode::SUCCESS)
}
