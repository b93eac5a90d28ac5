//! `ferry copy` while the source takes INSERTs, UPDATEs and DELETEs, with a large table cut
//! into ranges: the target must hold exactly the source as of the slot's consistent point.
//!
//! The proof: decode every change after the consistent point — those the copy spooled to
//! disk (ADR 10), then those Ferry's slot still holds past the spool (pgoutput, peeked, so
//! nothing is consumed) — and apply it to the target's rows in memory, strictly (an INSERT of
//! a key the target already has, or an UPDATE/DELETE of a key it lacks, fails the test). The
//! result must equal the source's final state row for row. A target that saw a change from
//! after the consistent point, or missed one from before, cannot pass; nor can a spool that
//! lost, repeated or reordered a transaction, or overlaps the slot's remainder.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{lsn_value, Migration};
use ferry_replication::spool::{RecordKind, Spool};
use ferry_testkit::{cluster, TestDb};
use tokio_postgres::Client;

const BIG_ROWS: i64 = 300_000;
const WRITERS: i64 = 2;
const TABLES: [&str; 3] = ["audit", "big", "counters"];

/// Rows by key (the first column's text); each row as its columns' text.
type Rows = BTreeMap<String, Vec<Option<String>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_is_the_source_at_the_consistent_point() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source
        .execute_batch(&format!(
            "CREATE TABLE big (id bigint PRIMARY KEY, v bigint NOT NULL, pad text, last_txn bigint);
             INSERT INTO big SELECT g, g, md5(g::text) || md5((-g)::text), 0
               FROM generate_series(1, {BIG_ROWS}) g;
             CREATE TABLE audit (id bigint PRIMARY KEY, note text);
             CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL);
             INSERT INTO counters SELECT g, 0 FROM generate_series(0, 99) g;"
        ))
        .await;
    source.execute_batch("VACUUM ANALYZE big").await;

    // The workload: concurrent writers, each transaction touching every table.
    let committed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = source.client().await;
        writers.push(tokio::spawn(workload(
            w,
            client,
            committed.clone(),
            stop.clone(),
        )));
    }
    wait_until(&committed, 20).await;

    let m = Migration::between(
        "live-writes",
        &source,
        &target,
        "[copy]\njobs = 2\nsplit_tables_larger_than = \"1MB\"\n",
    );
    let before = committed.load(Ordering::SeqCst);
    let out = m.run_async("copy", &["--verify"]).await.success();
    let during = committed.load(Ordering::SeqCst) - before;
    // A few more after the copy, then stop.
    wait_until(&committed, committed.load(Ordering::SeqCst) + 20).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for w in writers {
        total += w.await.expect("workload task");
    }
    assert!(
        out.stdout.contains("verified"),
        "no verification:\n{}",
        out.text()
    );
    let status = m.status_async().await;
    let units = status["units_total"].as_u64().unwrap_or(0);
    // Ranges need TID range scans (PostgreSQL 14+).
    if cluster().major() >= 14 {
        assert!(units > 10, "big was not split into ranges: {status:#}");
    }
    assert!(during > 0, "no write committed while ferry copy ran");

    let src = source.client().await;
    let dst = target.client().await;
    let mut state = BTreeMap::new();
    for t in TABLES {
        state.insert(t.to_owned(), rows(&dst, t).await);
    }
    let on_target = state["audit"].len() as u64;
    let (spooled, spool_end) = spooled_messages(&m).await;
    let consistent = status["consistent_lsn"].as_str().expect("consistent_lsn");
    assert!(
        spool_end > lsn_value(consistent),
        "nothing was spooled past the consistent point {consistent}"
    );
    let confirmed: String = src
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&m.slot()],
        )
        .await
        .expect("read the slot")
        .get(0);
    assert!(
        lsn_value(&confirmed) > lsn_value(consistent) && lsn_value(&confirmed) <= spool_end,
        "the slot ({confirmed}) was not confirmed into the spool (consistent point {consistent})"
    );
    let mut applied = Applied::default();
    apply_changes(spooled, &mut state, &mut applied);
    let from_spool = applied.audit_inserts;
    let rest = slot_changes(&src, &m.slot(), spool_end).await;
    apply_changes(rest, &mut state, &mut applied);
    for t in TABLES {
        let expected = rows(&src, t).await;
        let got = &state[t];
        let diff: Vec<_> = expected
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .map(|(k, _)| k)
            .chain(got.keys().filter(|k| !expected.contains_key(*k)))
            .take(10)
            .collect();
        assert!(
            diff.is_empty(),
            "{t}: target + slot changes != source; first differing keys {diff:?}"
        );
    }
    eprintln!(
        "{units} units; {total} workload transactions ({during} during the copy): \
         {on_target} in the target, {applied:?} after it ({from_spool} audit inserts from \
         the spool)"
    );
    assert!(from_spool > 0, "no transaction came from the spool");
    // Every workload transaction is on exactly one side of the consistent point.
    assert_eq!(state["audit"].len() as u64, total, "audit ids");
    assert_eq!(on_target + applied.audit_inserts, total, "audit ids split");
    assert!(on_target > 0, "no write before the consistent point");
    assert!(
        applied.audit_inserts > 20,
        "only {} writes after the consistent point",
        applied.audit_inserts
    );
    assert!(applied.updates > 0 && applied.deletes > 0, "{applied:?}");
}

