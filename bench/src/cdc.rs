//! The change-capture catch-up benchmark (`ferry-bench cdc`): a pgbench backlog held in two
//! slots at the same position, applied by `ferry sync --until-caught-up` and by PostgreSQL's
//! own subscriber (`CREATE SUBSCRIPTION`) into two identical copies on one target cluster.
//! See bench/README.md.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_pg::local_cluster::{ClusterOptions, LocalCluster};

use crate::pg::{self, ident, literal, Tools};
use crate::proc::{self, log_tail, run_logged};

const SOURCE_DB: &str = "bench";
const FERRY_DB: &str = "ferry_t";
const NATIVE_DB: &str = "native_t";
const FERRY_SPEC: &str = "cdcbench";
const NATIVE_SPEC: &str = "cdcnative";
const SUBSCRIPTION: &str = "native";
/// How often the native side's progress is read.
const POLL: Duration = Duration::from_millis(20);
/// The target: Ferry at least this many times the native subscriber's tps.
const TARGET_RATIO: f64 = 2.0;

#[derive(Debug, Args)]
pub struct CdcArgs {
    /// pgbench transactions in the backlog (split evenly over --clients).
    #[arg(long, default_value_t = 100_000)]
    transactions: u64,
    /// pgbench clients (`-c`) producing the backlog.
    #[arg(long, default_value_t = 4)]
    clients: u32,
    /// pgbench scale of the source database.
    #[arg(long, default_value_t = 10)]
    scale: u32,
    /// Rounds; each round builds a fresh backlog, and Ferry and native alternate who goes first.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// The ferry binary to benchmark.
    #[arg(long, default_value = "target/release/ferry")]
    ferry: PathBuf,
    /// Where each run's logs (and Ferry's specs and state) are kept.
    #[arg(long, default_value = "target/ferry-bench")]
    work_dir: PathBuf,
    /// Seconds after which a side (or a setup step) is stopped and reported FAILED.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Keep the local clusters' durability off (fsync, synchronous_commit, full_page_writes).
    #[arg(long)]
    no_durability: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ferry,
    Native,
}

/// One round's measurement of one side.
#[derive(Debug, Clone)]
struct SideResult {
    wall: Duration,
    notes: Vec<String>,
    peak_rss_kib: Option<u64>,
}

struct Round {
    transactions: i64,
    ferry_bytes: i64,
    native_bytes: i64,
    ferry: Result<SideResult, String>,
    native: Result<SideResult, String>,
    verified: Result<String, String>,
}

struct Ctx<'a> {
    tools: &'a Tools,
    source: &'a LocalCluster,
    target: &'a LocalCluster,
    ferry: &'a Path,
    run_dir: &'a Path,
    timeout: Duration,
}

impl Ctx<'_> {
    fn src(&self) -> String {
        self.source.conninfo(SOURCE_DB)
    }

    fn spec(&self, round: usize, name: &str) -> PathBuf {
        self.run_dir
            .join(format!("r{round}"))
            .join(format!("{name}.toml"))
    }

    fn ferry_cmd(&self, round: usize, verb: &str, spec: &str) -> Command {
        let path = self.spec(round, spec);
        let mut cmd = Command::new(self.ferry);
        if let Some(dir) = path.parent() {
            cmd.current_dir(dir);
        }
        cmd.arg(verb).arg(&path);
        cmd
    }

    fn log(&self, round: usize, what: &str) -> PathBuf {
        self.run_dir.join(format!("{what}-r{round}.log"))
    }
}

