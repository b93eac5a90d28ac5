mod abort;
mod check;
mod copy;
mod demo;
mod holder;
pub(crate) mod migrate;
mod status;
pub(crate) mod steer;
pub(crate) mod sync;
pub(crate) mod validate;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Command;

pub async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Check {
            spec,
            allow_nonempty_target,
        } => check::run(&spec, allow_nonempty_target).await,
        Command::Copy {
            spec,
            allow_nonempty_target,
            restart,
            verify,
        } => {
            copy::run(
                &spec,
                copy::Flags {
                    allow_nonempty_target,
                    restart,
                    verify,
                },
            )
            .await
        }
        Command::Sync {
            spec,
            until_caught_up,
            retry_for,
            verify_sample,
        } => {
            sync::run(
                &spec,
                sync::Flags {
                    until_caught_up,
                    retry_for,
                    verify_sample,
                },
            )
            .await
        }
        Command::Validate {
            spec,
            tables,
            json,
            jobs,
            rows_per_second,
            settle_for,
            recheck_after,
            max_differences,
            wait_for_sync,
        } => {
            validate::run(
                &spec,
                validate::Flags {
                    tables,
                    json,
                    jobs,
                    rows_per_second,
                    settle_for,
                    recheck_after,
                    max_differences,
                    wait_for_sync,
                },
            )
            .await
        }
        Command::Migrate {
            spec,
            allow_nonempty_target,
            verify_sample,
            retry_for,
        } => {
            migrate::run(
                &spec,
                migrate::Flags {
                    allow_nonempty_target,
                    verify_sample,
                    retry_for,
                },
            )
            .await
        }
        Command::Cutover { spec, yes } => steer::cutover(&spec, yes).await,
        Command::Rollback { spec, yes } => steer::rollback(&spec, yes).await,
        Command::Finalize { spec } => steer::finalize(&spec).await,
        Command::Status { spec, json } => status::run(&spec, json),
        Command::Abort { spec } => abort::run(&spec).await,
        Command::Demo { scale, keep } => demo::run(scale, keep).await,
        Command::SnapshotHolder { spec } => holder::run(&spec).await,
    }
}
