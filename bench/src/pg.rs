//! The PostgreSQL side of the benchmark: client tools, SQL through psql, clusters, caches.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context, Result};
use ferry_pg::binaries::{client_tool, ClientTool};
use ferry_pg::local_cluster::LocalCluster;

/// The newest client tools installed (what Ferry itself would pick).
pub struct Tools {
    pub psql: ClientTool,
    pub pg_dump: ClientTool,
    pub pg_restore: ClientTool,
    pub pgbench: ClientTool,
}

impl Tools {
    pub fn find(min_major: u32) -> Result<Tools> {
        Ok(Tools {
            psql: client_tool("psql", min_major)?,
            pg_dump: client_tool("pg_dump", min_major)?,
            pg_restore: client_tool("pg_restore", min_major)?,
            pgbench: client_tool("pgbench", min_major)?,
        })
    }

    /// psql on `conninfo`, quiet, unaligned, tuples only, stopping at the first error.
    pub fn psql(&self, conninfo: &str) -> std::process::Command {
        let mut cmd = self.psql.command();
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
        ]);
        cmd
    }

    /// Drops every replication slot of the source cluster (`admin`) and every publication of
    /// its database (`db`) that `ferry abort` left behind; returns a note for each.
    pub fn drop_leftovers(&self, admin: &str, db: &str) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        let slots = self.query(
            admin,
            "SELECT slot_name FROM pg_replication_slots ORDER BY 1",
        )?;
        for slot in slots.lines().filter(|l| !l.is_empty()) {
            notes.push(format!(
                "slot {slot} left on the source after `ferry abort`; dropped"
            ));
            self.query(
                admin,
                &format!("SELECT pg_drop_replication_slot({})", literal(slot)),
            )?;
        }
        let pubs = self.query(db, "SELECT pubname FROM pg_publication ORDER BY 1")?;
        for publication in pubs.lines().filter(|l| !l.is_empty()) {
            notes.push(format!(
                "publication {publication} left on the source after `ferry abort`; dropped"
            ));
            self.query(db, &format!("DROP PUBLICATION {}", ident(publication)))?;
        }
        Ok(notes)
    }

    /// Runs `sql` with psql on `conninfo`; returns its unaligned, tuples-only output.
    pub fn query(&self, conninfo: &str, sql: &str) -> Result<String> {
        let out = self
            .psql(conninfo)
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .context("cannot run psql")?;
        if !out.status.success() {
            bail!(
                "psql failed ({}): {}\n  SQL: {sql}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Like [`Tools::query`], parsing a single integer.
    pub fn query_i64(&self, conninfo: &str, sql: &str) -> Result<i64> {
        let text = self.query(conninfo, sql)?;
        text.parse()
            .with_context(|| format!("expected a number from `{sql}`, got {text:?}"))
    }
}

/// Quotes an identifier (the benchmark only names its own databases and tables).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Drops (forcing out sessions) and recreates an empty database.
pub fn recreate_db(tools: &Tools, cluster: &LocalCluster, name: &str) -> Result<()> {
    drop_db(tools, cluster, name)?;
    tools.query(
        &cluster.conninfo("postgres"),
        &format!("CREATE DATABASE {}", ident(name)),
    )?;
    Ok(())
}

pub fn drop_db(tools: &Tools, cluster: &LocalCluster, name: &str) -> Result<()> {
    tools.query(
        &cluster.conninfo("postgres"),
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(name)),
    )?;
    Ok(())
}

/// The uid and gid owning a path.
pub fn owner(path: &Path) -> Result<(u32, u32)> {
    let meta = fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    Ok((meta.uid(), meta.gid()))
}

fn effective_uid() -> Result<u32> {
    Ok(owner(Path::new("/proc/self"))?.0)
}

/// Checkpoints and restarts a cluster so that every tool starts with empty shared buffers.
pub fn checkpoint_and_restart(tools: &Tools, cluster: &LocalCluster) -> Result<()> {
    tools.query(&cluster.conninfo("postgres"), "CHECKPOINT")?;
    let mut cmd = cluster.bin().command("pg_ctl");
    cmd.current_dir(cluster.socket_dir())
        .stdin(Stdio::null())
        .arg("restart")
        .arg("-D")
        .arg(cluster.data_dir())
        .args(["-w", "-t", "300", "-m", "fast", "-l"])
        .arg(cluster.log_file());
    let (uid, gid) = owner(cluster.data_dir())?;
    if uid != effective_uid()? {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().context("cannot run pg_ctl restart")?;
    if !out.status.success() {
        bail!(
            "pg_ctl restart failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(())
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`; false when not permitted.
pub fn drop_page_cache() -> bool {
    let synced = Command::new("sync").status().is_ok_and(|s| s.success());
    synced && fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// `postgres --version` of a cluster's server, e.g. `postgres (PostgreSQL) 15.18 (...)`.
/// The `machine:` and `server:` header lines of the benchmarks that run one source and one
/// target cluster.
pub fn print_machine_and_server(tools: &Tools, source: &LocalCluster) {
    println!(
        "machine: {} cores, {} memory",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        crate::mem_total()
    );
    println!(
        "server:  {} (source and target, one cluster each)",
        server_version(tools, source)
    );
}

pub fn server_version(tools: &Tools, cluster: &LocalCluster) -> String {
    tools
        .query(&cluster.conninfo("postgres"), "SELECT version()")
        .map(|v| v.split(" on ").next().unwrap_or(&v).to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// `<tool> --version`, first line.
pub fn tool_version(mut cmd: Command) -> String {
    match cmd.arg("--version").stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines().next().unwrap_or("").trim().to_string()
        }
        Ok(out) => format!("unknown ({})", out.status),
        Err(e) => format!("not runnable ({e})"),
    }
}

/// What a complete copy of the source database must show on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Row count of every table of schema `public`, by name.
    pub tables: Vec<(String, i64)>,
    /// Valid indexes in schema `public`.
    pub indexes: i64,
    /// Constraints (primary keys, foreign keys, checks, ...) in schema `public`.
    pub constraints: i64,
}

const TABLES_SQL: &str = "SELECT c.relname FROM pg_class c \
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1";
const INDEXES_SQL: &str =
    "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
     WHERE c.relnamespace = 'public'::regnamespace AND i.indisvalid";
const CONSTRAINTS_SQL: &str =
    "SELECT count(*) FROM pg_constraint WHERE connamespace = 'public'::regnamespace";

impl Expected {
    /// Reads the source database's tables, counts, indexes and constraints.
    pub fn read(tools: &Tools, conninfo: &str) -> Result<Expected> {
        let names = tools.query(conninfo, TABLES_SQL)?;
        let mut tables = Vec::new();
        for name in names.lines().filter(|l| !l.is_empty()) {
            let count = tools.query_i64(
                conninfo,
                &format!("SELECT count(*) FROM public.{}", ident(name)),
            )?;
            tables.push((name.to_string(), count));
        }
        Ok(Expected {
            tables,
            indexes: tools.query_i64(conninfo, INDEXES_SQL)?,
            constraints: tools.query_i64(conninfo, CONSTRAINTS_SQL)?,
        })
    }

    /// Checks that the database at `conninfo` holds the same; the error lists every difference.
    pub fn verify(&self, tools: &Tools, conninfo: &str) -> Result<()> {
        let mut problems = Vec::new();
        for (name, want) in &self.tables {
            let sql = format!("SELECT count(*) FROM public.{}", ident(name));
            match tools.query_i64(conninfo, &sql) {
                Ok(got) if got == *want => {}
                Ok(got) => problems.push(format!("{name}: {got} rows, source has {want}")),
                Err(e) => problems.push(format!("{name}: cannot count ({e})")),
            }
        }
        let indexes = tools.query_i64(conninfo, INDEXES_SQL)?;
        if indexes != self.indexes {
            problems.push(format!(
                "{indexes} valid indexes, source has {}",
                self.indexes
            ));
        }
        let constraints = tools.query_i64(conninfo, CONSTRAINTS_SQL)?;
        if constraints != self.constraints {
            problems.push(format!(
                "{constraints} constraints, source has {}",
                self.constraints
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("wrong copy: {}", problems.join("; "))
        }
    }
}

/// One long-lived psql session: a query per line in, one unaligned line out.
pub struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    pub fn open(tools: &Tools, conninfo: &str) -> Result<Session> {
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

    /// Runs one statement; returns its first output line (empty when it has none).
    pub fn line(&mut self, sql: &str) -> Result<String> {
        Ok(self.lines(sql)?.into_iter().next().unwrap_or_default())
    }

    /// Runs one statement; returns every output line (a sentinel ends the output, so
    /// statements without output work too).
    pub fn lines(&mut self, sql: &str) -> Result<Vec<String>> {
        writeln!(self.stdin, "{sql};\nSELECT '<end>';").context("psql session ended")?;
        self.stdin.flush().context("psql session ended")?;
        let mut lines = Vec::new();
        loop {
            let mut buf = String::new();
            if self.stdout.read_line(&mut buf).context("psql session")? == 0 {
                bail!("psql session ended while running: {sql}");
            }
            let text = buf.trim_end().to_string();
            if text == "<end>" {
                return Ok(lines);
            }
            lines.push(text);
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
