//! The non-root system user that local clusters run as when Ferry itself runs as root
//! (`initdb` and `postgres` refuse to run as root).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::PgError;

/// Name of the system user, unless `FERRY_CLUSTER_USER` names another.
const DEFAULT_USER: &str = "ferrypg";

/// Numeric ids to run the server binaries under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RunAs {
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// `None` when this process is not root (the binaries then run as ourselves); otherwise the
/// ids of the cluster user, created once with `useradd --system` when missing.
/// `lock` is a file path all Ferry processes agree on (in the shared cluster base directory).
pub(super) fn run_as(lock: &Path) -> Result<Option<RunAs>, PgError> {
    static CACHED: OnceLock<Option<RunAs>> = OnceLock::new();
    if let Some(known) = CACHED.get() {
        return Ok(*known);
    }
    let resolved = if effective_uid()? == 0 {
        Some(ensure_user(&user_name(), lock)?)
    } else {
        None
    };
    Ok(*CACHED.get_or_init(|| resolved))
}

fn user_name() -> String {
    std::env::var("FERRY_CLUSTER_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_USER.into())
}

fn effective_uid() -> Result<u32, PgError> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let euid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|euid| euid.parse().ok());
        if let Some(euid) = euid {
            return Ok(euid);
        }
    }
    id_of(&["-u"]).ok_or_else(|| PgError::Cluster {
        what: "cannot tell which user this process runs as".into(),
        detail: "neither /proc/self/status nor `id -u` answered".into(),
    })
}

fn id_of(args: &[&str]) -> Option<u32> {
    let out = Command::new("id")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Looks the user up and creates it when missing. Several test processes may get here at the
/// same moment, and a reader of `/etc/passwd` can see a half-made user while `useradd` runs: the
/// check and the creation run under one `flock` on `lock`, and the ids are read after it.
fn ensure_user(name: &str, lock: &Path) -> Result<RunAs, PgError> {
    let out = Command::new("flock")
        .arg("--timeout")
        .arg("60")
        .arg(lock)
        .args([
            "sh",
            "-c",
            "id -u \"$1\" >/dev/null 2>&1 && exit 0; \
             useradd --system --no-create-home --shell /usr/sbin/nologin --user-group \"$1\" && echo created",
            "ferry-useradd",
            name,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PgError::Io { what: "cannot run flock (util-linux)".into(), source })?;
    if out.status.success() {
        if String::from_utf8_lossy(&out.stdout).contains("created") {
            tracing::info!(
                user = name,
                "created the system user local PostgreSQL clusters run as"
            );
        }
        if let (Some(uid), Some(gid)) = (id_of(&["-u", name]), id_of(&["-g", name])) {
            if uid == 0 {
                return Err(PgError::Cluster {
                    what: format!("the cluster user {name} is root"),
                    detail: "set FERRY_CLUSTER_USER to a non-root user".into(),
                });
            }
            return Ok(RunAs { uid, gid });
        }
    }
    Err(PgError::Cluster {
        what: format!(
            "cannot create the non-root user {name} that local clusters run as (initdb refuses root)"
        ),
        detail: format!(
            "{}; create it with `useradd --system --no-create-home {name}`",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}
