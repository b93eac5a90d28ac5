//! The testkit against real clusters: the default cluster, databases, slots, other majors, the
//! watchdog and the client tools.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_pg::binaries::{client_tool, server_binaries};
use ferry_pg::local_cluster::{ClusterOptions, LocalCluster};
use ferry_testkit::{cluster, cluster_of_major, skip, TestDb};

async fn database_exists(db: &TestDb, name: &str) -> bool {
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    row.get::<_, i64>(0) == 1
}

#[tokio::test]
async fn databases_are_fresh_logical_and_dropped() {
    let cluster = cluster();
    let first = TestDb::create(cluster).await;
    let second = TestDb::create(cluster).await;
    assert_ne!(first.name(), second.name());

    let client = first.client().await;
    let row = client
        .query_one("SHOW wal_level", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(row.get::<_, String>(0), "logical");
    first
        .execute_batch("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await;

    let gone = second.name().to_string();
    // A slot on the database, held by an open walsender-free session: Drop must remove both.
    let other = second.client().await;
    other
        .query_one(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&gone],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(database_exists(&first, &gone).await);
    drop(second);
    assert!(
        !database_exists(&first, &gone).await,
        "{gone} still exists after drop"
    );
    let slots = client
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&gone],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        slots.get::<_, i64>(0),
        0,
        "slot {gone} survived its database"
    );
    assert_eq!(first.psql("SELECT count(*) FROM t").trim(), "1");
}

#[tokio::test]
async fn other_majors_start_when_installed() {
    let installed: Vec<u32> = server_binaries().iter().map(|s| s.major).collect();
    eprintln!("installed servers: {installed:?}");
    for major in [13, 18] {
        let Some(cluster) = cluster_of_major(major) else {
            skip(
                &format!("PostgreSQL {major} cluster"),
                &format!("no PostgreSQL {major} server installed (run scripts/setup.sh)"),
            );
            continue;
        };
        let db = TestDb::create(cluster).await;
        let client = db.client().await;
        let row = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.get::<_, i32>(0) / 10000, major as i32);
        let row = client
            .query_one("SHOW wal_level", &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.get::<_, String>(0), "logical");
        db.execute_batch("CREATE EXTENSION hstore; CREATE EXTENSION citext")
            .await;
    }
}

#[test]
fn stop_removes_the_cluster_and_is_idempotent() {
    let opts = ClusterOptions {
        name: "stop-test".into(),
        ..ClusterOptions::default()
    };
    let started = Instant::now();
    let mut cluster = LocalCluster::start(&opts).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "cluster started in {:?} on port {}",
        started.elapsed(),
        cluster.port()
    );
    let data = cluster.data_dir().to_path_buf();
    assert!(data.join("PG_VERSION").exists());
    assert!(cluster.conninfo("my db").ends_with("dbname='my db'"));
    cluster.stop().unwrap_or_else(|e| panic!("{e}"));
    cluster.stop().unwrap_or_else(|e| panic!("{e}"));
    assert!(!data.exists());
}

/// Run as a child by `watchdog_removes_clusters_of_dead_owners`: starts a cluster, prints where
/// it lives and exits without dropping it.
#[test]
fn child_leaks_cluster() {
    if std::env::var_os("FERRY_TESTKIT_LEAK_CHILD").is_none() {
        return;
    }
    let opts = ClusterOptions {
        name: "leak-test".into(),
        ..ClusterOptions::default()
    };
    let cluster = LocalCluster::start(&opts).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "LEAKED {} {}",
        cluster.port(),
        cluster.socket_dir().display()
    );
    std::process::exit(0);
}

#[test]
fn watchdog_removes_clusters_of_dead_owners() {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(exe)
        .args(["--exact", "child_leaks_cluster", "--nocapture"])
        .env("FERRY_TESTKIT_LEAK_CHILD", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("LEAKED "))
        .unwrap_or_else(|| {
            panic!(
                "child printed no cluster: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let (port, dir) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("bad line {line}"));
    let port: u16 = port.parse().unwrap_or_else(|e| panic!("{e}"));
    let dir = PathBuf::from(dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "leaked cluster in {} still there",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn client_tools_report_their_major() {
    let psql = client_tool("psql", 0).unwrap_or_else(|e| panic!("{e}"));
    assert!(psql.major >= 13, "{psql:?}");
    match client_tool("pg_dump", 16) {
        Ok(tool) => {
            eprintln!("pg_dump >= 16: {} ({})", tool.path.display(), tool.major);
            let out = tool
                .command()
                .arg("--version")
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(out.status.success());
        }
        Err(e) => skip("pg_dump >= 16", &e.to_string()),
    }
    let err = client_tool("pg_dump", 99)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("no pg_dump of major >= 99 found"), "{err}");
}

#[test]
fn a_failed_start_reports_the_server_log_and_cleans_up() {
    let opts = ClusterOptions {
        name: "bad-settings".into(),
        settings: vec![("shared_buffers".into(), "lots".into())],
        ..ClusterOptions::default()
    };
    let err = LocalCluster::start(&opts)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    eprintln!("{err}");
    assert!(err.contains("did not start"), "{err}");
    assert!(
        err.contains("shared_buffers"),
        "server log missing from: {err}"
    );
    let leftovers: Vec<_> = std::fs::read_dir("/tmp/ferry-clusters")
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let mine = format!("bad-settings-{}-", std::process::id());
    assert!(
        !leftovers
            .iter()
            .any(|n| n.to_string_lossy().starts_with(&mine)),
        "{leftovers:?}"
    );
}
