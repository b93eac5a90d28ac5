//! The pgoutput decoder on bytes captured from a real server: a workload covering every message
//! Ferry receives runs against a slot, `pg_logical_slot_peek_binary_changes` returns the raw
//! messages, and every one must decode to the values the workload wrote.
//! `FERRY_DUMP_PGOUTPUT=1` prints the captured messages as hex (the source of the unit-test
//! fixtures in src/pgoutput/fixtures.rs).

mod capture;

use std::collections::HashMap;

use capture::{decode_all, peek, SETUP, SLOT};
use ferry_replication::pgoutput::{ColumnValue, LogicalMessage, TupleData};
use ferry_testkit::local_cluster::LocalCluster;
use ferry_testkit::TestDb;

/// One transaction per entry (each its own simple-query round trip).
const WORKLOAD: &[&str] = &[
    "INSERT INTO pk_t VALUES (1, 'one', 'happy')",
    "UPDATE pk_t SET id = 2, v = NULL WHERE id = 1",
    "UPDATE pk_t SET v = 'deux' WHERE id = 2",
    "INSERT INTO full_t VALUES (1, 'a')",
    "UPDATE full_t SET b = 'b'",
    "DELETE FROM full_t",
    "UPDATE toast_t SET n = n + 1",
    "DELETE FROM pk_t WHERE id = 2",
    "BEGIN; INSERT INTO pk_t VALUES (99, 'rolled back', 'sad'); ROLLBACK",
    "INSERT INTO parent_t DEFAULT VALUES",
    "TRUNCATE parent_t RESTART IDENTITY CASCADE",
    "BEGIN; SELECT pg_logical_emit_message(true, 'ferry', 'in tx'); COMMIT",
    "SELECT pg_logical_emit_message(false, 'ferry-nt', 'no tx')",
];

