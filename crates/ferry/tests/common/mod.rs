//! Helpers shared by the CLI's integration tests: writing a spec, running `ferry` as a
//! subprocess, watching its processes; and (`compare`) comparing two databases.
//!
//! Every test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

mod compare;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_testkit::TestDb;
use tempfile::TempDir;

#[allow(unused_imports)] // not every test binary compares databases
pub use compare::*;

/// The `ferry` binary under test.
pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// One migration's spec in a temporary directory (its state directory lives beside it).
pub struct Migration {
    pub name: String,
    pub spec: PathBuf,
    dir: TempDir,
}

impl Migration {
    /// A spec from `source` to `target`; `extra` is appended verbatim (e.g. a `[copy]` table).
    pub fn new(name: &str, source: &str, target: &str, extra: &str) -> Migration {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = dir.path().join(format!("{name}.toml"));
        let text = format!(
            "name = \"{name}\"\n\n[source]\ndsn = \"{source}\"\n\n[target]\ndsn = \"{target}\"\n\n{extra}\n"
        );
        std::fs::write(&spec, text).expect("write spec");
        Migration {
            name: name.to_owned(),
            spec,
            dir,
        }
    }

    /// A spec between two test databases.
    pub fn between(name: &str, source: &TestDb, target: &TestDb, extra: &str) -> Migration {
        Migration::new(name, &source.conninfo(), &target.conninfo(), extra)
    }

    /// The default state directory (`.ferry/<name>` beside the spec).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join(".ferry").join(&self.name)
    }

    /// Ferry's slot name for this migration.
    pub fn slot(&self) -> String {
        format!("ferry_{}", self.name.replace('-', "_"))
    }

    /// Ferry's publications for this migration.
    pub fn publications(&self) -> [String; 2] {
        [self.slot(), format!("{}_append", self.slot())]
    }

    /// `ferry <command> SPEC <args…>` as a prepared command (output piped).
    pub fn command(&self, command: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(FERRY);
        cmd.arg(command)
            .arg(&self.spec)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `ferry <command> SPEC <args…>` to its end.
    pub fn run(&self, command: &str, args: &[&str]) -> Outcome {
        let out = self
            .command(command, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {FERRY}: {e}"));
        Outcome::from(out, format!("ferry {command} {}", args.join(" ")))
    }

    /// The same, without blocking the async runtime.
    pub async fn run_async(&self, command: &str, args: &[&str]) -> Outcome {
        let mut cmd = tokio::process::Command::from(self.command(command, args));
        cmd.kill_on_drop(true);
        let out = cmd
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {FERRY}: {e}"));
        Outcome::from(out, format!("ferry {command} {}", args.join(" ")))
    }

    /// Starts `ferry copy SPEC <args…>` in the background (output to files in the temp dir,
    /// so a chatty child never blocks on a full pipe).
    pub fn spawn_copy(&self, args: &[&str]) -> Child {
        let log = |n: &str| std::fs::File::create(self.dir.path().join(n)).expect("log file");
        Command::new(FERRY)
            .arg("copy")
            .arg(&self.spec)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log("copy.out"))
            .stderr(log("copy.err"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {FERRY}: {e}"))
    }

    /// What the background copy printed so far (stdout then stderr).
    pub fn spawned_output(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!("{}{}", read("copy.out"), read("copy.err"))
    }

    /// `ferry status SPEC --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        parse_status(&self.run("status", &["--json"]).success())
    }

    /// The same, without blocking the async runtime.
    pub async fn status_async(&self) -> serde_json::Value {
        parse_status(&self.run_async("status", &["--json"]).await.success())
    }

    /// Polls `ferry status --json` until `done` accepts it (panics after `timeout`).
    pub async fn wait_for_status(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status_async().await;
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status: {status:#}\ncopy output:\n{}",
                self.spawned_output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The pid of the snapshot holder, from `<state>/snapshot.json`, if it wrote one.
    pub fn holder_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.state_dir().join("snapshot.json")).ok()?;
        let info: serde_json::Value = serde_json::from_str(&text).ok()?;
        info["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
    }
}

fn parse_status(out: &Outcome) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", out.stdout))
}

/// A finished `ferry` run.
pub struct Outcome {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    fn from(out: Output, what: String) -> Outcome {
        Outcome {
            what,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics, showing everything printed, unless the run succeeded.
    pub fn success(self) -> Outcome {
        assert_eq!(self.code, Some(0), "{} failed:\n{}", self.what, self.text());
        self
    }

    /// Panics unless the run failed (any non-zero exit).
    pub fn failure(self) -> Outcome {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "{} should have failed:\n{}",
            self.what,
            self.text()
        );
        self
    }

    /// stdout and stderr together.
    pub fn text(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// True while a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

/// Sends SIGKILL to `pid` (a process this test started, directly or through ferry).
pub fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid} failed");
}
