//! The workflow benchmark (`ferry-bench migrate`): `ferry migrate` of a pgbench database
//! with `pgbench -c 8` writing as an application role through the whole run and
//! `approval = "auto"`. It reports the write-unavailability window (the fence's first
//! change to the target's opening, as Ferry measured it), the transactions that failed
//! because of the fence (pgbench clients whose session the fence ended), the end-to-end
//! time, and checks that every committed pgbench transaction is on the target. No other
//! tool cuts a live database over by itself, so the window is set against the issue's
//! target (1 s), as a ratio. See bench/README.md.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cdc::{verify, Env, EnvArgs};
use crate::pg;
use crate::proc::{log_tail, run_logged_status};

/// The target for the write-unavailability window, seconds.
const TARGET_PAUSE: f64 = 1.0;
const APP_ROLE: &str = "bench_app";
const TARGET_DB: &str = "migrated";
const SPEC: &str = "bench_migrate";

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// `[sync] sustained`: how long the lag must stay under 1 s before the automatic cutover.
    #[arg(long, default_value = "10s")]
    sustained: String,
    /// Throttle pgbench (pgbench -R); by default it runs as fast as the source sustains.
    #[arg(long)]
    rate: Option<u32>,
    #[command(flatten)]
    env: EnvArgs,
}

pub fn run(args: &MigrateArgs) -> Result<()> {
    let env = Env::start(&args.env, "migrate")?;
    env.print_header("ferry migrate under pgbench", args.env.scale);
    env.print_settings();
    env.tools.query(
        &env.src(),
        &format!(
            "CREATE ROLE {APP_ROLE} LOGIN; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}; \
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}"
        ),
    )?;
    pg::recreate_db(&env.tools, &env.target, TARGET_DB)?;
    let spec = env.spec(0, SPEC);
    std::fs::create_dir_all(spec.parent().context("spec without a directory")?)?;
    std::fs::write(
        &spec,
        format!(
            "name = \"{SPEC}\"\n\n[source]\ndsn = \"{}\"\n\n[target]\ndsn = \"{}\"\n\n[copy]\njobs = 2\nmissing_roles = \"create\"\n\n[sync]\nmax_lag = \"1s\"\nsustained = \"{}\"\n\n[cutover]\napproval = \"auto\"\ndrain_timeout = \"2s\"\n",
            env.src(),
            env.target.conninfo(TARGET_DB),
            args.sustained
        ),
    )?;

    let mut load_args = vec![
        "-n".to_owned(),
        "-c".to_owned(),
        args.env.clients.to_string(),
    ];
    load_args.extend([
        "-j".to_owned(),
        "2".to_owned(),
        "-T".to_owned(),
        "36000".to_owned(),
    ]);
    if let Some(r) = args.rate {
        load_args.extend(["-R".to_owned(), r.to_string()]);
    }
    let pgbench_log = env.log(0, "pgbench");
    let mut load = env.pgbench(&load_args);
    load.args(["-U", APP_ROLE]) // the last -U wins: the application role, not Ferry's
        .stdout(Stdio::from(std::fs::File::create(&pgbench_log)?))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&pgbench_log)?,
        ));
    let mut load = load.spawn().context("starting pgbench")?;
    std::thread::sleep(Duration::from_secs(2));

    let started = Instant::now();
    let mut migrate = env.ferry_cmd(0, "migrate", SPEC);
    let log = env.log(0, "migrate");
    let (measured, status) = run_logged_status(&mut migrate, &log, env.timeout)?;
    let end_to_end = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let _ = load.kill();
    let _ = load.wait();
    if !status.success() {
        bail!("ferry migrate failed: {status}\n{}", log_tail(&log, 30));
    }
    let checked = verify(&env, &[TARGET_DB], &[])?;
    let pgbench_text = std::fs::read_to_string(&pgbench_log).unwrap_or_default();
    let aborted = pgbench_text.matches(" aborted in command").count();
    let report_path = spec
        .parent()
        .context("spec without a directory")?
        .join(".ferry")
        .join(SPEC)
        .join("report.json");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&report_path)
            .with_context(|| format!("reading {}", report_path.display()))?,
    )?;
    let pause = report["write_pause_seconds"]
        .as_f64()
        .context("no pause in the report")?;
    let committed = env
        .tools
        .query_i64(&env.src(), "SELECT count(*) FROM pgbench_history")?;

    println!(
        "\nferry migrate, pgbench scale {} with -c {} writing throughout{}",
        args.env.scale,
        args.env.clients,
        args.rate.map_or(String::new(), |r| format!(" (-R {r})"))
    );
    for p in report["phases"].as_array().into_iter().flatten() {
        println!(
            "  {:<10} {:>8.1} s",
            p["phase"].as_str().unwrap_or("?"),
            p["seconds"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!(
        "  end to end (ferry migrate wall): {:.1} s; peak RSS {} MB",
        end_to_end.as_secs_f64(),
        measured
            .first_peak_rss_kib
            .map_or("?".into(), |k| (k / 1024).to_string())
    );
    println!(
        "  committed pgbench transactions: {committed}; target matches the source ({checked})"
    );
    println!(
        "  transactions failed because of the fence: {aborted} (pgbench clients whose session \
         the fence ended; {} ended between transactions, {} inside one)",
        report["sessions_ended"][0], report["sessions_ended"][1]
    );
    println!(
        "  write-unavailability window: {pause:.3} s; vs the target {TARGET_PAUSE:.1} s: {:.2}x {}",
        pause / TARGET_PAUSE,
        if pause < TARGET_PAUSE { "PASS" } else { "FAIL" }
    );
    println!("  lag at cutover: {} s", report["lag_at_cutover_seconds"]);
    println!(
        "logs: {}",
        env.log(0, "")
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}
