//! `ferry migrate` end to end on real clusters: a migration under pgbench that cuts over by
//! itself with every committed transaction on the target; manual approval, refusals,
//! finalize; rollback before and after cutover leaving the source exactly as it was; a
//! fence that does not hold rolled back.

mod common;

use std::time::Duration;

use common::workflow::{as_role, count, pgbench_database, pgbench_load, source_fingerprint, QUICK};
use common::{assert_every_table_same, KillOnDrop, Migration};
use ferry_testkit::{cluster, TestDb};

async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Waits for a `ferry migrate` started in the background to exit.
async fn exited(mut migrate: KillOnDrop) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || migrate.0.wait())
        .await
        .expect("join")
        .expect("wait for migrate")
}

#[tokio::test]
async fn auto_cutover_under_pgbench_keeps_every_committed_transaction_and_rolls_back_exactly() {
    let (source, target) = (
        TestDb::create(cluster()).await,
        TestDb::create(cluster()).await,
    );
    let app = pgbench_database(&source, 1).await;
    let src = source.client().await;
    let before = source_fingerprint(&src).await;
    let m = Migration::between(
        "mig-auto",
        &source,
        &target,
        &format!("{QUICK}approval = \"auto\"\n"),
    );
    let mut load = KillOnDrop(pgbench_load(&as_role(&source, &app), 4, 200, 600));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = m.run_async("migrate", &[]).await.success();
    let text = out.text();
    eprintln!("{text}");
    assert!(text.contains("target open"), "{text}");
    assert!(text.contains("writes paused at cutover"), "{text}");
    // The fence ended pgbench's sessions; whatever it committed is on the target.
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.kill9();
    let tgt = target.client().await;
    let committed = count(&src, "pgbench_history").await;
    assert!(
        committed > 0,
        "pgbench committed nothing: the test proves nothing"
    );
    assert_eq!(committed, count(&tgt, "pgbench_history").await);
    assert_every_table_same(&src, &tgt).await;
    let status = m.status_async().await;
    assert_eq!(status["phase"], "cut_over", "{status:#}");
    assert!(
        status["cutover"]["pause_seconds"].as_f64().is_some(),
        "{status:#}"
    );
    assert_eq!(status["validation"]["result"], "equal", "{status:#}");

    // The application's role is kept out of the source; the target takes its writes.
    let Err(refused) = connect(&as_role(&source, &app)).await else {
        panic!("the application connected to the fenced source");
    };
    assert!(
        format!("{refused:?}").contains("permission denied"),
        "{refused:?}"
    );
    let on_target = connect(&as_role(&target, &app)).await.expect("target open");
    on_target
        .batch_execute("INSERT INTO orders (note) VALUES ('after cutover')")
        .await
        .expect("write on the target");

    // A second `ferry migrate` says it is done; a rollback gives the source back exactly.
    m.run_async("migrate", &[]).await.success();
    let back = m.run_async("rollback", &["--yes"]).await.success();
    assert!(
        back.text()
            .contains("NOT on the source: public.orders: 1 row(s) inserted or updated"),
        "{}",
        back.text()
    );
    assert_eq!(source_fingerprint(&src).await, before);
    connect(&as_role(&source, &app))
        .await
        .expect("the source is open again");
    assert_eq!(m.status_async().await["phase"], "rolled_back");
}

