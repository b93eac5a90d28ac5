//! The change-capture steady-state benchmark (`ferry-bench cdc-steady`): pgbench as fast as
//! the source sustains while `ferry sync` applies live, then the same load with a native
//! subscription. Lag is measured outside Ferry: a heartbeat row inserted on the source every
//! 100 ms with the source's `clock_timestamp()`, polled on the target, whose own
//! `clock_timestamp()` when it first sees the row gives the lag (both clusters run on this
//! machine: one clock). See bench/README.md.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cdc::{
    apply_errors_sql, copy_into, create_subscription, teardown, verify, Env, EnvArgs, FERRY_DB,
    FERRY_SPEC, NATIVE_DB, NATIVE_SPEC, SUBSCRIPTION,
};
use crate::pg::{ident, Session};
use crate::proc::{self, log_tail};

/// The heartbeat table, created on the source before the copies (so both publish it).
const HEARTBEAT: &str = "ferry_bench_heartbeat";
/// How often a heartbeat is written on the source.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(100);
/// How often the target is polled for new heartbeats: the resolution of a lag sample.
const POLL: Duration = Duration::from_millis(10);
/// How often the consumer is checked (alive, no apply errors) while polling.
const CHECK_EVERY: u32 = 20;
/// How long a consumer may take to apply the first heartbeat after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `ferry sync` may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The target: Ferry's p99 lag under this many seconds.
const TARGET_P99: f64 = 1.0;
/// The lag timeline printed per side: this many windows over the load.
const WINDOWS: u64 = 6;

#[derive(Debug, Args)]
pub struct SteadyArgs {
    /// Seconds of load (pgbench -T) for each side.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Throttle pgbench to this many transactions per second (pgbench -R); by default it runs
    /// unthrottled, at the highest rate the source sustains.
    #[arg(long)]
    rate: Option<u32>,
    /// Measure Ferry only: no native subscription run for comparison.
    #[arg(long)]
    no_native: bool,
    #[command(flatten)]
    env: EnvArgs,
}

/// One side's steady-state measurement.
#[derive(Debug, Clone)]
struct Steady {
    /// Lag of every heartbeat written during the load, in seconds, in the order written.
    lags: Vec<f64>,
    /// Seconds since the load started at which each heartbeat was written (same order).
    written_at: Vec<f64>,
    /// pgbench's wall time.
    load: Duration,
    /// Transactions pgbench committed (rows added to pgbench_history).
    transactions: i64,
    /// pgbench's own `tps = ...` (without connection time), when it printed one.
    pgbench_tps: Option<f64>,
    /// Lag of the heartbeat written right after pgbench exited: what was left to apply.
    drain: Duration,
    notes: Vec<String>,
}

impl Steady {
    fn tps(&self) -> f64 {
        self.pgbench_tps
            .unwrap_or(self.transactions as f64 / self.load.as_secs_f64().max(0.001))
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.lags.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Nearest-rank percentile of the lags (`p` in 0..=1).
    fn percentile(&self, p: f64) -> Option<f64> {
        let v = self.sorted();
        if v.is_empty() {
            return None;
        }
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }

    /// The highest lag in each of [`WINDOWS`] equal windows of the load.
    fn timeline(&self) -> Vec<Option<f64>> {
        let secs = self.load.as_secs_f64().max(0.001);
        let mut windows = vec![None; WINDOWS as usize];
        for (lag, at) in self.lags.iter().zip(&self.written_at) {
            let i = ((at / secs * WINDOWS as f64) as usize).min(windows.len() - 1);
            windows[i] = Some(windows[i].map_or(*lag, |m: f64| m.max(*lag)));
        }
        windows
    }
}

/// One side's outcome: the measurement (or why it failed) and the data check.
struct SideOutcome {
    steady: Result<Steady, String>,
    verified: Result<String, String>,
    peak_rss_kib: Option<u64>,
}

pub fn run(args: &SteadyArgs) -> Result<()> {
    if args.duration == 0 {
        bail!("--duration must be at least 1");
    }
    if args.rate == Some(0) {
        bail!("--rate must be at least 1 (leave it out for an unthrottled load)");
    }
    let ctx = Env::start(&args.env, "cdc-steady")?;
    ctx.tools.query(
        &ctx.src(),
        &format!(
            "CREATE TABLE {} (id int PRIMARY KEY, t timestamptz NOT NULL)",
            ident(HEARTBEAT)
        ),
    )?;

    ctx.print_header(
        "ferry change-capture steady-state benchmark",
        args.env.scale,
    );
    println!(
        "load:    {} for {} s per side, each after a fresh `ferry copy`",
        pgbench_text(args),
        args.duration
    );
    println!(
        "lag:     a row inserted into {HEARTBEAT} on the source every {} ms with \
         clock_timestamp(); the target polled every {} ms: lag = target clock_timestamp() when \
         first seen - the value written",
        HEARTBEAT_EVERY.as_millis(),
        POLL.as_millis()
    );
    println!(
        "ferry:   {} sync (live, in the background)",
        ctx.ferry.display()
    );
    if !args.no_native {
        println!(
            "native:  CREATE SUBSCRIPTION on the same target cluster, on the slot and \
             publication of a second `ferry copy`, after Ferry's side"
        );
    }
    ctx.print_settings();

    let ferry = ferry_side(&ctx, args);
    let native = if args.no_native {
        None
    } else {
        Some(native_side(&ctx, args))
    };
    print_report(args, &ferry, native.as_ref());
    Ok(())
}

fn pgbench_text(args: &SteadyArgs) -> String {
    let mut text = format!(
        "pgbench -n -c {} -j {} -b tpcb-like",
        args.env.clients,
        threads(args.env.clients)
    );
    match args.rate {
        Some(r) => text.push_str(&format!(" -R {r} (throttled)")),
        None => text.push_str(" (unthrottled)"),
    }
    text
}

/// pgbench worker threads: one per client up to the machine's cores.
fn threads(clients: u32) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    clients.min(u32::try_from(cores).unwrap_or(1)).max(1)
}

