//! `ferry validate` while `ferry sync` applies a pgbench-like load (hot branch and teller
//! rows, random account updates, history inserts): no false difference however the target
//! lags, and a difference injected on the target during the run is found.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{validated_table, validation_report, KillOnDrop, Migration, Rng};
use ferry_testkit::{cluster, TestDb};
use tokio_postgres::Client;

const SCHEMA: &str = "
    CREATE TABLE branches (bid int PRIMARY KEY, bbalance bigint NOT NULL);
    CREATE TABLE tellers (tid int PRIMARY KEY, bid int NOT NULL, tbalance bigint NOT NULL);
    CREATE TABLE accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance bigint NOT NULL,
                           filler char(84));
    CREATE TABLE history (tid int, bid int, aid int, delta int, mtime timestamp);
    CREATE TABLE cold (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO branches SELECT g, 0 FROM generate_series(1, 2) g;
    INSERT INTO tellers SELECT g, (g - 1) / 10 + 1, 0 FROM generate_series(1, 20) g;
    INSERT INTO accounts SELECT g, (g - 1) / 25000 + 1, 0, '' FROM generate_series(1, 50000) g;
    INSERT INTO cold SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
    ANALYZE;
";

/// One client's tpcb-like transactions until `stop`.
fn client(src: Client, seed: u64, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut rng = Rng::new(seed);
        let mut done = 0;
        while !stop.load(Ordering::SeqCst) {
            let (aid, tid, bid) = (rng.range(1, 50000), rng.range(1, 20), rng.range(1, 2));
            let delta = rng.range(0, 10000) as i64 - 5000;
            src.batch_execute(&format!(
                "BEGIN;
                 UPDATE accounts SET abalance = abalance + {delta} WHERE aid = {aid};
                 UPDATE tellers SET tbalance = tbalance + {delta} WHERE tid = {tid};
                 UPDATE branches SET bbalance = bbalance + {delta} WHERE bid = {bid};
                 INSERT INTO history VALUES ({tid}, {bid}, {aid}, {delta}, now());
                 COMMIT;"
            ))
            .await
            .expect("workload transaction");
            done += 1;
            // About 200 transactions a second per client: a busy source that a debug build
            // of `ferry sync` keeps up with on a shared 2-core machine.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        done
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_during_sync_under_load_has_no_false_differences_and_finds_a_real_one() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source.execute_batch(SCHEMA).await;
    let m = Migration::between(
        "validate-live",
        &source,
        &target,
        "[tables]\nwithout_identity = \"append_only\"\n",
    );
    m.run_async("copy", &[]).await.success();
    let mut sync = KillOnDrop(m.spawn_logged("sync", &[], "sync"));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for i in 0..2 {
        workers.push(client(source.client().await, 7 + i, stop.clone()));
    }
    let dst = target.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while m.applied_lsn(&dst).await.is_none() {
        assert!(
            sync.0.try_wait().expect("poll sync").is_none(),
            "sync ended:\n{}",
            m.logged_output("sync")
        );
        assert!(Instant::now() < deadline, "sync applied nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Under load: equal, whatever the lag (hot rows may be unsettled, never different).
    let out = m
        .run_async("validate", &["--json", "--settle-for", "3s"])
        .await;
    let r = validation_report(&out);
    assert_eq!(out.code, Some(0), "false differences under load:\n{r:#}");
    assert_eq!(r["result"], "equal");
    assert_eq!(r["fenced"], true, "{r:#}");
    let accounts = validated_table(&r, "public.accounts");
    assert_eq!(accounts["source_rows"], 50000, "{accounts:#}");

    // A difference made on the target alone, while the load goes on: found, and only it.
    dst.batch_execute("UPDATE cold SET v = 'tampered' WHERE id = 500")
        .await
        .expect("tamper");
    let out = m
        .run_async("validate", &["--json", "--settle-for", "3s"])
        .await;
    let r = validation_report(&out);
    assert_eq!(out.code, Some(4), "{r:#}");
    let found: Vec<(String, String)> = r["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| (d["table"].to_string(), d["key"].to_string()))
        .collect();
    assert_eq!(
        found,
        vec![("\"public.cold\"".to_owned(), r#"{"id":"500"}"#.to_owned())],
        "{r:#}"
    );

    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for w in workers {
        total += w.await.expect("workload");
    }
    assert!(total > 100, "the load ran only {total} transactions");
    assert!(
        sync.0.try_wait().expect("poll sync").is_none(),
        "sync ended:\n{}",
        m.logged_output("sync")
    );
    sync.kill9();
}

#[tokio::test]
async fn online_validation_reads_applied_rows_back_and_reports_what_differs() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source.execute_batch(SCHEMA).await;
    let m = Migration::between(
        "validate-online",
        &source,
        &target,
        "[tables]\nwithout_identity = \"append_only\"\n",
    );
    m.run_async("copy", &[]).await.success();
    // Something besides Ferry writes the target: a trigger that fires even for replicated
    // changes rewrites row 7 of `cold` whenever it is written.
    target
        .execute_batch(
            "CREATE FUNCTION meddle() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.id = 7 THEN NEW.v := 'meddled'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER meddle BEFORE UPDATE ON cold FOR EACH ROW EXECUTE FUNCTION meddle();
             ALTER TABLE cold ENABLE ALWAYS TRIGGER meddle;",
        )
        .await;
    source
        .execute_batch(
            "UPDATE cold SET v = v || '!' WHERE id <= 20;
             UPDATE accounts SET abalance = 1 WHERE aid <= 100;",
        )
        .await;
    let out = m
        .run_async("sync", &["--until-caught-up", "--verify-sample", "1"])
        .await
        .success();
    let text = out.text();
    assert!(
        text.contains(r#"public.cold ("id")=(7): column(s) v differ"#),
        "{text}"
    );
    assert_eq!(
        text.matches("online validation:").count(),
        1,
        "only row 7 differs:\n{text}"
    );
    let status = m.status_async().await;
    assert_eq!(status["online_validation"]["mismatches"], 1, "{status:#}");
    assert!(
        status["online_validation"]["checked"].as_u64().unwrap_or(0) >= 120,
        "every applied row is read back with --verify-sample 1: {status:#}"
    );
}

#[tokio::test]
async fn with_sync_stopped_and_changes_pending_ranges_are_unsettled_not_different() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source.execute_batch(SCHEMA).await;
    let m = Migration::between(
        "validate-stopped",
        &source,
        &target,
        "[tables]\nwithout_identity = \"append_only\"\n",
    );
    m.run_async("copy", &[]).await.success();
    m.run_async("sync", &["--until-caught-up"]).await.success();
    // Applied on the source only: `ferry sync` is not running to carry it.
    source
        .execute_batch("UPDATE cold SET v = 'pending' WHERE id = 3")
        .await;
    let out = m
        .run_async(
            "validate",
            &["--tables", "public.cold", "--json", "--wait-for-sync", "2s"],
        )
        .await;
    let r = validation_report(&out);
    assert_eq!(out.code, Some(0), "lag is not a difference:\n{r:#}");
    assert_eq!(r["differences"].as_array().map(Vec::len), Some(0), "{r:#}");
    let unsettled = r["unsettled"].as_array().expect("unsettled");
    assert!(!unsettled.is_empty(), "{r:#}");
    assert!(
        unsettled[0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("ferry sync")),
        "{r:#}"
    );
}