#[tokio::test]
async fn manual_approval_refusals_cutover_and_finalize() {
    let (source, target) = (
        TestDb::create(cluster()).await,
        TestDb::create(cluster()).await,
    );
    let app = pgbench_database(&source, 1).await;
    let src = source.client().await;
    let m = Migration::between("mig-manual", &source, &target, QUICK);

    let none = m.run_async("cutover", &["--yes"]).await;
    assert_eq!(none.code, Some(2), "{}", none.text());
    assert!(
        none.text().contains("no `ferry migrate` is running"),
        "{}",
        none.text()
    );

    let mut load = KillOnDrop(pgbench_load(&as_role(&source, &app), 2, 200, 600));
    let migrate = KillOnDrop(m.spawn_logged("migrate", &[], "migrate"));
    m.wait_for_status("ready", Duration::from_secs(120), |s| s["phase"] == "ready")
        .await;
    // No terminal to confirm on: refused, nothing done.
    let unconfirmed = m.run_async("cutover", &[]).await;
    assert_eq!(unconfirmed.code, Some(2), "{}", unconfirmed.text());
    assert!(
        unconfirmed.text().contains("--yes"),
        "{}",
        unconfirmed.text()
    );
    // The second `ferry migrate` on the same spec is refused while the first runs.
    let second = m.run_async("migrate", &[]).await;
    assert!(
        second.text().contains("another ferry process is working"),
        "{}",
        second.text()
    );

    let go = m.run_async("cutover", &["--yes"]).await.success();
    assert!(go.text().contains("cut over"), "{}", go.text());
    let status = exited(migrate).await;
    assert!(status.success(), "{}", m.logged_output("migrate"));
    load.kill9();
    let tgt = target.client().await;
    assert_eq!(
        count(&src, "pgbench_history").await,
        count(&tgt, "pgbench_history").await
    );
    assert_every_table_same(&src, &tgt).await;

    let fin = m.run_async("finalize", &[]).await.success();
    assert!(
        fin.text().contains("dropped replication slot"),
        "{}",
        fin.text()
    );
    let slots = src
        .query(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&m.slot()],
        )
        .await
        .expect("slots");
    assert!(slots.is_empty());
    assert!(m.state_dir().join("report.md").exists());
    assert_eq!(m.status_async().await["phase"], "finalized");
    let late = m.run_async("rollback", &["--yes"]).await;
    assert_eq!(late.code, Some(2), "{}", late.text());
}

#[tokio::test]
async fn rollback_before_cutover_through_the_running_migrate_restores_the_source() {
    let (source, target) = (
        TestDb::create(cluster()).await,
        TestDb::create(cluster()).await,
    );
    let app = pgbench_database(&source, 1).await;
    let src = source.client().await;
    let before = source_fingerprint(&src).await;
    let m = Migration::between("mig-back", &source, &target, QUICK);
    let mut load = KillOnDrop(pgbench_load(&as_role(&source, &app), 2, 200, 600));
    let migrate = KillOnDrop(m.spawn_logged("migrate", &[], "migrate"));
    m.wait_for_status("ready", Duration::from_secs(120), |s| s["phase"] == "ready")
        .await;
    m.run_async("rollback", &["--yes"]).await.success();
    let status = exited(migrate).await;
    assert!(status.success(), "{}", m.logged_output("migrate"));
    load.kill9();
    assert_eq!(source_fingerprint(&src).await, before);
    assert_eq!(m.status_async().await["phase"], "rolled_back");
}

#[tokio::test]
async fn a_fence_that_does_not_hold_is_rolled_back_and_said() {
    let (source, target) = (
        TestDb::create(cluster()).await,
        TestDb::create(cluster()).await,
    );
    pgbench_database(&source, 1).await;
    let src = source.client().await;
    let before = source_fingerprint(&src).await;
    let m = Migration::between("mig-leak", &source, &target, QUICK);
    let migrate = KillOnDrop(m.spawn_logged("migrate", &[], "migrate"));
    m.wait_for_status("ready", Duration::from_secs(120), |s| s["phase"] == "ready")
        .await;
    // A session of Ferry's own role (which the fence cannot keep out) holds a transaction.
    let intruder = connect(&format!("{} application_name=intruder", source.conninfo()))
        .await
        .expect("connect");
    intruder
        .batch_execute("BEGIN; UPDATE pgbench_branches SET bbalance = bbalance + 1")
        .await
        .expect("open a transaction");
    let out = m.run_async("cutover", &["--yes"]).await.failure();
    assert!(
        out.text().contains("the fence did not hold"),
        "{}",
        out.text()
    );
    assert!(out.text().contains("intruder"), "{}", out.text());
    let status = exited(migrate).await;
    assert!(!status.success(), "{}", m.logged_output("migrate"));
    let status = m.status_async().await;
    assert_eq!(status["phase"], "ready", "{status:#}");
    assert!(
        status["last_error"]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("the source takes writes again")),
        "{status:#}"
    );
    intruder.batch_execute("ROLLBACK").await.expect("rollback");
    m.run_async("rollback", &["--yes"]).await.success();
    assert_eq!(source_fingerprint(&src).await, before);
}
