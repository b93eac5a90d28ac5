//! The validated plan of one migration, and the checks that turn a raw spec into it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ferry_model::WithoutIdentity;
use toml::{Spanned, Value};

use crate::conninfo::ConnInfo;
use crate::error::{qualified, Problem};
use crate::pattern::TablePattern;
use crate::quantity::{format_duration, parse_duration, parse_size};
use crate::raw::{RawCopy, RawEndpoint, RawSpec, RawTables};
use crate::workflow::{CutoverSettings, SyncSettings};

const MAX_JOBS: i64 = 256;
/// The smallest size any size setting takes.
const MIN_SIZE: u64 = 1 << 20;
/// `[copy] max_spool` unless set.
const DEFAULT_MAX_SPOOL: u64 = 64 << 30;
const MIN_HOLD: Duration = Duration::from_secs(60);
const MAX_HOLD: Duration = Duration::from_secs(7 * 86_400);
const DEFAULT_HOLD: Duration = Duration::from_secs(30 * 60);

/// Everything Ferry needs to know about one migration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The migration's identity: `[a-z0-9_-]{1,48}`.
    pub name: String,
    pub mode: Mode,
    pub source: Endpoint,
    pub target: Endpoint,
    pub copy: CopySettings,
    pub tables: TableSettings,
    pub sync: SyncSettings,
    pub cutover: CutoverSettings,
    /// The spec file this plan came from.
    pub spec_path: PathBuf,
    /// Where the state store lives: the override, else `<spec dir>/.ferry/<name>`.
    pub state_dir: PathBuf,
}

/// How the data moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Schema dump, snapshot COPY, then logical replication (pgoutput). Any versions.
    #[default]
    Logical,
    /// Base backup and WAL streaming. Same major version only.
    Physical,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Logical => "logical",
            Mode::Physical => "physical",
        })
    }
}

/// One side of the migration.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub conninfo: ConnInfo,
    /// The NAME of the environment variable that holds the password, never the password.
    pub password_env: Option<String>,
}

/// How the initial copy runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CopySettings {
    /// Parallel copy workers, 1..=256.
    pub jobs: usize,
    /// Tables larger than this many bytes (heap + TOAST) are copied as several concurrent
    /// ranges; `None` (the default) copies every table in one stream (see ADR 6).
    pub split_tables_larger_than: Option<u64>,
    pub missing_roles: MissingRoles,
    /// How long the exported snapshot is held with no ferry process alive.
    pub snapshot_hold_timeout: Duration,
    /// The most the change stream spooled during the copy may take on local disk; past it
    /// the slot keeps the rest on the source (ADR 10).
    pub max_spool: u64,
}

/// What to do with roles the schema needs that the target lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingRoles {
    /// Stop before the schema is restored, listing the roles.
    #[default]
    Refuse,
    /// Create them on the target (without passwords or superuser rights).
    Create,
}

impl fmt::Display for MissingRoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MissingRoles::Refuse => "refuse",
            MissingRoles::Create => "create",
        })
    }
}

/// Which tables move and how.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSettings {
    pub without_identity: WithoutIdentity,
    /// Tables matching any of these stay behind.
    pub exclude: Vec<TablePattern>,
}

/// Checks a raw spec, gathering every problem.
pub(crate) fn build(
    raw: RawSpec,
    text: &str,
    spec_path: PathBuf,
    state_dir: PathBuf,
) -> Result<Plan, Vec<Problem>> {
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };
    let name = c.name(raw.name);
    let mode = raw.mode.and_then(|m| {
        c.choice(
            &m,
            "mode",
            &[("logical", Mode::Logical), ("physical", Mode::Physical)],
        )
    });
    let source = c.endpoint(raw.source, "source");
    let target = c.endpoint(raw.target, "target");
    let copy = c.copy(raw.copy);
    let tables = c.tables(raw.tables);
    let sync = c.sync(raw.sync);
    let cutover = c.cutover(raw.cutover);
    match (name, source, target, c.problems.is_empty()) {
        (Some(name), Some(source), Some(target), true) => Ok(Plan {
            name,
            mode: mode.unwrap_or_default(),
            source,
            target,
            copy,
            tables,
            sync,
            cutover,
            spec_path,
            state_dir,
        }),
        _ => {
            let mut problems = c.problems;
            problems.sort_by_key(|p| p.line.unwrap_or(0));
            Err(problems)
        }
    }
}

