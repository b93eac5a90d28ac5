//! `ferry sync` killed with `kill -9` at ten random points while the source keeps changing:
//! every restart resumes from the position committed on the target, and once the workload
//! stops and `ferry sync --until-caught-up` has run, every table holds the source's rows
//! exactly (nothing different, nothing missing, nothing twice). At every kill point the
//! target must also be a state the source passed through (whole source transactions only),
//! checked with an invariant every source transaction keeps.
//!
//! The kill delays and the workload come from one seed, printed at the start; set
//! `FERRY_TEST_SEED` to replay a run's choices.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    assert_every_table_same, assert_same_multiset, assert_same_rows, lsn_value, wait_slot_inactive,
    KillOnDrop, Migration, Rng,
};
use ferry_testkit::{cluster, TestDb};
use tokio_postgres::Client;

const KILLS: usize = 10;
/// Initial accounts, each with this balance: `sum(accounts.balance) + sum(ledger.amount)`
/// stays `ACCOUNTS * BALANCE` in every committed source transaction.
const ACCOUNTS: i64 = 2000;
const BALANCE: i64 = 1000;
const DOCS: i32 = 30;

const SCHEMA: &str = "
    CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, note text);
    CREATE TABLE ledger (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                         account int, amount bigint NOT NULL);
    CREATE TABLE dupes (a int, b text);
    ALTER TABLE dupes REPLICA IDENTITY FULL;
    CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL, version int NOT NULL);
    ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
    INSERT INTO accounts SELECT g, 1000, 'initial' FROM generate_series(1, 2000) g;
    INSERT INTO dupes SELECT g % 50, 'v' || (g % 50) FROM generate_series(1, 300) g;
    INSERT INTO dupes SELECT g, NULL FROM generate_series(0, 9) g;
    INSERT INTO docs SELECT g, repeat(md5(g::text), 1000), 0 FROM generate_series(1, 30) g;
    CREATE TABLE seats (id int PRIMARY KEY, pos int NOT NULL UNIQUE);
    INSERT INTO seats SELECT g, g FROM generate_series(1, 100) g;
";

/// Seats swap positions in transactions of three updates; their folded form (one net update
/// per row) meets the unique index in an order the source never had, so apply must fall
/// back to replaying them in order. Every committed state is a permutation of 1..=100.
const SEATS: &str = "SELECT count(*) FILTER (WHERE pos BETWEEN 1 AND 100)::int8 * 100000 \
                            + sum(pos)::int8 FROM seats";
const SEATS_OK: i64 = 100 * 100_000 + 5050;

const INVARIANT: &str = "SELECT (SELECT coalesce(sum(balance), 0) FROM accounts)::int8 \
                               + (SELECT coalesce(sum(amount), 0) FROM ledger)::int8";

/// What the workload did.
#[derive(Debug, Default)]
struct Stats {
    committed: AtomicU64,
    rolled_back: AtomicU64,
}

