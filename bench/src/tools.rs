//! One function per tool under comparison: each copies the source database into an empty
//! target database and verifies the result (or, for the floor, copies the largest table).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ferry_pg::local_cluster::LocalCluster;

use crate::pg::{ident, literal, Expected, Tools};
use crate::proc::{
    log_len, log_since, log_tail, run_logged, run_logged_status, run_pipeline, Measured,
};

/// The tools, in the order they run within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ferry,
    Pgcopydb,
    DumpDir,
    DumpPsql,
    Floor,
}

impl Tool {
    pub const ALL: [Tool; 5] = [
        Tool::Ferry,
        Tool::Pgcopydb,
        Tool::DumpDir,
        Tool::DumpPsql,
        Tool::Floor,
    ];

    /// The name used on the command line (`--tools`) and in file names.
    pub fn key(self) -> &'static str {
        match self {
            Tool::Ferry => "ferry",
            Tool::Pgcopydb => "pgcopydb",
            Tool::DumpDir => "pg_dump-dir",
            Tool::DumpPsql => "pg_dump-psql",
            Tool::Floor => "floor",
        }
    }

    pub fn parse(key: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.key() == key)
    }

    /// The target database this tool copies into.
    pub fn target_db(self) -> String {
        format!("bench_{}", self.key().replace('-', "_"))
    }
}

/// What a row of the report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ferry,
    Peer,
    Floor,
}

/// One timed result of a run: a row label and its wall time.
#[derive(Debug, Clone)]
pub struct Sample {
    pub row: String,
    pub kind: Kind,
    pub wall: Duration,
    /// Peak RSS of the tool's own process, KiB (measured for Ferry only).
    pub peak_rss_kib: Option<u64>,
    pub notes: Vec<String>,
}

/// Everything a tool run needs.
pub struct Ctx<'a> {
    pub tools: &'a Tools,
    pub source: &'a LocalCluster,
    pub target: &'a LocalCluster,
    pub source_db: &'a str,
    pub expected: &'a Expected,
    /// Logs and Ferry's spec and state; kept after the run.
    pub run_dir: &'a Path,
    /// Large scratch files (dumps, COPY files); owned by the clusters' OS user.
    pub scratch: &'a Path,
    pub jobs: u32,
    pub timeout: Duration,
    pub ferry: &'a Path,
    pub pgcopydb: &'a Path,
    pub pgcopydb_split: Option<&'a str>,
    /// Extra `key = value` lines for the `[copy]` table of Ferry's spec.
    pub ferry_copy_settings: &'a [String],
    pub round: usize,
}

impl Ctx<'_> {
    fn log(&self, tool: &str) -> PathBuf {
        self.run_dir.join(format!("{tool}-r{}.log", self.round))
    }

    fn source_uri(&self) -> String {
        uri(self.source, self.source_db)
    }

    fn target_uri(&self, db: &str) -> String {
        uri(self.target, db)
    }

    fn psql(&self) -> Command {
        let mut cmd = self.tools.psql.command();
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
        cmd
    }

    /// psql that goes on after an error, as a person restoring a dump would run it; the log is
    /// checked with [`restore_errors`] afterwards.
    fn psql_lenient(&self) -> Command {
        let mut cmd = self.tools.psql.command();
        cmd.args(["-X", "-q"]);
        cmd
    }

    fn jobs(&self) -> String {
        self.jobs.to_string()
    }
}

fn uri(cluster: &LocalCluster, db: &str) -> String {
    format!(
        "postgres://{}@{}:{}/{db}",
        cluster.superuser(),
        cluster.host(),
        cluster.port()
    )
}

/// The error that every script of pg_dump 17+ raises on an older server (`SET
/// transaction_timeout = 0`): harmless, and the same for every tool that uses such a pg_dump.
const KNOWN_ERROR: &str = "\"transaction_timeout\"";

/// Counts the known harmless errors in a restore's log output and returns any other error line.
fn restore_errors(text: &str) -> (usize, Vec<String>) {
    let mut known = 0;
    let mut other = Vec::new();
    for line in text.lines() {
        let is_error = line.contains("ERROR:")
            || line.contains("pg_restore: error:")
            || line.contains("psql: error:")
            || line.contains("FATAL:");
        if !is_error {
            continue;
        }
        if line.contains(KNOWN_ERROR) {
            known += 1;
        } else {
            other.push(line.trim().to_string());
        }
    }
    (known, other)
}

/// Fails on any unexpected error in `text`; a note when known ones were ignored.
fn check_restore_log(text: &str, log: &Path) -> Result<Option<String>> {
    let (known, other) = restore_errors(text);
    if !other.is_empty() {
        bail!(
            "errors during the restore: {}\n{}",
            other.join(" | "),
            log_tail(log, 10)
        );
    }
    Ok((known > 0).then(|| {
        format!("ignored {known}x `SET transaction_timeout` (newer pg_dump, older server)")
    }))
}

