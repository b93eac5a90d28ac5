//! The copy benchmark: `ferry copy` against pgcopydb, `pg_dump -Fd` + `pg_restore` and
//! `pg_dump | psql`, with the server-side COPY floor, all in one run on the same clusters.
//!
//! One source cluster holds a pgbench database; one target cluster receives each tool's copy in
//! a fresh empty database. Before each tool both clusters are checkpointed and restarted and
//! the OS page cache is dropped (when permitted), so every tool starts equally cold. A tool
//! whose copy does not match the source (row counts, valid indexes, constraints) is FAILED,
//! not timed. See bench/README.md.
//!
//! `ferry-bench cdc` is the change-capture catch-up benchmark instead (see `cdc.rs`),
//! `ferry-bench cdc-steady` the steady-state lag benchmark (see `steady.rs`), and
//! `ferry-bench validate` the validation benchmark (see `validate.rs`).

mod cdc;
mod migrate;
mod pg;
mod proc;
mod report;
mod steady;
mod tools;
mod validate;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ferry_pg::local_cluster::{ClusterOptions, LocalCluster};
use serde_json::json;

use crate::pg::{Expected, Tools};
use crate::proc::run_logged;
use crate::report::Report;
use crate::tools::{Ctx, Kind, Tool};

/// Settings of both clusters: production-like, and the same for every tool.
const SETTINGS: &[(&str, &str)] = &[
    ("shared_buffers", "1GB"),
    ("max_wal_size", "8GB"),
    ("checkpoint_timeout", "30min"),
    ("maintenance_work_mem", "512MB"),
    ("work_mem", "64MB"),
    ("effective_cache_size", "8GB"),
    // A source that holds a slot must bound the WAL it retains (Ferry's preflight warns).
    ("max_slot_wal_keep_size", "20GB"),
];

/// Durability back on (local clusters turn it off for tests), unless `--no-durability`.
const DURABLE: &[(&str, &str)] = &[
    ("fsync", "on"),
    ("synchronous_commit", "on"),
    ("full_page_writes", "on"),
];

const SOURCE_DB: &str = "bench";

/// Busy share of the machine, while nothing of the benchmark runs, worth a warning.
const BUSY_WARNING: f64 = 0.10;

#[derive(Debug, Parser)]
#[command(
    name = "ferry-bench",
    about = "Ferry's benchmarks on throwaway local clusters: `copy` (the default: ferry copy vs \
             pgcopydb vs pg_dump/pg_restore vs pg_dump | psql, plus the server-side COPY floor), \
             `cdc` (change-capture catch-up: ferry sync vs a native subscription), \
             `cdc-steady` (change-capture lag under a steady load) and `validate` (ferry \
             validate vs reladiff vs a naive hash query)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Mode>,
    /// Without a subcommand: the copy benchmark with these options.
    #[command(flatten)]
    copy: Args,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// The copy benchmark (the default when no subcommand is given).
    Copy(Args),
    /// The change-capture catch-up benchmark: a pgbench backlog held in two slots, applied by
    /// `ferry sync --until-caught-up` and by a native `CREATE SUBSCRIPTION`.
    Cdc(cdc::CdcArgs),
    /// The change-capture steady-state benchmark: pgbench as fast as the source sustains while
    /// `ferry sync` applies live (then a native subscription); heartbeat lag p50/p99 and
    /// Ferry's peak RSS.
    CdcSteady(steady::SteadyArgs),
    /// The validation benchmark: `ferry validate` of pgbench_accounts between two identical
    /// clusters against reladiff and a naive hash query per side, clean and with 10 changed
    /// rows; the source's probe latency meanwhile.
    Validate(validate::ValidateArgs),
    /// The workflow benchmark: `ferry migrate` with pgbench -c 8 writing throughout and an
    /// automatic cutover; the write-unavailability window, the transactions the fence failed,
    /// the end-to-end time.
    Migrate(migrate::MigrateArgs),
}