/// One source transaction (or statement) of the workload, as SQL for a simple query.
fn next_change(rng: &mut Rng, next_id: &mut i64, docs: &mut Vec<i32>) -> (String, bool) {
    let hi = *next_id;
    let mut fresh = || {
        *next_id += 1;
        *next_id
    };
    let account = |rng: &mut Rng, hi: i64| rng.range(1, hi as u64) as i64;
    let group = rng.range(0, 49);
    let amount = rng.range(1, 50);
    let one_dupe = format!("ctid = (SELECT ctid FROM dupes WHERE a = {group} LIMIT 1)");
    let doc = docs[rng.range(0, docs.len() as u64 - 1) as usize];
    let sql = match rng.range(0, 99) {
        0..=9 => format!("INSERT INTO accounts VALUES ({}, 0, 'new')", fresh()),
        10..=11 => {
            let (a, b) = (rng.range(1, 50), rng.range(51, 100));
            format!(
                "BEGIN;
                 UPDATE seats SET pos = -pos WHERE id = {a};
                 UPDATE seats SET pos = -pos WHERE id = {b};
                 UPDATE seats SET pos = CASE id
                     WHEN {a} THEN (SELECT -pos FROM seats WHERE id = {b})
                     ELSE (SELECT -pos FROM seats WHERE id = {a}) END
                  WHERE id IN ({a}, {b});
                 COMMIT"
            )
        }
        12..=21 => {
            let (a, b) = (account(rng, hi), account(rng, hi));
            if a == b {
                format!("UPDATE accounts SET note = 'touched' WHERE id = {a}")
            } else {
                format!(
                    "BEGIN;
                     UPDATE accounts SET balance = balance - {amount}
                      WHERE id = {a} AND EXISTS (SELECT 1 FROM accounts WHERE id = {b});
                     UPDATE accounts SET balance = balance + {amount}
                      WHERE id = {b} AND EXISTS (SELECT 1 FROM accounts WHERE id = {a});
                     COMMIT"
                )
            }
        }
        22..=29 => {
            let a = account(rng, hi);
            format!(
                "BEGIN;
                 UPDATE accounts SET balance = balance + {amount}, note = 'deposit' WHERE id = {a};
                 INSERT INTO ledger (account, amount)
                   SELECT {a}, -{amount} WHERE EXISTS (SELECT 1 FROM accounts WHERE id = {a});
                 COMMIT"
            )
        }
        // A primary key change.
        30..=37 => format!(
            "UPDATE accounts SET id = {}, note = 'moved' WHERE id = {}",
            fresh(),
            account(rng, hi)
        ),
        38..=43 => format!(
            "WITH d AS (DELETE FROM accounts WHERE id = {} RETURNING id, balance)
             INSERT INTO ledger (account, amount) SELECT id, balance FROM d",
            account(rng, hi)
        ),
        44..=49 => format!("INSERT INTO dupes VALUES ({group}, 'v{group}')"),
        50..=52 => format!("INSERT INTO dupes VALUES ({group}, NULL)"),
        53..=56 => format!("DELETE FROM dupes WHERE {one_dupe}"),
        57..=60 => format!("UPDATE dupes SET b = coalesce(b, 'n') || '+' WHERE {one_dupe}"),
        61..=62 => format!("UPDATE dupes SET b = 'w{group}' WHERE a = {group}"),
        // The TOASTed body stays untouched (and unsent).
        63..=72 => format!("UPDATE docs SET version = version + 1 WHERE id = {doc}"),
        73..=74 => format!(
            "UPDATE docs SET body = repeat(md5(random()::text), 1000), version = version + 1 \
             WHERE id = {doc}"
        ),
        // A key change of a row whose TOASTed value does not change.
        75..=77 => {
            let id = fresh() as i32;
            docs.retain(|d| *d != doc);
            docs.push(id);
            format!("UPDATE docs SET id = {id}, version = version + 1 WHERE id = {doc}")
        }
        78..=79 => {
            let id = fresh() as i32;
            docs.push(id);
            format!("INSERT INTO docs VALUES ({id}, repeat(md5(random()::text), 1000), 0)")
        }
        80..=81 if docs.len() > 10 => {
            docs.retain(|d| *d != doc);
            format!("DELETE FROM docs WHERE id = {doc}")
        }
        // Multi-statement transactions over every table.
        82..=89 => {
            let (a, b) = (account(rng, hi), fresh());
            format!(
                "BEGIN;
                 INSERT INTO accounts VALUES ({b}, 0, 'mixed');
                 UPDATE accounts SET balance = balance + {amount} WHERE id = {a};
                 INSERT INTO ledger (account, amount)
                   SELECT {a}, -{amount} WHERE EXISTS (SELECT 1 FROM accounts WHERE id = {a});
                 UPDATE docs SET version = version + 10 WHERE id = {doc};
                 INSERT INTO dupes VALUES ({group}, 'v{group}');
                 DELETE FROM dupes WHERE {one_dupe};
                 COMMIT"
            )
        }
        // Rolled back, wholly or to a savepoint.
        90..=93 => {
            let a = account(rng, hi);
            return (
                format!(
                    "BEGIN;
                     INSERT INTO accounts VALUES ({}, 77, 'rolled back');
                     UPDATE accounts SET balance = balance + 1000 WHERE id = {a};
                     UPDATE docs SET version = -1 WHERE id = {doc};
                     INSERT INTO dupes VALUES ({group}, 'rolled back');
                     DELETE FROM dupes WHERE a = {group};
                     ROLLBACK",
                    fresh()
                ),
                false,
            );
        }
        94..=96 => {
            let (kept, undone) = (fresh(), fresh());
            format!(
                "BEGIN;
                 INSERT INTO accounts VALUES ({kept}, 0, 'kept');
                 SAVEPOINT s;
                 INSERT INTO accounts VALUES ({undone}, 5, 'undone');
                 UPDATE docs SET version = -1 WHERE id = {doc};
                 DELETE FROM dupes WHERE a = {group};
                 ROLLBACK TO s;
                 INSERT INTO dupes VALUES ({group}, 'after savepoint');
                 COMMIT"
            )
        }
        // A large transaction, so that kills also land inside one.
        _ => format!(
            "BEGIN;
             INSERT INTO ledger (account, amount)
               SELECT g, CASE WHEN g % 2 = 0 THEN 1 ELSE -1 END FROM generate_series(1, 4000) g;
             UPDATE accounts SET note = 'bulk {group}' WHERE id % 50 = {group};
             COMMIT"
        ),
    };
    (sql, true)
}

