//! `ferry sync` at its edges: the changes made just after the copy's snapshot (while the copy
//! runs, and just after it returns) arrive exactly once, deleted rows stay deleted; a table
//! redefined on both sides while `ferry sync` runs keeps applying; a column the source has
//! and the target lacks stops sync with an error naming both, and a rerun after the target
//! catches up applies everything exactly once.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_every_table_same, KillOnDrop, Migration};
use ferry_testkit::{cluster, TestDb};
use tokio_postgres::Client;

const WAIT: Duration = Duration::from_secs(120);

async fn one_i64(db: &Client, sql: &str) -> i64 {
    db.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Polls `sql` (a boolean query) on `db` until it is true; panics after `WAIT`.
async fn wait_until(db: &Client, what: &str, sql: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let done: bool = db
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0);
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_right_after_the_snapshot_arrive_exactly_once() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source
        .execute_batch(
            "CREATE TABLE filler (id int PRIMARY KEY, v text NOT NULL);
             INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 300000) g;
             CREATE TABLE canary (id int PRIMARY KEY, v text);
             INSERT INTO canary SELECT g, 'before' FROM generate_series(1, 100) g;
             CREATE TABLE canary_log (v text);
             ALTER TABLE canary_log REPLICA IDENTITY FULL;
             INSERT INTO canary_log VALUES ('before'), ('kept');
             CREATE TABLE zblocker (id int PRIMARY KEY);
             INSERT INTO zblocker VALUES (1);",
        )
        .await;
    source.execute_batch("VACUUM ANALYZE").await;
    let (src, dst) = (source.client().await, target.client().await);
    // One worker, largest table first: zblocker is copied last.
    let m = Migration::between("sync-canary", &source, &target, "[copy]\njobs = 1\n");
    let mut copy = KillOnDrop(m.spawn_copy(&[]));

    // The schema reaches the target after the slot and its snapshot exist: from then on,
    // the source's writes are after the snapshot. Holding zblocker keeps the copy running.
    wait_until(
        &dst,
        "the schema on the target",
        "SELECT to_regclass('public.zblocker') IS NOT NULL",
    )
    .await;
    let locker = target.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE zblocker IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock zblocker");
    src.batch_execute(
        "INSERT INTO canary VALUES (1001, 'during copy');
         INSERT INTO canary_log VALUES ('during copy');
         UPDATE canary SET v = 'updated during copy' WHERE id = 1;
         DELETE FROM canary WHERE id = 2;
         DELETE FROM canary_log WHERE v = 'before';",
    )
    .await
    .expect("writes during the copy");
    assert!(
        copy.0.try_wait().expect("poll the copy").is_none(),
        "the copy finished before the writes; they were not made during it:\n{}",
        m.spawned_output()
    );
    assert_ne!(m.status_async().await["phase"], "sync");
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    let status = tokio::task::spawn_blocking(move || copy.0.wait())
        .await
        .expect("join")
        .expect("wait for the copy");
    assert!(status.success(), "copy failed:\n{}", m.spawned_output());

    // The copy holds the snapshot's rows, none of the later writes.
    let at_snapshot = |sql: &'static str, want: i64| {
        let dst = &dst;
        async move { assert_eq!(one_i64(dst, sql).await, want, "after the copy: {sql}") }
    };
    at_snapshot("SELECT count(*) FROM canary WHERE id = 1001", 0).await;
    at_snapshot("SELECT count(*) FROM canary WHERE id = 2", 1).await;
    at_snapshot("SELECT count(*) FROM canary WHERE v = 'before'", 100).await;
    at_snapshot("SELECT count(*) FROM canary_log WHERE v = 'before'", 1).await;

    src.batch_execute(
        "INSERT INTO canary VALUES (1002, 'after copy');
         INSERT INTO canary_log VALUES ('after copy');
         UPDATE canary SET v = 'updated after copy' WHERE id = 4;
         DELETE FROM canary WHERE id = 3;",
    )
    .await
    .expect("writes after the copy");

    for round in 0..2 {
        m.run_async("sync", &["--until-caught-up"]).await.success();
        for (sql, want) in [
            (
                "SELECT count(*) FROM canary WHERE id = 1001 AND v = 'during copy'",
                1,
            ),
            (
                "SELECT count(*) FROM canary WHERE id = 1002 AND v = 'after copy'",
                1,
            ),
            ("SELECT count(*) FROM canary_log WHERE v = 'during copy'", 1),
            ("SELECT count(*) FROM canary_log WHERE v = 'after copy'", 1),
            ("SELECT count(*) FROM canary_log WHERE v = 'before'", 0),
            ("SELECT count(*) FROM canary_log WHERE v = 'kept'", 1),
            ("SELECT count(*) FROM canary WHERE id IN (2, 3)", 0),
            (
                "SELECT count(*) FROM canary WHERE id = 1 AND v = 'updated during copy'",
                1,
            ),
            (
                "SELECT count(*) FROM canary WHERE id = 4 AND v = 'updated after copy'",
                1,
            ),
            ("SELECT count(*) FROM canary", 100),
        ] {
            assert_eq!(one_i64(&dst, sql).await, want, "sync round {round}: {sql}");
        }
        assert_every_table_same(&src, &dst).await;
    }
}