pub fn run(args: &CdcArgs) -> Result<()> {
    if args.repeat == 0 || args.scale == 0 || args.clients == 0 || args.transactions == 0 {
        bail!("--transactions, --clients, --scale and --repeat must be at least 1");
    }
    if !args.ferry.is_file() {
        bail!(
            "no ferry binary at {} (build it with `cargo build --release -p ferry`, or pass --ferry)",
            args.ferry.display()
        );
    }
    let per_client = args.transactions.div_ceil(u64::from(args.clients));
    let ferry = crate::absolute(&args.ferry)?;
    let tools = Tools::find(15)?;
    let run_dir = crate::absolute(&args.work_dir)?.join(format!("cdc-{}", crate::unix_secs()));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;

    let settings = crate::cluster_settings(args.no_durability);
    let options = |name: &str| ClusterOptions {
        major: None,
        settings: settings.clone(),
        name: name.into(),
    };
    let source = LocalCluster::start(&options("cdc-src")).context("starting the source")?;
    let target = LocalCluster::start(&options("cdc-tgt")).context("starting the target")?;
    let ctx = Ctx {
        tools: &tools,
        source: &source,
        target: &target,
        ferry: &ferry,
        run_dir: &run_dir,
        timeout: Duration::from_secs(args.timeout),
    };

    tools.query(
        &source.conninfo("postgres"),
        &format!("CREATE DATABASE {}", ident(SOURCE_DB)),
    )?;
    let mut init = tools.pgbench.command();
    init.args(["-i", "-q", "-s", &args.scale.to_string()])
        .args(["-h", source.host(), "-p", &source.port().to_string()])
        .args(["-U", source.superuser(), SOURCE_DB]);
    run_logged(&mut init, &run_dir.join("pgbench-init.log"), Duration::MAX)
        .context("pgbench -i failed")?;
    // pgbench_history has no key: give it one (same table for both sides).
    tools.query(
        &ctx.src(),
        "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY",
    )?;

    println!(
        "== ferry change-capture catch-up benchmark, {} ==",
        crate::date()
    );
    println!(
        "machine: {} cores, {} memory",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        crate::mem_total()
    );
    println!(
        "server:  {} (source and target, one cluster each)",
        pg::server_version(&tools, &source)
    );
    println!(
        "source:  pgbench scale {} (pgbench_history given `id bigserial PRIMARY KEY`)",
        args.scale
    );
    println!(
        "backlog: pgbench -n -c {c} -t {per_client} -b tpcb-like ({} transactions) per round, \
         held in both slots with no consumer",
        per_client * u64::from(args.clients),
        c = args.clients
    );
    println!("ferry:   {} sync --until-caught-up", ferry.display());
    println!(
        "native:  CREATE SUBSCRIPTION on the same target cluster, on the slot and publication \
         of a second `ferry copy`"
    );
    let setting_text: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("settings (both clusters): {}", setting_text.join(" "));
    println!("logs:    {}", run_dir.display());
    println!();

    let mut rounds = Vec::new();
    let mut cache_dropped = None;
    let mut sync_commit = String::new();
    for round in 1..=args.repeat {
        let r = run_round(
            &ctx,
            args,
            round,
            per_client,
            &mut cache_dropped,
            &mut sync_commit,
        );
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                let _ = teardown(&ctx, round);
                return Err(e.context(format!("round {round}")));
            }
        };
        rounds.push(r);
        let notes = teardown(&ctx, round)?;
        for n in notes {
            println!("round {round}/{}: note: {n}", args.repeat);
        }
    }
    print_report(&rounds, &sync_commit, cache_dropped);
    Ok(())
}

