//! `START_REPLICATION … LOGICAL` on a real server: the stream delivers committed transactions,
//! confirmed positions reach the slot, a consumer that stops reading does not get the session
//! killed by `wal_sender_timeout`, and a missing slot or publication is a clear error.

use std::time::{Duration, Instant};

use ferry_model::Lsn;
use ferry_pg::Connector;
use ferry_replication::pgoutput::{
    protocol_version_for, ColumnValue, LogicalMessage, StartReplicationOptions, StreamState,
};
use ferry_replication::{
    LogicalStream, ReplicationConnection, ReplicationError, StreamProblem, StreamSettings,
};
use ferry_spec::{ConnInfo, Endpoint};
use ferry_testkit::local_cluster::LocalCluster;
use ferry_testkit::TestDb;

const SETUP: &str = "CREATE TABLE t (id int PRIMARY KEY, v text);
                     CREATE PUBLICATION pub FOR TABLE t;";

/// A database with table `t`, publication `pub` and pgoutput slot `s`; returns the slot's
/// start position and the pgoutput protocol for this server.
async fn setup() -> (TestDb, Lsn, u32) {
    setup_on(ferry_testkit::cluster()).await
}

async fn setup_on(cluster: &'static LocalCluster) -> (TestDb, Lsn, u32) {
    let db = TestDb::create(cluster).await;
    db.execute_batch(SETUP).await;
    let client = db.client().await;
    let lsn: String = client
        .query_one(
            "SELECT lsn::text FROM pg_create_logical_replication_slot('s', 'pgoutput')",
            &[],
        )
        .await
        .expect("slot")
        .get(0);
    let version: String = client
        .query_one("SHOW server_version_num", &[])
        .await
        .expect("version")
        .get(0);
    let proto = protocol_version_for(version.parse().expect("version number"));
    (db, lsn.parse().expect("lsn"), proto)
}

async fn connect(db: &TestDb) -> ReplicationConnection {
    let endpoint = Endpoint {
        conninfo: ConnInfo::parse(&db.conninfo()).expect("dsn"),
        password_env: None,
    };
    let connector = Connector::new("source", &endpoint).expect("connector");
    ReplicationConnection::connect(&connector)
        .await
        .expect("replication connection")
}

fn options(proto: u32, publication: &str) -> StartReplicationOptions {
    StartReplicationOptions {
        proto_version: proto,
        publication_names: vec![publication.to_owned()],
        messages: false,
        streaming: None,
    }
}

/// Decodes until `commits` Commits were seen; returns the changes and the last end LSN.
async fn receive(
    stream: &mut LogicalStream,
    proto: u32,
    commits: usize,
) -> (Vec<LogicalMessage>, Lsn) {
    let mut state = StreamState::new(proto);
    let (mut changes, mut seen, mut end) = (Vec::new(), 0, Lsn(0));
    while seen < commits {
        let x = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("a message within 30 s")
            .expect("stream alive")
            .expect("stream not ended");
        match state.decode_bytes(&x.data).expect("pgoutput") {
            LogicalMessage::Commit { end_lsn, .. } => {
                seen += 1;
                end = end_lsn;
            }
            m @ (LogicalMessage::Insert { .. }
            | LogicalMessage::Update { .. }
            | LogicalMessage::Delete { .. }) => changes.push(m),
            _ => {}
        }
    }
    (changes, end)
}

/// Status updates every `ms`, `capacity` messages in the channel, 64 KiB queued beyond it.
fn tiny(ms: u64, capacity: usize) -> StreamSettings {
    StreamSettings {
        status_interval: Duration::from_millis(ms),
        channel_capacity: capacity,
        buffer_bytes: 64 << 10,
    }
}

fn text(v: &ColumnValue) -> &[u8] {
    match v {
        ColumnValue::Text(b) => b,
        other => panic!("text expected: {other:?}"),
    }
}

