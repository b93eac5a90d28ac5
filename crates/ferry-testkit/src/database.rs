//! A fresh database per test, dropped (with its replication slots) when the test ends.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferry_pg::local_cluster::LocalCluster;
use postgres_protocol::escape::escape_identifier;
use tokio_postgres::{Client, NoTls};

/// A uniquely named database on a test cluster.
#[derive(Debug)]
pub struct TestDb {
    cluster: &'static LocalCluster,
    name: String,
}

impl TestDb {
    /// Creates `t_<pid>_<counter>` on `cluster`.
    pub async fn create(cluster: &'static LocalCluster) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&cluster.conninfo("postgres")).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {}", escape_identifier(&name)))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        TestDb { cluster, name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn cluster(&self) -> &'static LocalCluster {
        self.cluster
    }

    pub fn conninfo(&self) -> String {
        self.cluster.conninfo(&self.name)
    }

    /// A new plain (NoTls) connection; its connection task is spawned on the current runtime.
    pub async fn client(&self) -> Client {
        connect(&self.conninfo()).await
    }

    pub async fn execute_batch(&self, sql: &str) {
        self.client()
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("batch on {} failed: {e}", self.name));
    }

    /// Runs `sql` through `psql` (see [`crate::psql`]) and returns its output.
    pub fn psql(&self, sql: &str) -> String {
        crate::psql(self.cluster, &self.name, sql)
    }
}

impl Drop for TestDb {
    /// Drops the slots of the database (ending their walsenders), then the database itself.
    /// Runs on its own thread and runtime, so it works from any runtime or none; it reports
    /// failures on stderr and never panics.
    fn drop(&mut self) {
        let conninfo = self.cluster.conninfo("postgres");
        let name = self.name.clone();
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(drop_database(&conninfo, &name))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!(
                "ferry-testkit: could not drop test database {}: {e}",
                self.name
            ),
            Err(_) => eprintln!(
                "ferry-testkit: dropping test database {} panicked",
                self.name
            ),
        }
    }
}

async fn connect(conninfo: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn drop_database(conninfo: &str, name: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let connection = tokio::spawn(connection);
    let mut last_error = String::new();
    // A terminated walsender releases its slot a moment later: retry for a few seconds.
    for _ in 0..50 {
        let attempt = async {
            client
                .execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                     WHERE database = $1 AND active_pid IS NOT NULL",
                    &[&name],
                )
                .await?;
            client
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                     WHERE database = $1 AND active_pid IS NULL",
                    &[&name],
                )
                .await?;
            let left = client
                .query_one(
                    "SELECT count(*) FROM pg_replication_slots WHERE database = $1",
                    &[&name],
                )
                .await?;
            Ok::<i64, tokio_postgres::Error>(left.get(0))
        };
        match attempt.await {
            Ok(0) => {
                last_error.clear();
                break;
            }
            Ok(left) => last_error = format!("{left} replication slot(s) still active"),
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !last_error.is_empty() {
        return Err(last_error);
    }
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            escape_identifier(name)
        ))
        .await
        .map_err(|e| e.to_string())?;
    drop(client);
    let _ = connection.await;
    Ok(())
}
