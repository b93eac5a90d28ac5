//! Helpers shared by the CLI's integration tests: writing a spec, running `ferry` as a
//! subprocess, watching its processes; and (`compare`) comparing two databases.
//!
//! Every test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

mod compare;
pub mod workflow;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
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
        self.spawn_logged("copy", args, "copy")
    }

    /// What the background copy printed so far (stdout then stderr).
    pub fn spawned_output(&self) -> String {
        self.logged_output("copy")
    }

    /// Starts `ferry <command> SPEC <args…>` in the background, its output going to
    /// `<log>.out` and `<log>.err` in the temp dir (read back with [`Self::logged_output`]).
    pub fn spawn_logged(&self, command: &str, args: &[&str], log: &str) -> Child {
        let file = |ext: &str| {
            std::fs::File::create(self.dir.path().join(format!("{log}.{ext}"))).expect("log file")
        };
        Command::new(FERRY)
            .arg(command)
            .arg(&self.spec)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file("out"))
            .stderr(file("err"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {FERRY}: {e}"))
    }

    /// What a process started by [`Self::spawn_logged`] printed so far (stdout then stderr).
    pub fn logged_output(&self, log: &str) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.dir.path().join(format!("{log}.{ext}")))
                .unwrap_or_default()
        };
        format!("{}{}", read("out"), read("err"))
    }

    /// Ferry's replication origin on the target for this migration.
    pub fn origin(&self) -> String {
        self.slot()
    }

    /// The source position applied on the target (the origin's progress), `None` before any.
    pub async fn applied_lsn(&self, target: &tokio_postgres::Client) -> Option<String> {
        target
            .query_one(
                "SELECT pg_replication_origin_progress(roname, true)::text \
                   FROM pg_replication_origin WHERE roname = $1",
                &[&self.origin()],
            )
            .await
            .ok()
            .and_then(|r| r.get(0))
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
                "timed out waiting for {what}; last status: {status:#}\ncopy output:\n{}\nmigrate output:\n{}",
                self.spawned_output(),
                self.logged_output("migrate")
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

/// Waits for `child` to end, reading its peak resident set size (`VmHWM` in
/// `/proc/<pid>/status`) every 100 ms while it runs; returns how it ended and the last peak
/// read, in KiB. Panics (after killing it) when it runs longer than `timeout`.
pub fn wait_with_peak_rss(child: &mut Child, timeout: Duration) -> (ExitStatus, u64) {
    let deadline = Instant::now() + timeout;
    let mut peak_kib = 0;
    loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("poll child") {
            return (status, peak_kib);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} ran longer than {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `VmHWM` of a running process in KiB (`None` once it is gone or a zombie).
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves no
/// `ferry` running behind it.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// SIGKILL now, and reap it.
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

/// A small deterministic PRNG (xorshift64*) for tests that pick random points; seeded from
/// `FERRY_TEST_SEED` when set (to replay a failure), else from the clock. Print the seed.
pub struct Rng(u64);

impl Rng {
    /// The generator and its seed.
    pub fn from_env_or_clock() -> (Rng, u64) {
        let seed = std::env::var("FERRY_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        (Rng::new(seed), seed)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// An LSN's text form (`X/Y`) as a number, for comparisons.
pub fn lsn_value(lsn: &str) -> u64 {
    let (hi, lo) = lsn.split_once('/').expect("an LSN is X/Y");
    let hex = |s: &str| u64::from_str_radix(s, 16).expect("hex LSN");
    (hex(hi) << 32) | hex(lo)
}

/// Waits until no session holds `slot` on the source (a killed `ferry sync`'s walsender
/// notices the closed socket a moment later); panics after `timeout`.
pub async fn wait_slot_inactive(source: &tokio_postgres::Client, slot: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let active: bool = source
            .query_one(
                "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots \
                  WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .expect("read the slot")
            .get(0);
        if !active {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "slot {slot} still active after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The JSON report of `ferry validate --json`.
pub fn validation_report(out: &Outcome) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("validate --json is not JSON ({e}):\n{}", out.text()))
}

/// One table's entry in a validation report.
pub fn validated_table<'a>(report: &'a serde_json::Value, table: &str) -> &'a serde_json::Value {
    report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("{table} not validated: {report:#}"))
}