/// One writer: transaction after transaction, each with a unique audit id. The writers touch
/// disjoint rows (`id % WRITERS`), so they never wait on or deadlock with each other.
async fn workload(
    writer: i64,
    client: Client,
    committed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut n = 0;
    let mut k: i64 = 0;
    while !stop.load(Ordering::SeqCst) {
        k += 1;
        let i = k * WRITERS + writer;
        let mine = |x: i64| (x % (BIG_ROWS / WRITERS)) * WRITERS + writer + 1;
        let sql = format!(
            "BEGIN;
             INSERT INTO audit VALUES ({i}, 'txn {i}');
             UPDATE big SET v = v + 1, last_txn = {i} WHERE id = {upd};
             INSERT INTO big VALUES ({new}, {i}, 'new', {i});
             DELETE FROM big WHERE id = {del};
             UPDATE counters SET n = n + 1 WHERE id = {ctr};
             COMMIT;",
            upd = mine(k * 7919),
            new = 10_000_000 + i,
            del = mine(k * 104_729 + 17),
            ctr = (k % 50) * WRITERS + writer,
        );
        client
            .batch_execute(&sql)
            .await
            .expect("workload transaction");
        n += 1;
        committed.fetch_add(1, Ordering::SeqCst);
    }
    n
}

/// Waits until the workload has committed `n` transactions.
async fn wait_until(committed: &AtomicU64, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while committed.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workload stalled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every row of `table` as its columns' text, keyed by the first column.
async fn rows(db: &Client, table: &str) -> Rows {
    let cols: Vec<String> = db
        .query(
            "SELECT format('%I::text', attname) FROM pg_attribute \
              WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped \
              ORDER BY attnum",
            &[&table],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    db.query(
        &format!("SELECT ARRAY[{}] FROM {table}", cols.join(", ")),
        &[],
    )
    .await
    .expect("rows")
    .iter()
    .map(|r| {
        let row: Vec<Option<String>> = r.get(0);
        (row[0].clone().expect("key"), row)
    })
    .collect()
}

#[derive(Debug, Default)]
struct Applied {
    audit_inserts: u64,
    updates: u64,
    deletes: u64,
}

/// The pgoutput messages the copy spooled, in order, and the spool's end.
async fn spooled_messages(m: &Migration) -> (Vec<Vec<u8>>, u64) {
    let dir = m.state_dir().join("spool");
    let spool = Spool::open(&dir)
        .await
        .expect("read the spool")
        .expect("the copy spooled");
    let mut out = Vec::new();
    let mut records = spool.records();
    while let Some(r) = records.next().await.expect("a spool record") {
        if matches!(r.kind, RecordKind::Data | RecordKind::Commit) {
            // Without streaming, protocols 2 to 4 send these messages as protocol 1 does.
            assert!(r.proto_version >= 1, "protocol of the spool");
            out.push(r.payload.to_vec());
        }
    }
    (out, spool.end().0)
}

/// The changes `slot` holds past `after` (pgoutput, protocol 1, peeked): whole transactions
/// whose commit lies at or after it.
async fn slot_changes(source: &Client, slot: &str, after: u64) -> Vec<Vec<u8>> {
    let changes = source
        .query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1::text::name, NULL, NULL, \
             'proto_version', '1', 'publication_names', $1::text)",
            &[&slot],
        )
        .await
        .expect("peek the slot");
    let mut out = Vec::new();
    let mut keep = false;
    for change in changes {
        let data: Vec<u8> = change.get(0);
        if data.first() == Some(&b'B') {
            let final_lsn = u64::from_be_bytes(data[1..9].try_into().expect("8 bytes"));
            keep = final_lsn >= after;
        }
        if keep {
            out.push(data);
        }
    }
    out
}