fn text(s: &str) -> ColumnValue {
    ColumnValue::Text(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

fn relations(msgs: &[LogicalMessage]) -> HashMap<String, u32> {
    msgs.iter()
        .filter_map(|m| match m {
            LogicalMessage::Relation { rel_id, name, .. } => Some((name.clone(), *rel_id)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_message_of_a_workload_decodes() {
    // The `messages` option exists from PostgreSQL 14.
    match ferry_testkit::cluster_at_least(14) {
        Some(cluster) => workload_decodes(cluster, 1).await,
        None => ferry_testkit::skip("pgoutput messages", "no PostgreSQL 14 or newer installed"),
    }
}

#[tokio::test]
async fn every_message_of_a_workload_decodes_in_protocol_4() {
    match ferry_testkit::cluster_of_major(18) {
        Some(cluster) => workload_decodes(cluster, 4).await,
        None => ferry_testkit::skip("protocol 4", "no PostgreSQL 18 installed"),
    }
}

async fn workload_decodes(cluster: &'static LocalCluster, protocol: u32) {
    let db = TestDb::create(cluster).await;
    db.execute_batch(SETUP).await;
    db.execute_batch(SLOT).await;
    let client = db.client().await;
    for tx in WORKLOAD {
        client.batch_execute(tx).await.expect(tx);
    }
    let data = peek(
        &db,
        "SELECT 1",
        &[
            "proto_version",
            &protocol.to_string(),
            "publication_names",
            "pub",
            "messages",
            "true",
        ],
    )
    .await;
    let msgs = decode_all(protocol, &data);
    let rel = relations(&msgs);
    let (pk, full, toast) = (rel["pk_t"], rel["full_t"], rel["toast_t"]);

    // Begin/Commit pairs: one per committed transaction with changes, none for the rollback.
    let begins = msgs
        .iter()
        .filter(|m| matches!(m, LogicalMessage::Begin { .. }))
        .count();
    let commits: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            LogicalMessage::Commit {
                commit_lsn,
                end_lsn,
                ..
            } => Some((*commit_lsn, *end_lsn)),
            _ => None,
        })
        .collect();
    assert_eq!(begins, 11, "{msgs:#?}");
    assert_eq!(commits.len(), 11);
    assert!(commits.iter().all(|(c, e)| e > c));
    assert!(commits.windows(2).all(|w| w[0].1 <= w[1].0));

    // The enum's Type message precedes pk_t's Relation; the Relation marks the key.
    let type_oid = msgs
        .iter()
        .find_map(|m| match m {
            LogicalMessage::Type {
                name,
                type_oid,
                namespace,
                xid: None,
            } => {
                assert_eq!((name.as_str(), namespace.as_str()), ("mood", "public"));
                Some(*type_oid)
            }
            _ => None,
        })
        .expect("a Type message for the enum");
    let pk_columns = msgs
        .iter()
        .find_map(|m| match m {
            LogicalMessage::Relation {
                rel_id,
                columns,
                replica_identity,
                namespace,
                ..
            } if *rel_id == pk => {
                assert_eq!((*replica_identity, namespace.as_str()), (b'd', "public"));
                Some(columns.clone())
            }
            _ => None,
        })
        .expect("pk_t relation");
    let names: Vec<_> = pk_columns
        .iter()
        .map(|c| (c.name.as_str(), c.is_key()))
        .collect();
    assert_eq!(names, [("id", true), ("v", false), ("m", false)]);
    assert_eq!(pk_columns[0].type_oid, 23);
    assert_eq!(pk_columns[2].type_oid, type_oid);

    let changes: Vec<&LogicalMessage> = msgs
        .iter()
        .filter(|m| {
            !matches!(
                m,
                LogicalMessage::Begin { .. }
                    | LogicalMessage::Commit { .. }
                    | LogicalMessage::Relation { .. }
                    | LogicalMessage::Type { .. }
            )
        })
        .collect();
    let new_pk1 = TupleData(vec![text("1"), text("one"), text("happy")]);
    let expected = [LogicalMessage::Insert {
        xid: None,
        rel_id: pk,
        new: new_pk1,
    }];
    assert_eq!(changes[0], &expected[0]);
    // The primary key changed: the old key arrives as a 'K' tuple.
    match changes[1] {
        LogicalMessage::Update {
            rel_id,
            key: Some(key),
            old: None,
            new,
            ..
        } => {
            assert_eq!(*rel_id, pk);
            assert_eq!(key.0.first(), Some(&text("1")));
            assert_eq!(new.0, [text("2"), ColumnValue::Null, text("happy")]);
        }
        other => panic!("expected an update with a key tuple, got {other:?}"),
    }
    assert_eq!(
        changes[2],
        &LogicalMessage::Update {
            xid: None,
            rel_id: pk,
            key: None,
            old: None,
            new: TupleData(vec![text("2"), text("deux"), text("happy")]),
        }
    );
    assert!(matches!(changes[3], LogicalMessage::Insert { rel_id, .. } if *rel_id == full));
    // REPLICA IDENTITY FULL: the whole old row as an 'O' tuple.
    assert_eq!(
        changes[4],
        &LogicalMessage::Update {
            xid: None,
            rel_id: full,
            key: None,
            old: Some(TupleData(vec![text("1"), text("a")])),
            new: TupleData(vec![text("1"), text("b")]),
        }
    );
    assert_eq!(
        changes[5],
        &LogicalMessage::Delete {
            xid: None,
            rel_id: full,
            key: None,
            old: Some(TupleData(vec![text("1"), text("b")])),
        }
    );
    // The untouched TOASTed column is 'u', never a value or NULL.
    assert_eq!(
        changes[6],
        &LogicalMessage::Update {
            xid: None,
            rel_id: toast,
            key: None,
            old: None,
            new: TupleData(vec![text("1"), ColumnValue::UnchangedToast, text("1")]),
        }
    );
    match changes[7] {
        LogicalMessage::Delete {
            rel_id,
            key: Some(key),
            old: None,
            ..
        } => {
            assert_eq!(*rel_id, pk);
            assert_eq!(key.0.first(), Some(&text("2")));
        }
        other => panic!("expected a delete by key, got {other:?}"),
    }
    // The rolled-back insert of 99 is absent; next comes parent_t's insert.
    assert!(
        matches!(changes[8], LogicalMessage::Insert { rel_id, .. } if *rel_id == rel["parent_t"])
    );
    match changes[9] {
        LogicalMessage::Truncate {
            xid: None,
            options,
            rel_ids,
        } => {
            assert_eq!(*options, 3, "CASCADE | RESTART IDENTITY");
            let mut got = rel_ids.clone();
            got.sort_unstable();
            let mut want = vec![rel["parent_t"], rel["child_t"]];
            want.sort_unstable();
            assert_eq!(got, want);
        }
        other => panic!("expected a truncate, got {other:?}"),
    }
    match (changes[10], changes[11]) {
        (
            LogicalMessage::Message {
                transactional: true,
                prefix,
                content,
                ..
            },
            LogicalMessage::Message {
                transactional: false,
                prefix: p2,
                content: c2,
                ..
            },
        ) => {
            assert_eq!((prefix.as_str(), &content[..]), ("ferry", &b"in tx"[..]));
            assert_eq!((p2.as_str(), &c2[..]), ("ferry-nt", &b"no tx"[..]));
        }
        other => panic!("expected two messages, got {other:?}"),
    }
    assert_eq!(changes.len(), 12);
    // The non-transactional message comes alone, outside any Begin/Commit.
    assert!(matches!(
        msgs.last(),
        Some(LogicalMessage::Message {
            transactional: false,
            ..
        })
    ));
}
