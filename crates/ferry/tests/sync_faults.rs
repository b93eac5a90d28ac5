//! `ferry sync` under faults (issue 4, "bad input and faults"). Faults that pass — a
//! terminated backend, a restarted source, a target away for a few seconds — are retried with
//! backoff and every change still lands exactly once. Faults that need a person — Ferry's slot
//! dropped or invalidated, a publication dropped, another cluster behind an endpoint, a target
//! table that no longer fits, a target behind what the source was told — stop it at once with
//! an error that names the object and the way out, and a non-zero exit. An idle stream keeps
//! confirming, so the slot does not hold back WAL that holds nothing for the target.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same_rows, lsn_value, KillOnDrop, Migration, FERRY};
use ferry_testkit::local_cluster::{ClusterOptions, LocalCluster};
use ferry_testkit::{cluster, TestDb};
use tokio_postgres::{Client, NoTls};

/// Given to every background `ferry sync` as PGPASSWORD: it must never be printed.
const SECRET: &str = "Sekr1t-never-printed";

const SCHEMA: &str = "
    CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
    CREATE TABLE events (batch int, n int);
    ALTER TABLE events REPLICA IDENTITY FULL;
    INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 100) g;
";

/// Batch `k`: 40 source transactions, each an event (a table without a key, so a change
/// applied twice shows as a second row) and a balance moved.
fn batch(k: i32) -> String {
    format!(
        "DO $$ BEGIN FOR i IN 1..40 LOOP
           INSERT INTO events VALUES ({k}, i);
           UPDATE accounts SET balance = balance + i WHERE id = 1 + (i * {k}) % 100;
           COMMIT;
         END LOOP; END $$"
    )
}

/// A cluster of this test's own (restarted or reconfigured by it). Leaked: it lives until
/// the process ends, when its watchdog removes it.
fn own_cluster(name: &str) -> &'static LocalCluster {
    let options = ClusterOptions {
        // The shared cluster's major (`FERRY_TEST_PG_MAJOR` runs the suite on another one).
        major: Some(cluster().major()),
        name: name.into(),
        ..ClusterOptions::default()
    };
    Box::leak(Box::new(
        LocalCluster::start(&options).expect("start a cluster"),
    ))
}

async fn connect(conninfo: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    tokio::spawn(conn);
    client
}

/// Runs `sql` on a fresh connection (servers here get restarted under the test's feet).
async fn exec(conninfo: &str, sql: &str) {
    connect(conninfo)
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// One int8 (or text) value from a fresh connection; `None` while the server is away.
async fn try_i64(conninfo: &str, sql: &str) -> Option<i64> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await.ok()?;
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.ok().map(|r| r.get(0))
}