/// Ferry's side: a fresh copy, `ferry sync` in the background, the load, the data check while
/// it still runs, then SIGTERM (which must end it cleanly).
fn ferry_side(ctx: &Env, args: &SteadyArgs) -> SideOutcome {
    let mut peak = None;
    let result = (|| -> Result<(Result<Steady>, Result<String>)> {
        copy_into(ctx, 1, FERRY_DB, FERRY_SPEC)?;
        checkpoint_both(ctx)?;
        let log = ctx.log(1, "ferry-sync");
        let mut sync = ctx.ferry_cmd(1, "sync", FERRY_SPEC);
        sync.arg("-v");
        let mut child = proc::spawn_logged(&mut sync, &log)?;
        let pid = child.id();
        let mut check = |peak: &mut Option<u64>| -> Result<()> {
            if let Some(hwm) = proc::peak_rss_kib(pid) {
                *peak = Some(peak.map_or(hwm, |p: u64| p.max(hwm)));
            }
            if let Some(status) = child.try_wait().context("cannot wait for ferry sync")? {
                bail!(
                    "ferry sync exited ({status}) while it should be applying\n{}",
                    log_tail(&log, 15)
                );
            }
            Ok(())
        };
        let measured = measure(ctx, args, "ferry", FERRY_DB, &mut || check(&mut peak));
        let cpu = proc::cpu_secs(pid);
        // The source is quiet and the last heartbeat is on the target: everything committed
        // before it must be there too, while Ferry still runs.
        let verified = match &measured {
            Ok(_) => verify(ctx, &[FERRY_DB], &[HEARTBEAT]),
            Err(_) => Err(anyhow::anyhow!("not verified: the measurement failed")),
        };
        let stopped = stop(&mut child, &log);
        let measured = measured.and_then(|mut s| {
            let stop_note = stopped?;
            if let Some(cpu) = cpu {
                s.notes.push(format!("ferry process CPU {cpu:.1} s"));
            }
            s.notes.push(stop_note);
            Ok(s)
        });
        Ok((measured, verified))
    })();
    let teardown_notes = teardown(ctx, 1, &[FERRY_SPEC]);
    outcome("ferry", result, teardown_notes, peak)
}

