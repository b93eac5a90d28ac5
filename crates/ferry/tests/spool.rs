//! The change stream spooled to local disk while `ferry copy` runs (ADR 10): the slot's
//! confirmed position moves past the consistent point during the copy (the source stops
//! holding that WAL), and `ferry sync` applies the spool then the slot, every change exactly
//! once; a `ferry copy` killed with `kill -9` mid-spool resumes spooling where the spool's
//! last whole transaction ends; a torn spool tail is cut, while a spool that is missing,
//! short of what the slot was told, or damaged stops `ferry sync` with the way out.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_every_table_same, lsn_value, KillOnDrop, Migration};
use ferry_testkit::{cluster, TestDb};
use tokio_postgres::Client;

const WAIT: Duration = Duration::from_secs(120);

/// `zblocker` is the smallest table but `audit`'s one row: with one job it is copied (nearly)
/// last, so a lock on it on the target holds the copy back.
const SCHEMA: &str = "
    CREATE TABLE filler (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 100000) g;
    CREATE TABLE audit (id bigint PRIMARY KEY, note text);
    INSERT INTO audit VALUES (0, 'before the copy');
    CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL);
    INSERT INTO counters SELECT g, 0 FROM generate_series(0, 49) g;
    CREATE TABLE zblocker (id int PRIMARY KEY);
    INSERT INTO zblocker VALUES (1);
";

async fn databases() -> (TestDb, TestDb) {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source.execute_batch(SCHEMA).await;
    source.execute_batch("VACUUM ANALYZE").await;
    (source, target)
}

/// Source transaction `i`: a new audit row, a counter bumped, a filler row changed.
async fn write(src: &Client, i: i64) {
    src.batch_execute(&format!(
        "BEGIN;
         INSERT INTO audit VALUES ({i}, 'txn {i}');
         UPDATE counters SET n = n + 1 WHERE id = {c};
         UPDATE filler SET v = 'txn {i}' WHERE id = {f};
         COMMIT;",
        c = i % 50,
        f = i % 1000 + 1,
    ))
    .await
    .unwrap_or_else(|e| panic!("write {i}: {e}"));
}

async fn slot_confirmed(src: &Client, slot: &str) -> u64 {
    let text: Option<String> = src
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("read the slot")
        .get(0);
    text.map_or(0, |t| lsn_value(&t))
}

async fn current_lsn(src: &Client) -> u64 {
    let text: String = src
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("current WAL position")
        .get(0);
    lsn_value(&text)
}

/// Starts `ferry copy` and holds it back with a lock on the target's `zblocker` as soon as
/// the schema is there (the slot and its snapshot exist by then). Returns the copy, the
/// locking session and the consistent point.
async fn start_held_copy(m: &Migration, target: &TestDb) -> (KillOnDrop, Client, u64) {
    let mut copy = KillOnDrop(m.spawn_copy(&[]));
    let locker = target.client().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let exists: bool = locker
            .query_one("SELECT to_regclass('public.zblocker') IS NOT NULL", &[])
            .await
            .expect("look for zblocker")
            .get(0);
        if exists {
            break;
        }
        assert!(
            copy.0.try_wait().expect("poll the copy").is_none(),
            "the copy ended before the schema was restored:\n{}",
            m.spawned_output()
        );
        assert!(Instant::now() < deadline, "no schema on the target");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    locker
        .batch_execute("BEGIN; LOCK TABLE zblocker IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock zblocker");
    let status = m
        .wait_for_status("the consistent point", WAIT, |s| {
            s["consistent_lsn"].is_string()
        })
        .await;
    let consistent = lsn_value(status["consistent_lsn"].as_str().unwrap_or("0/0"));
    (copy, locker, consistent)
}

