//! The server side of the bad-input tests: dedicated clusters with special settings, small
//! SQL helpers, and the checks that nothing of Ferry's was left on either server.

use ferry_testkit::local_cluster::{ClusterOptions, LocalCluster};
use tokio_postgres::{Client, NoTls};

/// A cluster of its own with extra `postgresql.conf` settings (the default major, or
/// `FERRY_TEST_PG_MAJOR`); stopped and removed on drop.
pub async fn dedicated_cluster(name: &str, settings: &[(&str, &str)]) -> LocalCluster {
    let opts = ClusterOptions {
        major: std::env::var("FERRY_TEST_PG_MAJOR")
            .ok()
            .and_then(|m| m.parse().ok()),
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        name: name.to_owned(),
    };
    tokio::task::spawn_blocking(move || LocalCluster::start(&opts))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("cannot start a dedicated cluster: {e}"))
}

/// Creates database `name` on `cluster` (owned by `owner`, or the superuser).
pub async fn create_database(cluster: &LocalCluster, name: &str, owner: Option<&str>) {
    let owner = owner.map_or(String::new(), |o| format!(" OWNER {o}"));
    exec(
        &cluster.conninfo("postgres"),
        &format!("CREATE DATABASE {name}{owner}"),
    )
    .await;
}

/// A session on `conninfo`; the connection task runs on the current runtime.
pub async fn connect(conninfo: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

pub async fn exec(conninfo: &str, sql: &str) {
    connect(conninfo)
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The first column of every row of `sql`, as text.
pub async fn strings(conninfo: &str, sql: &str) -> Vec<String> {
    connect(conninfo)
        .await
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

pub async fn count(conninfo: &str, sql: &str) -> i64 {
    connect(conninfo)
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Ferry's slots of this database and its publications (`conninfo` as a superuser).
pub async fn ferry_objects(conninfo: &str) -> Vec<String> {
    let mut found = strings(
        conninfo,
        "SELECT 'slot ' || slot_name FROM pg_replication_slots \
         WHERE slot_name LIKE 'ferry%' AND database = current_database()",
    )
    .await;
    found.extend(
        strings(
            conninfo,
            "SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE 'ferry%'",
        )
        .await,
    );
    found
}

/// No slot and no publication of Ferry's on the source database.
pub async fn assert_source_untouched(conninfo: &str) {
    let left = ferry_objects(conninfo).await;
    assert!(
        left.is_empty(),
        "Ferry left objects on the source: {left:?}"
    );
}

/// The user tables, views and sequences of a database.
pub async fn user_relations(conninfo: &str) -> Vec<String> {
    strings(
        conninfo,
        "SELECT n.nspname || '.' || c.relname FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp' ORDER BY 1",
    )
    .await
}

/// The target database holds no relation, no schema and no type of its own.
pub async fn assert_target_empty(conninfo: &str) {
    let rels = user_relations(conninfo).await;
    assert!(rels.is_empty(), "the target is no longer empty: {rels:?}");
    let schemas = strings(
        conninfo,
        "SELECT nspname::text FROM pg_namespace \
         WHERE nspname NOT IN ('public', 'information_schema') AND nspname !~ '^pg_'",
    )
    .await;
    assert!(
        schemas.is_empty(),
        "schemas appeared on the target: {schemas:?}"
    );
}

/// A small source schema: `items` with a primary key and 100 rows.
pub async fn seed(conninfo: &str) {
    exec(
        conninfo,
        "CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;",
    )
    .await;
}
