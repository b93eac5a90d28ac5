//! The validation benchmark (`ferry-bench validate`): `ferry validate` of pgbench_accounts
//! between two identical clusters, against reladiff (the maintained fork of data-diff) and one
//! naive full-table hash query per side, on the clean pair and again with scattered row
//! differences on the target, while a probe measures the source's query latency. See
//! bench/README.md.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{sleep, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_pg::local_cluster::{ClusterOptions, LocalCluster};
use serde_json::Value;

use crate::pg::{self, ident, Tools};
use crate::proc::{self, describe, log_tail, run_logged};
use crate::report::Row;
use crate::tools::{mb, Kind};

const DB: &str = "bench";
const TABLE: &str = "pgbench_accounts";
/// Rows changed on the target for the dirty runs.
const DIFFERENCES: u64 = 10;
/// The targets: Ferry at most this fraction of reladiff's time on the clean pair...
const RATIO_TARGET: f64 = 0.50;
/// ... and finding the differences costs less than this many clean runs.
const DIRTY_TARGET: f64 = 1.50;
/// `ferry validate`'s exit status when the tables differ (0: equal).
const FERRY_DIFFERENT: i32 = 4;
/// One probe query on the source every this often.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// The quiet probe period before every timed run.
const BASELINE: Duration = Duration::from_secs(5);
/// How often a running contender is polled (exit, peak RSS, CPU).
const POLL: Duration = Duration::from_millis(10);
/// One hash of every row, summed (order-independent), per side.
const NAIVE_SQL: &str = "SELECT count(*) || ' ' || sum(hashtextextended(t::text, 0)) \
                         FROM pgbench_accounts t";

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// pgbench scale of both clusters (100 is 10M rows in pgbench_accounts).
    #[arg(long, default_value_t = 100)]
    scale: u32,
    /// Concurrent queries per side: ferry validate's --jobs and reladiff's --threads.
    #[arg(long, default_value_t = 2)]
    jobs: u32,
    /// Rounds; each row reports the median.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// After the report, keep both clusters running until Enter is pressed.
    #[arg(long)]
    keep: bool,
    /// Leave Ferry out (reladiff and the naive query only).
    #[arg(long)]
    skip_ferry: bool,
    /// The ferry binary to benchmark.
    #[arg(long, default_value = "target/release/ferry")]
    ferry: PathBuf,
    /// The reladiff executable (scripts/setup.sh installs it into a venv in .pg/reladiff).
    #[arg(long, default_value = ".pg/reladiff/bin/reladiff")]
    reladiff: PathBuf,
    /// Where each run's logs (and Ferry's spec) are kept.
    #[arg(long, default_value = "target/ferry-bench")]
    work_dir: PathBuf,
    /// Seconds after which a contender is killed and reported FAILED.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Naive,
    Ferry,
    Reladiff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// The identical pair, cold: both clusters restarted and the page cache dropped first.
    Clean,
    /// The identical pair with warm caches, while a probe measures the source's latency.
    Probed,
    /// Cold, like `Clean`, with [`DIFFERENCES`] rows changed on the target.
    Dirty,
}

/// The clusters and settings of one run.
struct Bench {
    tools: Tools,
    source: LocalCluster,
    target: LocalCluster,
    ferry: Option<PathBuf>,
    reladiff: PathBuf,
    jobs: u32,
    rows: u64,
    run_dir: PathBuf,
    spec: PathBuf,
    timeout: Duration,
}

/// One timed run of one contender.
struct Timed {
    wall: Duration,
    peak_rss_kib: Option<u64>,
    notes: Vec<String>,
}

