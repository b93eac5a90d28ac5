//! `ferry copy` killed with `kill -9` part-way: with the snapshot holder alive a rerun resumes
//! in the same snapshot and the target ends up exactly like the (unchanging) source, with no
//! row copied twice; with the holder killed too a rerun refuses and names `--restart`, which
//! starts over cleanly (the earlier run's spooled change stream included).

mod common;

use std::time::Duration;

use common::{assert_same_rows, kill9, lsn_value, pid_alive, schema_dump, slots, Migration};
use ferry_replication::spool::Spool;
use ferry_testkit::{cluster, TestDb};
use tokio_postgres::Client;

const SPEC: &str = "[copy]\njobs = 2\nsplit_tables_larger_than = \"1MB\"\n";
const WAIT: Duration = Duration::from_secs(120);

/// A source with one table large enough to be cut into ranges and a few small ones;
/// `blocker` is the smallest, so it is copied last.
async fn databases() -> (TestDb, TestDb) {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source
        .execute_batch(
            "CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL);
             INSERT INTO big SELECT g, md5(g::text) || md5((g * 31)::text)
               FROM generate_series(1, 300000) g;
             CREATE TABLE medium (id int PRIMARY KEY, payload text);
             INSERT INTO medium SELECT g, repeat('m', 200) FROM generate_series(1, 3000) g;
             CREATE TABLE refs (id int PRIMARY KEY, medium_id int REFERENCES medium);
             INSERT INTO refs SELECT g, g FROM generate_series(1, 1000) g;
             CREATE TABLE blocker (id int PRIMARY KEY);
             INSERT INTO blocker VALUES (1);",
        )
        .await;
    source.execute_batch("VACUUM ANALYZE").await;
    (source, target)
}