/// Applies pgoutput messages (protocol 1) to `state`, strictly.
fn apply_changes(
    messages: Vec<Vec<u8>>,
    state: &mut BTreeMap<String, Rows>,
    applied: &mut Applied,
) {
    let mut relations: BTreeMap<u32, String> = BTreeMap::new();
    for data in messages {
        let mut m = Message(&data);
        match m.u8() {
            b'R' => {
                let id = m.u32();
                let (_schema, name) = (m.string(), m.string());
                let _identity = m.u8();
                let ncols = m.u16();
                for col in 0..ncols {
                    let flags = m.u8();
                    let _ = (m.string(), m.u32(), m.u32());
                    assert_eq!(flags & 1 == 1, col == 0, "{name}: key is not column 0");
                }
                relations.insert(id, name);
            }
            b'I' => {
                let table = &relations[&m.u32()];
                assert_eq!(m.u8(), b'N');
                let row = m.tuple(None);
                let key = row[0].clone().expect("key");
                let rows = state.get_mut(table).expect("known table");
                assert!(
                    rows.insert(key.clone(), row).is_none(),
                    "{table}: the slot inserts key {key}, which the target already has"
                );
                if table == "audit" {
                    applied.audit_inserts += 1;
                }
            }
            b'U' => {
                let table = &relations[&m.u32()];
                let mut kind = m.u8();
                let mut old_key = None;
                if kind == b'K' || kind == b'O' {
                    old_key = m.tuple(None)[0].clone();
                    kind = m.u8();
                }
                assert_eq!(kind, b'N');
                let rows = state.get_mut(table).expect("known table");
                // Unchanged TOAST values ('u') come from the row the target has.
                let peek = Message(m.0).tuple(None)[0].clone();
                let key = old_key.or(peek).expect("key");
                let old = rows.remove(&key).unwrap_or_else(|| {
                    panic!("{table}: the slot updates key {key}, which the target lacks")
                });
                let row = m.tuple(Some(&old));
                rows.insert(row[0].clone().expect("key"), row);
                applied.updates += 1;
            }
            b'D' => {
                let table = &relations[&m.u32()];
                let kind = m.u8();
                assert!(kind == b'K' || kind == b'O', "delete without a key");
                let key = m.tuple(None)[0].clone().expect("key");
                let rows = state.get_mut(table).expect("known table");
                assert!(
                    rows.remove(&key).is_some(),
                    "{table}: the slot deletes key {key}, which the target lacks"
                );
                applied.deletes += 1;
            }
            b'T' => panic!("unexpected TRUNCATE in the stream"),
            _ => {} // BEGIN, COMMIT, ORIGIN, TYPE
        }
    }
}

/// A cursor over one pgoutput message.
struct Message<'a>(&'a [u8]);

impl Message<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }

    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().expect("2 bytes"))
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().expect("4 bytes"))
    }

    fn string(&mut self) -> String {
        let end = self.0.iter().position(|b| *b == 0).expect("NUL");
        let s = String::from_utf8(self.take(end).to_vec()).expect("UTF-8");
        self.take(1);
        s
    }

    /// TupleData; 'u' (unchanged TOAST) takes the value from `old`.
    fn tuple(&mut self, old: Option<&Vec<Option<String>>>) -> Vec<Option<String>> {
        let n = usize::from(self.u16());
        (0..n)
            .map(|i| match self.u8() {
                b'n' => None,
                b'u' => old.expect("old row for an unchanged value")[i].clone(),
                b't' => {
                    let len = usize::try_from(self.u32()).expect("length");
                    Some(String::from_utf8(self.take(len).to_vec()).expect("UTF-8"))
                }
                other => panic!("unknown tuple column kind {other}"),
            })
            .collect()
    }
}