pub fn run(args: &ValidateArgs) -> Result<()> {
    if args.scale == 0 || args.jobs == 0 || args.repeat == 0 {
        bail!("--scale, --jobs and --repeat must be at least 1");
    }
    let ferry = if args.skip_ferry {
        None
    } else if args.ferry.is_file() {
        Some(crate::absolute(&args.ferry)?)
    } else {
        bail!(
            "no ferry binary at {} (build it with `cargo build --release -p ferry`, pass \
             --ferry, or --skip-ferry)",
            args.ferry.display()
        );
    };
    if !args.reladiff.is_file() {
        bail!(
            "no reladiff at {} (scripts/setup.sh installs it; or pass --reladiff)",
            args.reladiff.display()
        );
    }
    let bench = Bench::start(args, ferry)?;
    bench.print_header(args)?;

    let keys = diff_keys(bench.rows);
    let mut rows: Vec<Row> = Vec::new();
    let mut probes: Vec<(String, Vec<f64>)> = vec![("quiet, warm".into(), Vec::new())];
    for round in 1..=args.repeat {
        for pass in [Pass::Clean, Pass::Probed, Pass::Dirty] {
            if pass == Pass::Dirty {
                bench.change_target(&keys, 1)?;
            }
            for c in [Contender::Naive, Contender::Ferry, Contender::Reladiff] {
                if (c == Contender::Ferry && bench.ferry.is_none())
                    || (c == Contender::Naive && pass == Pass::Dirty)
                {
                    continue;
                }
                let label = bench.label(c, pass);
                print!("round {round}/{}: {label:<48} ", args.repeat);
                std::io::stdout().flush().ok();
                let result = if pass == Pass::Probed {
                    let (result, quiet, during) = bench.probed(c, &keys, round)?;
                    probes[0].1.extend(quiet);
                    add_probe(&mut probes, &label, during);
                    result
                } else {
                    bench.cold(c, pass, &keys, round)?
                };
                let row = row(&mut rows, &label, c);
                match result {
                    Ok(t) => {
                        println!("{:.2} s", t.wall.as_secs_f64());
                        row.samples.push(t.wall);
                        row.sample_notes.push(t.notes);
                        if let Some(kib) = t.peak_rss_kib {
                            row.peak_rss_kib = Some(row.peak_rss_kib.map_or(kib, |p| p.max(kib)));
                        }
                    }
                    Err(e) => {
                        println!("FAILED");
                        println!("  {}", format!("{e:#}").replace('\n', "\n  "));
                        // The naive query is also the check that the clean pair is identical.
                        if c == Contender::Naive {
                            return Err(e.context("the naive check of the clean pair failed"));
                        }
                        row.failures.push(format!("{e:#}"));
                    }
                }
            }
            if pass == Pass::Dirty {
                bench.change_target(&keys, -1)?;
            }
        }
    }
    print_report(&bench, &rows, &probes);
    if args.keep {
        println!();
        println!("--keep: the clusters run until you press Enter (ferry-bench removes them then):");
        println!("  source: psql '{}'", bench.source.conninfo(DB));
        println!("  target: psql '{}'", bench.target.conninfo(DB));
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    Ok(())
}

impl Bench {
    /// Starts both clusters and loads the same `pgbench -i -s N` into each (concurrently).
    fn start(args: &ValidateArgs, ferry: Option<PathBuf>) -> Result<Bench> {
        let tools = Tools::find(15)?;
        let run_dir =
            crate::absolute(&args.work_dir)?.join(format!("validate-{}", crate::unix_secs()));
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("cannot create {}", run_dir.display()))?;
        let options = |name: &str| ClusterOptions {
            major: None,
            settings: crate::cluster_settings(false),
            name: name.into(),
        };
        let source = LocalCluster::start(&options("val-src")).context("starting the source")?;
        let target = LocalCluster::start(&options("val-tgt")).context("starting the target")?;
        let spec = run_dir.join("bench-validate.toml");
        std::fs::write(
            &spec,
            format!(
                "name = \"bench-validate\"\n\n[source]\ndsn = \"{}\"\n\n[target]\ndsn = \"{}\"\n",
                source.conninfo(DB),
                target.conninfo(DB)
            ),
        )
        .with_context(|| format!("cannot write {}", spec.display()))?;
        let bench = Bench {
            tools,
            source,
            target,
            ferry,
            reladiff: crate::absolute(&args.reladiff)?,
            jobs: args.jobs,
            rows: u64::from(args.scale) * 100_000,
            run_dir,
            spec,
            timeout: Duration::from_secs(args.timeout),
        };

        println!(
            "ferry-bench: pgbench -i -s {} into both clusters (logs in {})",
            args.scale,
            bench.run_dir.display()
        );
        let load = |cluster: &LocalCluster, side: &str| -> Result<()> {
            bench.tools.query(
                &cluster.conninfo("postgres"),
                &format!("CREATE DATABASE {}", ident(DB)),
            )?;
            let mut init = bench.tools.pgbench.command();
            init.args(["-i", "-q", "-s", &args.scale.to_string()])
                .args(["-h", cluster.host(), "-p", &cluster.port().to_string()])
                .args(["-U", cluster.superuser(), DB]);
            let log = bench.run_dir.join(format!("pgbench-init-{side}.log"));
            run_logged(&mut init, &log, Duration::MAX)
                .with_context(|| format!("pgbench -i on the {side}"))?;
            // To warm the caches before the probed runs.
            bench
                .tools
                .query(&cluster.conninfo(DB), "CREATE EXTENSION pg_prewarm")?;
            Ok(())
        };
        std::thread::scope(|s| {
            let src = s.spawn(|| load(&bench.source, "source"));
            let tgt = load(&bench.target, "target");
            src.join()
                .map_err(|_| anyhow::anyhow!("the source's load panicked"))?
                .and(tgt)
        })?;
        Ok(bench)
    }

    fn src(&self) -> String {
        self.source.conninfo(DB)
    }

    fn tgt(&self) -> String {
        self.target.conninfo(DB)
    }

    fn url(cluster: &LocalCluster) -> String {
        format!(
            "postgresql://{}@{}:{}/{DB}",
            cluster.superuser(),
            cluster.host(),
            cluster.port()
        )
    }

    fn reladiff_cmd(&self) -> Command {
        let mut cmd = Command::new(&self.reladiff);
        cmd.arg(Self::url(&self.source))
            .arg(TABLE)
            .arg(Self::url(&self.target))
            .arg(TABLE)
            .args(["-k", "aid", "-c", "bid", "-c", "abalance", "-c", "filler"])
            .args(["--threads", &self.jobs.to_string()]);
        cmd
    }

    fn ferry_cmd(&self, ferry: &Path) -> Command {
        let mut cmd = Command::new(ferry);
        cmd.current_dir(&self.run_dir)
            .arg("validate")
            .arg(&self.spec)
            .args(["--tables", &format!("public.{TABLE}"), "--json"])
            .args(["--jobs", &self.jobs.to_string()]);
        cmd
    }

    fn label(&self, c: Contender, pass: Pass) -> String {
        let name = match c {
            Contender::Naive => "naive hash query per side".to_string(),
            Contender::Ferry => "ferry validate".to_string(),
            Contender::Reladiff => format!("reladiff --threads {}", self.jobs),
        };
        match pass {
            Pass::Clean => format!("{name} (clean)"),
            Pass::Probed => format!("{name} (clean, warm, probed)"),
            Pass::Dirty => format!("{name} ({DIFFERENCES} differences)"),
        }
    }

    fn print_header(&self, args: &ValidateArgs) -> Result<()> {
        println!("== ferry validate benchmark, {} ==", crate::date());
        pg::print_machine_and_server(&self.tools, &self.source);
        let bytes = self.tools.query_i64(
            &self.src(),
            &format!("SELECT pg_table_size({})", pg::literal(TABLE)),
        )?;
        println!(
            "table:   public.{TABLE}, {} rows, {:.0} MB on each side (pgbench -i -s {}, \
             identical on both)",
            self.rows,
            bytes as f64 / 1e6,
            args.scale
        );
        match &self.ferry {
            Some(f) => println!(
                "ferry:   {}",
                describe(&self.ferry_cmd(f)).replace(&self.run_dir.display().to_string(), ".")
            ),
            None => println!("ferry:   skipped (--skip-ferry)"),
        }
        println!(
            "reladiff: {} ({})",
            describe(&self.reladiff_cmd()),
            pg::tool_version(Command::new(&self.reladiff))
        );
        let plan = self
            .tools
            .query(&self.src(), &format!("EXPLAIN (COSTS OFF) {NAIVE_SQL}"))?;
        let workers = plan
            .lines()
            .find_map(|l| l.trim().strip_prefix("Workers Planned:"))
            .map_or("no parallel workers".into(), |w| {
                format!("{} parallel workers planned", w.trim())
            });
        println!("naive:   `{NAIVE_SQL}` on both sides at once ({workers} per side)");
        println!(
            "dirty:   abalance + 1 on the target at aid {}",
            diff_keys(self.rows)
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "probe:   one `SELECT abalance FROM {TABLE} WHERE aid = <random>` on the source every \
             {} ms (psql \\timing) in the probed runs: {} s quiet, then during the run",
            PROBE_EVERY.as_millis(),
            BASELINE.as_secs()
        );
        let settings: Vec<String> = crate::cluster_settings(false)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("settings (both clusters): {}", settings.join(" "));
        println!(
            "page cache: clean and dirty runs start cold (both clusters restarted, page cache \
             dropped where permitted); probed runs warm (table and key read by pg_prewarm)"
        );
        println!("logs:    {}", self.run_dir.display());
        println!();
        Ok(())
    }

    /// Adds `delta` to abalance of `keys` on the target, then VACUUMs it.
    fn change_target(&self, keys: &[u64], delta: i32) -> Result<()> {
        let list: Vec<String> = keys.iter().map(u64::to_string).collect();
        let changed = self.tools.query_i64(
            &self.tgt(),
            &format!(
                "WITH u AS (UPDATE {TABLE} SET abalance = abalance + ({delta}) \
                 WHERE aid IN ({}) RETURNING 1) SELECT count(*) FROM u",
                list.join(", ")
            ),
        )?;
        if changed != keys.len() as i64 {
            bail!(
                "changed {changed} rows on the target, expected {}",
                keys.len()
            );
        }
        self.tools
            .query(&self.tgt(), &format!("VACUUM (ANALYZE) {TABLE}"))?;
        Ok(())
    }

    /// Restarts both clusters and drops the page cache, then runs and checks the contender.
    /// The outer error is the machinery's, the inner one the contender's.
    fn cold(&self, c: Contender, pass: Pass, keys: &[u64], round: usize) -> Result<Result<Timed>> {
        pg::checkpoint_and_restart(&self.tools, &self.source)?;
        pg::checkpoint_and_restart(&self.tools, &self.target)?;
        let dropped = pg::drop_page_cache();
        let idle = proc::idle_check(Duration::from_secs(1));
        let result = self.contender(c, pass, keys, round);
        Ok(result.map(|mut t| {
            if !dropped {
                t.notes
                    .push("page cache not dropped (not permitted)".into());
            }
            busy_warning(&mut t, idle);
            t
        }))
    }

    /// Reads the table and its primary key on both sides into the page cache, probes the
    /// quiet source for [`BASELINE`], then runs and checks the contender while probing on.
    /// Returns the run's outcome and the probe latencies (ms) before and during it.
    fn probed(
        &self,
        c: Contender,
        keys: &[u64],
        round: usize,
    ) -> Result<(Result<Timed>, Vec<f64>, Vec<f64>)> {
        for conninfo in [self.src(), self.tgt()] {
            self.tools.query(
                &conninfo,
                &format!(
                    "SELECT pg_prewarm('{TABLE}', 'read') + pg_prewarm('{TABLE}_pkey', 'read')"
                ),
            )?;
        }
        let idle = proc::idle_check(Duration::from_secs(1));
        let probe = Probe::start(&self.tools, &self.src(), self.rows)?;
        sleep(BASELINE);
        let quiet = probe.take();
        let result = self.contender(c, Pass::Probed, keys, round);
        let during = probe.stop()?;
        let result = result.map(|mut t| {
            busy_warning(&mut t, idle);
            t
        });
        Ok((result, quiet, during))
    }

    fn contender(&self, c: Contender, pass: Pass, keys: &[u64], round: usize) -> Result<Timed> {
        let name = format!(
            "{}-{}-r{round}",
            match c {
                Contender::Naive => "naive",
                Contender::Ferry => "ferry",
                Contender::Reladiff => "reladiff",
            },
            match pass {
                Pass::Clean => "clean",
                Pass::Probed => "probed",
                Pass::Dirty => "dirty",
            }
        );
        let dirty = pass == Pass::Dirty;
        match c {
            Contender::Naive => self.naive(&name),
            Contender::Ferry => self.ferry(&name, dirty, keys),
            Contender::Reladiff => self.reladiff(&name, dirty, keys),
        }
    }

    fn naive(&self, name: &str) -> Result<Timed> {
        let outs = [
            self.run_dir.join(format!("{name}-source.out")),
            self.run_dir.join(format!("{name}-target.out")),
        ];
        let mut cmds = [self.src(), self.tgt()].map(|conninfo| {
            let mut cmd = self.tools.psql(&conninfo);
            cmd.args(["-c", NAIVE_SQL]);
            cmd
        });
        let log = self.run_dir.join(format!("{name}.log"));
        let ran = run_captured(&mut cmds, &outs, &log, self.timeout)?;
        ran.check_success(&log)?;
        let [src, tgt] = outs.map(|o| std::fs::read_to_string(o).unwrap_or_default());
        let (src, tgt) = (src.trim(), tgt.trim());
        if src.is_empty() || src != tgt {
            bail!("count and hash sum differ: source {src:?}, target {tgt:?}");
        }
        let mut notes = vec![format!("count and hash sum equal: {src}")];
        notes.extend(ran.notes(None));
        Ok(Timed {
            wall: ran.wall,
            peak_rss_kib: None,
            notes,
        })
    }

    fn ferry(&self, name: &str, dirty: bool, keys: &[u64]) -> Result<Timed> {
        let ferry = self.ferry.as_deref().context("ferry is skipped")?;
        let out = self.run_dir.join(format!("{name}.json"));
        let log = self.run_dir.join(format!("{name}.log"));
        let ran = run_captured(
            &mut [self.ferry_cmd(ferry)],
            std::slice::from_ref(&out),
            &log,
            self.timeout,
        )?;
        let code = ran.statuses[0].code();
        if code != Some(0) && code != Some(FERRY_DIFFERENT) {
            bail!(
                "ferry validate failed: {}\n{}",
                ran.statuses[0],
                log_tail(&log, 20)
            );
        }
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("ferry validate printed no JSON (see {})", out.display()))?;
        let result = json["result"].as_str().unwrap_or("");
        let differences = json["differences"]
            .as_array()
            .context("no `differences` array in ferry's JSON")?;
        let mut found = BTreeSet::new();
        let mut kinds = BTreeSet::new();
        for d in differences {
            let aid = &d["key"]["aid"];
            let aid = (aid.as_str().and_then(|a| a.parse::<u64>().ok()))
                .or_else(|| aid.as_u64())
                .with_context(|| format!("a difference without a key aid: {d}"))?;
            found.insert(aid);
            let columns: Vec<&str> = d["columns"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c["column"].as_str().or(c.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            kinds.insert(format!(
                "{} [{}]",
                d["kind"].as_str().unwrap_or("?"),
                columns.join(", ")
            ));
        }
        let (want_result, want_code) = if dirty {
            ("different", FERRY_DIFFERENT)
        } else {
            ("equal", 0)
        };
        if result != want_result || code != Some(want_code) {
            bail!(
                "ferry validate said {result:?} (exit {}), expected {want_result:?} (exit \
                 {want_code})",
                ran.statuses[0]
            );
        }
        check_keys("ferry validate", &found, differences.len(), dirty, keys)?;
        if let Some(u) = json["unsettled"].as_array().filter(|u| !u.is_empty()) {
            bail!(
                "ferry validate left {} rows unsettled (see {})",
                u.len(),
                out.display()
            );
        }
        let mut notes = Vec::new();
        if dirty {
            notes.push(format!(
                "found the {} changed rows: {}",
                found.len(),
                kinds.into_iter().collect::<Vec<_>>().join("; ")
            ));
        } else {
            notes.push("result equal".into());
        }
        let chunks: u64 = (json["tables"].as_array().into_iter().flatten())
            .filter_map(|t| t["chunks"].as_u64())
            .sum();
        notes.push(format!("{chunks} key ranges hashed"));
        notes.extend(ran.notes(Some("ferry process")));
        Ok(Timed {
            wall: ran.wall,
            peak_rss_kib: ran.peak_rss_kib,
            notes,
        })
    }

    fn reladiff(&self, name: &str, dirty: bool, keys: &[u64]) -> Result<Timed> {
        let out = self.run_dir.join(format!("{name}.out"));
        let log = self.run_dir.join(format!("{name}.log"));
        let ran = run_captured(
            &mut [self.reladiff_cmd()],
            std::slice::from_ref(&out),
            &log,
            self.timeout,
        )?;
        ran.check_success(&log)?;
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let (found, lines) = reladiff_keys(&text)?;
        check_keys("reladiff", &found, found.len(), dirty, keys)?;
        let mut notes = vec![if dirty {
            format!(
                "found the {} changed rows ({lines} lines of diff)",
                found.len()
            )
        } else {
            "no differences".to_string()
        }];
        notes.extend(ran.notes(Some("reladiff process")));
        Ok(Timed {
            wall: ran.wall,
            peak_rss_kib: ran.peak_rss_kib,
            notes,
        })
    }
}

fn busy_warning(t: &mut Timed, idle: Option<proc::CpuShare>) {
    if let Some(share) = idle.filter(|i| i.busy > 0.10) {
        t.notes.push(format!(
            "WARNING: machine {:.0}% busy just before the start",
            100.0 * share.busy
        ));
    }
}

/// `DIFFERENCES` keys spread evenly over 1..=rows.
fn diff_keys(rows: u64) -> Vec<u64> {
    (0..DIFFERENCES)
        .map(|i| (i * rows + rows / 2) / DIFFERENCES + 1)
        .collect()
}

/// A clean run must find nothing; a dirty one exactly `keys`, once each.
fn check_keys(
    who: &str,
    found: &BTreeSet<u64>,
    reported: usize,
    dirty: bool,
    keys: &[u64],
) -> Result<()> {
    let want: BTreeSet<u64> = if dirty {
        keys.iter().copied().collect()
    } else {
        BTreeSet::new()
    };
    if *found != want || reported != want.len() {
        let list = |s: &BTreeSet<u64>| s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        bail!(
            "{who} reported {reported} differences at aid [{}], expected {} at [{}]",
            list(found),
            want.len(),
            list(&want)
        );
    }
    Ok(())
}

/// The keys in reladiff's output: one `- aid, <other columns>` line for the source's version
/// of a row and one `+ aid, ...` line for the target's; returns the distinct aids and the
/// line count.
fn reladiff_keys(text: &str) -> Result<(BTreeSet<u64>, usize)> {
    let mut keys = BTreeSet::new();
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let aid = line
            .strip_prefix("- ")
            .or_else(|| line.strip_prefix("+ "))
            .and_then(|rest| rest.split(',').next())
            .and_then(|a| a.trim().parse::<u64>().ok())
            .with_context(|| format!("unexpected reladiff output line: {line:?}"))?;
        keys.insert(aid);
        lines += 1;
    }
    Ok((keys, lines))
}

