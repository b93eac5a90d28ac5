//! A target that already holds tables, and source tables without a primary key or replica
//! identity: refused with the list and the fix, and accepted once the operator says how.

use ferry_testkit::{cluster, TestDb};

use crate::support::{
    assert_source_untouched, assert_target_empty, connect, count, ferry_objects, path_str, seed,
    user_relations, Side, Workdir,
};

#[tokio::test]
async fn nonempty_target_is_refused_unless_allowed() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    seed(&src).await;
    target
        .execute_batch(
            "CREATE TABLE leftover (x int); INSERT INTO leftover VALUES (1);
             CREATE SCHEMA old; CREATE TABLE old.audit (y int);",
        )
        .await;
    let work = Workdir::new();
    let spec = work.spec("nonempty", &Side::new(&src), &Side::new(&dst), "");
    let spec = path_str(&spec);

    for cmd in ["check", "copy"] {
        work.ferry(&[cmd, spec]).await.assert_refused(
            &[
                "target.not_empty",
                "already holds 2 relation(s)",
                "public.leftover",
                "old.audit",
                "--allow-nonempty-target",
            ],
            &[],
        );
    }
    assert_source_untouched(&src).await;
    assert_eq!(
        user_relations(&dst).await,
        ["old.audit", "public.leftover"],
        "a refused copy changed the target"
    );
    work.assert_not_started(std::path::Path::new(spec)).await;

    work.ferry(&["check", spec, "--allow-nonempty-target"])
        .await
        .assert_ok(&[])
        .assert_mentions(&["preflight passed"]);
    work.ferry(&["copy", spec, "--allow-nonempty-target", "--verify"])
        .await
        .assert_ok(&[])
        .assert_mentions(&["verified: row counts"]);
    assert_eq!(count(&dst, "SELECT count(*) FROM items").await, 100);
    assert_eq!(count(&dst, "SELECT count(*) FROM leftover").await, 1);

    work.ferry(&["abort", spec]).await.assert_ok(&[]);
    assert_source_untouched(&src).await;
}

const NO_KEY: &str = "CREATE TABLE events (at timestamptz NOT NULL DEFAULT now(), msg text);
     INSERT INTO events (msg) SELECT 'event ' || g FROM generate_series(1, 50) g;";

/// A seeded source holding the key-less `events` table, an empty target, and a spec named
/// `name` between them with `extra` appended.
struct NoKey {
    _source: TestDb,
    _target: TestDb,
    src: String,
    dst: String,
    work: Workdir,
    spec: std::path::PathBuf,
}

async fn no_key(name: &str, extra: &str) -> NoKey {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    seed(&src).await;
    source.execute_batch(NO_KEY).await;
    let work = Workdir::new();
    let spec = work.spec(name, &Side::new(&src), &Side::new(&dst), extra);
    NoKey {
        _source: source,
        _target: target,
        src,
        dst,
        work,
        spec,
    }
}

#[tokio::test]
async fn table_without_identity_is_refused_with_the_fix() {
    let NoKey {
        _source,
        _target,
        src,
        dst,
        work,
        spec,
    } = no_key("nokey", "").await;

    for cmd in ["check", "copy"] {
        work.ferry(&[cmd, path_str(&spec)]).await.assert_refused(
            &[
                "tables.without_identity",
                "1 table(s) have no primary key",
                "public.events: ALTER TABLE \"public\".\"events\" REPLICA IDENTITY FULL;",
                "without_identity = \"exclude\"",
                "\"append_only\"",
            ],
            &[],
        );
    }
    assert_source_untouched(&src).await;
    assert_target_empty(&dst).await;
    work.assert_not_started(&spec).await;
}

#[tokio::test]
async fn table_without_identity_can_be_excluded() {
    let NoKey {
        _source,
        _target,
        src,
        dst,
        work,
        spec,
    } = no_key(
        "nokey_exclude",
        "[tables]\nwithout_identity = \"exclude\"\n",
    )
    .await;
    let spec = path_str(&spec);

    work.ferry(&["copy", spec, "--verify"])
        .await
        .assert_ok(&[])
        .assert_mentions(&["verified: row counts of all 1 tables"]);
    assert_eq!(user_relations(&dst).await, ["public.items"]);
    assert_eq!(count(&dst, "SELECT count(*) FROM items").await, 100);
    // Left out of every publication, so the source's own writes on it are untouched.
    let published = count(
        &src,
        "SELECT count(*) FROM pg_publication_tables WHERE tablename = 'events'",
    )
    .await;
    assert_eq!(published, 0);

    work.ferry(&["abort", spec]).await.assert_ok(&[]);
    assert_source_untouched(&src).await;
}

