//! The WAL guard of `ferry migrate`: on a source with a small `max_slot_wal_keep_size`,
//! with apply blocked on the target while the source writes WAL fast, the migration stops
//! by itself before PostgreSQL invalidates Ferry's slot, says why, and keeps the slot for a
//! resume. (Its own test binary: the setting is the whole cluster's.)

mod common;

use std::time::{Duration, Instant};

use common::workflow::QUICK;
use common::{KillOnDrop, Migration};
use ferry_testkit::{cluster, TestDb};

#[tokio::test]
async fn the_wal_guard_stops_before_the_slot_is_invalidated() {
    let (source, target) = (
        TestDb::create(cluster()).await,
        TestDb::create(cluster()).await,
    );
    let src = source.client().await;
    for sql in [
        "ALTER SYSTEM SET max_slot_wal_keep_size = '256MB'",
        "SELECT pg_reload_conf()",
        "CREATE TABLE filler (id bigserial PRIMARY KEY, pad text)",
    ] {
        src.batch_execute(sql).await.expect("configure the source");
    }
    let m = Migration::between("mig-wal", &source, &target, QUICK);
    let mut migrate = KillOnDrop(m.spawn_logged("migrate", &[], "migrate"));
    m.wait_for_status("ready", Duration::from_secs(120), |s| s["phase"] == "ready")
        .await;

    // Apply cannot go on: the table it writes is locked on the target.
    let tgt = target.client().await;
    tgt.batch_execute("BEGIN; LOCK TABLE filler IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock the target table");
    let deadline = Instant::now() + Duration::from_secs(120);
    let exited = loop {
        if let Some(status) = migrate.0.try_wait().expect("poll migrate") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the guard never stopped the migration:\n{}",
            m.logged_output("migrate")
        );
        // About 8 MB of WAL a round.
        src.batch_execute(
            "INSERT INTO filler (pad) SELECT repeat(md5(g::text), 8) FROM generate_series(1, 30000) g",
        )
        .await
        .expect("write on the source");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = m.logged_output("migrate");
    assert!(!exited.success(), "{log}");
    assert!(log.contains("stopped to protect the source"), "{log}");
    assert!(log.contains("invalidated"), "{log}");
    let lost: Option<String> = src
        .query_one(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
            &[&m.slot()],
        )
        .await
        .expect("the slot is kept")
        .get(0);
    assert_ne!(lost.as_deref(), Some("lost"), "{log}");
    let status = m.status_async().await;
    assert!(
        status["last_error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("invalidated")),
        "{status:#}"
    );
    tgt.batch_execute("ROLLBACK").await.expect("unlock");
}
