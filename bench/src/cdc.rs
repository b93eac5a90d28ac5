//! The change-capture catch-up benchmark (`ferry-bench cdc`): a pgbench backlog held in two
//! slots at the same position, applied by `ferry sync --until-caught-up` and by PostgreSQL's
//! own subscriber (`CREATE SUBSCRIPTION`) into two identical copies on one target cluster.
//! See bench/README.md.

use std::path::PathBuf;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_pg::local_cluster::{ClusterOptions, LocalCluster};

use crate::pg::{self, ident, literal, Session, Tools};
use crate::proc::{self, log_tail, run_logged};

pub(crate) const SOURCE_DB: &str = "bench";
pub(crate) const FERRY_DB: &str = "ferry_t";
pub(crate) const NATIVE_DB: &str = "native_t";
pub(crate) const FERRY_SPEC: &str = "cdcbench";
pub(crate) const NATIVE_SPEC: &str = "cdcnative";
pub(crate) const SUBSCRIPTION: &str = "native";
/// How often the native side's progress is read.
const POLL: Duration = Duration::from_millis(20);
/// The target: Ferry at least this many times the native subscriber's tps.
const TARGET_RATIO: f64 = 2.0;

#[derive(Debug, Args)]
pub struct CdcArgs {
    /// pgbench transactions in the backlog (split evenly over --clients).
    #[arg(long, default_value_t = 100_000)]
    transactions: u64,
    /// Rounds; each round builds a fresh backlog, and Ferry and native alternate who goes first.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    #[command(flatten)]
    env: EnvArgs,
}

/// Options shared by the change-capture benchmarks (`cdc` and `cdc-steady`).
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// pgbench clients (`-c`).
    #[arg(long, default_value_t = 4)]
    pub clients: u32,
    /// pgbench scale of the source database.
    #[arg(long, default_value_t = 10)]
    pub scale: u32,
    /// The ferry binary to benchmark.
    #[arg(long, default_value = "target/release/ferry")]
    pub ferry: PathBuf,
    /// Where each run's logs (and Ferry's specs and state) are kept.
    #[arg(long, default_value = "target/ferry-bench")]
    pub work_dir: PathBuf,
    /// Seconds after which a side (or a setup step) is stopped and reported FAILED.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Keep the local clusters' durability off (fsync, synchronous_commit, full_page_writes).
    #[arg(long)]
    pub no_durability: bool,
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

/// The clusters and files of one run of a change-capture benchmark: a source with a pgbench
/// database, an empty target cluster, the ferry binary and the run's log directory.
pub(crate) struct Env {
    pub tools: Tools,
    pub source: LocalCluster,
    pub target: LocalCluster,
    pub ferry: PathBuf,
    pub run_dir: PathBuf,
    pub timeout: Duration,
    pub settings: Vec<(String, String)>,
}

impl Env {
    /// Starts the source and target clusters (the copy benchmark's settings) and fills the
    /// source: `pgbench -i -s N`, then a primary key on pgbench_history. Logs go to
    /// `work_dir/<kind>-<unix time>/`.
    pub fn start(args: &EnvArgs, kind: &str) -> Result<Env> {
        if args.scale == 0 || args.clients == 0 {
            bail!("--clients and --scale must be at least 1");
        }
        if !args.ferry.is_file() {
            bail!(
                "no ferry binary at {} (build it with `cargo build --release -p ferry`, or pass --ferry)",
                args.ferry.display()
            );
        }
        let ferry = crate::absolute(&args.ferry)?;
        let tools = Tools::find(15)?;
        let run_dir =
            crate::absolute(&args.work_dir)?.join(format!("{kind}-{}", crate::unix_secs()));
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
        let env = Env {
            tools,
            source,
            target,
            ferry,
            run_dir,
            timeout: Duration::from_secs(args.timeout),
            settings,
        };

        env.tools.query(
            &env.source.conninfo("postgres"),
            &format!("CREATE DATABASE {}", ident(SOURCE_DB)),
        )?;
        let mut init = env.pgbench(&[
            "-i".into(),
            "-q".into(),
            "-s".into(),
            args.scale.to_string(),
        ]);
        run_logged(
            &mut init,
            &env.run_dir.join("pgbench-init.log"),
            Duration::MAX,
        )
        .context("pgbench -i failed")?;
        // pgbench_history has no key: give it one (same table for both sides).
        env.tools.query(
            &env.src(),
            "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY",
        )?;
        Ok(env)
    }