/// `machine: busy N%, iowait M%` over one or more consecutive runs (weighted by wall time).
fn machine_note(parts: &[&Measured]) -> Option<String> {
    let mut wall = 0.0;
    let (mut busy, mut iowait) = (0.0, 0.0);
    for m in parts {
        let share = m.machine?;
        let w = m.wall.as_secs_f64();
        wall += w;
        busy += share.busy * w;
        iowait += share.iowait * w;
    }
    (wall > 0.0).then(|| {
        format!(
            "machine busy {:.0}%, iowait {:.0}%",
            100.0 * busy / wall,
            100.0 * iowait / wall
        )
    })
}

fn secs(d: Duration) -> String {
    format!("{} s", crate::report::seconds(d))
}

/// Runs one tool into its (already created, empty) target database.
pub fn run(ctx: &Ctx<'_>, tool: Tool) -> Result<Vec<Sample>> {
    match tool {
        Tool::Ferry => ferry(ctx),
        Tool::Pgcopydb => pgcopydb(ctx),
        Tool::DumpDir => dump_dir(ctx),
        Tool::DumpPsql => dump_psql(ctx),
        Tool::Floor => floor(ctx),
    }
}

/// The row label of each tool's main result.
pub fn label(ctx_jobs: u32, tool: Tool) -> String {
    match tool {
        Tool::Ferry => format!("ferry copy (jobs {ctx_jobs})"),
        Tool::Pgcopydb => format!("pgcopydb clone (jobs {ctx_jobs})"),
        Tool::DumpDir => format!("pg_dump -Fd -j{ctx_jobs} + pg_restore -j{ctx_jobs}"),
        Tool::DumpPsql => "pg_dump | psql".into(),
        Tool::Floor => FLOOR_TOTAL.into(),
    }
}

pub const FLOOR_OUT: &str = "floor: COPY out (largest table)";
pub const FLOOR_IN: &str = "floor: COPY in (same table)";
pub const FLOOR_TOTAL: &str = "floor: out + in";

