use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Ferry moves a live PostgreSQL database to another cluster with no lost data.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug). FERRY_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The migration's spec (TOML).
    pub spec: PathBuf,

    /// State directory (default: .ferry/<name> beside the spec).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the preflight checks only; create nothing.
    Check {
        #[command(flatten)]
        spec: SpecArgs,
        /// Accept a target that already holds user tables.
        #[arg(long)]
        allow_nonempty_target: bool,
    },
    /// Copy the schema and data of the source into the target inside one snapshot,
    /// resumably; creates the slot change capture starts from.
    Copy {
        #[command(flatten)]
        spec: SpecArgs,
        /// Accept a target that already holds user tables (Ferry still never writes into
        /// tables it did not create).
        #[arg(long)]
        allow_nonempty_target: bool,
        /// Drop the earlier run (its slot, publications, snapshot and what it restored on the
        /// target) and start over: the way on when its snapshot or slot is gone.
        #[arg(long)]
        restart: bool,
        /// After the copy, compare every table's row count (source in the snapshot).
        #[arg(long)]
        verify: bool,
    },
    /// Carry the source's changes to the target from the copy's slot, in commit order, exactly
    /// once; Ctrl-C stops cleanly and a new `ferry sync` resumes.
    Sync {
        #[command(flatten)]
        spec: SpecArgs,
        /// Stop once every change committed on the source before the start is applied.
        #[arg(long)]
        until_caught_up: bool,
        /// When a connection to either side breaks (restart, failover, network), retry with
        /// backoff (0.5 s doubling to 30 s) for this long before giving up; 0s never retries.
        #[arg(long, value_name = "DURATION", default_value = "5min", value_parser = ferry_spec::parse_duration)]
        retry_for: std::time::Duration,
        /// Online validation: the share of applied rows read back from the target right
        /// after their group commits and compared with what was applied (0 turns it off).
        #[arg(long, value_name = "FRACTION", default_value_t = 0.001, value_parser = parse_fraction)]
        verify_sample: f64,
    },
    /// Prove both sides hold the same rows: hashes of key ranges computed in both databases,
    /// differing ranges bisected down to the rows. Exit 0 when equal, 4 when different.
    Validate {
        #[command(flatten)]
        spec: SpecArgs,
        /// Only tables matching these patterns (`schema.table`, `*` and `?` wildcards;
        /// repeat or separate with commas).
        #[arg(long, value_name = "PATTERN")]
        tables: Vec<String>,
        /// Print the report as JSON (each difference with table, key, columns, both values).
        #[arg(long)]
        json: bool,
        /// Concurrent queries per side.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Hash at most this many rows per second on each side (the throttle).
        #[arg(long, value_name = "ROWS")]
        rows_per_second: Option<u64>,
        /// How long rows that differ because they keep changing on the source are re-checked
        /// before they are reported unsettled.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = ferry_spec::parse_duration)]
        settle_for: std::time::Duration,
        /// Without change capture of this migration on the target (no fence), how long to
        /// wait before a differing row is read again: raise it when another tool replicates
        /// into the target, to at least its lag.
        #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = ferry_spec::parse_duration)]
        recheck_after: std::time::Duration,
        /// Name at most about this many differing rows per table; further differing key
        /// ranges are counted (`more_differences`), not fetched.
        #[arg(long, value_name = "ROWS", default_value_t = 1000)]
        max_differences: usize,
        /// While `ferry sync` runs, how long a target read waits for it to apply what the
        /// source showed; past it, change capture is taken to be stopped and the rest is
        /// reported unsettled.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = ferry_spec::parse_duration)]
        wait_for_sync: std::time::Duration,
    },
    /// Run the whole migration as a durable workflow: check, copy, change capture,
    /// validation, the ready gate, cutover. Resumes where it stopped; runs until cut over.
    Migrate {
        #[command(flatten)]
        spec: SpecArgs,
        /// Accept a target that already holds user tables.
        #[arg(long)]
        allow_nonempty_target: bool,
        /// Online validation: the share of applied rows read back from the target.
        #[arg(long, value_name = "FRACTION", default_value_t = 0.001, value_parser = parse_fraction)]
        verify_sample: f64,
        /// How long change capture retries broken connections before giving up.
        #[arg(long, value_name = "DURATION", default_value = "5min", value_parser = ferry_spec::parse_duration)]
        retry_for: std::time::Duration,
    },
    /// Approve the cutover of the running `ferry migrate` (with `[cutover] approval =
    /// "manual"`); exits 0 once the target is open.
    Cutover {
        #[command(flatten)]
        spec: SpecArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Send users back to the source: the fence lifted, Ferry's slot and publications
    /// removed; the target is left for inspection.
    Rollback {
        #[command(flatten)]
        spec: SpecArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// After a cutover: drop Ferry's slot and publications on the source, write the report.
    Finalize {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Show where a migration stands.
    Status {
        #[command(flatten)]
        spec: SpecArgs,
        /// Machine-readable output (fields documented in docs/status-json.md).
        #[arg(long)]
        json: bool,
    },
    /// Remove everything Ferry created on the source for this migration (slot, publications).
    Abort {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Start two local clusters, load pgbench plus varied types, copy under live writes,
    /// verify, clean up.
    Demo {
        /// pgbench scale factor of the demo database.
        #[arg(long, default_value_t = 10)]
        scale: u32,
        /// Keep the clusters running at the end (prints how to reach them).
        #[arg(long)]
        keep: bool,
    },
    /// Internal: holds the copy's exported snapshot (started by `ferry copy`).
    #[command(hide = true, name = "__snapshot-holder")]
    SnapshotHolder {
        #[command(flatten)]
        spec: SpecArgs,
    },
}

/// A share between 0 and 1.
fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "`{s}` is not a fraction between 0 and 1 (like 0.01)"
        )),
    }
}
