//! A detached shell loop that removes a cluster whose owning process died without dropping it
//! (a `static` cluster in a test binary is never dropped; a killed `ferry demo` neither).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::PgError;

/// Polls the owner every second while the cluster directory exists. When the owner is gone it
/// shuts the postmaster down immediately (SIGQUIT to the pid in `postmaster.pid`) and deletes
/// the directory. When [`super::LocalCluster::stop`] removed the directory first, it just exits.
const SCRIPT: &str = r#"
owner=$1; dir=$2; data=$3
while kill -0 "$owner" 2>/dev/null && [ -d "$dir" ]; do sleep 1; done
[ -d "$dir" ] || exit 0
if [ -f "$data/postmaster.pid" ]; then
  pid=$(head -n 1 "$data/postmaster.pid")
  if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$dir"
"#;

/// Starts the watchdog in its own process group, with no inherited stdio, so that neither a
/// test runner killing our process group nor one waiting for our output pipes is affected.
pub(super) fn spawn(dir: &Path, data_dir: &Path) -> Result<(), PgError> {
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("ferry-cluster-watchdog")
        .arg(std::process::id().to_string())
        .arg(dir)
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|source| PgError::Io {
            what: "cannot start the local cluster watchdog (sh)".into(),
            source,
        })
}
