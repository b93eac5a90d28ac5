//! Roles the schema needs but the target cluster lacks: refused with the list by default;
//! with `missing_roles = "create"`, created without passwords and used as owners.

mod common;

use common::Migration;
use ferry_testkit::local_cluster::{ClusterOptions, LocalCluster};
use ferry_testkit::TestDb;
use tokio_postgres::NoTls;

#[tokio::test]
async fn missing_roles_are_refused_or_created() {
    let source = TestDb::create(ferry_testkit::cluster()).await;
    source
        .execute_batch(
            "DO $$ BEGIN
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_owner') THEN
                     CREATE ROLE ledger_owner NOLOGIN;
                 END IF;
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_reader') THEN
                     CREATE ROLE ledger_reader LOGIN PASSWORD 'never-copied';
                 END IF;
             END $$;
             CREATE TABLE ledger (id int PRIMARY KEY, amount numeric);
             INSERT INTO ledger SELECT g, g * 1.5 FROM generate_series(1, 100) g;
             ALTER TABLE ledger OWNER TO ledger_owner;
             GRANT SELECT ON ledger TO ledger_reader;",
        )
        .await;
    // Another cluster, so the roles really are missing there.
    let target_cluster = LocalCluster::start(&ClusterOptions {
        name: "roles-target".into(),
        ..ClusterOptions::default()
    })
    .expect("target cluster");
    let (admin, conn) = tokio_postgres::connect(&target_cluster.conninfo("postgres"), NoTls)
        .await
        .expect("connect target");
    tokio::spawn(conn);
    admin
        .batch_execute("CREATE DATABASE ledger")
        .await
        .expect("create db");
    let target_dsn = target_cluster.conninfo("ledger");

    let refused = Migration::new("roles-refused", &source.conninfo(), &target_dsn, "");
    let out = refused.run("copy", &[]).failure();
    let text = out.text();
    assert!(text.contains("target.missing_roles"), "{text}");
    assert!(
        text.contains("ledger_owner") && text.contains("ledger_reader"),
        "{text}"
    );
    assert!(
        text.contains("missing_roles = \"create\""),
        "the fix must be named:\n{text}"
    );

    let created = Migration::new(
        "roles-created",
        &source.conninfo(),
        &target_dsn,
        "[copy]\nmissing_roles = \"create\"\n",
    );
    created.run("copy", &["--verify"]).success();
    let (db, conn) = tokio_postgres::connect(&target_dsn, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let owner: String = db
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'ledger'",
            &[],
        )
        .await
        .expect("owner")
        .get(0);
    assert_eq!(owner, "ledger_owner");
    let reader = db
        .query_one(
            "SELECT rolcanlogin, rolpassword IS NULL FROM pg_authid WHERE rolname = 'ledger_reader'",
            &[],
        )
        .await
        .expect("reader role");
    assert!(reader.get::<_, bool>(0), "LOGIN is kept");
    assert!(reader.get::<_, bool>(1), "no password is ever copied");
    let can_read: bool = db
        .query_one(
            "SELECT has_table_privilege('ledger_reader', 'ledger', 'SELECT')",
            &[],
        )
        .await
        .expect("privilege")
        .get(0);
    assert!(can_read, "grants arrive with the schema");
    created.run("abort", &[]).success();
    refused.run("abort", &[]).success();
}
