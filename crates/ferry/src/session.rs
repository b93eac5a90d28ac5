//! What every command that works on one migration needs: the validated plan, the state
//! store, and the connectors. Holding a `Session` also holds the state directory's lock.

use std::fs::File;

use anyhow::{Context, Result};
use ferry_pg::Connector;
use ferry_spec::Plan;
use ferry_store::{SqliteStore, StateStore};

use crate::cli::SpecArgs;

pub struct Session {
    pub plan: Plan,
    pub store: SqliteStore,
    _lock: Option<File>,
}

impl Session {
    /// Loads the spec and opens the store. With `exclusive`, takes the state directory's
    /// lock so no two ferry processes work on one migration at once.
    pub fn open(args: &SpecArgs, exclusive: bool) -> Result<Session> {
        let plan = ferry_spec::load(&args.spec, args.state.as_deref())?;
        let store = SqliteStore::open(&plan.state_dir)?;
        let lock = if exclusive {
            let path = plan.state_dir.join("lock");
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            if file.try_lock().is_err() {
                anyhow::bail!(ferry_copy::CopyError::Locked {
                    dir: plan.state_dir.display().to_string()
                });
            }
            Some(file)
        } else {
            None
        };
        Ok(Session {
            plan,
            store,
            _lock: lock,
        })
    }

    pub fn source(&self) -> Result<Connector> {
        Ok(Connector::new("source", &self.plan.source)?)
    }

    pub fn target(&self) -> Result<Connector> {
        Ok(Connector::new("target", &self.plan.target)?)
    }

    /// Records this invocation in the command log; returns its id.
    pub fn log_command(&self) -> Result<i64> {
        let argv: Vec<String> = std::env::args().collect();
        Ok(self.store.command_started(&argv)?)
    }

    pub fn finish_command(&self, id: i64, outcome: &str) {
        if let Err(e) = self.store.command_finished(id, outcome) {
            tracing::warn!(error = %e, "cannot record the command's outcome");
        }
    }
}
