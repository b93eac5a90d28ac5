//! Streamed in-progress transactions (protocol 2 with `streaming 'on'`, protocol 4 with
//! `streaming 'parallel'`) captured from real servers and decoded: xids on data messages inside
//! a stream only, Stream Start/Stop/Commit/Abort in order, abort LSN and time only when parallel.

mod capture;

use std::collections::HashMap;

use capture::{decode_all, peek, SETUP, SLOT};
use ferry_replication::pgoutput::LogicalMessage;
use ferry_testkit::local_cluster::LocalCluster;
use ferry_testkit::TestDb;

/// Large transactions streamed while in progress (`logical_decoding_work_mem = 64kB`): one
/// committed, one rolled back, one with a rolled-back savepoint, then a small ordinary one.
async fn streaming_decodes(cluster: &'static LocalCluster, protocol: u32, streaming: &str) {
    let db = TestDb::create(cluster).await;
    db.execute_batch(SETUP).await;
    db.execute_batch(SLOT).await;
    let client = db.client().await;
    let rows = |from: u32, to: u32| {
        format!("INSERT INTO pk_t SELECT g, repeat('s', 200), 'sad' FROM generate_series({from}, {to}) g")
    };
    for tx in [
        format!("BEGIN; {}; COMMIT", rows(1, 2000)),
        format!("BEGIN; {}; ROLLBACK", rows(5001, 7000)),
        format!(
            "BEGIN; {}; SAVEPOINT s; {}; ROLLBACK TO s; COMMIT",
            rows(10001, 12000),
            rows(20001, 22000)
        ),
        "INSERT INTO pk_t VALUES (0, 'small', 'happy')".to_string(),
    ] {
        client.batch_execute(&tx).await.expect("workload");
    }
    let data = peek(
        &db,
        "SET logical_decoding_work_mem = '64kB'",
        &[
            "proto_version",
            &protocol.to_string(),
            "publication_names",
            "pub",
            "streaming",
            streaming,
        ],
    )
    .await;
    let msgs = decode_all(protocol, &data);

    let mut current: Option<u32> = None;
    let mut started: Vec<u32> = Vec::new();
    // Inserts counted by (stream's xid, xid the insert carries: the subtransaction's when inside
    // a savepoint).
    let mut inserts: HashMap<(Option<u32>, Option<u32>), usize> = HashMap::new();
    let (mut commits, mut aborts) = (Vec::new(), Vec::new());
    for m in &msgs {
        match m {
            LogicalMessage::StreamStart { xid, first_segment } => {
                assert_eq!(current, None, "nested StreamStart");
                assert_eq!(
                    *first_segment,
                    !started.contains(xid),
                    "first_segment of {xid}"
                );
                started.push(*xid);
                current = Some(*xid);
            }
            LogicalMessage::StreamStop => current = None,
            LogicalMessage::Insert { xid, .. } => {
                assert_eq!(xid.is_some(), current.is_some(), "xid only inside a stream");
                *inserts.entry((current, *xid)).or_default() += 1;
            }
            LogicalMessage::Relation { xid, .. } | LogicalMessage::Type { xid, .. } => {
                assert_eq!(*xid, current)
            }
            LogicalMessage::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                ..
            } => {
                assert_eq!(current, None);
                assert!(end_lsn > commit_lsn);
                commits.push(*xid);
            }
            LogicalMessage::StreamAbort {
                xid,
                subxid,
                abort_lsn,
                abort_time_us,
            } => {
                assert_eq!(current, None);
                let parallel = streaming == "parallel";
                assert_eq!(abort_lsn.is_some(), parallel);
                assert_eq!(abort_time_us.is_some(), parallel);
                aborts.push((*xid, *subxid));
            }
            _ => {}
        }
    }
    // The first and third transactions streamed and committed. The second, rolled back as a
    // whole, is streamed then aborted up to PostgreSQL 16; 17+ sees it already aborted when
    // decoding and does not stream it at all.
    let [first, third] = commits[..] else {
        panic!("two stream commits expected: {commits:?}")
    };
    for xid in started.iter().filter(|x| !commits.contains(x)) {
        assert!(
            aborts.contains(&(*xid, *xid)),
            "{xid} neither committed nor aborted"
        );
    }
    assert_eq!(inserts.get(&(Some(first), Some(first))), Some(&2000));
    assert_eq!(inserts.get(&(Some(third), Some(third))), Some(&2000));
    // The savepoint's inserts carry the subtransaction's xid, the one its StreamAbort names.
    for (_, subxid) in aborts.iter().filter(|(x, sub)| *x == third && sub != x) {
        assert!(inserts
            .get(&(Some(third), Some(*subxid)))
            .is_some_and(|n| *n > 0));
    }
    if cluster.major() < 17 {
        assert!(started.iter().any(|x| !commits.contains(x)), "{started:?}");
        assert!(
            aborts.iter().any(|(x, sub)| *x == third && sub != x),
            "{aborts:?}"
        );
    }
    // The small transaction is an ordinary Begin/Insert/Commit with no xids on its insert.
    assert_eq!(inserts.get(&(None, None)), Some(&1));
    assert!(matches!(msgs.last(), Some(LogicalMessage::Commit { .. })));
}

#[tokio::test]
async fn streamed_transactions_decode_in_protocol_2() {
    match ferry_testkit::cluster_at_least(14) {
        Some(cluster) => streaming_decodes(cluster, 2, "on").await,
        None => ferry_testkit::skip("protocol 2", "no PostgreSQL 14 or newer installed"),
    }
}

#[tokio::test]
async fn streamed_transactions_decode_in_protocol_4_parallel() {
    match ferry_testkit::cluster_of_major(18) {
        Some(cluster) => streaming_decodes(cluster, 4, "parallel").await,
        None => ferry_testkit::skip("protocol 4 streaming", "no PostgreSQL 18 installed"),
    }
}