fn run_round(
    ctx: &Ctx<'_>,
    args: &CdcArgs,
    round: usize,
    per_client: u64,
    cache_dropped: &mut Option<bool>,
    sync_commit: &mut String,
) -> Result<Round> {
    let tools = ctx.tools;
    let src = ctx.src();
    let prefix = format!("round {round}/{}:", args.repeat);

    // Two identical copies, each with its own slot and publication.
    for (db, spec) in [(FERRY_DB, FERRY_SPEC), (NATIVE_DB, NATIVE_SPEC)] {
        pg::recreate_db(tools, ctx.target, db)?;
        let path = ctx.spec(round, spec);
        let dir = path.parent().context("spec without a directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let text = format!(
            "name = \"{spec}\"\n\n[source]\ndsn = \"{}\"\n\n[target]\ndsn = \"{}\"\n\n[copy]\njobs = 2\n",
            ctx.source.conninfo(SOURCE_DB),
            ctx.target.conninfo(db),
        );
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        let mut copy = ctx.ferry_cmd(round, "copy", spec);
        copy.arg("-v");
        run_logged(
            &mut copy,
            &ctx.log(round, &format!("{spec}-copy")),
            ctx.timeout,
        )
        .with_context(|| format!("ferry copy of {spec}"))?;
    }
    let native = ctx.target.conninfo(NATIVE_DB);
    tools.query(
        &native,
        &format!(
            "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (create_slot = false, \
             slot_name = {}, copy_data = false, enabled = false)",
            ident(SUBSCRIPTION),
            literal(&ctx.source.conninfo(SOURCE_DB)),
            ident(&format!("ferry_{NATIVE_SPEC}")),
            literal(&format!("ferry_{NATIVE_SPEC}")),
        ),
    )?;
    *sync_commit = tools.query(
        &native,
        &format!(
            "SELECT subsynccommit FROM pg_subscription WHERE subname = {}",
            literal(SUBSCRIPTION)
        ),
    )?;

    // The backlog, held in both slots.
    let slot_lsn = |spec: &str| {
        tools.query(
            &src,
            &format!(
                "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = {}",
                literal(&format!("ferry_{spec}"))
            ),
        )
    };
    let ferry_start = slot_lsn(FERRY_SPEC)?;
    let native_start = slot_lsn(NATIVE_SPEC)?;
    if ferry_start.is_empty() || native_start.is_empty() {
        bail!("a slot is missing after `ferry copy` (ferry: {ferry_start:?}, native: {native_start:?})");
    }
    let history_before = tools.query_i64(&src, "SELECT count(*) FROM pgbench_history")?;
    let mut bench = tools.pgbench.command();
    bench
        .args(["-n", "-c", &args.clients.to_string()])
        .args(["-t", &per_client.to_string(), "-b", "tpcb-like"])
        .args([
            "-h",
            ctx.source.host(),
            "-p",
            &ctx.source.port().to_string(),
        ])
        .args(["-U", ctx.source.superuser(), SOURCE_DB]);
    let made = run_logged(&mut bench, &ctx.log(round, "pgbench"), ctx.timeout)
        .context("pgbench (the backlog) failed")?;
    let end = tools.query(&src, "SELECT pg_current_wal_lsn()")?;
    let transactions =
        tools.query_i64(&src, "SELECT count(*) FROM pgbench_history")? - history_before;
    let diff = |from: &str| {
        tools.query_i64(
            &src,
            &format!(
                "SELECT pg_wal_lsn_diff({}, {})::bigint",
                literal(&end),
                literal(from)
            ),
        )
    };
    let ferry_bytes = diff(&ferry_start)?;
    let native_bytes = diff(&native_start)?;
    println!(
        "{prefix} backlog {transactions} transactions in {:.1} s, WAL {ferry_start} -> {end} \
         ({:.1} MB; native slot from {native_start}, {:.1} MB)",
        made.wall.as_secs_f64(),
        ferry_bytes as f64 / 1e6,
        native_bytes as f64 / 1e6
    );

    let order = if round % 2 == 1 {
        [Side::Ferry, Side::Native]
    } else {
        [Side::Native, Side::Ferry]
    };
    let mut ferry = Err("not run".to_string());
    let mut native_result = Err("not run".to_string());
    for side in order {
        prepare_side(ctx, side, cache_dropped)?;
        let idle = proc::idle_check(Duration::from_secs(1));
        let result = match side {
            Side::Ferry => run_ferry(ctx, round),
            Side::Native => run_native(ctx, &end),
        };
        let result = result.map(|mut r| {
            if let Some(share) = idle.filter(|i| i.busy > 0.10) {
                r.notes.push(format!(
                    "WARNING: machine {:.0}% busy just before the start",
                    100.0 * share.busy
                ));
            }
            r
        });
        let name = match side {
            Side::Ferry => "ferry ",
            Side::Native => "native",
        };
        match &result {
            Ok(r) => println!(
                "{prefix} {name} {:.2} s, {:.0} tps",
                r.wall.as_secs_f64(),
                transactions as f64 / r.wall.as_secs_f64()
            ),
            Err(e) => println!("{prefix} {name} FAILED: {e}"),
        }
        match side {
            Side::Ferry => ferry = result.map_err(|e| format!("{e:#}")),
            Side::Native => native_result = result.map_err(|e| format!("{e:#}")),
        }
    }

    let verified = verify(ctx).map_err(|e| format!("{e:#}"));
    match &verified {
        Ok(text) => println!("{prefix} verified: {text}"),
        Err(e) => println!("{prefix} verify FAILED: {e}"),
    }
    Ok(Round {
        transactions,
        ferry_bytes,
        native_bytes,
        ferry,
        native: native_result,
        verified,
    })
}

