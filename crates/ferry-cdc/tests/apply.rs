//! The apply engine fed hand-built change events against a real target: unchanged TOAST
//! values survive updates, primary keys change, identity ALWAYS columns take the source's
//! values, REPLICA IDENTITY FULL with duplicate rows changes exactly one, TRUNCATE restarts
//! identities, groups commit with their position, and a crash neither skips nor repeats.

use bytes::Bytes;
use ferry_cdc::{Applier, BatchLimits, CdcError, Committed};
use ferry_model::Lsn;
use ferry_replication::pgoutput::{ColumnValue, LogicalMessage, RelationColumn, TupleData};
use ferry_testkit::TestDb;

const TEXT: u32 = 25;
const INT4: u32 = 23;

fn col(name: &str, ty: u32, key: bool) -> RelationColumn {
    RelationColumn {
        flags: u8::from(key),
        name: name.into(),
        type_oid: ty,
        type_modifier: -1,
    }
}

fn tuple(values: &[Option<&str>]) -> TupleData {
    TupleData(
        values
            .iter()
            .map(|v| match v {
                Some("<toast>") => ColumnValue::UnchangedToast,
                Some(s) => ColumnValue::Text(Bytes::copy_from_slice(s.as_bytes())),
                None => ColumnValue::Null,
            })
            .collect(),
    )
}

fn relation(rel_id: u32, name: &str, identity: u8, columns: Vec<RelationColumn>) -> LogicalMessage {
    LogicalMessage::Relation {
        xid: None,
        rel_id,
        namespace: "public".into(),
        name: name.into(),
        replica_identity: identity,
        columns,
    }
}

fn begin(lsn: u64) -> LogicalMessage {
    LogicalMessage::Begin {
        final_lsn: Lsn(lsn),
        commit_time_us: 1_000_000,
        xid: 1,
    }
}

fn commit(lsn: u64) -> LogicalMessage {
    LogicalMessage::Commit {
        flags: 0,
        commit_lsn: Lsn(lsn),
        end_lsn: Lsn(lsn + 8),
        commit_time_us: 1_000_000,
    }
}

fn insert(rel_id: u32, values: &[Option<&str>]) -> LogicalMessage {
    LogicalMessage::Insert {
        xid: None,
        rel_id,
        new: tuple(values),
    }
}

/// Applies the messages and commits what is complete (a closed group commits when the
/// session is next needed, or on flush).
async fn apply_all(applier: &mut Applier, messages: Vec<LogicalMessage>) -> Vec<Committed> {
    let mut committed = Vec::new();
    for m in messages {
        committed.extend(applier.apply(m).await.expect("apply"));
    }
    committed.extend(applier.flush().await.expect("flush"));
    committed
}

