//! `ferry sync` over every table of the copy test's fixture (fixtures/every_type.sql): after
//! the copy, inserts, updates (every column, some keys) and deletes of every common type,
//! quoted and non-ASCII identifiers, partitions (rows moving between them), identity and
//! generated columns, a dropped column, TOAST, row-level security, triggers, cascading foreign
//! keys, plus the same types under `REPLICA IDENTITY FULL` with duplicate rows; the target must
//! then hold the source's rows, row by row. Separately: a table without columns, and
//! inheritance children, each as their own test.

mod common;

use common::{assert_every_table_same, assert_same_rows, table_digests, Migration};
use ferry_testkit::{cluster, TestDb};
use tokio_postgres::Client;

const SPEC: &str = "[tables]\nwithout_identity = \"append_only\"\n";

/// Added to the fixture before the copy: every type again, in a table found by all its
/// columns (no key), with whole-row duplicates.
const FULL_IDENTITY: &str = "
    CREATE TABLE types_full AS SELECT * FROM types WHERE id <= 3 OR id BETWEEN 10 AND 12;
    INSERT INTO types_full SELECT * FROM types WHERE id <= 3;
    ALTER TABLE types_full REPLICA IDENTITY FULL;
";

/// After the copy: changes over every table of the fixture.
const CHANGES: &str = r#"
-- types: the exotic rows again under new keys; whole rows overwritten with the exotic
-- values, the all-NULL row and back; key changes; partial updates; deletes.
CREATE TEMP TABLE exotic AS SELECT * FROM types WHERE id <= 3;
UPDATE exotic SET id = id + 10000;
INSERT INTO types SELECT * FROM exotic;
DO $$
DECLARE cols text;
BEGIN
  SELECT string_agg(format('%I = s.%I', attname, attname), ', ') INTO cols
    FROM pg_attribute
   WHERE attrelid = 'types'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'id';
  EXECUTE format('UPDATE types t SET %s FROM types s WHERE s.id = 1 AND t.id BETWEEN 4 AND 30', cols);
  EXECUTE format('UPDATE types t SET %s FROM types s WHERE s.id = 2 AND t.id BETWEEN 31 AND 60', cols);
  EXECUTE format('UPDATE types t SET %s FROM types s WHERE s.id = 3 AND t.id BETWEEN 61 AND 90', cols);
  EXECUTE format('UPDATE types t SET %s FROM types s WHERE s.id = 10001 AND t.id = 3', cols);
  EXECUTE format('UPDATE types t SET %s FROM types s WHERE s.id = 10003 AND t.id = 1', cols);
END $$;
UPDATE types SET id = id + 20000 WHERE id BETWEEN 91 AND 100;
UPDATE types SET n = n * 2, a_text = a_text || 'more'::text, jb = jb || '{"x": 1}'
 WHERE id BETWEEN 101 AND 150;
UPDATE types SET id = -id, m = 'happy' WHERE id BETWEEN 4 AND 8;
DELETE FROM types WHERE id % 7 = 0 AND id BETWEEN 9 AND 2000;
DELETE FROM types WHERE id IN (10002, 2);

-- The same types found by every column, duplicates changed one at a time.
UPDATE types_full SET id = id + 100 WHERE ctid = (SELECT ctid FROM types_full WHERE id = 1 LIMIT 1);
UPDATE types_full SET ci = 'CHANGED' WHERE ctid = (SELECT ctid FROM types_full WHERE id = 2 LIMIT 1);
UPDATE types_full SET n = 1 WHERE ctid = (SELECT ctid FROM types_full WHERE id = 3 LIMIT 1);
DELETE FROM types_full WHERE ctid = (SELECT ctid FROM types_full WHERE id = 2 LIMIT 1);
DELETE FROM types_full WHERE id = 11;
INSERT INTO types_full SELECT * FROM types WHERE id IN (1, 3, 10001);