    pub fn src(&self) -> String {
        self.source.conninfo(SOURCE_DB)
    }

    /// pgbench with `args` on the source database.
    pub fn pgbench(&self, args: &[String]) -> Command {
        let mut cmd = self.tools.pgbench.command();
        cmd.args(args)
            .args([
                "-h",
                self.source.host(),
                "-p",
                &self.source.port().to_string(),
            ])
            .args(["-U", self.source.superuser(), SOURCE_DB]);
        cmd
    }

    pub fn spec(&self, round: usize, name: &str) -> PathBuf {
        self.run_dir
            .join(format!("r{round}"))
            .join(format!("{name}.toml"))
    }

    pub fn ferry_cmd(&self, round: usize, verb: &str, spec: &str) -> Command {
        let path = self.spec(round, spec);
        let mut cmd = Command::new(&self.ferry);
        if let Some(dir) = path.parent() {
            cmd.current_dir(dir);
        }
        cmd.arg(verb).arg(&path);
        cmd
    }

    pub fn log(&self, round: usize, what: &str) -> PathBuf {
        self.run_dir.join(format!("{what}-r{round}.log"))
    }

    /// The header lines both benchmarks print: title, machine, server, source.
    pub fn print_header(&self, title: &str, scale: u32) {
        println!("== {title}, {} ==", crate::date());
        pg::print_machine_and_server(&self.tools, &self.source);
        println!(
            "source:  pgbench scale {scale} (pgbench_history given `id bigserial PRIMARY KEY`)"
        );
    }

    /// The footer lines of the header: settings and logs.
    pub fn print_settings(&self) {
        let text: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("settings (both clusters): {}", text.join(" "));
        println!("logs:    {}", self.run_dir.display());
        println!();
    }
}

pub fn run(args: &CdcArgs) -> Result<()> {
    if args.repeat == 0 || args.transactions == 0 {
        bail!("--transactions and --repeat must be at least 1");
    }
    let clients = args.env.clients.max(1);
    let per_client = args.transactions.div_ceil(u64::from(clients));
    let ctx = Env::start(&args.env, "cdc")?;

    ctx.print_header("ferry change-capture catch-up benchmark", args.env.scale);
    println!(
        "backlog: pgbench -n -c {clients} -t {per_client} -b tpcb-like ({} transactions) per round, \
         held in both slots with no consumer",
        per_client * u64::from(clients),
    );
    println!("ferry:   {} sync --until-caught-up", ctx.ferry.display());
    println!(
        "native:  CREATE SUBSCRIPTION on the same target cluster, on the slot and publication \
         of a second `ferry copy`"
    );
    ctx.print_settings();

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
                let _ = teardown(&ctx, round, &[FERRY_SPEC, NATIVE_SPEC]);
                return Err(e.context(format!("round {round}")));
            }
        };
        rounds.push(r);
        let notes = teardown(&ctx, round, &[FERRY_SPEC, NATIVE_SPEC])?;
        for n in notes {
            println!("round {round}/{}: note: {n}", args.repeat);
        }
    }
    print_report(&rounds, &sync_commit, cache_dropped);
    Ok(())
}

/// Recreates `db` on the target and runs `ferry copy` of a spec named `spec` from the source
/// into it: slot `ferry_<spec>` and publications of the same name stay on the source.
pub(crate) fn copy_into(ctx: &Env, round: usize, db: &str, spec: &str) -> Result<()> {
    pg::recreate_db(&ctx.tools, &ctx.target, db)?;
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
    Ok(())
}

/// `CREATE SUBSCRIPTION native` (disabled) in `db` on the slot and publication of the copy
/// `spec`, every other option at PostgreSQL's default; returns its `synchronous_commit`.
pub(crate) fn create_subscription(ctx: &Env, db: &str, spec: &str) -> Result<String> {
    let conninfo = ctx.target.conninfo(db);
    ctx.tools.query(
        &conninfo,
        &format!(
            "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (create_slot = false, \
             slot_name = {}, copy_data = false, enabled = false)",
            ident(SUBSCRIPTION),
            literal(&ctx.source.conninfo(SOURCE_DB)),
            ident(&format!("ferry_{spec}")),
            literal(&format!("ferry_{spec}")),
        ),
    )?;
    ctx.tools.query(
        &conninfo,
        &format!(
            "SELECT subsynccommit FROM pg_subscription WHERE subname = {}",
            literal(SUBSCRIPTION)
        ),
    )
}