/// Waits until the slot is confirmed through `at_least` while the copy still runs.
async fn wait_confirmed(src: &Client, m: &Migration, copy: &mut KillOnDrop, at_least: u64) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let confirmed = slot_confirmed(src, &m.slot()).await;
        if confirmed >= at_least {
            return confirmed;
        }
        assert!(
            copy.0.try_wait().expect("poll the copy").is_none(),
            "the copy ended while waiting for the slot to advance:\n{}",
            m.spawned_output()
        );
        assert!(
            Instant::now() < deadline,
            "the slot stayed at {confirmed:#x} during the copy (waiting for {at_least:#x}):\n{}",
            m.spawned_output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lets the held copy finish and checks it succeeded.
async fn finish_copy(m: &Migration, mut copy: KillOnDrop, locker: Client) {
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    let status = tokio::task::spawn_blocking(move || copy.0.wait())
        .await
        .expect("join")
        .expect("wait for the copy");
    assert!(status.success(), "copy failed:\n{}", m.spawned_output());
}

async fn count(db: &Client, sql: &str) -> i64 {
    db.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_stops_holding_wal_during_the_copy_and_sync_applies_the_spool_once() {
    let (source, target) = databases().await;
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between("spool-live", &source, &target, "[copy]\njobs = 1\n");
    let (mut copy, locker, consistent) = start_held_copy(&m, &target).await;

    for i in 1..=300 {
        write(&src, i).await;
    }
    let written = current_lsn(&src).await;
    // The copy is held back; the spooler alone moves the slot, up to the writes' end.
    let confirmed = wait_confirmed(&src, &m, &mut copy, written).await;
    assert!(confirmed > consistent);
    let status = m.status_async().await;
    assert_ne!(status["phase"], "sync", "{status:#}");
    assert!(
        status["spool_bytes"].as_u64().unwrap_or(0) > 0,
        "nothing on disk: {status:#}"
    );
    let spooled = lsn_value(status["spool_lsn"].as_str().expect("spool_lsn recorded"));
    assert!(
        spooled >= confirmed,
        "recorded {spooled:#x} < slot {confirmed:#x}"
    );
    finish_copy(&m, copy, locker).await;
    assert_eq!(
        count(&dst, "SELECT count(*) FROM audit").await,
        1,
        "the copy holds the snapshot's rows only"
    );

    for i in 301..=350 {
        write(&src, i).await;
    }
    for round in 0..2 {
        let out = m.run_async("sync", &["--until-caught-up"]).await.success();
        assert_every_table_same(&src, &dst).await;
        assert_eq!(count(&dst, "SELECT count(*) FROM audit").await, 351);
        assert_eq!(
            count(&dst, "SELECT sum(n)::int8 FROM counters").await,
            350,
            "round {round}: a transaction applied twice or not at all:\n{}",
            out.text()
        );
        let status = m.status_async().await;
        assert_eq!(status["spool_bytes"], 0, "the spool is left: {status:#}");
    }
}

/// A writer committing transaction after transaction (unique audit ids from 1) until stopped.
fn workload(
    src: Client,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            write(&src, i).await;
            done.store(i as u64, Ordering::SeqCst);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_killed_while_spooling_resumes_from_the_spool() {
    let (source, target) = databases().await;
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between("spool-kill", &source, &target, "[copy]\njobs = 1\n");
    let (mut copy, locker, consistent) = start_held_copy(&m, &target).await;
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writer = workload(source.client().await, stop.clone(), done.clone());

    // Killed mid-stream: the writes go on, so the spool is likely cut inside a transaction.
    let before_kill = wait_confirmed(&src, &m, &mut copy, consistent + 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    copy.kill9();
    let at_kill = slot_confirmed(&src, &m.slot()).await;
    eprintln!(
        "killed ferry copy after {} transactions; slot at {at_kill:#x} (first seen {before_kill:#x})",
        done.load(Ordering::SeqCst)
    );
    common::wait_slot_inactive(&src, &m.slot(), WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The rerun resumes in the same snapshot (still held back by the lock) and spools again
    // from where the spool's last whole transaction ends.
    let mut copy = KillOnDrop(m.spawn_copy(&[]));
    let written = current_lsn(&src).await;
    wait_confirmed(&src, &m, &mut copy, written).await;
    finish_copy(&m, copy, locker).await;
    assert!(
        m.spawned_output().contains("resuming in snapshot"),
        "{}",
        m.spawned_output()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("workload");
    let total = done.load(Ordering::SeqCst) as i64;

    m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_every_table_same(&src, &dst).await;
    assert_eq!(count(&dst, "SELECT count(*) FROM audit").await, total + 1);
    assert_eq!(
        count(&dst, "SELECT sum(n)::int8 FROM counters").await,
        total
    );
}

/// Copies every file of `from` into `to` (created).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy file");
    }
}

/// Puts the saved spool back in place of whatever is there.
fn restore(saved: &Path, spool: &Path) {
    let _ = std::fs::remove_dir_all(spool);
    copy_dir(saved, spool);
}

fn last_segment(spool: &Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(spool)
        .expect("read the spool")
        .map(|e| e.expect("dir entry").path())
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_a_missing_short_or_damaged_spool_is_refused() {
    let (source, target) = databases().await;
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between("spool-damage", &source, &target, "[copy]\njobs = 1\n");
    let (mut copy, locker, _) = start_held_copy(&m, &target).await;
    for i in 1..=100 {
        write(&src, i).await;
    }
    let written = current_lsn(&src).await;
    wait_confirmed(&src, &m, &mut copy, written).await;
    finish_copy(&m, copy, locker).await;
    let spool = m.state_dir().join("spool");
    let saved = tempfile::tempdir().expect("temp dir");
    copy_dir(&spool, saved.path());

    let refused = |out: common::Outcome, says: &str| {
        assert!(
            out.stderr.contains(says) && out.stderr.contains("--restart"),
            "expected {says:?} and the way out:\n{}",
            out.text()
        );
    };
    // Gone.
    std::fs::remove_dir_all(&spool).expect("remove the spool");
    let out = m.run_async("sync", &["--until-caught-up"]).await.failure();
    refused(out, "there is no spool there");

    // Short: its last records (which the slot was told about) cut off.
    restore(saved.path(), &spool);
    let seg = last_segment(&spool);
    let len = std::fs::metadata(&seg).expect("segment").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .and_then(|f| f.set_len(len - 40))
        .expect("cut the segment");
    let out = m.run_async("sync", &["--until-caught-up"]).await.failure();
    refused(out, "holds changes only from");

    // Damaged inside: a byte of the first record's payload flipped.
    restore(saved.path(), &spool);
    let first = std::fs::read_dir(&spool)
        .expect("read the spool")
        .map(|e| e.expect("dir entry").path())
        .min()
        .expect("a segment");
    let mut bytes = std::fs::read(&first).expect("read the segment");
    bytes[32 + 25] ^= 0xFF;
    std::fs::write(&first, &bytes).expect("damage the segment");
    let out = m.run_async("sync", &["--until-caught-up"]).await.failure();
    refused(out, "cannot be read back");
    assert_eq!(
        count(&dst, "SELECT count(*) FROM audit").await,
        1,
        "a refused sync applied something"
    );

    // Torn after its last whole transaction, as a crash mid-write leaves it (the seal gone, a
    // record cut short): the spool ends at that transaction and sync applies it all once.
    restore(saved.path(), &spool);
    let seg = last_segment(&spool);
    let mut bytes = std::fs::read(&seg).expect("read the segment");
    bytes.truncate(bytes.len() - 25);
    bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    std::fs::write(&seg, &bytes).expect("tear the segment");
    for i in 101..=120 {
        write(&src, i).await;
    }
    m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_every_table_same(&src, &dst).await;
    assert_eq!(count(&dst, "SELECT count(*) FROM audit").await, 121);
    assert!(!spool.exists(), "the applied spool is left");
}

/// `n` source transactions from `first` in one round trip each hundred.
async fn write_many(src: &Client, first: i64, n: i64, late: bool) {
    let mut i = first;
    while i < first + n {
        let mut sql = String::new();
        for j in i..(i + 100).min(first + n) {
            sql.push_str(&format!(
                "BEGIN;
                 INSERT INTO audit VALUES ({j}, 'txn {j}');
                 UPDATE counters SET n = n + 1 WHERE id = {c};
                 UPDATE filler SET v = 'txn {j}' WHERE id = {f};
                 {late}
                 COMMIT;",
                c = j % 50,
                f = j % 1000 + 1,
                late = if late {
                    format!("INSERT INTO late VALUES ({j});")
                } else {
                    String::new()
                },
            ));
        }
        src.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("writes from {i}: {e}"));
        i += 100;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_killed_while_applying_a_spool_of_many_segments_resumes_exactly_once() {
    // Small segments: many of them, each repeating the Relation messages at its head.
    std::env::set_var("FERRY_SPOOL_SEGMENT_BYTES", "65536");
    let (source, target) = databases().await;
    source
        .execute_batch("CREATE TABLE late (id bigint PRIMARY KEY)")
        .await;
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between("spool-segments", &source, &target, "[copy]\njobs = 1\n");
    let (mut copy, locker, _) = start_held_copy(&m, &target).await;
    // Enough transactions for several of the applier's groups, then some that also write
    // `late`, whose first Relation message comes long after the others'.
    write_many(&src, 1, 10_000, false).await;
    write_many(&src, 10_001, 100, true).await;
    let written = current_lsn(&src).await;
    wait_confirmed(&src, &m, &mut copy, written).await;
    finish_copy(&m, copy, locker).await;
    let spool = m.state_dir().join("spool");
    let segments = std::fs::read_dir(&spool).expect("the spool").count();
    assert!(segments >= 5, "{segments} segments");

    // Sync applies the first groups, then waits on `late`, locked on the target: killed there.
    let late_lock = target.client().await;
    late_lock
        .batch_execute("BEGIN; LOCK TABLE late IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock late");
    let mut sync = KillOnDrop(m.spawn_logged("sync", &["--until-caught-up"], "sync"));
    let deadline = Instant::now() + WAIT;
    loop {
        let waiting = count(
            &dst,
            "SELECT count(*) FROM pg_stat_activity \
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await;
        if waiting > 0 && m.applied_lsn(&dst).await.is_some() {
            break;
        }
        assert!(
            sync.0.try_wait().expect("poll sync").is_none(),
            "sync ended:\n{}",
            m.logged_output("sync")
        );
        assert!(Instant::now() < deadline, "sync never waited on late");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sync.kill9();
    let left = std::fs::read_dir(&spool).expect("the spool").count();
    assert!(
        left < segments && !spool.join("00000001.seg").exists(),
        "no applied segment was removed ({left} of {segments} left)"
    );
    late_lock.batch_execute("ROLLBACK").await.expect("unlock");

    write_many(&src, 10_101, 50, true).await;
    let out = m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_every_table_same(&src, &dst).await;
    assert_eq!(count(&dst, "SELECT count(*) FROM audit").await, 10_151);
    assert_eq!(
        count(&dst, "SELECT sum(n)::int8 FROM counters").await,
        10_150,
        "{}",
        out.text()
    );
    assert_eq!(count(&dst, "SELECT count(*) FROM late").await, 150);
    assert!(!spool.exists(), "the applied spool is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_at_max_spool_stops_growing_and_the_slot_keeps_the_rest() {
    let (source, target) = databases().await;
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between(
        "spool-full",
        &source,
        &target,
        "[copy]\njobs = 1\nmax_spool = \"1MB\"\n",
    );
    let (mut copy, locker, consistent) = start_held_copy(&m, &target).await;

    // About 4 MB of changes: each transaction rewrites 100 filler rows.
    for i in 0..100 {
        src.batch_execute(&format!(
            "UPDATE filler SET v = repeat('{c}', 32) WHERE id % 100 = {i}",
            c = char::from(b'a' + (i % 26) as u8)
        ))
        .await
        .expect("update filler");
        write(&src, i + 1).await;
    }
    let status = m
        .wait_for_status("spooling to stop at max_spool", WAIT, |s| {
            s["spool_full"].is_string()
        })
        .await;
    let full = status["spool_full"].as_str().unwrap_or_default().to_owned();
    assert!(full.contains("max_spool"), "{status:#}");
    let spooled = status["spool_bytes"].as_u64().unwrap_or(0);
    // Counted as it is written: the overshoot is the last message (and an unfinished
    // transaction at the end is cut off when the spool is closed).
    assert!(
        (512 << 10..(1 << 20) + (64 << 10)).contains(&spooled),
        "spool of {spooled} bytes with max_spool = 1MB: {status:#}"
    );
    // From here on the slot holds the rest: it stays where the spool ends.
    let confirmed = slot_confirmed(&src, &m.slot()).await;
    assert!(
        confirmed > consistent,
        "nothing was confirmed from the spool"
    );
    write(&src, 1000).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        slot_confirmed(&src, &m.slot()).await,
        confirmed,
        "the slot moved past what the spool holds"
    );
    assert!(copy.0.try_wait().expect("poll the copy").is_none());
    finish_copy(&m, copy, locker).await;

    let out = m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_every_table_same(&src, &dst).await;
    assert_eq!(
        count(&dst, "SELECT count(*) FROM audit").await,
        102,
        "{}",
        out.text()
    );
    assert_eq!(count(&dst, "SELECT sum(n)::int8 FROM counters").await, 101);
    let text = m.run_async("status", &[]).await.success().text();
    assert!(text.contains("spooling stopped early"), "{text}");
}