/// `append_only`: the table is copied and published for inserts only, so the source's own
/// UPDATE and DELETE on it keep working while Ferry's slot and publications exist.
#[tokio::test]
async fn table_without_identity_can_be_append_only() {
    let NoKey {
        _source,
        _target,
        src,
        dst,
        work,
        spec,
    } = no_key(
        "nokey_append",
        "[tables]\nwithout_identity = \"append_only\"\n",
    )
    .await;
    let spec = path_str(&spec);

    work.ferry(&["copy", spec, "--verify"])
        .await
        .assert_ok(&[])
        .assert_mentions(&["verified: row counts of all 2 tables"]);
    assert_eq!(count(&dst, "SELECT count(*) FROM events").await, 50);
    let objects = ferry_objects(&src).await;
    assert!(
        objects
            .iter()
            .any(|o| o.starts_with("slot ferry_nokey_append"))
            && objects.iter().any(|o| o.starts_with("publication ")),
        "the copy should leave its slot and publications for change capture: {objects:?}"
    );

    // The point of append_only: the application's UPDATE and DELETE still work.
    let app = connect(&src).await;
    let updated = app
        .execute(
            "UPDATE events SET msg = 'changed' WHERE msg = 'event 1'",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("UPDATE on the append_only table failed on the source: {e}"));
    assert_eq!(updated, 1);
    let deleted = app
        .execute("DELETE FROM events WHERE msg = 'event 2'", &[])
        .await
        .unwrap_or_else(|e| panic!("DELETE on the append_only table failed on the source: {e}"));
    assert_eq!(deleted, 1);
    app.execute("INSERT INTO events (msg) VALUES ('new')", &[])
        .await
        .unwrap_or_else(|e| panic!("INSERT on the append_only table failed: {e}"));
    // And the tables with a key keep working too.
    app.execute("UPDATE items SET note = 'x' WHERE id = 1", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    work.ferry(&["abort", spec]).await.assert_ok(&[]);
    assert_source_untouched(&src).await;
}

/// A target role that may not create the source's schemas and tables, nor hand them to their
/// owner: refused with the GRANT statements (before any slot exists); with them run, the copy
/// succeeds as that role.
#[tokio::test]
async fn target_role_without_privileges_is_refused_with_the_grants() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    let (owner, weak) = (
        format!("owner_{}", source.name()),
        format!("weak_{}", target.name()),
    );
    seed(&src).await;
    source
        .execute_batch(&format!(
            "CREATE ROLE {owner} NOLOGIN; CREATE ROLE {weak} LOGIN;
             ALTER TABLE items OWNER TO {owner};
             CREATE SCHEMA billing AUTHORIZATION {owner};
             CREATE TABLE billing.invoices (id int PRIMARY KEY);
             ALTER TABLE billing.invoices OWNER TO {owner};"
        ))
        .await;
    target
        .execute_batch("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        .await;
    let dsn = format!(
        "host=127.0.0.1 port={} user={weak} dbname={}",
        cluster().port(),
        target.name()
    );
    let work = Workdir::new();
    let spec = work.spec("weak_target", &Side::new(&src), &Side::new(&dsn), "");
    let spec = path_str(&spec);
    let grants = [
        format!(
            "GRANT CREATE ON DATABASE \"{}\" TO \"{weak}\";",
            target.name()
        ),
        format!("GRANT CREATE ON SCHEMA public TO \"{weak}\", \"{owner}\";"),
        format!("GRANT \"{owner}\" TO \"{weak}\";"),
    ];
    for cmd in ["check", "copy"] {
        let mut phrases = vec![
            "target.privileges",
            "cannot restore the source's schema",
            "create schemas (billing)",
        ];
        phrases.extend(grants.iter().map(String::as_str));
        work.ferry(&[cmd, spec])
            .await
            .assert_refused(&phrases, &[&dsn]);
    }
    assert_source_untouched(&src).await;
    assert_target_empty(&dst).await;

    // The statements the message gives are all it takes.
    target.execute_batch(&grants.join("\n")).await;
    work.ferry(&["copy", spec, "--verify"])
        .await
        .assert_ok(&[&dsn])
        .assert_mentions(&["verified: row counts of all 2 tables"]);
    work.ferry(&["abort", spec]).await.assert_ok(&[&dsn]);
    assert_source_untouched(&src).await;
}

/// `--allow-nonempty-target` shares the database, never a name: a table of the source that
/// already exists on the target is refused before anything is created.
#[tokio::test]
async fn clashing_table_on_a_shared_target_is_refused() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    seed(&src).await;
    target
        .execute_batch("CREATE TABLE items (other text); CREATE TABLE unrelated (x int);")
        .await;
    let work = Workdir::new();
    let spec = work.spec("clash", &Side::new(&src), &Side::new(&dst), "");
    for cmd in ["check", "copy"] {
        work.ferry(&[cmd, path_str(&spec), "--allow-nonempty-target"])
            .await
            .assert_refused(
                &[
                    "target.name_clash",
                    "1 relation(s) of the source already exist on the target",
                    "public.items",
                    "[tables] exclude",
                ],
                &[],
            );
    }
    assert_source_untouched(&src).await;
    assert_eq!(
        user_relations(&dst).await,
        ["public.items", "public.unrelated"]
    );
    work.assert_not_started(&spec).await;
}
