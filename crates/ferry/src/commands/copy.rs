//! `ferry copy`: preflight, then the resumable snapshot copy.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ExitCode, Stdio};

use anyhow::Result;
use ferry_copy::{holder, CopyInput, CopyOptions, HolderLauncher, Tools};
use ferry_store::StateStore;
use tokio_util::sync::CancellationToken;

use super::check::{print_findings, run_preflight};
use crate::cli::SpecArgs;
use crate::progress::Progress;
use crate::report;
use crate::session::Session;

pub struct Flags {
    pub allow_nonempty_target: bool,
    pub restart: bool,
    pub verify: bool,
}

pub async fn run(args: &SpecArgs, flags: Flags) -> Result<ExitCode> {
    let session = Session::open(args, true)?;
    let id = session.log_command()?;
    let result = copy(&session, &flags).await;
    let outcome = match &result {
        Ok(code) if *code == ExitCode::SUCCESS => "ok".to_owned(),
        Ok(_) => "refused".to_owned(),
        Err(e) => format!("failed: {e}"),
    };
    session.finish_command(id, &outcome);
    result
}

pub(crate) async fn copy(session: &Session, flags: &Flags) -> Result<ExitCode> {
    let existing = session.store.invariants()?;
    let mut report =
        run_preflight(session, existing.is_none(), flags.allow_nonempty_target).await?;
    print_findings(&report);
    if !report.is_clear() {
        let n = report.blocking().count();
        eprintln!("preflight found {n} problem(s) (above); nothing was created on either server. Fix them and run `ferry copy` again.");
        return Ok(ExitCode::FAILURE);
    }
    if let Some(inv) = &existing {
        // A resumed copy moves the tables of its snapshot; tables created since are not in it.
        let (kept, new): (Vec<_>, Vec<_>) = report
            .selection
            .copied
            .drain(..)
            .partition(|t| inv.tables.contains(&t.name));
        for t in &new {
            eprintln!(
                "note: {} was created after this copy began; it is not part of this copy",
                t.name
            );
        }
        report.selection.copied = kept;
    }
    let (Some(pg_dump), Some(pg_restore)) = (report.pg_dump.clone(), report.pg_restore.clone())
    else {
        anyhow::bail!("no pg_dump/pg_restore found (preflight should have said so)");
    };
    let roles = if session.plan.copy.missing_roles == ferry_spec::MissingRoles::Create {
        report.missing_roles.clone()
    } else {
        Vec::new()
    };
    let input = CopyInput {
        plan: session.plan.clone(),
        source: session.source()?,
        target: session.target()?,
        tables: report.selection.copied.clone(),
        published: report.selection.published.clone(),
        append_only: report.selection.append_only.clone(),
        excluded: report.selection.excluded.clone(),
        roles_to_create: roles,
        tools: Tools {
            pg_dump,
            pg_restore,
        },
        source_system_id: report.source.system_id.clone(),
        target_system_id: report.target.system_id.clone(),
        source_version_num: report.source.version_num,
    };
    if existing.is_none() || flags.restart {
        // Replication origins are cluster-wide and outlive a dropped database: a stale one
        // would make change capture skip transactions of this new run.
        reset_origin(&input.target, &session.plan.name).await?;
    }
    let launcher = SelfLauncher {
        spec: session.plan.spec_path.clone(),
        state_dir: session.plan.state_dir.clone(),
    };
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "interrupted: stopping; finished tables are kept, run `ferry copy` again to resume"
            );
            on_signal.cancel();
        }
    });
    let progress = Progress::new();
    let options = CopyOptions {
        restart: flags.restart,
        verify: flags.verify,
    };
    let result = ferry_copy::run(
        &input,
        options,
        &session.store,
        &progress,
        &launcher,
        cancel,
    )
    .await;
    progress.finish();
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            // Past this point the slot and the snapshot exist: say what becomes of them.
            let has_own_advice = matches!(
                e,
                ferry_copy::CopyError::Cancelled
                    | ferry_copy::CopyError::SnapshotGone { .. }
                    | ferry_copy::CopyError::SpoolLost { .. }
            );
            if !has_own_advice {
                if let Ok(Some(inv)) = session.store.invariants() {
                    eprintln!(
                        "the copy stopped; slot {} and its snapshot stay on the source so that \
                         `ferry copy` resumes where it stopped once the problem below is fixed \
                         (`ferry abort` removes them instead)",
                        inv.slot
                    );
                }
            }
            return Err(e.into());
        }
    };
    report::print_summary(&summary);
    if let Some(inv) = session.store.invariants()? {
        println!(
            "slot {} on the source starts change capture at {} (snapshot {}).",
            inv.slot, inv.consistent_lsn, inv.snapshot
        );
    }
    if !summary.mismatches().is_empty() {
        eprintln!("verification failed: row counts differ for the tables marked above");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts `ferry __snapshot-holder` as a process of its own group, so a Ctrl-C or a kill of
/// this process leaves the snapshot alive for a resume.
struct SelfLauncher {
    spec: PathBuf,
    state_dir: PathBuf,
}

impl HolderLauncher for SelfLauncher {
    fn launch(&self) -> std::io::Result<Child> {
        // This very binary, even if a new build replaced the file since we started.
        let exe = std::path::PathBuf::from("/proc/self/exe");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(holder::log_path(&self.state_dir))?;
        std::process::Command::new(exe)
            .arg("__snapshot-holder")
            .arg(&self.spec)
            .arg("--state")
            .arg(&self.state_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env(
                "FERRY_LOG",
                std::env::var("FERRY_LOG").unwrap_or_else(|_| "info".into()),
            )
            .process_group(0)
            .spawn()
    }
}

/// Drops the migration's replication origin on the target, if one is left from a run the
/// store no longer knows.
pub async fn reset_origin(target: &ferry_pg::Connector, migration: &str) -> Result<()> {
    let client = target.connect().await?;
    ferry_cdc::Origin::drop(&client, &ferry_cdc::origin_name(migration)).await?;
    Ok(())
}