/// Checkpoints and restarts both clusters and drops the page cache (or, where that is not
/// permitted, reads the source's and this side's target tables once), as the copy bench does.
fn prepare_side(ctx: &Ctx<'_>, side: Side, cache_dropped: &mut Option<bool>) -> Result<()> {
    pg::checkpoint_and_restart(ctx.tools, ctx.source)?;
    pg::checkpoint_and_restart(ctx.tools, ctx.target)?;
    let dropped = pg::drop_page_cache();
    if !dropped {
        let db = match side {
            Side::Ferry => FERRY_DB,
            Side::Native => NATIVE_DB,
        };
        for conninfo in [ctx.src(), ctx.target.conninfo(db)] {
            for table in [
                "pgbench_accounts",
                "pgbench_branches",
                "pgbench_tellers",
                "pgbench_history",
            ] {
                ctx.tools
                    .query(&conninfo, &format!("SELECT count(*) FROM {table}"))?;
            }
        }
    }
    if cache_dropped.is_none() {
        *cache_dropped = Some(dropped);
    }
    Ok(())
}

fn run_ferry(ctx: &Ctx<'_>, round: usize) -> Result<SideResult> {
    let mut sync = ctx.ferry_cmd(round, "sync", FERRY_SPEC);
    sync.args(["-v", "--until-caught-up"]);
    let m = run_logged(&mut sync, &ctx.log(round, "ferry-sync"), ctx.timeout)?;
    let mut notes = Vec::new();
    // Ferry's own summary line, e.g. `applied N transactions (M changes) from .. through ..`.
    let log = proc::log_since(&ctx.log(round, "ferry-sync"), 0);
    if let Some(summary) = log.lines().rev().find(|l| l.starts_with("applied ")) {
        notes.push(summary.trim().to_string());
    }
    if let Some(cpu) = m.cpu_secs.first().copied().flatten() {
        notes.push(format!("ferry process CPU {cpu:.1} s"));
    }
    if let Some(share) = m.machine {
        notes.push(format!(
            "machine busy {:.0}%, iowait {:.0}%",
            100.0 * share.busy,
            100.0 * share.iowait
        ));
    }
    Ok(SideResult {
        wall: m.wall,
        notes,
        peak_rss_kib: m.first_peak_rss_kib,
    })
}

/// Enables the subscription and times until the source's slot confirms END; polls through two
/// open psql sessions (no process start per poll).
fn run_native(ctx: &Ctx<'_>, end: &str) -> Result<SideResult> {
    let mut src = Session::open(ctx.tools, &ctx.source.conninfo(SOURCE_DB))?;
    let mut tgt = Session::open(ctx.tools, &ctx.target.conninfo(NATIVE_DB))?;
    let caught_up = format!(
        "SELECT coalesce(confirmed_flush_lsn >= {}::pg_lsn, false) FROM pg_replication_slots \
         WHERE slot_name = {}",
        literal(end),
        literal(&format!("ferry_{NATIVE_SPEC}"))
    );
    let applied = format!(
        "SELECT coalesce(pg_replication_origin_progress('pg_' || oid, false)::text, '') \
         FROM pg_subscription WHERE subname = {}",
        literal(SUBSCRIPTION)
    );
    let errors = format!(
        "SELECT apply_error_count FROM pg_stat_subscription_stats WHERE subname = {}",
        literal(SUBSCRIPTION)
    );
    let errors_before = tgt.line(&errors)?;
    let ticks = proc::CpuTicks::now();
    let started = Instant::now();
    tgt.line(&format!(
        "ALTER SUBSCRIPTION {} ENABLE",
        ident(SUBSCRIPTION)
    ))?;
    let mut last_applied = String::new();
    let mut applied_at = Duration::ZERO;
    let mut polls = 0u64;
    let wall = loop {
        let done = src.line(&caught_up)? == "t";
        let now = started.elapsed();
        let progress = tgt.line(&applied)?;
        if progress != last_applied {
            last_applied = progress;
            applied_at = now;
        }
        if done {
            break now;
        }
        polls += 1;
        if polls.is_multiple_of(50) && tgt.line(&errors)? != errors_before {
            bail!(
                "the subscription's apply worker reported an error\n{}",
                log_tail(ctx.target.log_file(), 15)
            );
        }
        if now > ctx.timeout {
            bail!(
                "timed out after {} s (--timeout)\n{}",
                ctx.timeout.as_secs(),
                log_tail(ctx.target.log_file(), 15)
            );
        }
        sleep(POLL);
    };
    let machine = ticks.share();
    tgt.line(&format!(
        "ALTER SUBSCRIPTION {} DISABLE",
        ident(SUBSCRIPTION)
    ))?;
    let mut notes = vec![format!(
        "last target commit seen at {:.2} s (origin progress, polled)",
        applied_at.as_secs_f64()
    )];
    if let Some(share) = machine {
        notes.push(format!(
            "machine busy {:.0}%, iowait {:.0}%",
            100.0 * share.busy,
            100.0 * share.iowait
        ));
    }
    Ok(SideResult {
        wall,
        notes,
        peak_rss_kib: None,
    })
}