/// The native side: a fresh copy for the subscription, enabled before the load, checked for
/// apply errors while it runs.
fn native_side(ctx: &Env, args: &SteadyArgs) -> SideOutcome {
    let result = (|| -> Result<(Result<Steady>, Result<String>)> {
        copy_into(ctx, 1, NATIVE_DB, NATIVE_SPEC)?;
        let sync_commit = create_subscription(ctx, NATIVE_DB, NATIVE_SPEC)?;
        checkpoint_both(ctx)?;
        let mut admin = Session::open(&ctx.tools, &ctx.target.conninfo(NATIVE_DB))?;
        let errors = apply_errors_sql();
        let errors_before = admin.line(&errors)?;
        admin.line(&format!(
            "ALTER SUBSCRIPTION {} ENABLE",
            ident(SUBSCRIPTION)
        ))?;
        let mut check = || -> Result<()> {
            if admin.line(&errors)? != errors_before {
                bail!(
                    "the subscription's apply worker reported an error\n{}",
                    log_tail(ctx.target.log_file(), 15)
                );
            }
            Ok(())
        };
        let measured = measure(ctx, args, "native", NATIVE_DB, &mut check);
        let verified = match &measured {
            Ok(_) => verify(ctx, &[NATIVE_DB], &[HEARTBEAT]),
            Err(_) => Err(anyhow::anyhow!("not verified: the measurement failed")),
        };
        admin.line(&format!(
            "ALTER SUBSCRIPTION {} DISABLE",
            ident(SUBSCRIPTION)
        ))?;
        let measured = measured.map(|mut s| {
            s.notes.push(format!(
                "subscription synchronous_commit = {sync_commit} (PostgreSQL's default)"
            ));
            s
        });
        Ok((measured, verified))
    })();
    let teardown_notes = teardown(ctx, 1, &[NATIVE_SPEC]);
    outcome("native", result, teardown_notes, None)
}

fn outcome(
    name: &str,
    result: Result<(Result<Steady>, Result<String>)>,
    teardown_notes: Result<Vec<String>>,
    peak_rss_kib: Option<u64>,
) -> SideOutcome {
    let (steady, verified) = match result {
        Ok((s, v)) => (
            s.map_err(|e| format!("{e:#}")),
            v.map_err(|e| format!("{e:#}")),
        ),
        Err(e) => (Err(format!("{e:#}")), Err("not verified".to_string())),
    };
    let mut steady = steady;
    match teardown_notes {
        Ok(notes) => {
            for n in &notes {
                println!("{name}: note: {n}");
            }
            if let Ok(s) = &mut steady {
                s.notes.extend(notes);
            }
        }
        Err(e) => println!("{name}: cleanup failed: {e:#}"),
    }
    match &steady {
        Ok(s) => println!(
            "{name}: {} heartbeats, p50 {} s, p99 {} s, max {} s; {:.0} tps; drain {:.3} s \
             (lag of the heartbeat written after the load)",
            s.lags.len(),
            secs(s.percentile(0.50)),
            secs(s.percentile(0.99)),
            secs(s.percentile(1.0)),
            s.tps(),
            s.drain.as_secs_f64()
        ),
        Err(e) => println!("{name}: FAILED: {e}"),
    }
    match &verified {
        Ok(text) => println!("{name}: verified: {text}"),
        Err(e) => println!("{name}: verify FAILED: {e}"),
    }
    SideOutcome {
        steady,
        verified,
        peak_rss_kib,
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

fn checkpoint_both(ctx: &Env) -> Result<()> {
    for cluster in [&ctx.source, &ctx.target] {
        ctx.tools
            .query(&cluster.conninfo("postgres"), "CHECKPOINT")?;
    }
    Ok(())
}

/// Sends SIGTERM to `ferry sync` and waits for it to exit cleanly; returns a note with its
/// own summary line.
fn stop(child: &mut Child, log: &std::path::Path) -> Result<String> {
    if let Some(status) = child.try_wait().context("cannot wait for ferry sync")? {
        bail!(
            "ferry sync had already exited ({status})\n{}",
            log_tail(log, 15)
        );
    }
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .context("cannot run kill")?;
    if !sent.success() {
        let _ = child.kill();
        let _ = child.wait();
        bail!("kill -TERM {} failed ({sent})", child.id());
    }
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for ferry sync")? {
            break status;
        }
        if started.elapsed() > STOP_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "ferry sync did not exit within {} s of SIGTERM; killed\n{}",
                STOP_TIMEOUT.as_secs(),
                log_tail(log, 15)
            );
        }
        sleep(POLL);
    };
    if !status.success() {
        bail!(
            "ferry sync exited with {status} after SIGTERM\n{}",
            log_tail(log, 15)
        );
    }
    let text = proc::log_since(log, 0);
    let summary = text
        .lines()
        .rev()
        .find(|l| l.starts_with("applied "))
        .map_or_else(|| "no summary line".to_string(), |l| l.trim().to_string());
    Ok(format!(
        "stopped by SIGTERM in {:.2} s, exit 0: {summary}",
        started.elapsed().as_secs_f64()
    ))
}