/// Runs source transactions until `stop`; panics (failing the test) on any error.
async fn workload(source: Client, seed: u64, stop: Arc<AtomicBool>, stats: Arc<Stats>) {
    let mut rng = Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut next_id = ACCOUNTS;
    let mut docs: Vec<i32> = (1..=DOCS).collect();
    while !stop.load(Ordering::Relaxed) {
        let (sql, commits) = next_change(&mut rng, &mut next_id, &mut docs);
        if let Err(e) = source.batch_execute(&sql).await {
            panic!("workload statement failed: {e}\n{sql}");
        }
        let counter = if commits {
            &stats.committed
        } else {
            &stats.rolled_back
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn one_i64(db: &Client, sql: &str) -> i64 {
    db.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Row counts of every table, for showing that the workload moved them.
async fn counts(db: &Client) -> Vec<i64> {
    let mut out = Vec::new();
    for t in ["accounts", "ledger", "dupes", "docs", "seats"] {
        out.push(one_i64(db, &format!("SELECT count(*) FROM {t}")).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_killed_at_random_points_applies_everything_once() {
    let (mut rng, seed) = Rng::from_env_or_clock();
    eprintln!("sync_crash seed: {seed} (rerun with FERRY_TEST_SEED={seed})");
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source.execute_batch(SCHEMA).await;
    let (src, dst) = (source.client().await, target.client().await);
    // The bodies really live out of line (so updates that skip them send "unchanged").
    let toast: String = src
        .query_one(
            "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'docs'::regclass",
            &[],
        )
        .await
        .expect("docs' TOAST table")
        .get(0);
    let toasted = one_i64(
        &src,
        &format!("SELECT count(DISTINCT chunk_id) FROM {toast}"),
    )
    .await;
    assert_eq!(
        toasted,
        i64::from(DOCS),
        "docs.body is not stored out of line"
    );
    let total = ACCOUNTS * BALANCE;
    assert_eq!(one_i64(&src, INVARIANT).await, total);

    let m = Migration::between("sync-crash", &source, &target, "");
    m.run_async("copy", &[]).await.success();
    let copied = m.applied_lsn(&dst).await;

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let writer = tokio::spawn(workload(
        source.client().await,
        seed,
        Arc::clone(&stop),
        Arc::clone(&stats),
    ));
    let counts_before = counts(&src).await;

    let mut advanced = 0;
    let mut last = copied.as_deref().map_or(0, lsn_value);
    for run in 0..KILLS {
        wait_slot_inactive(&src, &m.slot(), Duration::from_secs(30)).await;
        let log = format!("sync-{run}");
        let mut child = KillOnDrop(m.spawn_logged("sync", &[], &log));
        let delay = rng.range(50, 1500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if let Some(status) = child.0.try_wait().expect("poll ferry sync") {
            panic!(
                "ferry sync (run {run}) ended by itself ({status}) before its kill after {delay} ms:\n{}",
                m.logged_output(&log)
            );
        }
        child.kill9();
        assert!(!writer.is_finished(), "the workload stopped early");

        // Whatever the kill interrupted, the target holds whole source transactions only.
        assert_eq!(
            one_i64(&dst, INVARIANT).await,
            total,
            "run {run}: the target holds part of a source transaction after the kill"
        );
        assert_eq!(
            one_i64(&dst, SEATS).await,
            SEATS_OK,
            "run {run}: the seats on the target are not a permutation after the kill"
        );
        let applied = m.applied_lsn(&dst).await.as_deref().map_or(0, lsn_value);
        assert!(applied >= last, "run {run}: the applied position went back");
        if applied > last {
            advanced += 1;
        }
        eprintln!(
            "run {run}: killed after {delay} ms; applied {last:X} -> {applied:X}; \
             workload committed {} so far",
            stats.committed.load(Ordering::Relaxed)
        );
        last = applied;
    }

    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the workload failed");
    let counts_after = counts(&src).await;
    let committed = stats.committed.load(Ordering::Relaxed);
    eprintln!(
        "workload: {committed} committed, {} rolled back; rows {counts_before:?} -> {counts_after:?}",
        stats.rolled_back.load(Ordering::Relaxed)
    );
    // Not vacuous: the source changed throughout, and the killed runs applied part of it.
    assert!(
        committed >= 100,
        "only {committed} transactions ran during the kills"
    );
    assert_ne!(
        counts_before, counts_after,
        "the workload changed no counts"
    );
    assert!(
        advanced >= 2,
        "only {advanced} of {KILLS} killed runs applied anything before the kill"
    );

    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        m.run_async("sync", &["--until-caught-up"]),
    )
    .await
    .expect("the catch-up took more than 5 minutes")
    .success();
    eprintln!(
        "caught up in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        out.stdout.trim()
    );

    assert_eq!(one_i64(&dst, INVARIANT).await, total);
    assert_eq!(one_i64(&dst, SEATS).await, SEATS_OK);
    let moved = one_i64(&src, "SELECT count(*) FROM seats WHERE pos <> id").await;
    assert!(moved > 0, "no seat was swapped");
    assert_same_multiset(&src, &dst, "public.dupes").await;
    let groups = "SELECT a, b, count(*) FROM dupes GROUP BY a, b ORDER BY a, b NULLS FIRST";
    let as_text = |rows: Vec<tokio_postgres::Row>| -> Vec<(Option<i32>, Option<String>, i64)> {
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let src_groups = as_text(src.query(groups, &[]).await.expect("source dupes"));
    assert!(
        src_groups.iter().any(|g| g.2 > 1),
        "dupes has no duplicate rows left: the test lost its point"
    );
    assert_eq!(
        src_groups,
        as_text(dst.query(groups, &[]).await.expect("target dupes")),
        "dupes differ as multisets"
    );
    assert_every_table_same(&src, &dst).await;
    assert_same_rows(&src, &dst).await;
}