/// sum(abalance) and row counts must be equal on the source and both targets.
fn verify(ctx: &Ctx<'_>) -> Result<String> {
    const SQL: &str = "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || \
         (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || \
         (SELECT count(*) FROM pgbench_history)";
    let want = ctx.tools.query(&ctx.src(), SQL)?;
    let mut problems = Vec::new();
    for db in [FERRY_DB, NATIVE_DB] {
        let got = ctx.tools.query(&ctx.target.conninfo(db), SQL)?;
        if got != want {
            problems.push(format!(
                "{db}: accounts/sum(abalance)/history = {got}, source {want}"
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let parts: Vec<&str> = want.split(' ').collect();
    Ok(format!(
        "pgbench_accounts {} rows, sum(abalance) {}, pgbench_history {} rows on the source, {FERRY_DB} and {NATIVE_DB}",
        parts.first().unwrap_or(&""),
        parts.get(1).unwrap_or(&""),
        parts.get(2).unwrap_or(&"")
    ))
}

/// Drops the subscription (keeping its slot for `ferry abort`), aborts both specs and drops
/// anything left on the source; returns a note for each leftover or failure.
fn teardown(ctx: &Ctx<'_>, round: usize) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let native = ctx.target.conninfo(NATIVE_DB);
    let exists = ctx
        .tools
        .query(
            &native,
            &format!(
                "SELECT count(*) FROM pg_subscription WHERE subname = {}",
                literal(SUBSCRIPTION)
            ),
        )
        .unwrap_or_default();
    if exists == "1" {
        let sub = ident(SUBSCRIPTION);
        for sql in [
            format!("ALTER SUBSCRIPTION {sub} DISABLE"),
            format!("ALTER SUBSCRIPTION {sub} SET (slot_name = NONE)"),
            format!("DROP SUBSCRIPTION {sub}"),
        ] {
            ctx.tools.query(&native, &sql)?;
        }
    }
    // The walsender of a disabled subscription goes away shortly.
    let admin = ctx.source.conninfo("postgres");
    for _ in 0..500 {
        let active = ctx.tools.query_i64(
            &admin,
            "SELECT count(*) FROM pg_replication_slots WHERE active",
        )?;
        if active == 0 {
            break;
        }
        sleep(POLL);
    }
    for spec in [FERRY_SPEC, NATIVE_SPEC] {
        if !ctx.spec(round, spec).is_file() {
            continue;
        }
        let mut abort = ctx.ferry_cmd(round, "abort", spec);
        if let Err(e) = run_logged(
            &mut abort,
            &ctx.log(round, &format!("{spec}-abort")),
            ctx.timeout,
        ) {
            notes.push(format!("`ferry abort` of {spec} failed: {e:#}"));
        }
    }
    notes.extend(ctx.tools.drop_leftovers(&admin, &ctx.src())?);
    Ok(notes)
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2),
    }
}

fn print_report(rounds: &[Round], sync_commit: &str, cache_dropped: Option<bool>) {
    println!();
    let transactions = rounds.first().map_or(0, |r| r.transactions);
    let failed_verify: Vec<&String> = rounds
        .iter()
        .filter_map(|r| r.verified.as_ref().err())
        .collect();
    let ferry: Vec<&SideResult> = rounds
        .iter()
        .filter_map(|r| r.ferry.as_ref().ok())
        .collect();
    let native: Vec<&SideResult> = rounds
        .iter()
        .filter_map(|r| r.native.as_ref().ok())
        .collect();
    let all_ok =
        failed_verify.is_empty() && ferry.len() == rounds.len() && native.len() == rounds.len();
    let tps = |d: Duration| transactions as f64 / d.as_secs_f64();
    println!("{:<36} | {:>9} | {:>9} | notes", "side", "seconds", "tps");
    let rows: [(&str, Vec<&SideResult>, Vec<String>); 2] = [
        (
            "ferry sync --until-caught-up",
            ferry.clone(),
            rounds
                .iter()
                .filter_map(|r| r.ferry.as_ref().err().cloned())
                .collect(),
        ),
        (
            "native subscription",
            native.clone(),
            rounds
                .iter()
                .filter_map(|r| r.native.as_ref().err().cloned())
                .collect(),
        ),
    ];
    let mut medians = Vec::new();
    for (name, results, errors) in &rows {
        let walls: Vec<Duration> = results.iter().map(|r| r.wall).collect();
        let med = median(walls.clone());
        medians.push(med);
        let mut notes: Vec<String> = Vec::new();
        if walls.len() > 1 {
            let all: Vec<String> = walls
                .iter()
                .map(|w| format!("{:.2}", w.as_secs_f64()))
                .collect();
            notes.push(format!("rounds: {} s", all.join(", ")));
        }
        if let Some(last) = results.last() {
            notes.extend(last.notes.iter().cloned());
        }
        if *name == "native subscription" {
            notes.push(format!(
                "subscription synchronous_commit = {sync_commit} (PostgreSQL's default); timed from ENABLE until the slot's confirmed_flush_lsn >= END"
            ));
        } else {
            notes.push("timed from spawn to exit".into());
        }
        for e in errors {
            notes.push(format!("FAILED: {}", e.lines().next().unwrap_or("")));
        }
        match med {
            Some(m) => println!(
                "{:<36} | {:>9.2} | {:>9.0} | {}",
                name,
                m.as_secs_f64(),
                tps(m),
                notes.join("; ")
            ),
            None => println!(
                "{:<36} | {:>9} | {:>9} | {}",
                name,
                "FAILED",
                "",
                notes.join("; ")
            ),
        }
    }
    println!();
    let mb = |f: fn(&Round) -> i64| {
        rounds
            .iter()
            .map(|r| format!("{:.1}", f(r) as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "backlog: {transactions} transactions; WAL from the Ferry slot's start {} MB, from the \
         native slot's {} MB (per round); {} round(s), medians shown",
        mb(|r| r.ferry_bytes),
        mb(|r| r.native_bytes),
        rounds.len()
    );
    println!(
        "page cache: {}",
        match cache_dropped {
            Some(true) => "dropped before each side (both clusters restarted too)",
            Some(false) => "cannot be dropped here: both clusters restarted and the tables read once before each side",
            None => "-",
        }
    );
    for e in &failed_verify {
        println!("verify FAILED: {e}");
    }
    match (medians[0], medians[1]) {
        (Some(f), Some(n)) if all_ok => {
            let ratio = tps(f) / tps(n);
            println!(
                "ferry tps / native tps = {ratio:.2} (target >= {TARGET_RATIO:.2}): {}",
                if ratio >= TARGET_RATIO {
                    "PASS"
                } else {
                    "FAIL"
                }
            );
        }
        _ => println!("ferry tps / native tps: FAILED (a side failed or a copy differs)"),
    }
    match ferry.iter().filter_map(|r| r.peak_rss_kib).max() {
        Some(kib) => println!("ferry peak RSS = {:.0} MB", crate::tools::mb(kib)),
        None => println!("ferry peak RSS = unknown"),
    }
}

/// One long-lived psql session: a query per line in, one unaligned line out.
struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    fn open(tools: &Tools, conninfo: &str) -> Result<Session> {
        let mut child = tools
            .psql(conninfo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start psql")?;
        let stdin = child.stdin.take().context("no psql stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("no psql stdout")?);
        Ok(Session {
            child,
            stdin,
            stdout,
        })
    }

    /// Runs one statement; returns its first output line (a sentinel ends statements without
    /// output).
    fn line(&mut self, sql: &str) -> Result<String> {
        writeln!(self.stdin, "{sql};\nSELECT '<end>';").context("psql session ended")?;
        self.stdin.flush().context("psql session ended")?;
        let mut first = None;
        loop {
            let mut buf = String::new();
            if self.stdout.read_line(&mut buf).context("psql session")? == 0 {
                bail!("psql session ended while running: {sql}");
            }
            let text = buf.trim_end().to_string();
            if text == "<end>" {
                return Ok(first.unwrap_or_default());
            }
            if first.is_none() {
                first = Some(text);
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "\\q");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}