#[derive(Debug, clap::Args)]
struct Args {
    /// pgbench scale of the source database (100 is about 1.5 GB).
    #[arg(long, default_value_t = 100)]
    scale: u32,
    /// The ferry binary to benchmark.
    #[arg(long, default_value = "target/release/ferry")]
    ferry: PathBuf,
    /// Parallel jobs given to every tool.
    #[arg(long, default_value_t = 2)]
    jobs: u32,
    /// Rounds of every tool; each row reports the median.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Comma-separated tools to run: ferry, pgcopydb, pg_dump-dir, pg_dump-psql, floor.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ferry,pgcopydb,pg_dump-dir,pg_dump-psql,floor"
    )]
    tools: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where each run's logs (and Ferry's spec and state) are kept.
    #[arg(long, default_value = "target/ferry-bench")]
    work_dir: PathBuf,
    /// Seconds after which a tool is killed and reported FAILED.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Keep the local clusters' durability off (fsync, synchronous_commit, full_page_writes).
    #[arg(long)]
    no_durability: bool,
    /// pgcopydb's --split-tables-larger-than: same-table concurrency for tables larger than
    /// this; `none` (the default, like Ferry's and pgcopydb's own) turns it off. Pair it with
    /// `--ferry-copy 'split_tables_larger_than = "1GB"'` to compare split copies.
    #[arg(long, default_value = "none")]
    pgcopydb_split: String,
    /// An extra `key = value` line for the `[copy]` table of Ferry's spec (repeatable), e.g.
    /// `--ferry-copy 'split_tables_larger_than = "100GB"'`.
    #[arg(long = "ferry-copy", value_name = "LINE")]
    ferry_copy: Vec<String>,
    /// The pgcopydb binary.
    #[arg(long, default_value = "pgcopydb")]
    pgcopydb: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => run(&cli.copy),
        Some(Mode::Copy(args)) => run(args),
        Some(Mode::Cdc(args)) => cdc::run(args),
        Some(Mode::CdcSteady(args)) => steady::run(args),
        Some(Mode::Validate(args)) => validate::run(args),
        Some(Mode::Migrate(args)) => migrate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let selected = selected_tools(&args.tools)?;
    if args.repeat == 0 || args.jobs == 0 || args.scale == 0 {
        bail!("--scale, --jobs and --repeat must be at least 1");
    }
    if selected.contains(&Tool::Ferry) && !args.ferry.is_file() {
        bail!(
            "no ferry binary at {} (build it with `cargo build --release -p ferry`, or pass \
             --ferry, or leave ferry out of --tools)",
            args.ferry.display()
        );
    }
    let ferry = absolute(&args.ferry)?;
    let tools = Tools::find(15)?;
    let run_dir = absolute(&args.work_dir)?.join(format!("run-{}", unix_secs()));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;

    let settings = cluster_settings(args.no_durability);
    let options = |name: &str| ClusterOptions {
        major: None,
        settings: settings.clone(),
        name: name.into(),
    };
    let source = LocalCluster::start(&options("bench-src")).context("starting the source")?;
    let target = LocalCluster::start(&options("bench-tgt")).context("starting the target")?;

    // Large scratch files go where the clusters' OS user can write (server-side COPY).
    let scratch = tempfile::Builder::new()
        .prefix("ferry-bench-")
        .tempdir()
        .context("cannot create a scratch directory")?;
    let (uid, gid) = pg::owner(source.data_dir())?;
    std::os::unix::fs::chown(scratch.path(), Some(uid), Some(gid))
        .with_context(|| format!("cannot chown {}", scratch.path().display()))?;

    // The source: pgbench -i.
    let src_admin = source.conninfo("postgres");
    tools.query(
        &src_admin,
        &format!("CREATE DATABASE {}", pg::ident(SOURCE_DB)),
    )?;
    println!(
        "ferry-bench: pgbench -i -s {} into the source (logs in {})",
        args.scale,
        run_dir.display()
    );
    let mut init = tools.pgbench.command();
    init.args(["-i", "-q", "-s", &args.scale.to_string()])
        .args(["-h", source.host(), "-p", &source.port().to_string()])
        .args(["-U", source.superuser(), SOURCE_DB]);
    let init_time = run_logged(&mut init, &run_dir.join("pgbench-init.log"), Duration::MAX)
        .context("pgbench -i failed")?
        .wall;
    let src = source.conninfo(SOURCE_DB);
    let expected = Expected::read(&tools, &src)?;
    let size = tools.query_i64(&src, "SELECT pg_database_size(current_database())")?;

    let pgcopydb_version = pg::tool_version(Command::new(&args.pgcopydb));
    let header = json!({
        "date": date(),
        "scale": args.scale,
        "jobs": args.jobs,
        "repeat": args.repeat,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory": mem_total(),
        "server": pg::server_version(&tools, &source),
        "pg_dump": format!("{} ({})", tools.pg_dump.path.display(), pg::tool_version(tools.pg_dump.command())),
        "pg_restore": tools.pg_restore.path.display().to_string(),
        "psql": tools.psql.path.display().to_string(),
        "pgcopydb": pgcopydb_version,
        "ferry": ferry.display().to_string(),
        "settings": settings.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "source_db_bytes": size,
        "source_init_seconds": init_time.as_secs_f64(),
        "tables": expected.tables.iter().map(|(t, n)| json!({"table": t, "rows": n})).collect::<Vec<_>>(),
        "logs": run_dir.display().to_string(),
    });
    print_header(&header, &expected);

    let mut report = Report::default();
    let mut cache_dropped = None;
    for round in 1..=args.repeat {
        for &tool in &selected {
            let db = tool.target_db();
            pg::recreate_db(&tools, &target, &db)?;
            pg::checkpoint_and_restart(&tools, &source)?;
            pg::checkpoint_and_restart(&tools, &target)?;
            let dropped = pg::drop_page_cache();
            if !dropped {
                // Not permitted: warm the source's files instead, equally for every tool.
                for (table, _) in &expected.tables {
                    tools.query(
                        &src,
                        &format!("SELECT count(*) FROM public.{}", pg::ident(table)),
                    )?;
                }
            }
            if cache_dropped.is_none() {
                cache_dropped = Some(dropped);
                println!(
                    "page cache: {}",
                    if dropped {
                        "dropped before each tool (cold start; both clusters restarted too)"
                    } else {
                        "cannot be dropped here: the source is read once before each tool (warm)"
                    }
                );
            }
            let idle = proc::idle_check(Duration::from_secs(1));
            let ctx = Ctx {
                tools: &tools,
                source: &source,
                target: &target,
                source_db: SOURCE_DB,
                expected: &expected,
                run_dir: &run_dir,
                scratch: scratch.path(),
                jobs: args.jobs,
                timeout: Duration::from_secs(args.timeout),
                ferry: &ferry,
                pgcopydb: &args.pgcopydb,
                pgcopydb_split: Some(args.pgcopydb_split.as_str())
                    .filter(|s| !s.is_empty() && *s != "none" && *s != "0"),
                ferry_copy_settings: &args.ferry_copy,
                round,
            };
            print!("round {round}/{}: {:<13} ", args.repeat, tool.key());
            let result = tools::run(&ctx, tool);
            match result {
                Ok(samples) => {
                    let main = samples
                        .iter()
                        .find(|s| s.row == tools::label(args.jobs, tool))
                        .map_or(Duration::ZERO, |s| s.wall);
                    println!("{} s", report::seconds(main));
                    for mut s in samples {
                        if let Some(share) = idle.filter(|i| i.busy > BUSY_WARNING) {
                            s.notes.push(format!(
                                "WARNING: machine {:.0}% busy just before the start",
                                100.0 * share.busy
                            ));
                        }
                        report.add(s);
                    }
                }
                Err(e) => {
                    println!("FAILED");
                    let kind = match tool {
                        Tool::Ferry => Kind::Ferry,
                        Tool::Floor => Kind::Floor,
                        _ => Kind::Peer,
                    };
                    report.fail(&tools::label(args.jobs, tool), kind, format!("{e:#}"));
                }
            }
            pg::drop_db(&tools, &target, &db)?;
        }
    }

    println!();
    report.print();
    if let Some(path) = &args.json {
        let mut value = report.to_json(header);
        value["run"]["page_cache_dropped"] = json!(cache_dropped);
        let text = serde_json::to_string_pretty(&value)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// The settings of both clusters (of either benchmark).
fn cluster_settings(no_durability: bool) -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> = SETTINGS
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    if !no_durability {
        settings.extend(
            DURABLE
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
    }
    settings
}

fn selected_tools(keys: &[String]) -> Result<Vec<Tool>> {
    let mut selected = Vec::new();
    for key in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        let Some(tool) = Tool::parse(key) else {
            let known: Vec<&str> = Tool::ALL.iter().map(|t| t.key()).collect();
            bail!("unknown tool {key:?} (known: {})", known.join(", "));
        };
        if !selected.contains(&tool) {
            selected.push(tool);
        }
    }
    // Always in the canonical order.
    selected.sort_by_key(|t| Tool::ALL.iter().position(|a| a == t));
    if selected.is_empty() {
        bail!("--tools names no tool");
    }
    Ok(selected)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("cannot read the current directory")?
        .join(path))
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("unix {}", unix_secs()))
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn print_header(h: &serde_json::Value, expected: &Expected) {
    let s = |k: &str| h[k].as_str().unwrap_or("").to_string();
    println!("== ferry copy benchmark, {} ==", s("date"));
    println!("machine: {} cores, {} memory", h["cores"], s("memory"));
    println!(
        "server:  {} (source and target, one cluster each)",
        s("server")
    );
    println!(
        "source:  pgbench scale {}, {:.0} MB, initialised in {:.1} s",
        h["scale"],
        h["source_db_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        h["source_init_seconds"].as_f64().unwrap_or(0.0)
    );
    let tables: Vec<String> = expected
        .tables
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    println!(
        "         {}; {} indexes, {} constraints",
        tables.join(", "),
        expected.indexes,
        expected.constraints
    );
    println!("jobs:    {} for every tool", h["jobs"]);
    println!("tools:   ferry {}", s("ferry"));
    println!("         {}", s("pg_dump"));
    println!("         {}, {}", s("pg_restore"), s("psql"));
    println!(
        "         {} (uses the pg_dump of its own PostgreSQL)",
        s("pgcopydb")
    );
    let settings: Vec<String> = h["settings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    println!("settings (both clusters): {}", settings.join(" "));
    println!("logs:    {}", s("logs"));
    println!();
}