async fn query_text(client: &Client, sql: &str) -> String {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// A `ferry sync` running in the background, its output in files.
struct Background {
    child: KillOnDrop,
    log: tempfile::TempDir,
}

impl Background {
    fn with_args(m: &Migration, args: &[&str]) -> Background {
        let log = tempfile::tempdir().expect("temp dir");
        let file = |n: &str| std::fs::File::create(log.path().join(n)).expect("log file");
        let child: Child = Command::new(FERRY)
            .arg("sync")
            .arg(&m.spec)
            .args(args)
            .env("PGPASSWORD", SECRET)
            .stdin(Stdio::null())
            .stdout(file("out"))
            .stderr(file("err"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {FERRY}: {e}"));
        Background {
            child: KillOnDrop(child),
            log,
        }
    }

    fn output(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.log.path().join(n)).unwrap_or_default();
        format!("{}{}", read("out"), read("err"))
    }

    fn running(&mut self) -> bool {
        self.child.0.try_wait().expect("poll ferry sync").is_none()
    }

    /// Waits for it to end by itself; returns whether it succeeded.
    async fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.0.try_wait().expect("poll ferry sync") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "ferry sync did not stop within {timeout:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM (a clean stop), then waits for it.
    async fn stop(&mut self) -> bool {
        let pid = self.child.0.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        self.wait(Duration::from_secs(60)).await
    }

    /// Waits until `sql` on the target returns `want`.
    async fn wait_for(&mut self, target: &str, sql: &str, want: i64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let got = try_i64(target, sql).await;
            if got == Some(want) {
                return;
            }
            assert!(
                self.running(),
                "ferry sync ended early ({sql} = {got:?}, want {want}):\n{}",
                self.output()
            );
            assert!(
                Instant::now() < deadline,
                "timed out: {sql} = {got:?}, want {want}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Nothing any run printed holds the password, a panic, or a raw driver error.
fn assert_clean(text: &str) {
    assert!(!text.contains(SECRET), "the password was printed:\n{text}");
    assert!(!text.contains("panicked"), "ferry panicked:\n{text}");
    assert!(!text.contains("db error"), "a raw driver error:\n{text}");
}

/// Points the spec's dsn `from` at `to` (an endpoint now reaching something else).
fn rewrite_spec(spec: &Path, from: &str, to: &str) {
    let (from, to) = (format!("dsn = \"{from}\""), format!("dsn = \"{to}\""));
    let text = std::fs::read_to_string(spec).expect("read spec");
    assert!(text.contains(&from), "{from} not in the spec:\n{text}");
    std::fs::write(spec, text.replace(&from, &to)).expect("write spec");
}

const EVENTS: &str = "SELECT count(*) FROM events";

/// SCHEMA in a fresh source database on `source`, copied to a fresh database on `target`.
async fn copied(
    name: &str,
    source: &'static LocalCluster,
    target: &'static LocalCluster,
) -> (TestDb, TestDb, Migration) {
    let (source, target) = (TestDb::create(source).await, TestDb::create(target).await);
    source.execute_batch(SCHEMA).await;
    let m = Migration::between(name, &source, &target, "");
    m.run_async("copy", &[]).await.success();
    (source, target, m)
}

/// `ferry sync <args>` in the background, once it has applied a first batch.
async fn syncing(m: &Migration, src: &str, dst: &str, args: &[&str]) -> Background {
    let mut sync = Background::with_args(m, args);
    exec(src, &batch(1)).await;
    sync.wait_for(dst, EVENTS, 40).await;
    sync
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_faults_are_retried_and_every_change_lands_once() {
    // Both sides on clusters of their own: this test restarts them.
    let source_cluster = own_cluster("faults-src");
    let target_cluster = own_cluster("faults-dst");
    let (source, target, m) = copied("sync-faults", source_cluster, target_cluster).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    let mut sync = syncing(&m, &src, &dst, &[]).await;

    // Ferry's sessions on the target (the applier's and the one reading the origin back) are
    // terminated; the next change meets them.
    let sessions = try_i64(
        &dst,
        "SELECT count(pg_terminate_backend(pid))::int8 FROM pg_stat_activity \
          WHERE datname = current_database() AND application_name = 'ferry'",
    )
    .await;
    assert_eq!(sessions, Some(2), "{}", sync.output());
    exec(&src, &batch(2)).await;
    sync.wait_for(&dst, EVENTS, 80).await;

    // The walsender is terminated.
    let walsenders = try_i64(
        &src,
        &format!(
            "SELECT count(pg_terminate_backend(active_pid))::int8 FROM pg_replication_slots \
              WHERE slot_name = '{}' AND active_pid IS NOT NULL",
            m.slot()
        ),
    )
    .await;
    assert_eq!(walsenders, Some(1), "{}", sync.output());
    exec(&src, &batch(3)).await;
    sync.wait_for(&dst, EVENTS, 120).await;

    // The source restarts.
    tokio::task::spawn_blocking(move || source_cluster.restart(Duration::ZERO))
        .await
        .expect("join")
        .expect("restart the source");
    exec(&src, &batch(4)).await;
    sync.wait_for(&dst, EVENTS, 160).await;

    // The target is away for 3 s while the source keeps changing.
    let outage =
        tokio::task::spawn_blocking(move || target_cluster.restart(Duration::from_secs(3)));
    exec(&src, &batch(5)).await;
    outage.await.expect("join").expect("restart the target");
    exec(&src, &batch(6)).await;
    sync.wait_for(&dst, EVENTS, 240).await;

    assert!(sync.stop().await, "ferry sync failed:\n{}", sync.output());
    let log = sync.output();
    eprintln!("the background run:\n{log}");
    assert_clean(&log);
    assert!(
        log.matches("retrying in").count() >= 4,
        "each fault should have been retried:\n{log}"
    );
    assert!(log.contains("streaming again from"), "{log}");
    assert!(log.contains("retries after faults"), "{log}");

    // A last round; then both sides hold the same rows, none twice.
    exec(&src, &batch(7)).await;
    let last = m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_clean(&last.text());
    let (src, dst) = (source.client().await, target.client().await);
    assert_same_rows(&src, &dst).await;
    let twice: i64 = dst
        .query_one(
            "SELECT count(*) FROM (SELECT batch, n FROM events GROUP BY 1, 2 HAVING count(*) > 1) d",
            &[],
        )
        .await
        .expect("duplicates")
        .get(0);
    assert_eq!(twice, 0, "an event was applied twice");
    assert_eq!(
        dst.query_one(EVENTS, &[])
            .await
            .expect("count")
            .get::<_, i64>(0),
        280
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_longer_than_retry_for_gives_up_and_a_rerun_resumes() {
    let target_cluster = own_cluster("faults-away");
    let (source, target, m) = copied("sync-give-up", cluster(), target_cluster).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    let mut sync = syncing(&m, &src, &dst, &["--retry-for", "2s"]).await;

    // The target is away for 8 s, longer than the 2 s of retries allowed; a change needs it.
    let outage =
        tokio::task::spawn_blocking(move || target_cluster.restart(Duration::from_secs(8)));
    exec(&src, &batch(2)).await;
    assert!(
        !sync.wait(Duration::from_secs(60)).await,
        "{}",
        sync.output()
    );
    let log = sync.output();
    eprintln!("the background run:\n{log}");
    assert_clean(&log);
    for want in [
        "retrying in",
        "gave up after",
        "--retry-for",
        "cannot connect to the target",
    ] {
        assert!(log.contains(want), "missing {want:?}:\n{log}");
    }
    outage.await.expect("join").expect("restart the target");

    // Once the target is back, a new run resumes and nothing is lost or doubled.
    m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_same_rows(&source.client().await, &target.client().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_slot_stops_sync_and_copy_restart_is_the_way_out() {
    let (source, target, m) = copied("sync-slot-gone", cluster(), cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    let mut sync = syncing(&m, &src, &dst, &[]).await;

    // Drop the slot under the running sync: end its walsender, and drop the slot before the
    // retry takes it again.
    let admin = source.client().await;
    let slot = m.slot();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        admin
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                  WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&slot],
            )
            .await
            .expect("terminate the walsender");
        if admin
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "could not drop the slot");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !sync.wait(Duration::from_secs(60)).await,
        "{}",
        sync.output()
    );
    let log = sync.output();
    eprintln!("the background run:\n{log}");
    assert_clean(&log);
    assert!(
        log.contains("retrying in"),
        "the terminated walsender was a passing fault:\n{log}"
    );
    for want in [
        format!("replication slot \"{slot}\" does not exist on the source"),
        "ferry copy SPEC --restart".to_owned(),
    ] {
        assert!(log.contains(&want), "missing {want:?}:\n{log}");
    }

    // A new run says the same at once, before streaming.
    let again = m.run_async("sync", &["--until-caught-up"]).await.failure();
    let text = again.text();
    assert_clean(&text);
    assert!(
        text.contains(&format!("\"{slot}\" does not exist")),
        "{text}"
    );
    assert!(!text.contains("retrying"), "{text}");

    // The way out it names works.
    m.run_async("copy", &["--restart"]).await.success();
    exec(&src, &batch(2)).await;
    m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_same_rows(&source.client().await, &target.client().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_publication_stops_sync_naming_it() {
    let (source, target, m) = copied("sync-pub-gone", cluster(), cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    let mut sync = syncing(&m, &src, &dst, &[]).await;

    let publication = m.publications()[0].clone();
    exec(&src, &format!("DROP PUBLICATION \"{publication}\"")).await;
    exec(&src, "INSERT INTO events VALUES (99, 1)").await;
    assert!(
        !sync.wait(Duration::from_secs(60)).await,
        "{}",
        sync.output()
    );
    let log = sync.output();
    eprintln!("the background run:\n{log}");
    assert_clean(&log);
    for want in [
        format!("publication \"{publication}\" does not exist on the source"),
        "ferry copy SPEC --restart".to_owned(),
    ] {
        assert!(log.contains(&want), "missing {want:?}:\n{log}");
    }
    assert!(!log.contains("retrying"), "not a passing fault:\n{log}");
    assert_eq!(
        try_i64(&dst, "SELECT count(*) FROM events WHERE batch = 99").await,
        Some(0),
        "a change decoded without its publication was applied"
    );

    // Checked before streaming too.
    let again = m.run_async("sync", &["--until-caught-up"]).await.failure();
    assert_clean(&again.text());
    assert!(
        again
            .text()
            .contains(&format!("publication \"{publication}\" does not exist")),
        "{}",
        again.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_slot_is_refused() {
    let source_cluster = own_cluster("faults-wal");
    let (source, _target, m) = copied("sync-slot-lost", source_cluster, cluster()).await;
    m.run_async("sync", &["--until-caught-up"]).await.success();

    // The source may keep 1MB of WAL for slots; write more until a checkpoint invalidates it.
    let src = source.client().await;
    for sql in [
        "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'",
        "SELECT pg_reload_conf()",
    ] {
        src.batch_execute(sql)
            .await
            .expect("max_slot_wal_keep_size");
    }
    let slot = m.slot();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        src.batch_execute(
            "CREATE TABLE IF NOT EXISTS filler (x int);
             INSERT INTO filler SELECT generate_series(1, 100000);
             SELECT pg_switch_wal();
             CHECKPOINT;",
        )
        .await
        .expect("generate WAL");
        let status: Option<String> = src
            .query_one(
                "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .expect("slot status")
            .get(0);
        if status.as_deref() == Some("lost") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was never invalidated ({status:?})"
        );
    }

    let out = m.run_async("sync", &["--until-caught-up"]).await.failure();
    let text = out.text();
    eprintln!("the refusal:\n{text}");
    assert_clean(&text);
    for want in [
        format!("replication slot \"{slot}\" was invalidated"),
        "max_slot_wal_keep_size".to_owned(),
        "ferry copy SPEC --restart".to_owned(),
    ] {
        assert!(text.contains(&want), "missing {want:?}:\n{text}");
    }
    assert!(!text.contains("retrying"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cluster_behind_an_endpoint_is_refused_naming_both_identifiers() {
    let (source, target, m) = copied("sync-other-cluster", cluster(), cluster()).await;

    let other = own_cluster("faults-other");
    let other_db = connect(&other.conninfo("postgres")).await;
    let system_id = "SELECT system_identifier::text FROM pg_control_system()";
    let copied = query_text(&source.client().await, system_id).await;
    let found = query_text(&other_db, system_id).await;
    assert_ne!(copied, found);

    for (side, endpoint) in [("source", source.conninfo()), ("target", target.conninfo())] {
        rewrite_spec(&m.spec, &endpoint, &other.conninfo("postgres"));
        let out = m.run_async("sync", &["--until-caught-up"]).await.failure();
        let text = out.text();
        eprintln!("the refusal ({side}):\n{text}");
        assert_clean(&text);
        assert!(
            text.contains(&format!(
                "the {side} is not the cluster the copy ran against"
            )),
            "{text}"
        );
        assert!(
            text.contains(&copied) && text.contains(&found),
            "both identifiers must be named:\n{text}"
        );
        assert!(!text.contains("retrying"), "{text}");
        rewrite_spec(&m.spec, &other.conninfo("postgres"), &endpoint);
    }
    // Nothing was written to the other cluster (no replication origin appeared there).
    let origins: i64 = other_db
        .query_one("SELECT count(*) FROM pg_replication_origin", &[])
        .await
        .expect("origins")
        .get(0);
    assert_eq!(origins, 0);
    // The right endpoints still work.
    m.run_async("sync", &["--until-caught-up"]).await.success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_table_that_no_longer_fits_is_named_and_not_retried() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source
        .execute_batch(
            "CREATE TABLE items (id int PRIMARY KEY, qty int, label text);
             INSERT INTO items SELECT g, g, 'l' || g FROM generate_series(1, 100) g;",
        )
        .await;
    let m = Migration::between("sync-target-changed", &source, &target, "");
    m.run_async("copy", &[]).await.success();
    let (src, dst) = (source.client().await, target.client().await);

    // A column's type narrowed on the target: the source's next value does not fit.
    dst.batch_execute("ALTER TABLE items ALTER COLUMN qty TYPE smallint")
        .await
        .expect("narrow");
    src.batch_execute(
        "UPDATE items SET qty = 100000 WHERE id = 1; INSERT INTO items VALUES (1000, 5, 'after')",
    )
    .await
    .expect("changes");
    let started = Instant::now();
    let out = m.run_async("sync", &["--until-caught-up"]).await.failure();
    let text = out.text();
    eprintln!("the refusal:\n{text}");
    assert_clean(&text);
    for want in [
        "public.items",
        "smallint",
        "re-copy the table",
        "ferry sync",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
    assert!(!text.contains("retrying"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "not retried");
    let after: i64 = dst
        .query_one("SELECT count(*) FROM items WHERE id = 1000", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(after, 0, "nothing after the refused change is applied");

    // Fixed as the error says: sync resumes and the tables match.
    dst.batch_execute("ALTER TABLE items ALTER COLUMN qty TYPE int")
        .await
        .expect("widen");
    m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_same_rows(&src, &dst).await;

    // Drift (a row gone from the target) is not retried either.
    dst.batch_execute("DELETE FROM items WHERE id = 2")
        .await
        .expect("drift");
    src.batch_execute("UPDATE items SET label = 'changed' WHERE id = 2")
        .await
        .expect("change");
    let out = m.run_async("sync", &["--until-caught-up"]).await.failure();
    let text = out.text();
    assert_clean(&text);
    assert!(
        text.contains("public.items") && text.contains("drifted"),
        "{text}"
    );
    assert!(!text.contains("retrying"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_confirms_past_the_last_change_and_a_target_behind_it_is_refused() {
    let (source, target, m) = copied("sync-idle", cluster(), cluster()).await;
    let elsewhere = TestDb::create(cluster()).await;
    elsewhere.execute_batch("CREATE TABLE filler (x int)").await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    let dst_client = target.client().await;
    let mut sync = Background::with_args(&m, &[]);

    exec(&src, "INSERT INTO events VALUES (1, 1)").await;
    sync.wait_for(&dst, EVENTS, 1).await;
    let first = m.applied_lsn(&dst_client).await.expect("applied");
    exec(&src, "INSERT INTO events VALUES (1, 2)").await;
    sync.wait_for(&dst, EVENTS, 2).await;
    let last = m.applied_lsn(&dst_client).await.expect("applied");

    // Only other databases write now: the slot's confirmed position must move past the last
    // change anyway, or it would hold back all of their WAL.
    let admin = source.client().await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        exec(
            &elsewhere.conninfo(),
            "INSERT INTO filler SELECT generate_series(1, 1000)",
        )
        .await;
        let confirmed = query_text(
            &admin,
            &format!(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots \
                  WHERE slot_name = '{}'",
                m.slot()
            ),
        )
        .await;
        if lsn_value(&confirmed) > lsn_value(&last) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot stayed at {confirmed} (last change {last}):\n{}",
            sync.output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        m.applied_lsn(&dst_client).await.as_deref(),
        Some(last.as_str()),
        "nothing new was applied"
    );
    assert!(sync.stop().await, "{}", sync.output());
    assert_clean(&sync.output());

    // The next run resumes across the confirmed gap and applies what comes after it.
    exec(&src, "INSERT INTO events VALUES (2, 1)").await;
    m.run_async("sync", &["--until-caught-up"]).await.success();
    assert_same_rows(&source.client().await, &dst_client).await;

    // The target goes back to an earlier state of its origin (as a restored backup would):
    // resuming from there would skip what the source was told is applied.
    dst_client
        .execute(
            "SELECT pg_replication_origin_advance($1, $2::text::pg_lsn)",
            &[&m.origin(), &first],
        )
        .await
        .expect("move the origin back");
    let out = m.run_async("sync", &["--until-caught-up"]).await.failure();
    let text = out.text();
    eprintln!("the refusal:\n{text}");
    assert_clean(&text);
    for want in [
        format!("replication slot \"{}\" was confirmed through", m.slot()),
        format!("only through {first}"),
        "ferry copy SPEC --restart".to_owned(),
    ] {
        assert!(text.contains(&want), "missing {want:?}:\n{text}");
    }
    assert!(!text.contains("retrying"), "{text}");
}
