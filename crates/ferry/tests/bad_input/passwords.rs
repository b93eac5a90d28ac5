//! Passwords over SCRAM-SHA-256: a cluster of its own whose pg_hba.conf asks every role but
//! the superuser for a password, and a role `app` (REPLICATION) that has one.

use std::time::Duration;

use ferry_testkit::local_cluster::LocalCluster;

use crate::support::{
    assert_source_untouched, assert_target_empty, count, create_database, dedicated_cluster, exec,
    path_str, wait_until, Side, Workdir, PASSWORD, PASSWORD_VAR, WRONG_PASSWORD,
};

/// Trust for the superuser (the tests' own sessions), SCRAM for everyone else, replication
/// connections included.
const PG_HBA: &str = "\
local   all           all                       trust
local   replication   all                       trust
host    all           postgres    127.0.0.1/32  trust
host    replication   postgres    127.0.0.1/32  trust
host    all           all         127.0.0.1/32  scram-sha-256
host    replication   all         127.0.0.1/32  scram-sha-256
";

/// The SCRAM cluster with `src` (owned by `app`, one table with 100 rows) and an empty `dst`.
async fn scram_cluster() -> LocalCluster {
    let cluster = dedicated_cluster("bi-scram", &[("password_encryption", "scram-sha-256")]).await;
    let admin = cluster.conninfo("postgres");
    exec(
        &admin,
        &format!("CREATE ROLE app LOGIN REPLICATION PASSWORD '{PASSWORD}'"),
    )
    .await;
    create_database(&cluster, "src", Some("app")).await;
    create_database(&cluster, "dst", None).await;
    exec(
        &cluster.conninfo("src"),
        "CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;
         ALTER TABLE items OWNER TO app;",
    )
    .await;
    std::fs::write(cluster.data_dir().join("pg_hba.conf"), PG_HBA)
        .unwrap_or_else(|e| panic!("cannot write pg_hba.conf: {e}"));
    exec(&admin, "SELECT pg_reload_conf()").await;
    // The postmaster reloads asynchronously: wait until `app` without a password is turned away.
    let app = format!("host=127.0.0.1 port={} user=app dbname=src", cluster.port());
    wait_until(
        "pg_hba.conf to be reloaded",
        Duration::from_secs(10),
        || {
            let app = app.clone();
            async move {
                tokio_postgres::connect(&app, tokio_postgres::NoTls)
                    .await
                    .is_err()
            }
        },
    )
    .await;
    cluster
}

fn app_dsn(cluster: &LocalCluster) -> String {
    format!("host=127.0.0.1 port={} user=app dbname=src", cluster.port())
}

/// A wrong password, a password_env naming an unset variable, and no password at all: each
/// refused with what to fix, no password (right or wrong) anywhere, nothing created.
#[tokio::test]
async fn wrong_or_missing_password_is_refused() {
    let cluster = scram_cluster().await;
    let (src, dst) = (cluster.conninfo("src"), cluster.conninfo("dst"));
    let dsn = app_dsn(&cluster);
    let work = Workdir::new();
    let target = Side::new(&dst);

    let spec = work.spec(
        "wrong_password",
        &Side::new(&dsn).with_password_env(PASSWORD_VAR),
        &target,
        "",
    );
    for cmd in ["check", "copy", "abort"] {
        work.ferry_env(&[cmd, path_str(&spec)], &[(PASSWORD_VAR, WRONG_PASSWORD)])
            .await
            .assert_refused(
                &[
                    "cannot connect to the source",
                    "app@127.0.0.1",
                    "refused the password for user \"app\"",
                    "password_env",
                ],
                &[&dsn],
            )
            .assert_short(2);
    }
    // Logged at debug level too, the password stays out.
    work.ferry_env(
        &["-vv", "copy", path_str(&spec)],
        &[(PASSWORD_VAR, WRONG_PASSWORD), ("FERRY_LOG", "debug")],
    )
    .await
    .assert_refused(&["refused the password"], &[&dsn]);
    work.assert_not_started(&spec).await;

    let spec = work.spec(
        "unset_variable",
        &Side::new(&dsn).with_password_env("FERRY_BAD_INPUT_NOT_SET"),
        &target,
        "",
    );
    for cmd in ["check", "copy", "abort"] {
        work.ferry(&[cmd, path_str(&spec)]).await.assert_refused(
            &[
                "FERRY_BAD_INPUT_NOT_SET",
                "not set",
                "export FERRY_BAD_INPUT_NOT_SET",
            ],
            &[&dsn],
        );
    }
    // Set but empty is the same mistake.
    work.ferry_env(
        &["check", path_str(&spec)],
        &[("FERRY_BAD_INPUT_NOT_SET", "")],
    )
    .await
    .assert_refused(&["FERRY_BAD_INPUT_NOT_SET", "not set"], &[&dsn]);

    let spec = work.spec("no_password", &Side::new(&dsn), &target, "");
    for cmd in ["check", "copy"] {
        work.ferry(&[cmd, path_str(&spec)]).await.assert_refused(
            &["asks for a password and none was found", "password_env"],
            &[&dsn],
        );
    }

    work.assert_state_has_no_secret(&[&dsn]);
    assert_source_untouched(&src).await;
    assert_target_empty(&dst).await;
}

/// The right password through password_env: preflight passes, the copy (whose snapshot holder
/// authenticates on a replication connection, and whose pg_dump gets the password from the
/// environment) succeeds, abort cleans up, and the password is nowhere in output or state.
#[tokio::test]
async fn correct_password_via_password_env_works_over_scram() {
    let cluster = scram_cluster().await;
    let (src, dst) = (cluster.conninfo("src"), cluster.conninfo("dst"));
    let dsn = app_dsn(&cluster);
    let work = Workdir::new();
    let spec = work.spec(
        "scram",
        &Side::new(&dsn).with_password_env(PASSWORD_VAR),
        &Side::new(&dst),
        "",
    );
    let spec = path_str(&spec);

    work.ferry(&["check", spec])
        .await
        .assert_ok(&[&dsn])
        .assert_mentions(&["preflight passed: 1 table(s)"]);
    work.ferry_env(
        &["copy", spec, "--verify"],
        &[(PASSWORD_VAR, PASSWORD), ("FERRY_LOG", "debug")],
    )
    .await
    .assert_ok(&[&dsn])
    .assert_mentions(&["verified: row counts", "slot ferry_scram"]);
    assert_eq!(count(&dst, "SELECT count(*) FROM items").await, 100);
    let left = crate::support::ferry_objects(&src).await;
    assert!(
        left.iter().any(|o| o == "slot ferry_scram"),
        "the copy's slot is missing: {left:?}"
    );

    work.ferry(&["status", spec, "--json"])
        .await
        .assert_ok(&[&dsn])
        .assert_mentions(&["\"phase\": \"sync\"", "app@127.0.0.1"]);
    work.ferry(&["abort", spec])
        .await
        .assert_ok(&[&dsn])
        .assert_mentions(&["dropped replication slot ferry_scram"]);
    assert_source_untouched(&src).await;
    // The scan below covers the holder's log (written at debug level) and the store.
    let state = work.state_root().join("scram");
    for file in ["state.db", "snapshot-holder.log"] {
        assert!(
            state.join(file).exists(),
            "no {file} in {}",
            state.display()
        );
    }
    work.assert_state_has_no_secret(&[&dsn]);
}
