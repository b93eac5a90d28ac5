//! The spec of one migration: a TOML file turned into a validated [`Plan`].
//!
//! Parsing happens in two stages: serde reads the file as written (unknown keys and wrong
//! types stop it there, with the line and the key), then every value is checked and all
//! problems are reported together, one per line, as `file line N: [table] key: message`.
//!
//! Secrets never live in the spec: a dsn holding a password is refused, and `password_env`
//! names the environment variable that holds it. No error ever repeats a dsn's text.
//!
//! ```toml
//! name = "billing"
//! mode = "logical"
//! [source]
//! dsn = "host=127.0.0.1 port=5432 dbname=billing user=ferry"
//! password_env = "BILLING_SOURCE_PASSWORD"
//! [target]
//! dsn = "postgresql://ferry@10.0.0.2:5432/billing"
//! [copy]
//! jobs = 4
//! split_tables_larger_than = "1GB"
//! missing_roles = "refuse"
//! snapshot_hold_timeout = "30min"
//! max_spool = "64GB"
//! [tables]
//! without_identity = "refuse"
//! exclude = ["public.audit_*", "archive.*", "tmp_?"]
//! # The workflow's gates and cutover, read by `ferry migrate` (issue 6; being built).
//! [sync]
//! max_lag = "1s"
//! sustained = "30s"
//! max_retained_wal = "50GB"
//! [cutover]
//! approval = "manual"
//! quiesce = "source"
//! drain_timeout = "10s"
//! final_validation = "off"
//! ```

mod conninfo;
mod error;
mod pattern;
mod plan;
mod quantity;
mod raw;
mod workflow;

use std::path::{Path, PathBuf};

pub use conninfo::{ConnInfo, ConnInfoError, SslMode};
pub use error::{Problem, SpecError};
pub use pattern::{PatternError, TablePattern};
pub use plan::{CopySettings, Endpoint, MissingRoles, Mode, Plan, TableSettings};
pub use quantity::parse_duration;
pub use workflow::{Approval, CutoverSettings, FinalValidation, SyncSettings};

/// Reads and validates the spec at `spec_path`. The state directory is `state_dir_override`
/// if given, else `.ferry/<name>` next to the spec.
pub fn load(spec_path: &Path, state_dir_override: Option<&Path>) -> Result<Plan, SpecError> {
    let text = std::fs::read_to_string(spec_path).map_err(|source| SpecError::Read {
        path: spec_path.to_owned(),
        source,
    })?;
    parse(&text, spec_path, state_dir_override)
}

/// Validates spec text; `spec_path` names the file in errors and places the state directory.
pub fn parse(
    text: &str,
    spec_path: &Path,
    state_dir_override: Option<&Path>,
) -> Result<Plan, SpecError> {
    let invalid = |problems| SpecError::Invalid {
        file: spec_path.to_owned(),
        problems,
    };
    let raw: raw::RawSpec =
        toml::from_str(text).map_err(|e| invalid(vec![Problem::from_toml(text, &e)]))?;
    let state_dir = match state_dir_override {
        Some(dir) => dir.to_owned(),
        None => spec_dir(spec_path).join(".ferry"),
    };
    let mut plan = plan::build(raw, text, spec_path.to_owned(), state_dir).map_err(invalid)?;
    if state_dir_override.is_none() {
        // One directory per migration, so several specs can share a folder.
        plan.state_dir = plan.state_dir.join(&plan.name);
    }
    Ok(plan)
}

fn spec_dir(spec_path: &Path) -> PathBuf {
    match spec_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests;