/// What [`run_captured`] saw.
struct Ran {
    wall: Duration,
    statuses: Vec<ExitStatus>,
    /// `VmHWM` of the first process, KiB.
    peak_rss_kib: Option<u64>,
    /// CPU seconds of the first process.
    cpu_secs: Option<f64>,
    machine: Option<proc::CpuShare>,
}

impl Ran {
    fn check_success(&self, log: &Path) -> Result<()> {
        if let Some(s) = self.statuses.iter().find(|s| !s.success()) {
            bail!("exited with {s}\n{}", log_tail(log, 20));
        }
        Ok(())
    }

    /// CPU seconds of the first process (named `cpu_of`), and the machine's load.
    fn notes(&self, cpu_of: Option<&str>) -> Vec<String> {
        let mut notes = Vec::new();
        if let (Some(what), Some(cpu)) = (cpu_of, self.cpu_secs) {
            notes.push(format!("{what} CPU {cpu:.1} s"));
        }
        if let Some(share) = self.machine {
            notes.push(format!(
                "machine busy {:.0}%, iowait {:.0}%",
                100.0 * share.busy,
                100.0 * share.iowait
            ));
        }
        notes
    }
}

/// Starts every command at once, each one's stdout into its file of `outs` and every stderr
/// appended to `log`; times them from the first spawn until the last exit (killing them all
/// after `timeout`).
fn run_captured(
    cmds: &mut [Command],
    outs: &[PathBuf],
    log: &Path,
    timeout: Duration,
) -> Result<Ran> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    for cmd in cmds.iter() {
        writeln!(file, "$ {}", describe(cmd))?;
    }
    let ticks = proc::CpuTicks::now();
    let started = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    for (cmd, out) in cmds.iter_mut().zip(outs) {
        let spawned = File::create(out)
            .with_context(|| format!("cannot create {}", out.display()))
            .and_then(|stdout| {
                cmd.stdin(Stdio::null())
                    .stdout(stdout)
                    .stderr(file.try_clone()?)
                    .spawn()
                    .with_context(|| format!("cannot start {}", describe(cmd)))
            });
        match spawned {
            Ok(child) => children.push(child),
            Err(e) => {
                kill_all(&mut children);
                return Err(e);
            }
        }
    }
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let (mut peak, mut cpu) = (None, None);
    loop {
        if statuses[0].is_none() {
            let pid = children[0].id();
            peak = proc::peak_rss_kib(pid).or(peak);
            cpu = proc::cpu_secs(pid).or(cpu);
        }
        for (status, child) in statuses.iter_mut().zip(&mut children) {
            if status.is_none() {
                *status = child.try_wait().context("cannot wait for a contender")?;
            }
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        if started.elapsed() > timeout {
            kill_all(&mut children);
            bail!(
                "timed out after {} s (--timeout); killed\n{}",
                timeout.as_secs(),
                log_tail(log, 15)
            );
        }
        sleep(POLL);
    }
    Ok(Ran {
        wall: started.elapsed(),
        statuses: statuses.into_iter().flatten().collect(),
        peak_rss_kib: peak,
        cpu_secs: cpu,
        machine: ticks.share(),
    })
}

