//! Very large source transactions (5,000,000 inserted rows, then 1,000,000 updated rows,
//! each in a single transaction) applied by `ferry sync --until-caught-up` within a memory
//! ceiling: the apply engine streams a transaction into the open target transaction and
//! holds only a bounded part of it at a time (ADR 8), so its peak resident set must not grow
//! with the transaction. The rows must arrive complete (count and checksum on both sides).

mod common;

use std::time::{Duration, Instant};

use common::{wait_with_peak_rss, Migration};
use ferry_testkit::{cluster, TestDb};
use tokio_postgres::Client;

/// The most `ferry sync` may hold resident at any point, in KiB.
const CEILING_KIB: u64 = 256 * 1024;
const ROWS: i64 = 5_000_000;
const UPDATED: i64 = 1_000_000;

/// Row count and two independent order-free checksums of `big`.
async fn digest(db: &Client) -> (i64, String, String) {
    let row = db
        .query_one(
            "SELECT count(*), sum(hashtextextended(id::text || ':' || v, 0))::text, \
                    sum(hashtextextended(v, 42) # id)::text FROM big",
            &[],
        )
        .await
        .expect("digest of big");
    (row.get(0), row.get(1), row.get(2))
}

/// Runs `ferry sync --until-caught-up` as a child, returning its peak RSS in KiB.
async fn sync_measured(m: &Migration, log: &str) -> u64 {
    let mut child = m.spawn_logged("sync", &["--until-caught-up"], log);
    let started = Instant::now();
    let (status, peak) = tokio::task::spawn_blocking(move || {
        wait_with_peak_rss(&mut child, Duration::from_secs(900))
    })
    .await
    .expect("join");
    let output = m.logged_output(log);
    assert!(status.success(), "ferry sync failed ({status}):\n{output}");
    eprintln!(
        "{log}: {:.1}s, peak RSS {} MiB\n{output}",
        started.elapsed().as_secs_f64(),
        peak / 1024
    );
    assert!(peak > 0, "no peak RSS was read for ferry sync");
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_transactions_apply_within_the_memory_ceiling() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source
        .execute_batch(
            "CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL);
             INSERT INTO big VALUES (0, 'before the copy');",
        )
        .await;
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between("sync-large", &source, &target, "");
    m.run_async("copy", &[]).await.success();

    // Two huge source transactions, both waiting in the slot for one `ferry sync` run.
    let started = Instant::now();
    src.batch_execute(&format!(
        "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g"
    ))
    .await
    .expect("one large insert");
    let inserted = digest(&src).await;
    assert_eq!(inserted.0, ROWS + 1);
    src.batch_execute(&format!(
        "UPDATE big SET v = md5(v) WHERE id BETWEEN 1 AND {UPDATED}"
    ))
    .await
    .expect("one large update");
    eprintln!(
        "inserted {ROWS} rows, then updated {UPDATED}, each in one transaction, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let expected = digest(&src).await;
    assert_ne!(expected, inserted, "the update changed nothing");

    let peak = sync_measured(&m, "sync").await;
    assert_eq!(digest(&dst).await, expected, "big differs on the target");
    assert!(
        peak < CEILING_KIB,
        "ferry sync peaked at {} MiB applying {ROWS} inserts and {UPDATED} updates (ceiling {} MiB)",
        peak / 1024,
        CEILING_KIB / 1024
    );
}
