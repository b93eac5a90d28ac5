//! What the bad-input tests share: running the `ferry` binary, writing specs, and the checks
//! every refusal must pass (a clear message, a non-zero exit, no panic, no bare driver error,
//! no secret anywhere); the server side (dedicated clusters, nothing left on either server) is
//! in `servers.rs`.

#![allow(dead_code)] // Each test module uses its own subset.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

#[path = "servers.rs"]
mod servers;
pub use servers::*;

/// The password of the SCRAM role: distinctive, so any leak is found by a plain search.
pub const PASSWORD: &str = "S3cr3t-Pa55";
/// A wrong password, just as distinctive.
pub const WRONG_PASSWORD: &str = "Wr0ng-Pa55-7q2x";
/// Every test exports the password under this name (even when the spec does not use it), so
/// a leak of the environment would show.
pub const PASSWORD_VAR: &str = "FERRY_BAD_INPUT_PASSWORD";

/// How long one `ferry` invocation may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Output fragments that mean a panic or a raw driver error reached the user.
const FORBIDDEN: &[&str] = &[
    "panicked",
    "RUST_BACKTRACE",
    "db error",
    "error connecting to server",
    "unexpected message from server",
];

/// One finished `ferry` invocation.
#[derive(Debug)]
pub struct Run {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn describe(&self) -> String {
        format!(
            "`ferry {}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    /// Exit 0 and clean output.
    pub fn assert_ok(&self, secrets: &[&str]) -> &Self {
        assert_eq!(self.code, Some(0), "expected success: {}", self.describe());
        self.assert_clean(secrets)
    }

    /// A non-zero exit (not a signal), every phrase in the output (case-insensitive), clean
    /// output.
    pub fn assert_refused(&self, phrases: &[&str], secrets: &[&str]) -> &Self {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a non-zero exit: {}",
            self.describe()
        );
        self.assert_mentions(phrases);
        self.assert_clean(secrets)
    }

    pub fn assert_mentions(&self, phrases: &[&str]) -> &Self {
        let text = self.text().to_lowercase();
        for p in phrases {
            assert!(
                text.contains(&p.to_lowercase()),
                "the output does not mention {p:?}: {}",
                self.describe()
            );
        }
        self
    }

    /// No panic, no bare driver error, none of `secrets` (passwords, full dsns).
    pub fn assert_clean(&self, secrets: &[&str]) -> &Self {
        let text = self.text();
        for f in FORBIDDEN {
            assert!(
                !text.contains(f),
                "the output contains {f:?}: {}",
                self.describe()
            );
        }
        for s in secrets.iter().chain(&[PASSWORD, WRONG_PASSWORD]) {
            assert!(
                !text.contains(s),
                "the output leaks the secret {s:?}: {}",
                self.describe()
            );
        }
        self
    }

    /// The refusal is a sentence or a short list, not a wall of text.
    pub fn assert_short(&self, max_lines: usize) -> &Self {
        let lines = self.stderr.lines().filter(|l| !l.trim().is_empty()).count();
        assert!(
            lines <= max_lines,
            "expected at most {max_lines} lines on stderr: {}",
            self.describe()
        );
        self
    }
}

/// One side of a spec.
#[derive(Debug, Clone)]
pub struct Side {
    pub dsn: String,
    pub password_env: Option<String>,
}

impl Side {
    pub fn new(dsn: impl Into<String>) -> Side {
        Side {
            dsn: dsn.into(),
            password_env: None,
        }
    }

    pub fn with_password_env(mut self, var: &str) -> Side {
        self.password_env = Some(var.to_owned());
        self
    }

    fn toml(&self, table: &str) -> String {
        let mut t = format!("[{table}]\ndsn = {:?}\n", self.dsn);
        if let Some(var) = &self.password_env {
            t.push_str(&format!("password_env = {var:?}\n"));
        }
        t
    }
}

/// A temporary working directory holding spec files (and, beside them, `.ferry/`). Every
/// run of `ferry` here is checked never to print a dsn of a spec written here.
pub struct Workdir {
    dir: TempDir,
    dsns: Mutex<Vec<String>>,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::Builder::new()
                .prefix("ferry-bad-input-")
                .tempdir()
                .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}")),
            dsns: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` as `file` and returns its path.
    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.path().join(file);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {file}: {e}"));
        path
    }

    /// Writes `<name>.toml`: a spec named `name` from `source` to `target`, then `extra`.
    pub fn spec(&self, name: &str, source: &Side, target: &Side, extra: &str) -> PathBuf {
        self.dsns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([source.dsn.clone(), target.dsn.clone()]);
        let text = format!(
            "name = {name:?}\n\n{}\n{}\n{extra}",
            source.toml("source"),
            target.toml("target")
        );
        self.write(&format!("{name}.toml"), &text)
    }

    /// `.ferry/` beside the specs.
    pub fn state_root(&self) -> PathBuf {
        self.path().join(".ferry")
    }

    /// Runs `ferry ARGS` here with the password exported as [`PASSWORD_VAR`].
    pub async fn ferry(&self, args: &[&str]) -> Run {
        self.ferry_env(args, &[(PASSWORD_VAR, PASSWORD)]).await
    }

    /// Runs `ferry ARGS` here with `env` added to a scrubbed environment: no PGPASSWORD, no
    /// ~/.pgpass, no FERRY_LOG or RUST_BACKTRACE from the caller.
    pub async fn ferry_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let child = self.spawn(args, env);
        let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "`ferry {}` took longer than {RUN_TIMEOUT:?}",
                    args.join(" ")
                )
            })
            .unwrap_or_else(|e| panic!("cannot wait for ferry: {e}"));
        let run = Run {
            args: args.join(" "),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // Captured by the test harness; shown when a test fails.
        eprintln!("{}\n", run.describe());
        let dsns = self
            .dsns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let dsns: Vec<&str> = dsns.iter().map(String::as_str).collect();
        run.assert_clean(&dsns);
        run
    }

    /// Starts `ferry ARGS` (see [`Workdir::ferry_env`]) without waiting for it.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Child {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(args)
            .current_dir(self.path())
            .env_remove("PGPASSWORD")
            .env_remove("FERRY_LOG")
            .env_remove("RUST_BACKTRACE")
            .env_remove("FERRY_PG_BIN")
            .env("PGPASSFILE", self.path().join("no-such-pgpass"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", env!("CARGO_BIN_EXE_ferry")))
    }

    /// No file under `.ferry/` (state.db and its WAL, holder logs, dumps) holds any of
    /// `secrets` or the passwords, searched as bytes.
    pub fn assert_state_has_no_secret(&self, secrets: &[&str]) {
        let mut files = Vec::new();
        collect_files(&self.state_root(), &mut files);
        for file in files {
            let bytes = std::fs::read(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            for s in secrets.iter().chain(&[PASSWORD, WRONG_PASSWORD]) {
                assert!(
                    !contains(&bytes, s.as_bytes()),
                    "{} holds the secret {s:?}",
                    file.display()
                );
            }
        }
    }

    /// `ferry status --json` works on `spec` and shows no run: what a refused command leaves.
    pub async fn assert_not_started(&self, spec: &Path) {
        let run = self.ferry(&["status", path_str(spec), "--json"]).await;
        run.assert_ok(&[]);
        let status: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", run.stdout));
        assert_eq!(status["phase"], "check", "{}", run.stdout);
        assert!(status["slot"].is_null(), "{}", run.stdout);
        assert!(status["snapshot"].is_null(), "{}", run.stdout);
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}

/// A port of 127.0.0.1 where nothing listens.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind a port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port()
}

/// Waits until `check` is true, polling, for at most `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