/// The subscription's apply errors so far (`pg_stat_subscription_stats`), to compare.
pub(crate) fn apply_errors_sql() -> String {
    format!(
        "SELECT apply_error_count FROM pg_stat_subscription_stats WHERE subname = {}",
        literal(SUBSCRIPTION)
    )
}

fn run_round(
    ctx: &Env,
    args: &CdcArgs,
    round: usize,
    per_client: u64,
    cache_dropped: &mut Option<bool>,
    sync_commit: &mut String,
) -> Result<Round> {
    let tools = &ctx.tools;
    let src = ctx.src();
    let prefix = format!("round {round}/{}:", args.repeat);

    // Two identical copies, each with its own slot and publication.
    copy_into(ctx, round, FERRY_DB, FERRY_SPEC)?;
    copy_into(ctx, round, NATIVE_DB, NATIVE_SPEC)?;
    *sync_commit = create_subscription(ctx, NATIVE_DB, NATIVE_SPEC)?;

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
    let mut bench = ctx.pgbench(&[
        "-n".into(),
        "-c".into(),
        args.env.clients.to_string(),
        "-t".into(),
        per_client.to_string(),
        "-b".into(),
        "tpcb-like".into(),
    ]);
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

    let verified = verify(ctx, &[FERRY_DB, NATIVE_DB], &[]).map_err(|e| format!("{e:#}"));
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
fn prepare_side(ctx: &Env, side: Side, cache_dropped: &mut Option<bool>) -> Result<()> {
    pg::checkpoint_and_restart(&ctx.tools, &ctx.source)?;
    pg::checkpoint_and_restart(&ctx.tools, &ctx.target)?;
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

fn run_ferry(ctx: &Env, round: usize) -> Result<SideResult> {
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
fn run_native(ctx: &Env, end: &str) -> Result<SideResult> {
    let mut src = Session::open(&ctx.tools, &ctx.source.conninfo(SOURCE_DB))?;
    let mut tgt = Session::open(&ctx.tools, &ctx.target.conninfo(NATIVE_DB))?;
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
    let errors = apply_errors_sql();
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

/// `count(*)` and `sum(abalance)` of pgbench_accounts, and `count(*)` of pgbench_history and
/// of every table of `extra`, must be equal on the source and in every database of `dbs` on
/// the target.
pub(crate) fn verify(ctx: &Env, dbs: &[&str], extra: &[&str]) -> Result<String> {
    let mut parts = vec![
        "(SELECT count(*) FROM pgbench_accounts)".to_string(),
        "(SELECT sum(abalance) FROM pgbench_accounts)".to_string(),
        "(SELECT count(*) FROM pgbench_history)".to_string(),
    ];
    parts.extend(
        extra
            .iter()
            .map(|t| format!("(SELECT count(*) FROM {})", ident(t))),
    );
    let sql = format!("SELECT {}", parts.join(" || ' ' || "));
    let want = ctx.tools.query(&ctx.src(), &sql)?;
    let mut problems = Vec::new();
    for db in dbs {
        let got = ctx.tools.query(&ctx.target.conninfo(db), &sql)?;
        if got != want {
            problems.push(format!(
                "{db}: accounts/sum(abalance)/history{} = {got}, source {want}",
                extra.iter().map(|t| format!("/{t}")).collect::<String>()
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let values: Vec<&str> = want.split(' ').collect();
    let value = |i: usize| values.get(i).copied().unwrap_or("");
    let mut text = format!(
        "pgbench_accounts {} rows, sum(abalance) {}, pgbench_history {} rows",
        value(0),
        value(1),
        value(2)
    );
    for (i, table) in extra.iter().enumerate() {
        text.push_str(&format!(", {table} {} rows", value(3 + i)));
    }
    let places = match dbs {
        [] => String::new(),
        [one] => format!(" and {one}"),
        [init @ .., last] => format!(", {} and {last}", init.join(", ")),
    };
    Ok(format!("{text} on the source{places}"))
}

/// Drops the subscription (keeping its slot for `ferry abort`), aborts `specs` (those whose
/// spec was written) and drops anything left on the source; returns a note for each leftover
/// or failure.
pub(crate) fn teardown(ctx: &Env, round: usize, specs: &[&str]) -> Result<Vec<String>> {
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
    for &spec in specs {
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
