//! Running the tools under measurement: wall clock, peak RSS, logs, timeouts.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How often a running tool's `/proc/<pid>/status` is read.
const POLL: Duration = Duration::from_millis(10);

/// What one measured run took.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    /// Peak resident set (`VmHWM`) of the first process of the run (not its children), in KiB;
    /// `None` when it could not be read.
    pub first_peak_rss_kib: Option<u64>,
    /// CPU seconds (user + system) of each process of the run itself (not its children), as
    /// last seen before it exited, in spawn order.
    pub cpu_secs: Vec<Option<f64>>,
    /// The whole machine over the run: busy and I/O-wait shares of all cores, 0..=1.
    pub machine: Option<CpuShare>,
}

/// Shares of the machine's CPU time between two readings of `/proc/stat`.
#[derive(Debug, Clone, Copy)]
pub struct CpuShare {
    pub busy: f64,
    pub iowait: f64,
}

/// How busy the machine is while the benchmark itself waits (`over` of sampling): another
/// process using the CPU would skew the next tool's time.
pub fn idle_check(over: Duration) -> Option<CpuShare> {
    let before = cpu_ticks();
    sleep(over);
    cpu_share(before)
}

/// The `cpu` line of `/proc/stat`: (total, idle, iowait) in ticks.
fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = v.iter().take(8).sum();
    Some((total, v[3], v[4]))
}

fn cpu_share(before: Option<(u64, u64, u64)>) -> Option<CpuShare> {
    let (t0, i0, w0) = before?;
    let (t1, i1, w1) = cpu_ticks()?;
    let total = t1.checked_sub(t0).filter(|t| *t > 0)? as f64;
    let idle = i1.saturating_sub(i0) as f64;
    let iowait = w1.saturating_sub(w0) as f64;
    Some(CpuShare {
        busy: (total - idle - iowait).max(0.0) / total,
        iowait: iowait / total,
    })
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 by default).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// utime + stime of a live process, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Opens `log` for appending and writes a header naming the command.
fn open_log(log: &Path, cmds: &[&Command]) -> Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open the log {}", log.display()))?;
    for cmd in cmds {
        writeln!(file, "$ {}", describe(cmd))
            .with_context(|| format!("cannot write the log {}", log.display()))?;
    }
    Ok(file)
}

/// The command line of `cmd`, for logs and error messages.
pub fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

fn log_stdio(file: &File, log: &Path) -> Result<Stdio> {
    Ok(Stdio::from(file.try_clone().with_context(|| {
        format!("cannot reopen the log {}", log.display())
    })?))
}

/// Runs `cmd` to completion with its stdout and stderr appended to `log`; fails on a non-zero
/// exit (quoting the end of the log) or after `timeout` (killing it).
pub fn run_logged(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<Measured> {
    let (measured, status) = run_logged_status(cmd, log, timeout)?;
    if !status.success() {
        bail!("{} failed: {status}\n{}", describe(cmd), log_tail(log, 15));
    }
    Ok(measured)
}

/// Like [`run_logged`], but a non-zero exit is returned, not an error.
pub fn run_logged_status(
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
) -> Result<(Measured, ExitStatus)> {
    let started = Instant::now();
    let child = spawn_logged(cmd, log)?;
    let (measured, statuses) = wait_all(vec![(describe(cmd), child)], started, timeout, log)?;
    let status = statuses
        .into_iter()
        .next()
        .context("no exit status from a finished process")?;
    Ok((measured, status))
}

/// Starts `cmd` in the background with its stdout and stderr appended to `log` (after a
/// header line naming it); the caller waits for it.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    let file = open_log(log, &[cmd])?;
    cmd.stdin(Stdio::null())
        .stdout(log_stdio(&file, log)?)
        .stderr(log_stdio(&file, log)?);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    // Release the command's copies of the log descriptors.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    Ok(child)
}

