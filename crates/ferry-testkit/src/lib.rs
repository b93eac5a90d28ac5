//! ferry-testkit: throwaway PostgreSQL clusters and databases for Ferry's tests and benchmarks
//! (a dev-dependency only).
//!
//! One cluster per test process ([`cluster`]), started on first use and removed by its watchdog
//! when the process exits; one fresh database per test ([`TestDb`]), dropped on `Drop` together
//! with its replication slots. Helpers panic on failure: they only run inside tests.
//!
//! `FERRY_TEST_PG_MAJOR=13` (say) runs the default cluster on another installed major.

mod database;

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};

use ferry_pg::binaries::{client_tool, server_binaries_of_major};
use ferry_pg::local_cluster::{ClusterOptions, LocalCluster};

pub use database::TestDb;
pub use ferry_pg::local_cluster;

/// The cluster shared by every test of this process: the default major (the newest system
/// server, PostgreSQL 15 on Debian 12), or `FERRY_TEST_PG_MAJOR` when set.
pub fn cluster() -> &'static LocalCluster {
    static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let major = std::env::var("FERRY_TEST_PG_MAJOR").ok().map(|m| {
            m.parse()
                .unwrap_or_else(|_| panic!("FERRY_TEST_PG_MAJOR={m:?} is not a number"))
        });
        start(major)
    })
}

/// A shared cluster of `major`, or `None` when no server of that major is installed (the test
/// should then print a skip line, see [`skip`], and return).
pub fn cluster_of_major(major: u32) -> Option<&'static LocalCluster> {
    static CLUSTERS: OnceLock<Mutex<HashMap<u32, &'static LocalCluster>>> = OnceLock::new();
    server_binaries_of_major(major)?;
    let mut clusters = CLUSTERS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let cluster = clusters
        .entry(major)
        .or_insert_with(|| Box::leak(Box::new(start(Some(major)))));
    Some(*cluster)
}

/// The default cluster when it runs `min` or newer, else a shared cluster of the oldest
/// installed major from `min` on (for tests of features older servers lack, when
/// `FERRY_TEST_PG_MAJOR` picks an old one); `None` when no such server is installed.
pub fn cluster_at_least(min: u32) -> Option<&'static LocalCluster> {
    let default = cluster();
    if default.major() >= min {
        return Some(default);
    }
    (min..=MAX_MAJOR).find_map(cluster_of_major)
}

/// The newest major [`cluster_at_least`] looks for.
const MAX_MAJOR: u32 = 18;

/// Prints a loud skip line for a test that cannot run here.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

fn start(major: Option<u32>) -> LocalCluster {
    let name = match major {
        Some(m) => format!("test{m}"),
        None => "test".to_string(),
    };
    let opts = ClusterOptions {
        major,
        settings: Vec::new(),
        name,
    };
    LocalCluster::start(&opts).unwrap_or_else(|e| panic!("cannot start a test cluster: {e}"))
}

/// Runs `sql` through the newest `psql` (of at least the cluster's major when one exists) in
/// database `db`, stopping at the first error; returns its unaligned, tuples-only output.
pub fn psql(cluster: &LocalCluster, db: &str, sql: &str) -> String {
    let tool = client_tool("psql", cluster.major())
        .or_else(|_| client_tool("psql", 0))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = tool
        .command()
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
            "-d",
        ])
        .arg(cluster.conninfo(db))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.path.display()));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(sql.as_bytes())
            .unwrap_or_else(|e| panic!("cannot feed psql: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("psql failed: {e}"));
    assert!(
        out.status.success(),
        "psql on {db} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