/// Runs `sql` on the source, then waits until `ready` is true on the target (the running
/// `ferry sync` applied it); panics with sync's output if sync ended meanwhile.
async fn apply_live(
    m: &Migration,
    sync: &mut KillOnDrop,
    src: &Client,
    dst: &Client,
    sql: &str,
    ready: &str,
) {
    src.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("source: {e}\n{sql}"));
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = sync.0.try_wait().expect("poll ferry sync") {
            panic!(
                "ferry sync ended ({status}) while applying:\n{sql}\n{}",
                m.logged_output("live")
            );
        }
        let done: bool = dst
            .query_one(ready, &[])
            .await
            .unwrap_or_else(|e| panic!("{ready}: {e}"))
            .get(0);
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {ready}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_redefined_mid_stream_keep_applying() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source
        .execute_batch(
            "CREATE TABLE evolve (id int PRIMARY KEY, a text, b int, c text);
             INSERT INTO evolve SELECT g, 'a' || g, g, 'c' || g FROM generate_series(1, 100) g;
             CREATE TABLE loose (k int, v text, w text);
             ALTER TABLE loose REPLICA IDENTITY FULL;
             INSERT INTO loose SELECT g % 10, 'v' || (g % 10), 'w' FROM generate_series(1, 40) g;",
        )
        .await;
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between("sync-ddl", &source, &target, "");
    m.run_async("copy", &[]).await.success();

    // Some changes, applied by a run that stops once caught up.
    src.batch_execute(
        "INSERT INTO evolve SELECT g, 'a' || g, g, 'c' || g FROM generate_series(101, 150) g;
         UPDATE evolve SET a = a || '!' WHERE id <= 20;
         DELETE FROM evolve WHERE id BETWEEN 90 AND 100;
         UPDATE loose SET v = v || '!' WHERE ctid = (SELECT ctid FROM loose WHERE k = 1 LIMIT 1);",
    )
    .await
    .expect("first changes");
    m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_every_table_same(&src, &dst).await;

    // The rest while one `ferry sync` runs: it sees each table redefined mid-stream.
    let mut sync = KillOnDrop(m.spawn_logged("sync", &[], "live"));
    apply_live(
        &m,
        &mut sync,
        &src,
        &dst,
        "INSERT INTO evolve VALUES (151, 'a151', 151, 'c151');
         UPDATE evolve SET b = b * 2 WHERE id BETWEEN 21 AND 30;
         DELETE FROM loose WHERE ctid = (SELECT ctid FROM loose WHERE k = 2 LIMIT 1);",
        "SELECT EXISTS (SELECT 1 FROM evolve WHERE id = 151)",
    )
    .await;

    // A column added, target first, then used.
    dst.batch_execute(
        "ALTER TABLE evolve ADD COLUMN d int DEFAULT 5;
         ALTER TABLE loose ADD COLUMN x text;",
    )
    .await
    .expect("add columns on the target");
    apply_live(
        &m,
        &mut sync,
        &src,
        &dst,
        "ALTER TABLE evolve ADD COLUMN d int DEFAULT 5;
         ALTER TABLE loose ADD COLUMN x text;
         INSERT INTO evolve (id, a, b, c, d) SELECT g, 'a' || g, g, 'c' || g, g * 10
           FROM generate_series(152, 170) g;
         UPDATE evolve SET d = -id WHERE id <= 30;
         UPDATE evolve SET c = 'c changed' WHERE id BETWEEN 31 AND 40;
         BEGIN;
           UPDATE evolve SET id = id + 1000, d = 7 WHERE id BETWEEN 41 AND 45;
           DELETE FROM evolve WHERE id BETWEEN 46 AND 50;
           UPDATE loose SET x = 'x' || k WHERE k < 5;
           UPDATE loose SET v = 'moved' WHERE ctid = (SELECT ctid FROM loose WHERE k = 3 LIMIT 1);
         COMMIT;
         INSERT INTO evolve (id, d) VALUES (-1, 0);",
        "SELECT EXISTS (SELECT 1 FROM evolve WHERE id = -1)",
    )
    .await;

    // A column dropped, source first: the target drops it once every change that carried
    // it is applied.
    apply_live(
        &m,
        &mut sync,
        &src,
        &dst,
        "ALTER TABLE evolve DROP COLUMN b;
         ALTER TABLE loose DROP COLUMN w;
         INSERT INTO evolve (id, a, c, d) SELECT g, 'a' || g, 'c' || g, g
           FROM generate_series(171, 180) g;
         UPDATE evolve SET a = 'after drop' WHERE id BETWEEN 51 AND 55;
         DELETE FROM loose WHERE ctid = (SELECT ctid FROM loose WHERE k = 4 LIMIT 1);
         INSERT INTO loose VALUES (11, 'after drop', 'x11');
         INSERT INTO evolve (id) VALUES (-2);",
        "SELECT EXISTS (SELECT 1 FROM evolve WHERE id = -2)",
    )
    .await;
    dst.batch_execute("ALTER TABLE evolve DROP COLUMN b; ALTER TABLE loose DROP COLUMN w;")
        .await
        .expect("drop columns on the target");
    apply_live(
        &m,
        &mut sync,
        &src,
        &dst,
        "INSERT INTO evolve (id, a, c, d) SELECT g, 'a' || g, 'c' || g, g
           FROM generate_series(181, 190) g;
         UPDATE evolve SET d = d + 1 WHERE id BETWEEN 56 AND 60;
         DELETE FROM evolve WHERE id BETWEEN 61 AND 65;
         UPDATE loose SET x = 'last' WHERE ctid = (SELECT ctid FROM loose WHERE k = 5 LIMIT 1);
         INSERT INTO evolve (id) VALUES (-3);",
        "SELECT EXISTS (SELECT 1 FROM evolve WHERE id = -3)",
    )
    .await;

    // Stopped as an operator would (SIGTERM), then a catching-up run.
    let stopped = Command::new("kill")
        .args(["-TERM", &sync.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(stopped.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = sync.0.wait();
        (status, sync)
    })
    .await
    .expect("join");
    assert!(
        status.0.expect("wait for ferry sync").success(),
        "ferry sync did not stop cleanly:\n{}",
        m.logged_output("live")
    );
    m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_every_table_same(&src, &dst).await;
    let columns = "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute \
                   WHERE attrelid = 'evolve'::regclass AND attnum > 0 AND NOT attisdropped";
    let cols: String = dst.query_one(columns, &[]).await.expect("columns").get(0);
    assert_eq!(cols, "id,a,c,d");
    for (sql, want) in [
        (
            "SELECT count(*) FROM evolve WHERE id BETWEEN 152 AND 170 AND d = id * 10",
            19,
        ),
        (
            "SELECT count(*) FROM evolve WHERE id BETWEEN 1041 AND 1045 AND d = 7",
            5,
        ),
        (
            "SELECT count(*) FROM evolve WHERE id <= 30 AND id > 0 AND d = -id",
            30,
        ),
        ("SELECT count(*) FROM loose WHERE x = 'last'", 1),
    ] {
        assert_eq!(one_i64(&dst, sql).await, want, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_missing_on_the_target_stops_sync_until_added() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source
        .execute_batch(
            "CREATE TABLE wide (id int PRIMARY KEY, a text);
             INSERT INTO wide SELECT g, 'a' || g FROM generate_series(1, 100) g;
             CREATE TABLE wide_log (v text);
             ALTER TABLE wide_log REPLICA IDENTITY FULL;",
        )
        .await;
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between("sync-missing-column", &source, &target, "");
    m.run_async("copy", &[]).await.success();

    src.batch_execute(
        "INSERT INTO wide SELECT g, 'a' || g FROM generate_series(201, 210) g;
         INSERT INTO wide_log VALUES ('before the new column');
         UPDATE wide SET a = 'changed' WHERE id <= 10;
         ALTER TABLE wide ADD COLUMN \"Extra Col\" text;
         INSERT INTO wide SELECT g, 'a' || g, 'x' || g FROM generate_series(211, 220) g;
         UPDATE wide SET \"Extra Col\" = 'set' WHERE id BETWEEN 11 AND 15;
         INSERT INTO wide_log VALUES ('after the new column');",
    )
    .await
    .expect("source changes");

    let failed = m.run_async("sync", &["--until-caught-up"]).await.failure();
    let text = failed.text();
    eprintln!("the refusal:\n{text}");
    assert_ne!(failed.code, Some(101), "ferry sync panicked:\n{text}");
    assert!(!text.contains("panicked"), "ferry sync panicked:\n{text}");
    assert!(
        text.contains("public.wide") && text.contains("Extra Col"),
        "the error does not name the table and the column:\n{text}"
    );
    assert!(
        !text.contains("db error"),
        "a raw driver error instead of an explanation:\n{text}"
    );
    // Nothing after the failing change is on the target, nothing is half applied.
    assert_eq!(
        one_i64(&dst, "SELECT count(*) FROM wide WHERE id > 210").await,
        0
    );
    let before = one_i64(&dst, "SELECT count(*) FROM wide_log").await;
    assert!(before <= 1, "wide_log has {before} rows");

    dst.batch_execute("ALTER TABLE wide ADD COLUMN \"Extra Col\" text")
        .await
        .expect("add the column on the target");
    for _ in 0..2 {
        m.run_async("sync", &["--until-caught-up"]).await.success();
        assert_every_table_same(&src, &dst).await;
        for (sql, want) in [
            (
                "SELECT count(*) FROM wide_log WHERE v = 'before the new column'",
                1,
            ),
            (
                "SELECT count(*) FROM wide_log WHERE v = 'after the new column'",
                1,
            ),
            ("SELECT count(*) FROM wide WHERE id > 200", 20),
            ("SELECT count(*) FROM wide WHERE \"Extra Col\" = 'set'", 5),
        ] {
            assert_eq!(one_i64(&dst, sql).await, want, "{sql}");
        }
    }
}

/// Runs that write nothing on the target (only their own caught-up marker, or changes that
/// cancel out) leave the origin where it was while the slot is confirmed further; the next
/// runs must still start, and apply what follows exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_runs_with_nothing_new_succeed() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source
        .execute_batch("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await;
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between("sync-idle", &source, &target, "");
    m.run_async("copy", &[]).await.success();
    src.batch_execute("INSERT INTO t VALUES (1, 'one')")
        .await
        .expect("insert");
    for run in 0..4 {
        let out = m.run_async("sync", &["--until-caught-up"]).await;
        let slot: Option<String> = src
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&m.slot()],
            )
            .await
            .expect("slot")
            .get(0);
        eprintln!(
            "run {run}: exit {:?}; slot confirmed {slot:?}, target origin {:?}",
            out.code,
            m.applied_lsn(&dst).await
        );
        assert_eq!(out.code, Some(0), "run {run} failed:\n{}", out.text());
        assert_every_table_same(&src, &dst).await;
    }
    // Changes that cancel out within one group: nothing to write on the target.
    src.batch_execute(
        "INSERT INTO t VALUES (3, 'gone');
         UPDATE t SET v = 'gone again' WHERE id = 3;
         DELETE FROM t WHERE id = 3;",
    )
    .await
    .expect("cancelling changes");
    for _ in 0..2 {
        m.run_async("sync", &["--until-caught-up"]).await.success();
        assert_every_table_same(&src, &dst).await;
    }
    src.batch_execute("INSERT INTO t VALUES (2, 'two')")
        .await
        .expect("insert");
    m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_every_table_same(&src, &dst).await;
    assert_eq!(one_i64(&dst, "SELECT count(*) FROM t").await, 2);
}
