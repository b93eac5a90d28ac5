//! What every command that works on one migration needs: the validated plan, the state
//! store, and the connectors. Holding a `Session` also holds the state directory's lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use ferry_pg::Connector;
use ferry_spec::Plan;
use ferry_store::{SqliteStore, StateStore};

use crate::cli::SpecArgs;

pub struct Session {
    pub plan: Plan,
    pub store: SqliteStore,
    _lock: Option<Lock>,
}

impl Session {
    /// Loads the spec and opens the store. With `exclusive`, takes the state directory's
    /// lock so no two ferry processes work on one migration at once.
    pub fn open(args: &SpecArgs, exclusive: bool) -> Result<Session> {
        let plan = ferry_spec::load(&args.spec, args.state.as_deref())?;
        let store = SqliteStore::open(&plan.state_dir)?;
        let lock = if exclusive {
            Some(take_lock(&plan.state_dir)?)
        } else {
            None
        };
        Ok(Session {
            plan,
            store,
            _lock: lock,
        })
    }

    /// Whether another ferry process holds the state directory's lock (a running
    /// `ferry migrate`, say), and its pid if it wrote one.
    pub fn held_by_other(&self) -> Option<Option<u32>> {
        let path = self.plan.state_dir.join(LOCK);
        let file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        if file.try_lock().is_ok() {
            return None;
        }
        Some(
            std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse().ok()),
        )
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

const LOCK: &str = "lock";

/// Takes the state directory's lock, which the kernel releases when this process ends, and
/// writes this process's pid in it. A pid left there by a process that died is reported as
/// taken over.
fn take_lock(state_dir: &Path) -> Result<Lock> {
    let path = state_dir.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let before: Option<u32> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse().ok());
    if file.try_lock().is_err() {
        let who = before.map_or_else(String::new, |pid| format!("pid {pid}, "));
        anyhow::bail!(
            "another ferry process is working on this migration ({who}state directory {} is \
             locked): wait for it to finish or stop it; `ferry cutover` and `ferry rollback` \
             steer a running `ferry migrate`",
            state_dir.display()
        );
    }
    if let Some(pid) = before.filter(|p| *p != std::process::id()) {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!(
                "note: took over the lock of ferry process {pid}, which is no longer running"
            );
        }
    }
    file.set_len(0)
        .and_then(|()| write!(file, "{}", std::process::id()))
        .and_then(|()| file.flush())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Lock(file))
}

/// The held lock. Its pid is cleared when the process ends normally, so only a process that
/// died leaves one behind.
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.set_len(0);
    }
}