-- Identifiers that need quoting.
INSERT INTO "Weird Schema"."MixedCase" VALUES (101, 'sel new', -101, 'ü new');
UPDATE "Weird Schema"."MixedCase" SET "select" = 'changed', "Ünïcödé" = 'ÿ' WHERE "Id" <= 10;
UPDATE "Weird Schema"."MixedCase" SET "Id" = "Id" + 1000 WHERE "Id" BETWEEN 11 AND 15;
DELETE FROM "Weird Schema"."MixedCase" WHERE "Id" BETWEEN 16 AND 20;
INSERT INTO "表" VALUES (3, '三');
UPDATE "表" SET "值" = '一一' WHERE "列" = 1;
UPDATE "表" SET "列" = 30 WHERE "列" = 3;
DELETE FROM "表" WHERE "列" = 2;
INSERT INTO "select" VALUES (3, 'new');
UPDATE "select" SET "where" = 'upd' WHERE "from" = 2;
DELETE FROM "select" WHERE "from" = 1;
INSERT INTO "quote""d ta.ble" VALUES (2, 'y'), (3, 'z');
UPDATE "quote""d ta.ble" SET " space " = 'xx' WHERE "a""b" = 1;
UPDATE "quote""d ta.ble" SET "a""b" = 30 WHERE "a""b" = 3;
DELETE FROM "quote""d ta.ble" WHERE "a""b" = 2;

-- Partitions: rows into each, updated in place and moved between partitions, deleted.
INSERT INTO measurements (at, v) VALUES ('2023-05-01', 1), ('2024-05-01', 2), ('2030-01-01', 3);
UPDATE measurements SET v = v + 1 WHERE id % 10 = 0;
UPDATE measurements SET at = '2024-02-02' WHERE id BETWEEN 1 AND 20;
UPDATE measurements SET at = '2019-01-01' WHERE id BETWEEN 21 AND 25;
DELETE FROM measurements WHERE id % 13 = 0;

-- Identity (ALWAYS and BY DEFAULT) and a generated column.
INSERT INTO ident (c) VALUES (1000), (1001);
INSERT INTO ident (b, c) VALUES (9, 9);
UPDATE ident SET c = c + 100 WHERE a <= 10;
UPDATE ident SET b = b + 1 WHERE a BETWEEN 11 AND 15;
DELETE FROM ident WHERE a BETWEEN 20 AND 25;

-- A table with a dropped column.
INSERT INTO dropped VALUES (21, 'kept 21');
UPDATE dropped SET kept = 'changed' WHERE id <= 5;
UPDATE dropped SET id = id + 100 WHERE id = 9;
DELETE FROM dropped WHERE id BETWEEN 6 AND 8;

-- TOAST: updates that leave a big value alone, a key change under one, a new big row.
INSERT INTO big_values SELECT 3, string_agg(md5((g * 7)::text), ''), NULL FROM generate_series(1, 50000) g;
INSERT INTO big_values VALUES (4, 'small', '\x00');
UPDATE big_values SET b = '\x0102' WHERE id = 1;
UPDATE big_values SET t = 'short now' WHERE id = 2;
UPDATE big_values SET id = 30 WHERE id = 3;
DELETE FROM big_values WHERE id = 4;

-- Row-level security, a trigger (it must not fire again on the target), cascading keys.
INSERT INTO secrets VALUES (3, 'somebody', 'new hidden');
UPDATE secrets SET body = 'changed' WHERE id = 1;
DELETE FROM secrets WHERE id = 2;
INSERT INTO trig (id, v) VALUES (11, 'new');
UPDATE trig SET v = 'changed' WHERE id <= 3;
DELETE FROM trig WHERE id = 10;
DELETE FROM parent WHERE id = 1;
INSERT INTO parent VALUES (11, 'p11');
INSERT INTO child VALUES (101, 11, 5);
UPDATE child SET qty = qty + 1 WHERE id <= 10;
UPDATE child SET parent_id = 11 WHERE id BETWEEN 11 AND 15;
UPDATE parent SET name = 'renamed' WHERE id = 2;
UPDATE child SET parent_id = 11 WHERE parent_id = 3;
UPDATE parent SET id = 12 WHERE id = 3;
"#;

