//! A source that cannot feed a migration (wal_level, privileges, slots) and a machine without
//! the client tools: preflight refuses before anything is created.

use ferry_testkit::{cluster, TestDb};

use crate::support::{
    assert_source_untouched, assert_target_empty, count, create_database, dedicated_cluster, exec,
    path_str, seed, Side, Workdir,
};

/// `check` and `copy` both refuse with `phrases`; then nothing is on either server and the
/// state directory shows no run.
async fn assert_both_refuse(work: &Workdir, spec: &std::path::Path, phrases: &[&str]) {
    work.ferry(&["check", path_str(spec)])
        .await
        .assert_refused(phrases, &[]);
    work.ferry(&["copy", path_str(spec)])
        .await
        .assert_refused(phrases, &[])
        .assert_mentions(&["nothing was created on either server"]);
    work.assert_not_started(spec).await;
    work.assert_state_has_no_secret(&[]);
}

#[tokio::test]
async fn wal_level_not_logical_is_refused() {
    let cluster = dedicated_cluster("bi-walrep", &[("wal_level", "replica")]).await;
    create_database(&cluster, "src", None).await;
    create_database(&cluster, "dst", None).await;
    let (src, dst) = (cluster.conninfo("src"), cluster.conninfo("dst"));
    seed(&src).await;
    let work = Workdir::new();
    let spec = work.spec("walrep", &Side::new(&src), &Side::new(&dst), "");
    assert_both_refuse(
        &work,
        &spec,
        &[
            "source.wal_level",
            "wal_level is replica",
            "needs logical",
            "ALTER SYSTEM SET wal_level = logical",
            "restart",
        ],
    )
    .await;
    assert_source_untouched(&src).await;
    assert_target_empty(&dst).await;
}

#[tokio::test]
async fn missing_replication_privilege_is_refused() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    let role = format!("norepl_{}", source.name());
    seed(&source.conninfo()).await;
    // The role owns the tables and may create publications: only REPLICATION is missing.
    exec(
        &source.conninfo(),
        &format!(
            "CREATE ROLE {role} LOGIN NOREPLICATION;
             ALTER TABLE items OWNER TO {role};
             GRANT CREATE ON DATABASE {} TO {role};",
            source.name()
        ),
    )
    .await;
    let dsn = format!(
        "host=127.0.0.1 port={} user={role} dbname={}",
        cluster().port(),
        source.name()
    );
    let work = Workdir::new();
    let spec = work.spec(
        "norepl",
        &Side::new(&dsn),
        &Side::new(target.conninfo()),
        "",
    );
    let check = work.ferry(&["check", path_str(&spec)]).await;
    check.assert_refused(
        &[
            "source.replication_privilege",
            &format!("role \"{role}\" on the source may not open replication connections"),
            &format!("ALTER ROLE \"{role}\" REPLICATION"),
        ],
        &[&dsn],
    );
    let blocking = check.stderr.matches("error [").count();
    assert_eq!(
        blocking, 1,
        "only the privilege should block:\n{}",
        check.stderr
    );
    assert_both_refuse(&work, &spec, &["REPLICATION"]).await;
    assert_source_untouched(&source.conninfo()).await;
    assert_target_empty(&target.conninfo()).await;
}

#[tokio::test]
async fn no_free_replication_slot_is_refused() {
    let cluster = dedicated_cluster("bi-slots", &[("max_replication_slots", "1")]).await;
    create_database(&cluster, "src", None).await;
    create_database(&cluster, "dst", None).await;
    let (src, dst) = (cluster.conninfo("src"), cluster.conninfo("dst"));
    seed(&src).await;
    exec(
        &src,
        "SELECT pg_create_logical_replication_slot('other', 'pgoutput')",
    )
    .await;
    let work = Workdir::new();
    let spec = work.spec("slots", &Side::new(&src), &Side::new(&dst), "");
    assert_both_refuse(
        &work,
        &spec,
        &[
            "source.replication_slots",
            "no free replication slot",
            "max_replication_slots",
            "drop unused slots",
        ],
    )
    .await;
    assert_source_untouched(&src).await;
    assert_target_empty(&dst).await;
    let other = count(
        &src,
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'other'",
    )
    .await;
    assert_eq!(other, 1, "the operator's own slot must be left alone");
}

/// `FERRY_PG_BIN` pointing at a directory without pg_dump: refused, naming the variable, with
/// the fix; nothing found elsewhere on the machine is used instead.
#[tokio::test]
async fn missing_pg_dump_is_refused() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    seed(&source.conninfo()).await;
    let work = Workdir::new();
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bin = path_str(empty.path());
    let spec = work.spec(
        "notools",
        &Side::new(source.conninfo()),
        &Side::new(target.conninfo()),
        "",
    );
    for cmd in ["check", "copy"] {
        work.ferry_env(&[cmd, path_str(&spec)], &[("FERRY_PG_BIN", bin)])
            .await
            .assert_refused(
                &[
                    "tools.pg_dump",
                    "no pg_dump",
                    &format!("in FERRY_PG_BIN ({bin})"),
                    "fix: point FERRY_PG_BIN at the bin directory",
                ],
                &[],
            );
    }
    assert_source_untouched(&source.conninfo()).await;
    assert_target_empty(&target.conninfo()).await;
    work.assert_not_started(&spec).await;
}