fn kill_all(children: &mut [Child]) {
    for child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A psql session on the source running `SELECT abalance ... WHERE aid = <random>` every
/// [`PROBE_EVERY`] in a thread, collecting psql's `\timing` of each (ms).
struct Probe {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<f64>>>,
    thread: JoinHandle<Result<()>>,
}

impl Probe {
    fn start(tools: &Tools, conninfo: &str, rows: u64) -> Result<Probe> {
        let mut child = tools
            .psql(conninfo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the probe's psql")?;
        let mut stdin = child.stdin.take().context("no psql stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("no psql stdout")?);
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop2, samples2) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || -> Result<()> {
            // The same keys in every probed run.
            let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
            writeln!(stdin, "\\timing on")?;
            let mut next = Instant::now();
            while !stop2.load(Ordering::Relaxed) {
                // xorshift64: a random key, no dependency needed.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let aid = rng % rows + 1;
                writeln!(stdin, "SELECT abalance FROM {TABLE} WHERE aid = {aid};")?;
                stdin.flush()?;
                let ms = loop {
                    let mut line = String::new();
                    if stdout.read_line(&mut line)? == 0 {
                        bail!("the probe's psql session ended");
                    }
                    if let Some(rest) = line.strip_prefix("Time: ") {
                        let ms = rest.split_whitespace().next().unwrap_or("");
                        break ms
                            .parse::<f64>()
                            .with_context(|| format!("bad psql timing line {line:?}"))?;
                    }
                };
                samples2
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push(ms);
                next += PROBE_EVERY;
                let now = Instant::now();
                if next > now {
                    sleep(next - now);
                } else {
                    next = now;
                }
            }
            writeln!(stdin, "\\q")?;
            drop(stdin);
            child.wait()?;
            Ok(())
        });
        Ok(Probe {
            stop,
            samples,
            thread,
        })
    }

    /// The samples so far, emptying the buffer.
    fn take(&self) -> Vec<f64> {
        self.samples
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    fn stop(self) -> Result<Vec<f64>> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.take();
        let rest = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("the probe thread panicked"))?
            .context("the latency probe failed");
        rest.map(|()| samples)
    }
}