/// What the writer thread reports when it stops: the heartbeats it wrote during the load
/// (first..=last) and the one written right after it.
struct Written {
    last_during_load: i64,
    after_load: i64,
}

/// The measurement of one side, with its consumer already started: one heartbeat through
/// (the consumer is streaming), one second of idle machine sampled, then pgbench for
/// `--duration` seconds while heartbeats are written and the target polled, then one more
/// heartbeat that must arrive (the drain). `check` fails when the consumer died or reported
/// an error.
fn measure(
    ctx: &Env,
    args: &SteadyArgs,
    side: &str,
    db: &str,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<Steady> {
    let src = ctx.src();
    let mut target = Session::open(&ctx.tools, &ctx.target.conninfo(db))?;
    let mut writer = Session::open(&ctx.tools, &src)?;
    let insert = |s: &mut Session, id: i64| {
        s.line(&format!(
            "INSERT INTO {} VALUES ({id}, clock_timestamp())",
            ident(HEARTBEAT)
        ))
    };
    let poll_sql = |after: i64| {
        format!(
            "SELECT id, extract(epoch FROM clock_timestamp() - t), extract(epoch FROM t) \
             FROM {} WHERE id > {after} ORDER BY id",
            ident(HEARTBEAT)
        )
    };
    let max_id = |s: &mut Session| -> Result<i64> {
        let text = s.line(&format!(
            "SELECT coalesce(max(id), 0) FROM {}",
            ident(HEARTBEAT)
        ))?;
        text.parse()
            .with_context(|| format!("expected a heartbeat id, got {text:?}"))
    };

    // Ready: one heartbeat applied.
    let ready_id = max_id(&mut writer)? + 1;
    insert(&mut writer, ready_id)?;
    let started = Instant::now();
    loop {
        check()?;
        if max_id(&mut target)? >= ready_id {
            break;
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "the {side} side applied no heartbeat within {} s of starting",
                READY_TIMEOUT.as_secs()
            );
        }
        sleep(POLL);
    }
    let mut notes = vec![format!(
        "first heartbeat applied {:.2} s after the start",
        started.elapsed().as_secs_f64()
    )];
    if let Some(share) = proc::idle_check(Duration::from_secs(1)).filter(|i| i.busy > 0.10) {
        notes.push(format!(
            "WARNING: machine {:.0}% busy just before the load",
            100.0 * share.busy
        ));
    }

    let history_before = ctx
        .tools
        .query_i64(&src, "SELECT count(*) FROM pgbench_history")?;
    let mut bench_args: Vec<String> = vec![
        "-n".into(),
        "-c".into(),
        args.env.clients.to_string(),
        "-j".into(),
        threads(args.env.clients).to_string(),
        "-T".into(),
        args.duration.to_string(),
        "-P".into(),
        "5".into(),
        "-b".into(),
        "tpcb-like".into(),
    ];
    if let Some(rate) = args.rate {
        bench_args.extend(["-R".into(), rate.to_string()]);
    }
    let bench_log = ctx.log(1, &format!("pgbench-{side}"));
    let log_from = proc::log_len(&bench_log);
    let mut bench = ctx.pgbench(&bench_args);
    let ticks = proc::CpuTicks::now();
    let load_start = Instant::now();
    let mut pgbench = proc::spawn_logged(&mut bench, &bench_log)?;

    let stop_writing = AtomicBool::new(false);
    let (done_tx, done_rx) = mpsc::channel::<Result<Written>>();
    let outcome = std::thread::scope(|scope| {
        let stop_writing = &stop_writing;
        scope.spawn(move || {
            let result = (|| -> Result<Written> {
                let mut id = ready_id;
                let mut next = Instant::now();
                while !stop_writing.load(Ordering::Relaxed) {
                    id += 1;
                    insert(&mut writer, id)?;
                    next += HEARTBEAT_EVERY;
                    let now = Instant::now();
                    if next > now {
                        sleep(next - now);
                    } else {
                        next = now;
                    }
                }
                insert(&mut writer, id + 1)?;
                Ok(Written {
                    last_during_load: id,
                    after_load: id + 1,
                })
            })();
            let _ = done_tx.send(result);
        });

        let result = poll_target(
            &bench_log,
            ctx.timeout,
            &mut target,
            &poll_sql,
            ready_id,
            &mut pgbench,
            load_start,
            &done_rx,
            stop_writing,
            check,
        );
        // On any failure: stop the writer and the load.
        stop_writing.store(true, Ordering::Relaxed);
        if result.is_err() {
            let _ = pgbench.kill();
            let _ = pgbench.wait();
        }
        result
    });
    let polled = outcome?;
    let machine = ticks.share();

    let transactions = ctx
        .tools
        .query_i64(&src, "SELECT count(*) FROM pgbench_history")?
        - history_before;
    let bench_text = proc::log_since(&bench_log, log_from);
    let pgbench_tps = bench_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok());
    notes.push(format!(
        "{transactions} transactions in {:.1} s",
        polled.load.as_secs_f64()
    ));
    if let Some(share) = machine {
        notes.push(format!(
            "machine busy {:.0}%, iowait {:.0}% (load and drain)",
            100.0 * share.busy,
            100.0 * share.iowait
        ));
    }
    write_samples(ctx, side, &polled)?;
    Ok(Steady {
        lags: polled.lags,
        written_at: polled.written_at,
        load: polled.load,
        transactions,
        pgbench_tps,
        drain: polled.drain,
        notes,
    })
}