async fn one_i64(db: &Client, sql: &str) -> i64 {
    db.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_and_table_shape_syncs() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source.psql(include_str!("fixtures/every_type.sql"));
    source.psql(FULL_IDENTITY);
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between("sync-types", &source, &target, SPEC);
    m.run_async("copy", &[]).await.success();
    let copied = table_digests(&src).await;

    source.psql(CHANGES);
    let out = m.run_async("sync", &["--until-caught-up"]).await.success();
    eprintln!("{}", out.stdout.trim());

    // Every table was changed, so the comparison below covers every shape.
    let changed = table_digests(&src).await;
    for (table, digest) in &changed {
        if table != "public.nocols" {
            assert_ne!(Some(digest), copied.get(table), "{table} did not change");
        }
    }
    assert_every_table_same(&src, &dst).await;
    assert_same_rows(&src, &dst).await;
    for (sql, want) in [
        // The TOASTed values left alone survived.
        (
            "SELECT count(*) FROM big_values WHERE id = 1 AND length(t) = 3200000",
            1,
        ),
        (
            "SELECT count(*) FROM big_values WHERE id = 30 AND length(t) = 1600000",
            1,
        ),
        (
            "SELECT count(*) FROM big_values WHERE id = 2 AND length(b) = 2550000",
            1,
        ),
        // Duplicates of exotic rows, changed one at a time.
        ("SELECT count(*) FROM types_full WHERE id = 1", 2),
        ("SELECT count(*) FROM types_full WHERE id = 2", 1),
        (
            "SELECT count(*) FROM measurements_2024 WHERE id BETWEEN 1 AND 20",
            19,
        ),
    ] {
        assert_eq!(one_i64(&dst, sql).await, want, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_columns_syncs() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source
        .execute_batch(
            "CREATE TABLE nocols ();
             INSERT INTO nocols DEFAULT VALUES;
             CREATE TABLE other (id int PRIMARY KEY);",
        )
        .await;
    let (src, dst) = (source.client().await, target.client().await);
    let m = Migration::between("sync-nocols", &source, &target, SPEC);
    m.run_async("copy", &[]).await.success();
    source
        .execute_batch(
            "INSERT INTO nocols DEFAULT VALUES;
             INSERT INTO nocols DEFAULT VALUES;
             INSERT INTO other VALUES (1);",
        )
        .await;
    let out = m.run_async("sync", &["--until-caught-up"]).await;
    assert_eq!(out.code, Some(0), "ferry sync failed:\n{}", out.text());
    assert_eq!(one_i64(&dst, "SELECT count(*) FROM nocols").await, 3);
    assert_every_table_same(&src, &dst).await;
}

/// A parent and an inheritance child holding rows with the same keys (the parent's key does
/// not cover the child's rows).
async fn inheritance(name: &str) -> (TestDb, TestDb, Migration) {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    source
        .execute_batch(
            "CREATE TABLE animals (id int PRIMARY KEY, name text);
             CREATE TABLE dogs (breed text) INHERITS (animals);
             ALTER TABLE dogs ADD PRIMARY KEY (id);
             INSERT INTO animals VALUES (1, 'generic'), (2, 'another'), (3, 'third');
             INSERT INTO dogs VALUES (1, 'rex', 'collie'), (2, 'fido', 'pug'), (3, 'spot', 'lab');",
        )
        .await;
    let m = Migration::between(name, &source, &target, "");
    m.run_async("copy", &[]).await.success();
    let (src, dst) = (source.client().await, target.client().await);
    assert_every_table_same(&src, &dst).await;
    (source, target, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_an_inheritance_parent_leave_its_children_alone() {
    let (source, target, m) = inheritance("sync-inherit").await;
    source
        .execute_batch(
            "UPDATE ONLY animals SET name = 'renamed' WHERE id = 1;
             DELETE FROM ONLY animals WHERE id = 2;
             UPDATE dogs SET name = 'rex II' WHERE id = 1;
             INSERT INTO animals VALUES (4, 'fourth');",
        )
        .await;
    let out = m.run_async("sync", &["--until-caught-up"]).await;
    assert_eq!(out.code, Some(0), "ferry sync failed:\n{}", out.text());
    let (src, dst) = (source.client().await, target.client().await);
    assert_eq!(one_i64(&dst, "SELECT count(*) FROM dogs").await, 3);
    assert_every_table_same(&src, &dst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_only_of_an_inheritance_parent_keeps_its_children() {
    let (source, target, m) = inheritance("sync-inherit-truncate").await;
    source.execute_batch("TRUNCATE ONLY animals").await;
    let out = m.run_async("sync", &["--until-caught-up"]).await;
    assert_eq!(out.code, Some(0), "ferry sync failed:\n{}", out.text());
    let (src, dst) = (source.client().await, target.client().await);
    assert_eq!(one_i64(&dst, "SELECT count(*) FROM ONLY animals").await, 0);
    assert_eq!(one_i64(&dst, "SELECT count(*) FROM dogs").await, 3);
    assert_every_table_same(&src, &dst).await;
}
