//! `ferry cutover`, `ferry rollback` and `ferry finalize`: the commands that steer or end a
//! migration. Cutover and rollback are requests to the running `ferry migrate` (through the
//! store) when one runs; a rollback with none running is carried out here.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use ferry_flow::Phase;
use ferry_store::StateStore;

use super::migrate::journal::{keys, now_ms, Journal};
use super::migrate::{report, rollback};
use crate::cli::SpecArgs;
use crate::session::Session;
use crate::BadInput;

pub async fn cutover(args: &SpecArgs, yes: bool) -> Result<ExitCode> {
    let session = Session::open(args, false).map_err(BadInput::wrap)?;
    let journal = Journal::new(&session.store);
    if session.held_by_other().is_none() {
        return Err(BadInput::wrap(anyhow!(
            "no `ferry migrate` is running for {}: start it with `ferry migrate SPEC`; it cuts \
             over once it is ready and approved",
            session.plan.name
        )));
    }
    let phase = journal.phase()?;
    if phase != Phase::Ready {
        return Err(BadInput::wrap(anyhow!(
            "{} is in phase {phase}: it can cut over only once `ready` (`ferry status SPEC` \
             shows what it waits for)",
            session.plan.name
        )));
    }
    confirm(
        &session,
        yes,
        &format!(
            "Cut {} over: writes to {} stop, then users move to {}.",
            session.plan.name,
            session.plan.source.conninfo.identity(),
            session.plan.target.conninfo.identity()
        ),
    )?;
    let id = session.log_command()?;
    let answer = request(&session, "cutover").await;
    session.finish_command(
        id,
        &answer.as_ref().map_or_else(|e| e.to_string(), Clone::clone),
    );
    finish(answer?)
}

pub async fn rollback(args: &SpecArgs, yes: bool) -> Result<ExitCode> {
    let session = Session::open(args, false).map_err(BadInput::wrap)?;
    let phase = Journal::new(&session.store).phase()?;
    if !phase.can_roll_back() {
        return Err(BadInput::wrap(anyhow!(
            "{} has ended ({phase}): there is nothing to roll back",
            session.plan.name
        )));
    }
    let mut warning = String::new();
    if phase == Phase::CutOver {
        warning = " Writes made on the target since cutover are NOT carried back; they are \
                   listed."
            .to_owned();
    }
    confirm(
        &session,
        yes,
        &format!(
            "Roll {} back to {}: the source is restored as it was and Ferry's slot removed.{warning}",
            session.plan.name,
            session.plan.source.conninfo.identity()
        ),
    )?;
    if session.held_by_other().is_some() {
        let id = session.log_command()?;
        let answer = request(&session, "rollback").await;
        session.finish_command(
            id,
            &answer.as_ref().map_or_else(|e| e.to_string(), Clone::clone),
        );
        return finish(answer?);
    }
    drop(session);
    let session = Session::open(args, true)?;
    let id = session.log_command()?;
    let journal = Journal::new(&session.store);
    let result = rollback::roll_back(&session, &journal).await;
    session.finish_command(
        id,
        &result
            .as_ref()
            .map_or_else(|e| format!("failed: {e}"), |()| "ok".into()),
    );
    result?;
    Ok(ExitCode::SUCCESS)
}

pub async fn finalize(args: &SpecArgs) -> Result<ExitCode> {
    let session = Session::open(args, true)?;
    let journal = Journal::new(&session.store);
    let phase = journal.phase()?;
    if phase != Phase::CutOver {
        return Err(BadInput::wrap(anyhow!(
            "{} is in phase {phase}: only a migration that is cut over can be finalized",
            session.plan.name
        )));
    }
    let id = session.log_command()?;
    rollback::clear_source(&session, &journal, "finalize").await?;
    journal.enter(Phase::Finalized)?;
    journal.event(
        "finalize",
        "finalized: nothing of Ferry's is left on the source",
    );
    report::write_and_print(&session, None)?;
    session.finish_command(id, "ok");
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal (the migration's name typed back) unless `yes`.
fn confirm(session: &Session, yes: bool, what: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(BadInput::wrap(anyhow!(
            "{what}\nno terminal to confirm on: pass --yes to do it from a script"
        )));
    }
    eprint!(
        "{what}\nType the migration's name ({}) to go on: ",
        session.plan.name
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != session.plan.name {
        bail!("not confirmed: nothing was done");
    }
    Ok(())
}

/// Sends a request to the running `ferry migrate` and waits for its final answer.
async fn request(session: &Session, what: &str) -> Result<String> {
    let id = now_ms().to_string();
    session
        .store
        .set_value(keys::REQUEST, &format!("{id}:{what}"))?;
    eprintln!("asked the running `ferry migrate` to {what}; waiting for it…");
    let mut said = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(answer) = session.store.value(keys::ANSWER)? {
            if let Some(text) = answer.strip_prefix(&format!("{id}:")) {
                if text.starts_with("waiting: ") || text == "going" {
                    if text != said {
                        eprintln!("{text}");
                        said = text.to_owned();
                    }
                } else {
                    return Ok(text.to_owned());
                }
            }
        }
        if session.held_by_other().is_none() {
            bail!("`ferry migrate` stopped before it answered: see its output and `ferry status SPEC`");
        }
    }
}

fn finish(answer: String) -> Result<ExitCode> {
    if let Some(ok) = answer.strip_prefix("ok: ") {
        println!("{ok}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(refused) = answer.strip_prefix("refused: ") {
        return Err(BadInput::wrap(anyhow!("{refused}")));
    }
    bail!("{}", answer.strip_prefix("failed: ").unwrap_or(&answer))
}