/// What the target's polling saw.
struct Polled {
    ids: Vec<i64>,
    lags: Vec<f64>,
    written_at: Vec<f64>,
    load: Duration,
    drain: Duration,
}

/// Polls the target for new heartbeats until pgbench has exited and the heartbeat written after
/// it is on the target. Lags of heartbeats written during the load are kept.
#[allow(clippy::too_many_arguments)]
fn poll_target(
    bench_log: &std::path::Path,
    limit: Duration,
    target: &mut Session,
    poll_sql: &dyn Fn(i64) -> String,
    ready_id: i64,
    pgbench: &mut Child,
    load_start: Instant,
    done_rx: &mpsc::Receiver<Result<Written>>,
    stop_writing: &AtomicBool,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<Polled> {
    let mut seen = ready_id;
    let mut ids = Vec::new();
    let mut lags = Vec::new();
    // Source epoch seconds of each heartbeat; made relative to the first one at the end.
    let mut written = Vec::new();
    let mut load_end: Option<Instant> = None;
    let mut written_ids: Option<Written> = None;
    let mut polls = 0u32;
    loop {
        for line in target.lines(&poll_sql(seen))? {
            let mut fields = line.split('|');
            let (Some(id), Some(lag), Some(at)) = (fields.next(), fields.next(), fields.next())
            else {
                bail!("unexpected heartbeat row {line:?}");
            };
            let id: i64 = id
                .parse()
                .with_context(|| format!("heartbeat row {line:?}"))?;
            let lag: f64 = lag
                .parse()
                .with_context(|| format!("heartbeat row {line:?}"))?;
            let at: f64 = at
                .parse()
                .with_context(|| format!("heartbeat row {line:?}"))?;
            seen = seen.max(id);
            ids.push(id);
            lags.push(lag);
            written.push(at);
        }
        if load_end.is_none() {
            if let Some(status) = pgbench.try_wait().context("cannot wait for pgbench")? {
                load_end = Some(Instant::now());
                stop_writing.store(true, Ordering::Relaxed);
                if !status.success() {
                    bail!("pgbench failed ({status})\n{}", log_tail(bench_log, 15));
                }
            }
        }
        if written_ids.is_none() {
            match done_rx.try_recv() {
                Ok(Ok(w)) => written_ids = Some(w),
                Ok(Err(e)) => return Err(e.context("writing a heartbeat on the source")),
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => {
                    bail!("the heartbeat writer stopped without a word")
                }
            }
        }
        if let (Some(end), Some(w)) = (load_end, &written_ids) {
            if seen >= w.after_load {
                let drain = ids
                    .iter()
                    .position(|&id| id == w.after_load)
                    .map_or(end.elapsed().as_secs_f64(), |i| lags[i]);
                let last = w.last_during_load;
                let first_at = written.first().copied().unwrap_or(0.0);
                let keep: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] <= last).collect();
                let missing = (last - ready_id) - keep.len() as i64;
                if missing != 0 {
                    bail!(
                        "{missing} heartbeat(s) written during the load were never seen on the \
                         target (ids {}..={last})",
                        ready_id + 1
                    );
                }
                return Ok(Polled {
                    ids: keep.iter().map(|&i| ids[i]).collect(),
                    lags: keep.iter().map(|&i| lags[i]).collect(),
                    written_at: keep.iter().map(|&i| written[i] - first_at).collect(),
                    load: end.duration_since(load_start),
                    drain: Duration::from_secs_f64(drain.max(0.0)),
                });
            }
        }
        polls += 1;
        if polls.is_multiple_of(CHECK_EVERY) {
            check()?;
        }
        if load_start.elapsed() > limit {
            bail!(
                "the load and drain did not finish within {} s (--timeout); {} of the \
                 heartbeats applied",
                limit.as_secs(),
                ids.len()
            );
        }
        sleep(POLL);
    }
}