fn add_probe(probes: &mut Vec<(String, Vec<f64>)>, label: &str, samples: Vec<f64>) {
    match probes.iter_mut().find(|(l, _)| l == label) {
        Some((_, v)) => v.extend(samples),
        None => probes.push((label.to_string(), samples)),
    }
}

fn row<'a>(rows: &'a mut Vec<Row>, label: &str, c: Contender) -> &'a mut Row {
    let at = match rows.iter().position(|r| r.label == label) {
        Some(i) => i,
        None => {
            let kind = if c == Contender::Ferry {
                Kind::Ferry
            } else {
                Kind::Peer
            };
            rows.push(Row::new(label.to_string(), kind));
            rows.len() - 1
        }
    };
    &mut rows[at]
}

/// Nearest-rank percentile (`p` in 0..=1) of unsorted samples.
fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied()
}

fn print_report(bench: &Bench, rows: &[Row], probes: &[(String, Vec<f64>)]) {
    println!();
    let width = rows.iter().map(|r| r.label.len()).max().unwrap_or(0) + "during ".len();
    println!("{:<width$} | {:>9} | notes", "run", "seconds");
    println!("{}", "-".repeat(width + 20));
    for r in rows {
        let mut notes = r.notes();
        if r.samples.len() > 1 {
            let all: Vec<String> = r
                .samples
                .iter()
                .map(|w| format!("{:.2}", w.as_secs_f64()))
                .collect();
            notes.insert(0, format!("rounds: {} s", all.join(", ")));
        }
        for f in &r.failures {
            notes.push(format!("FAILED: {}", f.lines().next().unwrap_or("")));
        }
        let secs = r
            .wall()
            .map_or("FAILED".into(), |w| format!("{:.2}", w.as_secs_f64()));
        println!("{:<width$} | {secs:>9} | {}", r.label, notes.join("; "));
    }
    println!();
    println!(
        "{:<width$} | {:>6} | {:>7} | {:>7}",
        "source probe latency", "probes", "p50 ms", "p99 ms"
    );
    for (label, samples) in probes {
        let ms = |p| percentile(samples, p).map_or("-".into(), |v| format!("{v:.3}"));
        let name = if label.starts_with("quiet") {
            format!("{label} ({} s before each probed run)", BASELINE.as_secs())
        } else {
            format!("during {label}")
        };
        println!(
            "{name:<width$} | {:>6} | {:>7} | {:>7}",
            samples.len(),
            ms(0.50),
            ms(0.99)
        );
    }
    println!();

    let wall = |c: Contender, pass: Pass| {
        let label = bench.label(c, pass);
        rows.iter()
            .find(|r| r.label == label)
            .and_then(Row::wall)
            .map(|w| w.as_secs_f64())
    };
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let ferry = wall(Contender::Ferry, Pass::Clean);
    let reladiff = wall(Contender::Reladiff, Pass::Clean);
    if bench.ferry.is_none() {
        println!("ferry / reladiff (clean): skipped (--skip-ferry)");
        println!("ferry dirty / ferry clean: skipped (--skip-ferry)");
    } else {
        match (ferry, reladiff) {
            (Some(f), Some(r)) => {
                let ratio = f / r;
                println!(
                    "ferry / reladiff (clean) = {ratio:.2} (target <= {RATIO_TARGET:.2}): {}",
                    verdict(ratio <= RATIO_TARGET)
                );
            }
            _ => println!("ferry / reladiff (clean): FAILED (a run failed)"),
        }
        match (ferry, wall(Contender::Ferry, Pass::Dirty)) {
            (Some(clean), Some(dirty)) => {
                let ratio = dirty / clean;
                println!(
                    "ferry dirty / ferry clean = {ratio:.2} (target < {DIRTY_TARGET:.2}): {}",
                    verdict(ratio < DIRTY_TARGET)
                );
            }
            _ => println!("ferry dirty / ferry clean: FAILED (a run failed)"),
        }
        if let (Some(f), Some(n)) = (ferry, wall(Contender::Naive, Pass::Clean)) {
            println!(
                "ferry / naive (clean) = {:.2} (information: one full hash scan per side)",
                f / n
            );
        }
    }
    if let (Some(clean), Some(dirty)) = (reladiff, wall(Contender::Reladiff, Pass::Dirty)) {
        println!(
            "reladiff dirty / reladiff clean = {:.2} (information)",
            dirty / clean
        );
    }
    if let Some(kib) = rows
        .iter()
        .filter(|r| r.kind == Kind::Ferry)
        .filter_map(|r| r.peak_rss_kib)
        .max()
    {
        println!("ferry peak RSS = {:.0} MB", mb(kib));
    }
}

#[cfg(test)]
mod tests {
    use super::{diff_keys, percentile, reladiff_keys};

    #[test]
    fn keys_are_spread_over_the_table() {
        assert_eq!(
            diff_keys(1_000_000),
            [
                50_001, 150_001, 250_001, 350_001, 450_001, 550_001, 650_001, 750_001, 850_001,
                950_001
            ]
        );
        assert!(diff_keys(10_000_000)
            .iter()
            .all(|&k| (1..=10_000_000).contains(&k)));
    }

    #[test]
    fn reladiff_lines_give_keys() {
        let (keys, lines) = reladiff_keys("- 5, , 1, 0\n+ 5, , 1, 1\n\n").expect("two lines");
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), [5]);
        assert_eq!(lines, 2);
        assert!(reladiff_keys("error: boom").is_err());
    }

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