pub(crate) struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    pub(crate) fn report<T>(&mut self, at: &Spanned<T>, key: &str, message: String) {
        self.problems
            .push(Problem::at(self.text, Some(at.span()), key, message));
    }

    fn missing(&mut self, table: Option<&Spanned<RawEndpoint>>, key: &str, what: &str) {
        let span = table.map(|t| t.span());
        self.problems.push(Problem::at(
            self.text,
            span,
            key,
            format!("required; {what}"),
        ));
    }

    fn name(&mut self, name: Option<Spanned<String>>) -> Option<String> {
        let Some(name) = name else {
            self.missing(None, "name", "name the migration, like name = \"billing\"");
            return None;
        };
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        let value = name.get_ref();
        if value.is_empty() || value.len() > 48 || !value.chars().all(valid) {
            let message = format!(
                "`{}` is not a migration name; use 1 to 48 of a-z, 0-9, _ and -",
                value.escape_debug()
            );
            self.report(&name, "name", message);
            return None;
        }
        Some(name.into_inner())
    }

    pub(crate) fn choice<T: Copy>(
        &mut self,
        v: &Spanned<String>,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let found = options
            .iter()
            .find(|(n, _)| n == v.get_ref())
            .map(|(_, t)| *t);
        if found.is_none() {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            let message = format!(
                "`{}` is not one of {}",
                v.get_ref().escape_debug(),
                names.join(", ")
            );
            self.report(v, key, message);
        }
        found
    }

    fn endpoint(&mut self, raw: Option<Spanned<RawEndpoint>>, table: &str) -> Option<Endpoint> {
        let dsn_key = qualified(Some(table), "dsn");
        let Some(raw) = raw else {
            self.missing(None, &format!("[{table}]"), "add the table with its dsn");
            return None;
        };
        let password_env = raw.get_ref().password_env.clone();
        let password_env = password_env.and_then(|v| {
            let valid = v.get_ref().chars().enumerate().all(|(i, c)| {
                c == '_'
                    || c.is_ascii_uppercase()
                    || c.is_ascii_lowercase()
                    || (i > 0 && c.is_ascii_digit())
            });
            if v.get_ref().is_empty() || !valid {
                // Never echo the value: it may be the password itself.
                let message = "must be the NAME of an environment variable \
                     ([A-Za-z_][A-Za-z0-9_]*) that holds the password, not the password"
                    .to_owned();
                self.report(&v, &qualified(Some(table), "password_env"), message);
                return None;
            }
            Some(v.into_inner())
        });
        let Some(dsn) = raw.get_ref().dsn.as_ref() else {
            self.missing(
                Some(&raw),
                &dsn_key,
                "a libpq key=value string or a postgres:// URI",
            );
            return None;
        };
        match ConnInfo::parse(dsn.get_ref()) {
            Ok(conninfo) => Some(Endpoint {
                conninfo,
                password_env,
            }),
            Err(e) => {
                self.report(dsn, &dsn_key, e.to_string());
                None
            }
        }
    }

    fn copy(&mut self, raw: RawCopy) -> CopySettings {
        let mut jobs = default_jobs();
        if let Some(v) = raw.jobs {
            match usize::try_from(*v.get_ref()) {
                Ok(n) if (1..=MAX_JOBS).contains(v.get_ref()) => jobs = n,
                _ => {
                    let message =
                        format!("must be between 1 and {MAX_JOBS} (found {})", v.get_ref());
                    self.report(&v, "[copy] jobs", message);
                }
            }
        }
        let split = raw
            .split_tables_larger_than
            .and_then(|v| self.size(&v, "[copy] split_tables_larger_than"));
        let max_spool = raw
            .max_spool
            .and_then(|v| self.size(&v, "[copy] max_spool"))
            .unwrap_or(DEFAULT_MAX_SPOOL);
        let mut missing_roles = MissingRoles::default();
        if let Some(v) = raw.missing_roles {
            let options = [
                ("refuse", MissingRoles::Refuse),
                ("create", MissingRoles::Create),
            ];
            missing_roles = self
                .choice(&v, "[copy] missing_roles", &options)
                .unwrap_or_default();
        }
        let mut hold = DEFAULT_HOLD;
        if let Some(v) = raw.snapshot_hold_timeout {
            let key = "[copy] snapshot_hold_timeout";
            match parse_duration(v.get_ref()) {
                Ok(d) if (MIN_HOLD..=MAX_HOLD).contains(&d) => hold = d,
                Ok(d) => {
                    let message =
                        format!("must be between 1min and 7d (found {})", format_duration(d));
                    self.report(&v, key, message);
                }
                Err(message) => self.report(&v, key, message),
            }
        }
        CopySettings {
            jobs,
            split_tables_larger_than: split,
            missing_roles,
            snapshot_hold_timeout: hold,
            max_spool,
        }
    }

    /// A size of at least 1MB: a string with a unit or a bare integer of bytes.
    pub(crate) fn size(&mut self, v: &Spanned<Value>, key: &str) -> Option<u64> {
        let parsed = match v.get_ref() {
            Value::String(s) => parse_size(s),
            Value::Integer(n) => u64::try_from(*n).map_err(|_| format!("`{n}` is negative")),
            other => Err(format!(
                "expected a size like \"1GB\", found a {}",
                other.type_str()
            )),
        };
        match parsed {
            Ok(bytes) if bytes >= MIN_SIZE => Some(bytes),
            Ok(bytes) => {
                let message = format!("must be at least 1MB (found {bytes} bytes)");
                self.report(v, key, message);
                None
            }
            Err(message) => {
                self.report(v, key, message);
                None
            }
        }
    }

    fn tables(&mut self, raw: RawTables) -> TableSettings {
        let mut without_identity = WithoutIdentity::default();
        if let Some(v) = raw.without_identity {
            let options = [
                ("refuse", WithoutIdentity::Refuse),
                ("exclude", WithoutIdentity::Exclude),
                ("append_only", WithoutIdentity::AppendOnly),
            ];
            let key = "[tables] without_identity";
            without_identity = self.choice(&v, key, &options).unwrap_or_default();
        }
        let mut exclude = Vec::new();
        for v in raw.exclude {
            match TablePattern::parse(v.get_ref()) {
                Ok(p) => exclude.push(p),
                Err(e) => self.report(&v, "[tables] exclude", e.to_string()),
            }
        }
        TableSettings {
            without_identity,
            exclude,
        }
    }
}

/// One worker per core, within the allowed range.
fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_JOBS as usize)
}