fn ferry(ctx: &Ctx<'_>) -> Result<Vec<Sample>> {
    let db = Tool::Ferry.target_db();
    let dir = ctx.run_dir.join(format!("ferry-r{}", ctx.round));
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let spec = dir.join("spec.toml");
    let text = format!(
        "name = \"bench\"\n\n[source]\ndsn = \"{}\"\n\n[target]\ndsn = \"{}\"\n\n[copy]\njobs = {}\n{}\n\
         # pgbench_history has no key: it only ever gets inserts\n\
         [tables]\nwithout_identity = \"append_only\"\n",
        ctx.source.conninfo(ctx.source_db),
        ctx.target.conninfo(&db),
        ctx.jobs,
        ctx.ferry_copy_settings
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    fs::write(&spec, text).with_context(|| format!("cannot write {}", spec.display()))?;

    let log = ctx.log("ferry-copy");
    let mut copy = Command::new(ctx.ferry);
    copy.current_dir(&dir).args(["copy", "-v"]).arg(&spec);
    let copied = run_logged(&mut copy, &log, ctx.timeout).and_then(|m| {
        ctx.expected
            .verify(ctx.tools, &ctx.target.conninfo(&db))
            .map(|()| m)
    });

    // Always release the source, whatever the copy did.
    let mut notes = Vec::new();
    let abort_log = ctx.log("ferry-abort");
    let mut abort = Command::new(ctx.ferry);
    abort.current_dir(&dir).arg("abort").arg(&spec);
    if let Err(e) = run_logged(&mut abort, &abort_log, ctx.timeout) {
        notes.push(format!("`ferry abort` failed: {e:#}"));
    }
    notes.extend(ctx.tools.drop_leftovers(
        &ctx.source.conninfo("postgres"),
        &ctx.source.conninfo(ctx.source_db),
    )?);

    let measured = match copied {
        Ok(m) => m,
        Err(e) => {
            let mut msg = format!("{e:#}");
            for n in &notes {
                msg.push_str("\n    ");
                msg.push_str(n);
            }
            bail!(msg)
        }
    };
    let mut front = Vec::new();
    if let Some(cpu) = measured.cpu_secs.first().copied().flatten() {
        front.push(format!("ferry process CPU {cpu:.1} s"));
    }
    front.extend(machine_note(&[&measured]));
    if !ctx.ferry_copy_settings.is_empty() {
        front.push(format!(
            "spec [copy] {}",
            ctx.ferry_copy_settings.join(", ")
        ));
    }
    notes.splice(0..0, front);
    Ok(vec![Sample {
        row: label(ctx.jobs, Tool::Ferry),
        kind: Kind::Ferry,
        wall: measured.wall,
        peak_rss_kib: measured.first_peak_rss_kib,
        notes,
    }])
}

/// KiB to (decimal) megabytes.
pub fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn pgcopydb(ctx: &Ctx<'_>) -> Result<Vec<Sample>> {
    let db = Tool::Pgcopydb.target_db();
    let work = ctx.scratch.join(format!("pgcopydb-r{}", ctx.round));
    let mut cmd = Command::new(ctx.pgcopydb);
    cmd.current_dir(ctx.scratch)
        .arg("clone")
        .args(["--source", &ctx.source_uri()])
        .args(["--target", &ctx.target_uri(&db)])
        .args(["--table-jobs", &ctx.jobs()])
        .args(["--index-jobs", &ctx.jobs()])
        .arg("--dir")
        .arg(&work);
    if let Some(size) = ctx.pgcopydb_split {
        cmd.args(["--split-tables-larger-than", size]);
    }
    let measured = run_logged(&mut cmd, &ctx.log("pgcopydb"), ctx.timeout);
    let _ = fs::remove_dir_all(&work);
    let measured = measured?;
    ctx.expected.verify(ctx.tools, &ctx.target.conninfo(&db))?;
    let mut notes = Vec::new();
    if let Some(size) = ctx.pgcopydb_split {
        notes.push(format!("--split-tables-larger-than {size}"));
    }
    notes.extend(machine_note(&[&measured]));
    Ok(vec![Sample {
        row: label(ctx.jobs, Tool::Pgcopydb),
        kind: Kind::Peer,
        wall: measured.wall,
        peak_rss_kib: None,
        notes,
    }])
}

fn dump_dir(ctx: &Ctx<'_>) -> Result<Vec<Sample>> {
    let db = Tool::DumpDir.target_db();
    let dump = ctx.scratch.join(format!("dump-r{}", ctx.round));
    let log = ctx.log("pg_dump-dir");
    let mut dump_cmd = ctx.tools.pg_dump.command();
    dump_cmd
        .args(["-Fd", "-j", &ctx.jobs(), "-f"])
        .arg(&dump)
        .args(["-d", &ctx.source.conninfo(ctx.source_db)]);
    let dumped = run_logged(&mut dump_cmd, &log, ctx.timeout);
    let from = log_len(&log);
    let restored = dumped.and_then(|d| {
        let mut restore = ctx.tools.pg_restore.command();
        restore
            .args(["-j", &ctx.jobs(), "-d", &ctx.target.conninfo(&db)])
            .arg(&dump);
        run_logged_status(&mut restore, &log, ctx.timeout).map(|(r, status)| (d, r, status))
    });
    let _ = fs::remove_dir_all(&dump);
    let (d, r, status) = restored?;
    // pg_restore exits 1 when it "ignored" errors: accept only the known harmless one.
    let ignored = check_restore_log(&log_since(&log, from), &log)?;
    if !status.success() && ignored.is_none() {
        bail!("pg_restore failed: {status}\n{}", log_tail(&log, 10));
    }
    ctx.expected.verify(ctx.tools, &ctx.target.conninfo(&db))?;
    let mut notes = vec![format!("dump {} + restore {}", secs(d.wall), secs(r.wall))];
    notes.extend(machine_note(&[&d, &r]));
    notes.extend(ignored);
    Ok(vec![Sample {
        row: label(ctx.jobs, Tool::DumpDir),
        kind: Kind::Peer,
        wall: d.wall + r.wall,
        peak_rss_kib: None,
        notes,
    }])
}

fn dump_psql(ctx: &Ctx<'_>) -> Result<Vec<Sample>> {
    let db = Tool::DumpPsql.target_db();
    let mut dump = ctx.tools.pg_dump.command();
    dump.args(["-d", &ctx.source.conninfo(ctx.source_db)]);
    let mut psql = ctx.psql_lenient();
    psql.args(["-d", &ctx.target.conninfo(&db)]);
    let log = ctx.log("pg_dump-psql");
    let from = log_len(&log);
    let measured = run_pipeline(&mut dump, &mut psql, &log, ctx.timeout)?;
    let ignored = check_restore_log(&log_since(&log, from), &log)?;
    ctx.expected.verify(ctx.tools, &ctx.target.conninfo(&db))?;
    let mut notes = vec!["one stream by design".to_string()];
    if let [Some(d), Some(p)] = measured.cpu_secs[..] {
        notes.push(format!("CPU pg_dump {d:.1} s, psql {p:.1} s"));
    }
    notes.extend(machine_note(&[&measured]));
    notes.extend(ignored);
    Ok(vec![Sample {
        row: label(ctx.jobs, Tool::DumpPsql),
        kind: Kind::Peer,
        wall: measured.wall,
        peak_rss_kib: None,
        notes,
    }])
}

/// Server-side `COPY table TO file` on the source, then `COPY table FROM file` into the same
/// table created without indexes on the target: the cost of the data alone, with no tool.
fn floor(ctx: &Ctx<'_>) -> Result<Vec<Sample>> {
    let db = Tool::Floor.target_db();
    let src = ctx.source.conninfo(ctx.source_db);
    let tgt = ctx.target.conninfo(&db);
    let Some((table, rows)) = largest_table(ctx)? else {
        bail!("the source database has no table");
    };
    let qualified = format!("public.{}", ident(&table));
    let log = ctx.log("floor");

    // The table's definition only (no indexes, no constraints beyond the column ones).
    let mut ddl = ctx.tools.pg_dump.command();
    ddl.args(["-s", "--section=pre-data", "-t", &qualified, "-d", &src]);
    let mut apply = ctx.psql_lenient();
    apply.args(["-d", &tgt]);
    let from = log_len(&log);
    run_pipeline(&mut ddl, &mut apply, &log, ctx.timeout)?;
    check_restore_log(&log_since(&log, from), &log)?;

    let file = ctx.scratch.join(format!("floor-r{}.copy", ctx.round));
    let file_lit = literal(&file.to_string_lossy());
    let mut out = ctx.psql();
    out.args(["-d", &src, "-c", &format!("COPY {qualified} TO {file_lit}")]);
    let copied_out = run_logged(&mut out, &log, ctx.timeout);
    let copied_in = copied_out.and_then(|o| {
        let mut inn = ctx.psql();
        inn.args([
            "-d",
            &tgt,
            "-c",
            &format!("COPY {qualified} FROM {file_lit}"),
        ]);
        run_logged(&mut inn, &log, ctx.timeout).map(|i| (o, i))
    });
    let file_size = fs::metadata(&file).map(|m| m.len()).ok();
    let _ = fs::remove_file(&file);
    let (o, i) = copied_in?;
    let got = ctx
        .tools
        .query_i64(&tgt, &format!("SELECT count(*) FROM {qualified}"))?;
    if got != rows {
        bail!(
            "floor copied {got} rows of {table}, source has {rows}\n{}",
            log_tail(&log, 5)
        );
    }
    let size_note =
        file_size.map_or_else(String::new, |b| format!(", {:.0} MB text", b as f64 / 1e6));
    let sample = |row: &str, wall: Duration, notes: Vec<String>| Sample {
        row: row.to_string(),
        kind: Kind::Floor,
        wall,
        peak_rss_kib: None,
        notes,
    };
    Ok(vec![
        sample(
            FLOOR_OUT,
            o.wall,
            [format!("{table}, {rows} rows{size_note}")]
                .into_iter()
                .chain(machine_note(&[&o]))
                .collect(),
        ),
        sample(
            FLOOR_IN,
            i.wall,
            ["no indexes, one stream".to_string()]
                .into_iter()
                .chain(machine_note(&[&i]))
                .collect(),
        ),
        sample(
            FLOOR_TOTAL,
            o.wall + i.wall,
            vec!["sequential; no schema, no indexes".into()],
        ),
    ])
}

/// The largest table (by heap size) of schema `public` and its row count.
fn largest_table(ctx: &Ctx<'_>) -> Result<Option<(String, i64)>> {
    let name = ctx.tools.query(
        &ctx.source.conninfo(ctx.source_db),
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace \
         AND c.relkind = 'r' ORDER BY pg_table_size(c.oid) DESC, 1 LIMIT 1",
    )?;
    if name.is_empty() {
        return Ok(None);
    }
    let rows = ctx
        .expected
        .tables
        .iter()
        .find(|(t, _)| *t == name)
        .map(|(_, n)| *n)
        .context("the largest table is missing from the expected counts")?;
    Ok(Some((name, rows)))
}

#[cfg(test)]
mod tests {
    use super::{restore_errors, Tool};

    #[test]
    fn only_the_transaction_timeout_error_is_known() {
        let log = "SET\n\
            pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter \"transaction_timeout\"\n\
            Command was: SET transaction_timeout = 0;\n\
            ERROR:  unrecognized configuration parameter \"transaction_timeout\"\n";
        assert_eq!(restore_errors(log), (2, vec![]));
        let bad = "ERROR:  relation \"x\" already exists\npsql: error: connection refused\n";
        let (known, other) = restore_errors(bad);
        assert_eq!(known, 0);
        assert_eq!(other.len(), 2);
    }

    #[test]
    fn tool_keys_round_trip() {
        for tool in Tool::ALL {
            assert_eq!(Tool::parse(tool.key()), Some(tool));
            assert!(tool.target_db().starts_with("bench_"));
        }
        assert_eq!(Tool::parse("nope"), None);
    }
}
