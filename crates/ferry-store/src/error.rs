//! The crate's error: what failed in the state store and what to do about it.

use std::path::PathBuf;

use ferry_model::UnitState;

/// Why the state store refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory could not be created or used.
    #[error(
        "cannot use the state directory {}: {source}; make it writable by this user or choose \
         another with --state",
        path.display()
    )]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The database file could not be opened or prepared.
    #[error(
        "cannot open the state store {}: {source}; check that the directory is writable and \
         that the file is a ferry state store (move it aside to start over)",
        path.display()
    )]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The store was written by a newer ferry.
    #[error(
        "the state store {} has schema version {found}, newer than this ferry understands \
         ({supported}); run the ferry version that wrote it, or a newer one",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// A read or write failed.
    #[error("state store: {what} failed: {source}; if this persists, check the disk and the state directory")]
    Database {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    /// The store holds a value this ferry cannot read back.
    #[error(
        "the state store holds an unreadable {what}: {detail}; it was edited or written by an \
         incompatible ferry: use `ferry abort` or `--restart` to start the run over"
    )]
    Corrupt { what: &'static str, detail: String },

    /// The run recorded in this state directory is not the run being resumed.
    #[error(
        "this state directory records a different run:\n{}\nresuming would mix two runs; use \
         `ferry abort` to drop the recorded run, or `--restart` to start over",
        bullets(differences)
    )]
    InvariantsDiffer { differences: Vec<String> },

    /// A section transition that would lose or fake progress.
    #[error("section `{section}`: {reason}")]
    SectionRefused {
        section: String,
        reason: &'static str,
    },

    /// A copy-unit transition that would move progress backwards or skip a step.
    #[error(
        "copy unit {unit}: cannot move from {} to {}: {reason}",
        state_name(*from),
        state_name(Some(*to))
    )]
    UnitRefused {
        unit: String,
        from: Option<UnitState>,
        to: UnitState,
        reason: &'static str,
    },

    /// `command_finished` for a command that was never started.
    #[error("command {id} was never recorded as started; call command_started first")]
    UnknownCommand { id: i64 },
}

impl StoreError {
    pub(crate) fn db(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Database { what, source }
    }
}

fn bullets(items: &[String]) -> String {
    let lines: Vec<String> = items.iter().map(|d| format!("  - {d}")).collect();
    lines.join("\n")
}

/// The stored spelling of a unit state (`none` for a unit never seen).
pub(crate) fn state_name(state: Option<UnitState>) -> &'static str {
    match state {
        None => "none",
        Some(UnitState::Started) => "started",
        Some(UnitState::Committing) => "committing",
        Some(UnitState::Done) => "done",
    }
}