/// `heartbeat-<side>.csv` in the run's directory: id, seconds since the first heartbeat of
/// the load, lag in seconds.
fn write_samples(ctx: &Env, side: &str, polled: &Polled) -> Result<()> {
    let path = ctx.run_dir.join(format!("heartbeat-{side}.csv"));
    let mut text = String::from("id,written_s,lag_s\n");
    for ((id, at), lag) in polled.ids.iter().zip(&polled.written_at).zip(&polled.lags) {
        text.push_str(&format!("{id},{at:.3},{lag:.6}\n"));
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn print_report(args: &SteadyArgs, ferry: &SideOutcome, native: Option<&SideOutcome>) {
    println!();
    println!(
        "{:<22} | {:>10} | {:>9} | {:>9} | {:>9} | {:>7} | {:>7} | notes",
        "side", "heartbeats", "p50 lag s", "p99 lag s", "max lag s", "drain s", "tps"
    );
    let mut sides = vec![("ferry sync (live)", ferry)];
    if let Some(n) = native {
        sides.push(("native subscription", n));
    }
    for (name, side) in &sides {
        match &side.steady {
            Ok(s) => {
                let mut notes = s.notes.clone();
                if let Some(kib) = side.peak_rss_kib {
                    notes.insert(0, format!("peak RSS {:.0} MB", crate::tools::mb(kib)));
                }
                if let Err(e) = &side.verified {
                    notes.push(format!("verify FAILED: {}", e.lines().next().unwrap_or("")));
                }
                println!(
                    "{:<22} | {:>10} | {:>9} | {:>9} | {:>9} | {:>7.3} | {:>7.0} | {}",
                    name,
                    s.lags.len(),
                    secs(s.percentile(0.50)),
                    secs(s.percentile(0.99)),
                    secs(s.percentile(1.0)),
                    s.drain.as_secs_f64(),
                    s.tps(),
                    notes.join("; ")
                );
            }
            Err(e) => println!(
                "{:<22} | {:>10} | {:>9} | {:>9} | {:>9} | {:>7} | {:>7} | {}",
                name,
                "FAILED",
                "",
                "",
                "",
                "",
                "",
                e.lines().next().unwrap_or("")
            ),
        }
    }
    println!();
    let window = args.duration as f64 / WINDOWS as f64;
    for (name, side) in &sides {
        if let Ok(s) = &side.steady {
            let values: Vec<String> = s.timeline().into_iter().map(secs).collect();
            println!(
                "{name}: highest lag per {window:.0} s of load: {}",
                values.join(" ")
            );
        }
    }
    println!(
        "lag samples: one per heartbeat written during the load; resolution {} ms (poll \
         interval); per-heartbeat values in heartbeat-<side>.csv",
        POLL.as_millis()
    );
    for (name, side) in &sides {
        match &side.verified {
            Ok(text) => println!("{name}: verified: {text}"),
            Err(e) => println!("{name}: verify FAILED: {e}"),
        }
    }
    let ferry_ok = ferry.steady.is_ok() && ferry.verified.is_ok();
    let ferry_p99 = ferry.steady.as_ref().ok().and_then(|s| s.percentile(0.99));
    match ferry_p99 {
        Some(p99) if ferry_ok => println!(
            "ferry p99 lag = {p99:.3} s (target < {TARGET_P99:.2} s): {}",
            if p99 < TARGET_P99 { "PASS" } else { "FAIL" }
        ),
        _ => println!("ferry p99 lag: FAILED (the side failed or its copy differs)"),
    }
    if let Some(native) = native {
        let native_p99 = native.steady.as_ref().ok().and_then(|s| s.percentile(0.99));
        match (ferry_p99, native_p99) {
            (Some(f), Some(n)) if ferry_ok && native.verified.is_ok() && n > 0.0 => println!(
                "ferry p99 / native p99 = {:.2} (below 1: Ferry lags less)",
                f / n
            ),
            _ => println!("ferry p99 / native p99: - (a side failed or its copy differs)"),
        }
    }
    match ferry.peak_rss_kib {
        Some(kib) => println!("ferry peak RSS = {:.0} MB", crate::tools::mb(kib)),
        None => println!("ferry peak RSS = unknown"),
    }
}