async fn rows(db: &TestDb, sql: &str) -> Vec<String> {
    let client = db.client().await;
    client
        .query(sql, &[])
        .await
        .expect(sql)
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

const SCHEMA: &str = "
    CREATE TABLE items (id int PRIMARY KEY, body text, n int);
    CREATE TABLE dupes (a int, b text);
    CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
    CREATE TABLE gen (id int PRIMARY KEY, v int, doubled int GENERATED ALWAYS AS (v * 2) STORED);
";

#[tokio::test]
async fn changes_apply_as_the_source_made_them_folded() {
    changes_apply_as_the_source_made_them(true).await;
}

#[tokio::test]
async fn changes_apply_as_the_source_made_them_one_by_one() {
    changes_apply_as_the_source_made_them(false).await;
}

async fn changes_apply_as_the_source_made_them(fold: bool) {
    let target = TestDb::create(ferry_testkit::cluster()).await;
    target.execute_batch(SCHEMA).await;
    let limits = BatchLimits {
        max_transactions: 1,
        fold,
        ..BatchLimits::default()
    };
    let origin = format!("t_apply_{fold}");
    let (mut applier, start) = Applier::start(target.client().await, &origin, limits)
        .await
        .expect("start");
    assert_eq!(start, Lsn(0));
    let big = "x".repeat(10_000);
    apply_all(
        &mut applier,
        vec![
            relation(
                1,
                "items",
                b'd',
                vec![
                    col("id", INT4, true),
                    col("body", TEXT, false),
                    col("n", INT4, false),
                ],
            ),
            relation(
                2,
                "dupes",
                b'f',
                vec![col("a", INT4, false), col("b", TEXT, false)],
            ),
            relation(
                3,
                "ident",
                b'd',
                vec![col("id", INT4, true), col("v", TEXT, false)],
            ),
            relation(
                4,
                "gen",
                b'd',
                vec![col("id", INT4, true), col("v", INT4, false)],
            ),
            begin(100),
            insert(1, &[Some("1"), Some(&big), Some("1")]),
            insert(1, &[Some("2"), Some("two"), None]),
            insert(2, &[Some("7"), Some("same")]),
            insert(2, &[Some("7"), Some("same")]),
            insert(3, &[Some("42"), Some("from the source")]),
            insert(4, &[Some("1"), Some("21")]),
            commit(100),
            begin(200),
            // The TOASTed body is unchanged: it must survive.
            LogicalMessage::Update {
                xid: None,
                rel_id: 1,
                key: None,
                old: None,
                new: tuple(&[Some("1"), Some("<toast>"), Some("10")]),
            },
            // The key changes: the old key names the row.
            LogicalMessage::Update {
                xid: None,
                rel_id: 1,
                key: Some(tuple(&[Some("2"), None, None])),
                old: None,
                new: tuple(&[Some("3"), Some("three"), None]),
            },
            // Full identity with two identical rows: exactly one goes.
            LogicalMessage::Delete {
                xid: None,
                rel_id: 2,
                key: None,
                old: Some(tuple(&[Some("7"), Some("same")])),
            },
            commit(200),
        ],
    )
    .await;
    assert_eq!(
        rows(
            &target,
            "SELECT format('%s|%s|%s', id, length(body), n) FROM items ORDER BY id"
        )
        .await,
        ["1|10000|10", "3|5|"]
    );
    assert_eq!(
        rows(&target, "SELECT count(*)::text FROM dupes").await,
        ["1"]
    );
    assert_eq!(
        rows(&target, "SELECT format('%s|%s', id, v) FROM ident").await,
        ["42|from the source"]
    );
    assert_eq!(rows(&target, "SELECT doubled::text FROM gen").await, ["42"]);
    assert_eq!(applier.applied(), Lsn(208));

    // TRUNCATE … RESTART IDENTITY.
    apply_all(
        &mut applier,
        vec![
            begin(300),
            LogicalMessage::Truncate {
                xid: None,
                options: 2,
                rel_ids: vec![3],
            },
            commit(300),
        ],
    )
    .await;
    assert_eq!(
        rows(&target, "SELECT count(*)::text FROM ident").await,
        ["0"]
    );

    // A change for a row the target lacks is drift, reported with the table's name, at the
    // latest when its group would commit (replies are read in order before COMMIT).
    applier.apply(begin(400)).await.expect("begin");
    let deleted = applier
        .apply(LogicalMessage::Delete {
            xid: None,
            rel_id: 1,
            key: Some(tuple(&[Some("99"), None, None])),
            old: None,
        })
        .await;
    let err = match deleted {
        Err(e) => e,
        Ok(_) => match applier.apply(commit(400)).await {
            Err(e) => e,
            Ok(_) => applier.flush().await.expect_err("missing row"),
        },
    };
    let position = applier.applied();
    assert!(
        matches!(err, CdcError::RowMissing { .. }) && err.to_string().contains("public.items"),
        "{err}"
    );
    assert_eq!(position, Lsn(308), "nothing after the drift was committed");
}

#[tokio::test]
async fn groups_commit_with_their_position_and_a_crash_repeats_nothing() {
    let target = TestDb::create(ferry_testkit::cluster()).await;
    target.execute_batch(SCHEMA).await;
    let limits = BatchLimits {
        max_transactions: 2,
        ..BatchLimits::default()
    };
    let items = || {
        relation(
            1,
            "items",
            b'd',
            vec![
                col("id", INT4, true),
                col("body", TEXT, false),
                col("n", INT4, false),
            ],
        )
    };

    let (mut applier, _) = Applier::start(target.client().await, "t_crash", limits)
        .await
        .expect("start");
    applier.apply(items()).await.expect("relation");
    let mut committed = Vec::new();
    for (i, lsn) in [100u64, 200, 300].into_iter().enumerate() {
        applier.apply(begin(lsn)).await.expect("begin");
        applier
            .apply(insert(1, &[Some(&i.to_string()), None, None]))
            .await
            .expect("insert");
        if let Some(c) = applier.apply(commit(lsn)).await.expect("commit") {
            committed.push(c);
        }
        // A closed group commits once its replies are read: when the session is next
        // needed, or when the caller flushes a due group.
        if applier.due() {
            committed.extend(applier.flush().await.expect("flush"));
        }
    }
    // Two source transactions in one target commit; the third waits for its group.
    assert_eq!(committed.len(), 1);
    assert_eq!(
        (
            committed[0].lsn,
            committed[0].transactions,
            committed[0].changes
        ),
        (Lsn(208), 2, 2)
    );
    // A crash now: the open group (transaction 300) rolls back with the session.
    drop(applier);

    let (mut applier, start) = Applier::start(target.client().await, "t_crash", limits)
        .await
        .expect("restart");
    assert_eq!(
        start,
        Lsn(208),
        "the committed position survives, nothing after it"
    );
    assert_eq!(
        rows(
            &target,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM items"
        )
        .await,
        ["0,1"]
    );
    // The source resends from the stored position, plus an older transaction: skipped.
    applier.apply(items()).await.expect("relation");
    for (i, lsn) in [(1u64, 200u64), (2, 300)] {
        applier.apply(begin(lsn)).await.expect("begin");
        applier
            .apply(insert(1, &[Some(&i.to_string()), None, None]))
            .await
            .expect("insert");
        applier.apply(commit(lsn)).await.expect("commit");
    }
    let flushed = applier
        .flush()
        .await
        .expect("flush")
        .expect("a group to commit");
    assert_eq!(flushed.lsn, Lsn(308));
    assert_eq!(
        rows(
            &target,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM items"
        )
        .await,
        ["0,1,2"]
    );
}

fn update(rel_id: u32, values: &[Option<&str>]) -> LogicalMessage {
    LogicalMessage::Update {
        xid: None,
        rel_id,
        key: None,
        old: None,
        new: tuple(values),
    }
}

/// A folded run the target refuses (a unique index other than the key sees two rows swap a
/// value, which one set-based UPDATE checks row by row) is replayed change by change and
/// lands; drift found by a folded statement is still reported with the table's name.
#[tokio::test]
async fn a_refused_folded_run_is_replayed_in_order() {
    let target = TestDb::create(ferry_testkit::cluster()).await;
    target
        .execute_batch(
            "CREATE TABLE people (id int PRIMARY KEY, email text UNIQUE, n int);
             INSERT INTO people VALUES (1, 'a', 0), (2, 'b', 0);",
        )
        .await;
    let limits = BatchLimits {
        max_transactions: 100,
        ..BatchLimits::default()
    };
    let (mut applier, _) = Applier::start(target.client().await, "t_replay", limits)
        .await
        .expect("start");
    let people = relation(
        1,
        "people",
        b'd',
        vec![
            col("id", INT4, true),
            col("email", TEXT, false),
            col("n", INT4, false),
        ],
    );
    let committed = apply_all(
        &mut applier,
        vec![
            people,
            begin(100),
            update(1, &[Some("1"), Some("tmp"), Some("1")]),
            update(1, &[Some("2"), Some("a"), Some("1")]),
            commit(100),
            begin(200),
            update(1, &[Some("1"), Some("b"), Some("2")]),
            insert(1, &[Some("3"), Some("c"), Some("0")]),
            commit(200),
        ],
    )
    .await;
    assert_eq!(
        committed
            .iter()
            .map(|c| (c.transactions, c.changes))
            .collect::<Vec<_>>(),
        [(2, 4)]
    );
    assert_eq!(
        rows(
            &target,
            "SELECT string_agg(format('%s:%s:%s', id, email, n), ',' ORDER BY id) FROM people"
        )
        .await,
        ["1:b:2,2:a:1,3:c:0"]
    );

    applier.apply(begin(300)).await.expect("begin");
    applier
        .apply(update(1, &[Some("7"), Some("x"), Some("0")]))
        .await
        .expect("update folds");
    applier.apply(commit(300)).await.expect("commit");
    let err = applier.flush().await.expect_err("row 7 is missing");
    assert!(
        matches!(err, CdcError::RowMissing { .. }) && err.to_string().contains("public.people"),
        "{err}"
    );
    assert_eq!(applier.applied(), Lsn(208));
}
