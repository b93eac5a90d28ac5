//! What the source must never suffer: Ferry's slot holds back WAL while the copy runs. When
//! PostgreSQL invalidates it (`max_slot_wal_keep_size`), the copy must stop by itself with an
//! error that says so and names `--restart`, instead of finishing a copy that change capture
//! can never continue.

mod common;

use std::time::{Duration, Instant};

use common::Migration;
use ferry_testkit::local_cluster::{ClusterOptions, LocalCluster};
use ferry_testkit::TestDb;
use tokio_postgres::{Client, NoTls};

async fn connect(conninfo: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// The slot's `wal_status` (`None` when there is no such slot).
async fn wal_status(db: &Client, slot: &str) -> Option<String> {
    db.query_opt(
        "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .expect("slot status")
    .and_then(|r| r.get(0))
}

#[tokio::test]
async fn copy_stops_when_the_slot_is_invalidated() {
    let options = ClusterOptions {
        // The target's major (`FERRY_TEST_PG_MAJOR` runs the whole suite on another one).
        major: Some(ferry_testkit::cluster().major()),
        name: "slot-watch".into(),
        settings: vec![
            ("max_slot_wal_keep_size".into(), "1MB".into()),
            ("wal_keep_size".into(), "0".into()),
        ],
    };
    let source = LocalCluster::start(&options).expect("source cluster");
    connect(&source.conninfo("postgres"))
        .await
        .batch_execute("CREATE DATABASE src")
        .await
        .expect("create db");
    let src = connect(&source.conninfo("src")).await;
    src.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, body text);
         INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
         CREATE TABLE blocker (id int PRIMARY KEY);
         INSERT INTO blocker VALUES (1);",
    )
    .await
    .expect("fixture");
    let target = TestDb::create(ferry_testkit::cluster()).await;
    let m = Migration::new(
        "slot-watch",
        &source.conninfo("src"),
        &target.conninfo(),
        "",
    );

    // Hold the copy inside its snapshot: lock `blocker` on the target once the schema is there.
    let mut child = m.spawn_copy(&[]);
    let locker = target.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = locker
            .query_one("SELECT to_regclass('public.blocker') IS NOT NULL", &[])
            .await
            .expect("poll");
        if row.get::<_, bool>(0) {
            break;
        }
        assert!(
            child.try_wait().expect("poll copy").is_none(),
            "copy ended early:\n{}",
            m.spawned_output()
        );
        assert!(
            Instant::now() < deadline,
            "no schema on the target:\n{}",
            m.spawned_output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    locker
        .batch_execute("BEGIN; LOCK TABLE blocker IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");

    // Write more WAL than the slot may hold back, until a checkpoint invalidates it.
    let slot = m.slot();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        src.batch_execute(
            "CREATE TABLE IF NOT EXISTS filler (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, x int);
             INSERT INTO filler (x) SELECT generate_series(1, 100000);
             SELECT pg_switch_wal();
             CHECKPOINT;",
        )
        .await
        .expect("generate WAL");
        let status = wal_status(&src, &slot).await;
        if status.as_deref() == Some("lost") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was never invalidated (wal_status {status:?})"
        );
    }

    // The watcher checks every 10 s: the copy must stop on its own soon after.
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll copy") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the copy did not stop:\n{}",
            m.spawned_output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = m.spawned_output();
    assert!(!status.success(), "the copy must fail:\n{output}");
    assert!(
        output.contains("invalidated"),
        "the error must say the slot was invalidated:\n{output}"
    );
    assert!(
        output.contains("--restart"),
        "the error must name --restart:\n{output}"
    );
    assert!(!output.contains("panicked"), "{output}");
    let _ = locker.batch_execute("ROLLBACK").await;
    // Without its slot the snapshot is useless: Ferry stopped holding it back on the source.
    assert!(
        m.holder_pid().is_none_or(|pid| !common::pid_alive(pid)),
        "the snapshot holder must let go once the slot is lost"
    );

    // The way out works: --restart drops the dead slot and copies again.
    m.run("copy", &["--restart", "--verify"]).success();
    assert_ne!(
        wal_status(&src, &slot).await.as_deref(),
        Some("lost"),
        "a fresh slot replaces the invalidated one"
    );
    m.run("abort", &[]).success();
}