#[tokio::test]
async fn stream_delivers_transactions_and_confirms_reach_the_slot() {
    let (db, start, proto) = setup().await;
    let conn = connect(&db).await;
    let mut stream = conn
        .start_logical_with("s", start, &options(proto, "pub"), tiny(200, 1024))
        .await
        .expect("START_REPLICATION");
    db.execute_batch("INSERT INTO t VALUES (1, 'one')").await;
    db.execute_batch("UPDATE t SET v = 'uno' WHERE id = 1")
        .await;
    db.execute_batch("DELETE FROM t WHERE id = 1").await;
    let (changes, end) = receive(&mut stream, proto, 3).await;
    let [LogicalMessage::Insert { new: ins, .. }, LogicalMessage::Update { new: upd, .. }, LogicalMessage::Delete { .. }] =
        &changes[..]
    else {
        panic!("insert, update, delete expected: {changes:?}")
    };
    assert_eq!((text(&ins.0[0]), text(&ins.0[1])), (&b"1"[..], &b"one"[..]));
    assert_eq!(text(&upd.0[1]), b"uno");

    stream.confirm(end, end);
    stream.confirm(Lsn(1), Lsn(1)); // smaller: ignored
    let client = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let confirmed: String = client
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 's'",
                &[],
            )
            .await
            .expect("slot")
            .get(0);
        let confirmed: Lsn = confirmed.parse().expect("lsn");
        if confirmed == end {
            break;
        }
        assert!(confirmed < end, "the slot went past {end}: {confirmed}");
        assert!(Instant::now() < deadline, "slot at {confirmed}, not {end}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stream.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .query_one(
            "SELECT active FROM pg_replication_slots WHERE slot_name = 's'",
            &[],
        )
        .await
        .expect("slot")
        .get::<_, bool>(0)
    {
        assert!(
            Instant::now() < deadline,
            "the slot is still active after close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With `wal_sender_timeout` at 2 s, the consumer does not read for 5 s while a large
/// transaction is sent: the periodic status updates keep the session alive. A control stream
/// without them (status interval of an hour) is ended by the server.
#[tokio::test]
async fn a_stalled_consumer_keeps_the_session_alive() {
    let (db, start, proto) = setup().await;
    db.execute_batch("SELECT pg_create_logical_replication_slot('c', 'pgoutput')")
        .await;
    db.execute_batch("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g")
        .await;
    let mut streams = Vec::new();
    for (slot, interval_ms) in [("s", 200), ("c", 3_600_000)] {
        let mut conn = connect(&db).await;
        conn.simple_query("SET", "SET wal_sender_timeout = '2s'")
            .await
            .expect("SET wal_sender_timeout");
        let stream = conn
            .start_logical_with(slot, start, &options(proto, "pub"), tiny(interval_ms, 4))
            .await
            .expect("START_REPLICATION");
        streams.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut control = streams.pop().expect("control");
    let mut stream = streams.pop().expect("stream");
    let (changes, _) = receive(&mut stream, proto, 1).await;
    assert_eq!(changes.len(), 50_000);
    stream.close().await;

    let err = loop {
        match control.next().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the control stream ended without an error"),
            Err(e) => break e,
        }
    };
    eprintln!("control: {err}");
    assert!(
        matches!(
            err,
            ReplicationError::Stream {
                problem: StreamProblem::Closed,
                ..
            }
        ),
        "the control stream should have been ended by wal_sender_timeout: {err}"
    );
}

#[tokio::test]
async fn a_missing_slot_is_named() {
    let (db, start, proto) = setup().await;
    let err = connect(&db)
        .await
        .start_logical("nope", start, &options(proto, "pub"))
        .await
        .err()
        .expect("no such slot");
    let message = err.to_string();
    assert!(
        matches!(
            err,
            ReplicationError::Stream {
                problem: StreamProblem::SlotMissing,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        message.contains("\"nope\"") && message.contains("does not exist"),
        "{message}"
    );
}

#[tokio::test]
async fn a_dropped_publication_is_named_when_decoding_begins() {
    dropped_publication(ferry_testkit::cluster()).await;
}

/// PostgreSQL 18 skips a missing publication with a warning instead of an error.
#[tokio::test]
async fn a_dropped_publication_is_named_on_postgresql_18() {
    match ferry_testkit::cluster_of_major(18) {
        Some(cluster) => dropped_publication(cluster).await,
        None => ferry_testkit::skip("dropped publication on 18", "no PostgreSQL 18 installed"),
    }
}

async fn dropped_publication(cluster: &'static LocalCluster) {
    let (db, start, proto) = setup_on(cluster).await;
    db.execute_batch("DROP PUBLICATION pub; INSERT INTO t VALUES (1, 'x')")
        .await;
    let mut stream = connect(&db)
        .await
        .start_logical("s", start, &options(proto, "pub"))
        .await
        .expect("START_REPLICATION accepts the name");
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("an answer within 30 s")
        {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended without an error"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            &err,
            ReplicationError::Stream {
                problem: StreamProblem::PublicationMissing { publication },
                ..
            } if publication == "pub"
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("publication \"pub\" does not exist"),
        "{err}"
    );
}
