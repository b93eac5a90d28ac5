//! `ferry sync` after `ferry copy`: every kind of change made on the source after the
//! snapshot arrives on the target, in order and exactly once, and a second run resumes from
//! the stored position without repeating anything.

mod common;

use common::{assert_same_rows, Migration};
use ferry_testkit::TestDb;

const SCHEMA: &str = "
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TABLE items (id int PRIMARY KEY, label text, feeling mood, doc jsonb);
    CREATE TABLE toasty (id int PRIMARY KEY, big text, n int);
    CREATE TABLE dupes (a int, b text);
    ALTER TABLE dupes REPLICA IDENTITY FULL;
    CREATE TABLE ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text,
                        doubled bigint GENERATED ALWAYS AS (id * 2) STORED);
    CREATE TABLE parent (id int PRIMARY KEY);
    CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
    INSERT INTO items SELECT g, 'item ' || g, 'ok', jsonb_build_object('g', g) FROM generate_series(1, 1000) g;
    INSERT INTO toasty SELECT g, repeat(md5(g::text), 5000), g FROM generate_series(1, 20) g;
    INSERT INTO dupes VALUES (1, 'same'), (1, 'same'), (2, 'other');
    INSERT INTO ident (v) SELECT 'v' || g FROM generate_series(1, 10) g;
    INSERT INTO parent SELECT generate_series(1, 5);
    INSERT INTO child SELECT g, g FROM generate_series(1, 5) g;
";

const CHANGES: &str = "
    INSERT INTO items SELECT g, 'new ' || g, 'happy', NULL FROM generate_series(1001, 1500) g;
    UPDATE items SET label = label || ' (edited)', feeling = 'sad' WHERE id % 7 = 0;
    UPDATE items SET id = id + 100000 WHERE id BETWEEN 10 AND 20;
    DELETE FROM items WHERE id % 11 = 0;
    UPDATE toasty SET n = n + 1;
    DELETE FROM dupes WHERE a = 1 AND ctid = (SELECT min(ctid) FROM dupes WHERE a = 1);
    UPDATE dupes SET b = 'changed' WHERE a = 2;
    INSERT INTO ident (v) VALUES ('after');
    BEGIN; INSERT INTO items VALUES (-1, 'rolled back', 'ok', NULL); ROLLBACK;
    BEGIN;
      INSERT INTO items VALUES (-2, 'kept', 'ok', NULL);
      SAVEPOINT s; INSERT INTO items VALUES (-3, 'undone', 'ok', NULL); ROLLBACK TO s;
    COMMIT;
    TRUNCATE child;
    INSERT INTO child VALUES (9, 1);
";

#[tokio::test]
async fn sync_applies_every_change_once_and_resumes() {
    let cluster = ferry_testkit::cluster();
    let source = TestDb::create(cluster).await;
    let target = TestDb::create(cluster).await;
    source.execute_batch(SCHEMA).await;
    let m = Migration::between("sync-basic", &source, &target, "");

    // Refused before a copy.
    let early = m.run("sync", &["--until-caught-up"]).failure();
    assert!(early.text().contains("ferry copy"), "{}", early.text());

    m.run("copy", &[]).success();
    source.execute_batch(CHANGES).await;
    let out = m.run("sync", &["--until-caught-up"]).success();
    assert!(out.stdout.contains("applied"), "{}", out.text());
    let (src, dst) = (source.client().await, target.client().await);
    assert_same_rows(&src, &dst).await;

    // Lag is measured and reported: caught up, so no pending age.
    let status = m.status();
    assert_eq!(status["phase"], "sync", "{status:#}");
    assert!(status["applied_lsn"].is_string(), "{status:#}");
    assert!(status["lag_bytes"].is_u64(), "{status:#}");
    assert_eq!(status["lag_seconds"].as_f64(), Some(0.0), "{status:#}");

    // The TOASTed values survived updates that did not touch them.
    let big: i64 = dst
        .query_one("SELECT min(length(big))::int8 FROM toasty", &[])
        .await
        .expect("toast")
        .get(0);
    assert_eq!(big, 32 * 5000);

    // More changes; a second run resumes where the first stopped.
    source
        .execute_batch("UPDATE items SET label = 'second round' WHERE id < 100; DELETE FROM toasty WHERE id > 10;")
        .await;
    m.run("sync", &["--until-caught-up"]).success();
    assert_same_rows(&src, &dst).await;

    // A run with nothing new applies nothing and changes nothing.
    let idle = m.run("sync", &["--until-caught-up"]).success();
    assert_same_rows(&src, &dst).await;
    assert!(
        idle.stdout.contains("applied 1 transactions") || idle.stdout.contains("applied 0"),
        "{}",
        idle.text()
    );
    // Abort also removes the replication origin (cluster-wide: it would outlive the database).
    let origins = || async {
        dst.query_one(
            "SELECT count(*) FROM pg_replication_origin WHERE roname = 'ferry_sync_basic'",
            &[],
        )
        .await
        .expect("origins")
        .get::<_, i64>(0)
    };
    assert_eq!(origins().await, 1);
    m.run("abort", &[]).success();
    assert_eq!(origins().await, 0, "abort must drop the origin");
}
