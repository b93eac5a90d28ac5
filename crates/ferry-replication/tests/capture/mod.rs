//! Shared by the capture tests: a schema, a pgoutput slot, and the raw messages it holds.

use ferry_replication::pgoutput::{LogicalMessage, StreamState};
use ferry_testkit::TestDb;

pub const SETUP: &str = "
    CREATE TYPE mood AS ENUM ('sad', 'happy');
    CREATE TABLE pk_t (id int PRIMARY KEY, v text, m mood);
    CREATE TABLE full_t (a int, b text);
    ALTER TABLE full_t REPLICA IDENTITY FULL;
    CREATE TABLE toast_t (id int PRIMARY KEY, big text, n int);
    ALTER TABLE toast_t ALTER big SET STORAGE EXTERNAL;
    INSERT INTO toast_t VALUES (1, repeat('x', 20000), 0);
    CREATE TABLE parent_t (id serial PRIMARY KEY);
    CREATE TABLE child_t (id int, pid int REFERENCES parent_t);
    CREATE PUBLICATION pub FOR ALL TABLES;
";

/// A slot cannot be created in a transaction that has written: its own round trip.
pub const SLOT: &str = "SELECT pg_create_logical_replication_slot('slot', 'pgoutput')";

/// The raw messages of the slot, with the options given to pgoutput.
pub async fn peek(db: &TestDb, settings: &str, options: &[&str]) -> Vec<Vec<u8>> {
    let client = db.client().await;
    client.batch_execute(settings).await.expect("settings");
    // Decoding stops at the flushed WAL position, and the test cluster commits asynchronously:
    // wait until everything written is flushed.
    let written: String = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .expect("insert lsn")
        .get(0);
    let flushed = format!("SELECT pg_current_wal_flush_lsn() >= '{written}'::pg_lsn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !client
        .query_one(&flushed, &[])
        .await
        .expect("flush lsn")
        .get::<_, bool>(0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "WAL not flushed to {written}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let args: Vec<String> = options.iter().map(|o| format!("'{o}'")).collect();
    let sql = format!(
        "SELECT data FROM pg_logical_slot_peek_binary_changes('slot', NULL, NULL, {})",
        args.join(", ")
    );
    let rows = client.query(&sql, &[]).await.expect("peek changes");
    let data: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
    if std::env::var_os("FERRY_DUMP_PGOUTPUT").is_some() {
        for d in &data {
            let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
            eprintln!("{} {hex}", char::from(d.first().copied().unwrap_or(b'?')));
        }
    }
    data
}

pub fn decode_all(protocol: u32, data: &[Vec<u8>]) -> Vec<LogicalMessage> {
    let mut state = StreamState::new(protocol);
    data.iter()
        .map(|d| state.decode(d).unwrap_or_else(|e| panic!("{e}: {d:02x?}")))
        .collect()
}