/// Starts the copy and kills it (SIGKILL) once at least one unit is done. Until then a
/// session on the target locks `blocker` as soon as the schema is there, so the copy cannot
/// finish first. Returns the locking session (still holding the lock).
async fn start_and_kill(m: &Migration, target: &TestDb) -> Client {
    let mut child = m.spawn_copy(&[]);
    let locker = target.client().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let exists: bool = locker
            .query_one("SELECT to_regclass('public.blocker') IS NOT NULL", &[])
            .await
            .expect("look for blocker")
            .get(0);
        if exists {
            break;
        }
        assert!(
            child.try_wait().expect("poll the copy").is_none(),
            "the copy ended before the schema was restored:\n{}",
            m.spawned_output()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "no schema on the target"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    locker
        .batch_execute("BEGIN; LOCK TABLE blocker IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock blocker");
    let status = m
        .wait_for_status("a unit to be done", WAIT, |s| {
            s["units_done"].as_u64().unwrap_or(0) >= 1
        })
        .await;
    assert_ne!(status["phase"], "sync", "{status:#}");
    child.kill().expect("kill -9 ferry copy");
    child.wait().expect("reap ferry copy");
    let status = m.status_async().await;
    let (done, total) = (
        status["units_done"].as_u64(),
        status["units_total"].as_u64(),
    );
    assert!(
        done < total,
        "every unit was done before the kill: {status:#}"
    );
    eprintln!("killed ferry copy with {done:?} of {total:?} units done");
    locker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_copy_resumes_in_the_same_snapshot() {
    let (source, target) = databases().await;
    let m = Migration::between("resume-held", &source, &target, SPEC);
    let locker = start_and_kill(&m, &target).await;

    let status = m.status_async().await;
    assert_eq!(
        status["snapshot_held"], true,
        "the holder died with the copy: {status:#}"
    );
    let snapshot = status["snapshot"].clone();
    let holder = m.holder_pid().expect("snapshot.json names the holder");
    assert!(pid_alive(holder), "holder {holder} is gone");
    locker.batch_execute("ROLLBACK").await.expect("unlock");

    let out = m.run_async("copy", &["--verify"]).await.success();
    assert!(
        out.stderr.contains("resuming in snapshot"),
        "the rerun did not resume:\n{}",
        out.text()
    );
    let status = m.status_async().await;
    assert_eq!(status["phase"], "sync", "{status:#}");
    assert_eq!(status["snapshot"], snapshot, "the rerun changed snapshots");
    assert_eq!(status["units_done"], status["units_total"], "{status:#}");
    assert_eq!(status["tables_done"], status["tables_total"], "{status:#}");
    if cluster().major() >= 14 {
        // TID range scans (14+) let big be cut into ranges.
        let units = status["units_total"].as_u64().unwrap_or(0);
        assert!(units > 10, "big was not split: {status:#}");
    }
    assert!(!pid_alive(holder), "the holder outlived the finished copy");

    let (src, dst) = (source.client().await, target.client().await);
    assert_same_rows(&src, &dst).await;
    assert_eq!(slots(&src, &m.slot()).await.len(), 1, "one slot");

    // The test kit drops a database even while Ferry's slot sits in it.
    let name = source.name().to_owned();
    drop(source);
    let left: i64 = dst
        .query_one(
            "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) \
                  + (SELECT count(*) FROM pg_replication_slots WHERE database = $1)",
            &[&name],
        )
        .await
        .expect("look for the dropped source")
        .get(0);
    assert_eq!(
        left, 0,
        "the source database or its slot survived TestDb's drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_snapshot_needs_restart() {
    let (source, target) = databases().await;
    let m = Migration::between("resume-lost", &source, &target, SPEC);
    let locker = start_and_kill(&m, &target).await;

    let holder = m.holder_pid().expect("snapshot.json names the holder");
    kill9(holder);
    let deadline = tokio::time::Instant::now() + WAIT;
    while pid_alive(holder) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "holder {holder} survived kill -9"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(m.status_async().await["snapshot_held"], false);

    let out = m.run_async("copy", &[]).await.failure();
    assert!(
        out.stderr.contains("snapshot") && out.stderr.contains("--restart"),
        "the refusal does not name --restart:\n{}",
        out.text()
    );

    let out = m
        .run_async("copy", &["--restart", "--verify"])
        .await
        .success();
    assert!(out.stdout.contains("verified"), "{}", out.text());
    let status = m.status_async().await;
    assert_eq!(status["phase"], "sync", "{status:#}");
    assert_eq!(status["units_done"], status["units_total"], "{status:#}");

    let (src, dst) = (source.client().await, target.client().await);
    assert_same_rows(&src, &dst).await;
    // Nothing of the first run is left on the target beside the second's objects.
    let pubs = m.publications();
    let (a, b) = (schema_dump(&source, &pubs), schema_dump(&target, &pubs));
    if a != b {
        let dir = std::env::temp_dir();
        common::save(&dir.join("ferry-restart-source.sql"), &a);
        common::save(&dir.join("ferry-restart-target.sql"), &b);
        panic!("schemas differ after --restart: diff {0}/ferry-restart-source.sql {0}/ferry-restart-target.sql", dir.display());
    }
    let ours = slots(&src, &m.slot()).await;
    assert_eq!(ours.len(), 1, "slots after --restart: {ours:?}");
    let all: i64 = src
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()",
            &[],
        )
        .await
        .expect("count slots")
        .get(0);
    assert_eq!(all, 1, "more than one slot in the source database");
    // The restarted run's slot: at its consistent point, or moved on by its spooler (ADR 10:
    // past the consistent point, never past what the spool holds).
    let lsn = lsn_value(status["consistent_lsn"].as_str().expect("consistent_lsn"));
    let confirmed = lsn_value(ours[0].2.as_deref().expect("confirmed_flush_lsn"));
    let spooled = status["spool_lsn"].as_str().map_or(lsn, lsn_value);
    assert!(
        lsn <= confirmed && confirmed <= spooled.max(lsn),
        "the slot is not the restarted run's: confirmed {confirmed:#x}, consistent point \
         {lsn:#x}, spooled through {spooled:#x}"
    );
    // The first run's spool went with it: the spool starts at the new consistent point.
    let spool = Spool::open(&m.state_dir().join("spool"))
        .await
        .expect("read the spool")
        .expect("the restarted copy spooled");
    assert_eq!(spool.start().0, lsn, "the spool is not the restarted run's");
}