/// Runs `first | second`, both writing their stderr (and `second` its stdout) to `log`.
pub fn run_pipeline(
    first: &mut Command,
    second: &mut Command,
    log: &Path,
    timeout: Duration,
) -> Result<Measured> {
    let file = open_log(log, &[first, second])?;
    first
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_stdio(&file, log)?);
    let started = Instant::now();
    let mut producer = first
        .spawn()
        .with_context(|| format!("cannot start {}", describe(first)))?;
    let Some(pipe) = producer.stdout.take() else {
        let _ = producer.kill();
        let _ = producer.wait();
        bail!("no stdout pipe from {}", describe(first));
    };
    second
        .stdin(Stdio::from(pipe))
        .stdout(log_stdio(&file, log)?)
        .stderr(log_stdio(&file, log)?);
    let consumer = match second.spawn() {
        Ok(c) => {
            // Drop our copy of the pipe's read end: the producer must see EPIPE when the
            // consumer dies, not block forever.
            second
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            c
        }
        Err(e) => {
            let _ = producer.kill();
            let _ = producer.wait();
            return Err(e).with_context(|| format!("cannot start {}", describe(second)));
        }
    };
    let names = [describe(first), describe(second)];
    let (measured, statuses) = wait_all(
        vec![(names[0].clone(), producer), (names[1].clone(), consumer)],
        started,
        timeout,
        log,
    )?;
    for (name, status) in names.iter().zip(&statuses) {
        if !status.success() {
            bail!("{name} failed: {status}\n{}", log_tail(log, 15));
        }
    }
    Ok(measured)
}

/// Waits for every child, polling the first one's peak RSS. When one fails the others are
/// killed (a pipeline cannot finish well then).
fn wait_all(
    mut children: Vec<(String, Child)>,
    started: Instant,
    timeout: Duration,
    log: &Path,
) -> Result<(Measured, Vec<ExitStatus>)> {
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut peak: Option<u64> = None;
    let mut cpu: Vec<Option<f64>> = vec![None; children.len()];
    let ticks_before = cpu_ticks();
    let mut wall = Duration::ZERO;
    while statuses.iter().any(Option::is_none) {
        if let Some((_, first)) = children.first() {
            if statuses.first().is_some_and(Option::is_none) {
                if let Some(hwm) = peak_rss_kib(first.id()) {
                    peak = Some(peak.map_or(hwm, |p| p.max(hwm)));
                }
            }
        }
        for (i, (name, child)) in children.iter_mut().enumerate() {
            if statuses[i].is_none() {
                cpu[i] = cpu_secs(child.id()).or(cpu[i]);
                statuses[i] = child
                    .try_wait()
                    .with_context(|| format!("cannot wait for {name}"))?;
            }
        }
        wall = started.elapsed();
        if statuses.iter().all(Option::is_some) {
            break;
        }
        if statuses.iter().flatten().any(|s| !s.success()) {
            for (i, (_, child)) in children.iter_mut().enumerate() {
                if statuses[i].is_none() {
                    let _ = child.kill();
                }
            }
        }
        if wall > timeout {
            for (_, child) in &mut children {
                let _ = child.kill();
                let _ = child.wait();
            }
            bail!(
                "timed out after {} s (--timeout); killed\n{}",
                timeout.as_secs(),
                log_tail(log, 15)
            );
        }
        sleep(POLL);
    }
    let statuses = statuses.into_iter().flatten().collect();
    Ok((
        Measured {
            wall,
            first_peak_rss_kib: peak,
            cpu_secs: cpu,
            machine: cpu_share(ticks_before),
        },
        statuses,
    ))
}

/// `VmHWM` (peak resident set) of a live process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The text appended to `log` since byte `from`.
pub fn log_since(log: &Path, from: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(log) {
        let _ = file.seek(SeekFrom::Start(from));
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The current length of `log` (0 when missing).
pub fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

/// The last `lines` lines of a log, indented, for error messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(log) {
        let len = file.metadata().map_or(0, |m| m.len());
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    let mut out = format!("    --- last lines of {} ---", log.display());
    for line in tail {
        out.push_str("\n    ");
        out.push_str(line);
    }
    out
}

/// A reading of the machine's CPU counters, to share out over an interval measured by hand.
pub struct CpuTicks(Option<(u64, u64, u64)>);

impl CpuTicks {
    pub fn now() -> CpuTicks {
        CpuTicks(cpu_ticks())
    }

    /// Busy and I/O-wait shares of the machine since [`CpuTicks::now`].
    pub fn share(&self) -> Option<CpuShare> {
        cpu_share(self.0)
    }
}
