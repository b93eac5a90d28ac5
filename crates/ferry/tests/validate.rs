//! `ferry validate` between two databases Ferry did not copy: differences injected on the
//! target only are each found and named by key with the columns and both values; what
//! differs only by session (jsonb key order, an instant written in another zone, a date
//! written in another DateStyle) is equal; identical databases give nothing.

mod common;

use std::collections::BTreeSet;

use common::{validated_table, validation_report, Migration};
use ferry_testkit::{cluster, TestDb};
use serde_json::Value;

/// The same on both sides, but how a few values are written (below).
const SCHEMA: &str = "
    CREATE TABLE kinds (
        id int PRIMARY KEY, txt text, big text, arr int[], doc jsonb, js json,
        num numeric, fl float8, at timestamptz, day date);
    ALTER TABLE kinds ALTER big SET STORAGE EXTERNAL;
    CREATE TABLE parts (region text NOT NULL, id int NOT NULL, v text,
        PRIMARY KEY (region, id)) PARTITION BY LIST (region);
    CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu');
    CREATE TABLE parts_us PARTITION OF parts FOR VALUES IN ('us');
    CREATE TABLE nokey (a int, b text);
    CREATE TABLE wide (k1 text NOT NULL, k2 int NOT NULL, v text, UNIQUE (k1, k2));
    INSERT INTO kinds (id, txt, big, arr, num, fl)
        SELECT g, 'row ' || g, repeat(md5(g::text), 200), ARRAY[g, g + 1, g + 2], g * 1.5, g / 7.0
          FROM generate_series(1, 20) g;
    INSERT INTO parts SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g, 'p' || g
          FROM generate_series(1, 10) g;
    INSERT INTO nokey VALUES (1, 'a'), (1, 'a'), (2, 'b'), (3, NULL);
    INSERT INTO wide SELECT 'k' || (g % 97), g, md5(g::text) FROM generate_series(1, 30000) g;
    ANALYZE;
";

/// Values written differently on each side but equal to a client.
async fn write_session_dependent(db: &TestDb, target: bool) {
    let (doc, zone, style, day) = if target {
        (
            r#"{"b": [1, 2], "a": 1}"#,
            "America/New_York",
            "SQL, DMY",
            "21/11/2026",
        )
    } else {
        (
            r#"{"a": 1, "b": [1, 2]}"#,
            "Asia/Tokyo",
            "ISO, YMD",
            "2026-11-21",
        )
    };
    db.execute_batch(&format!(
        "SET TimeZone = '{zone}'; SET DateStyle = '{style}';
         UPDATE kinds SET doc = '{doc}', js = '{{\"x\": 1}}',
                at = '2026-11-21 12:00:00+00'::timestamptz, day = '{day}'::date;"
    ))
    .await;
}

async fn pair() -> (TestDb, TestDb) {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    for (db, is_target) in [(&source, false), (&target, true)] {
        db.execute_batch(SCHEMA).await;
        write_session_dependent(db, is_target).await;
    }
    (source, target)
}

/// `(table, key as k=v list, kind)` of every difference.
fn found(report: &Value) -> BTreeSet<(String, String, String)> {
    report["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| {
            let key = d["key"].as_object().map_or_else(String::new, |k| {
                k.iter()
                    .map(|(c, v)| format!("{c}={}", v.as_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(",")
            });
            (
                d["table"].as_str().unwrap_or_default().to_owned(),
                key,
                d["kind"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn column(report: &Value, table: &str, key: &str, column: &str) -> (Value, Value) {
    let d = report["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .find(|d| {
            d["table"] == table
                && d["key"]
                    .as_object()
                    .is_some_and(|k| k.values().any(|v| v == key))
        })
        .unwrap_or_else(|| panic!("no difference for {table} {key}: {report:#}"));
    let c = d["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["column"] == column)
        .unwrap_or_else(|| panic!("{table} {key}: column {column} not named: {d:#}"));
    (c["source"].clone(), c["target"].clone())
}

#[tokio::test]
async fn identical_databases_have_no_findings() {
    let (source, target) = pair().await;
    let m = Migration::between("validate-same", &source, &target, "");
    let out = m.run_async("validate", &["--json"]).await.success();
    let r = validation_report(&out);
    assert_eq!(r["result"], "equal", "{r:#}");
    assert_eq!(found(&r), BTreeSet::new(), "{r:#}");
    assert_eq!(r["unsettled"].as_array().map(Vec::len), Some(0), "{r:#}");
    let wide = validated_table(&r, "public.wide");
    assert_eq!(wide["source_rows"], 30000, "{wide:#}");
    assert_eq!(wide["key"], serde_json::json!(["k1", "k2"]));
    // The result is stored: status shows it.
    let status = m.status_async().await;
    assert_eq!(status["validation"]["result"], "equal", "{status:#}");
}

#[tokio::test]
async fn every_injected_difference_is_found_by_key_and_nothing_else() {
    let (source, target) = pair().await;
    target
        .execute_batch(
            "UPDATE kinds SET txt = 'changed' WHERE id = 1;
             DELETE FROM kinds WHERE id = 2;
             INSERT INTO kinds (id, txt) VALUES (999, 'extra');
             UPDATE kinds SET txt = '' WHERE id = 3;
             UPDATE kinds SET big = big || 'x' WHERE id = 4;
             UPDATE kinds SET arr[2] = 0 WHERE id = 5;
             UPDATE kinds SET doc = jsonb_set(doc, '{b,1}', '3') WHERE id = 6;
             UPDATE kinds SET num = 10.50 WHERE id = 7;
             UPDATE kinds SET fl = '-0' WHERE id = 8;
             UPDATE kinds SET js = '{\"x\":1}' WHERE id = 9;
             UPDATE parts SET region = 'us' WHERE id = 4;
             DELETE FROM nokey WHERE ctid = (SELECT min(ctid) FROM nokey WHERE a = 1);
             UPDATE wide SET v = 'bisected' WHERE k2 = 12345;",
        )
        .await;
    source
        .execute_batch(
            "UPDATE kinds SET txt = NULL WHERE id = 3;
             UPDATE kinds SET num = 10.5 WHERE id = 7;
             UPDATE kinds SET fl = 0 WHERE id = 8;",
        )
        .await;
    let m = Migration::between("validate-diff", &source, &target, "");
    let out = m.run_async("validate", &["--json"]).await;
    assert_eq!(
        out.code,
        Some(4),
        "differences must exit 4:\n{}",
        out.text()
    );
    let r = validation_report(&out);
    assert_eq!(r["result"], "different");
    let expected: BTreeSet<(String, String, String)> = [
        ("public.kinds", "id=1", "changed"),
        ("public.kinds", "id=2", "missing_on_target"),
        ("public.kinds", "id=999", "extra_on_target"),
        ("public.kinds", "id=3", "changed"),
        ("public.kinds", "id=4", "changed"),
        ("public.kinds", "id=5", "changed"),
        ("public.kinds", "id=6", "changed"),
        ("public.kinds", "id=7", "changed"),
        ("public.kinds", "id=8", "changed"),
        ("public.kinds", "id=9", "changed"),
        ("public.parts_eu", "id=4,region=eu", "missing_on_target"),
        ("public.parts_us", "id=4,region=us", "extra_on_target"),
        ("public.nokey", "", "missing_on_target"),
        ("public.wide", "k1=k26,k2=12345", "changed"),
    ]
    .into_iter()
    .map(|(t, k, d)| (t.to_owned(), k.to_owned(), d.to_owned()))
    .collect();
    assert_eq!(found(&r), expected, "{r:#}");
    assert_eq!(
        column(&r, "public.kinds", "1", "txt"),
        (Value::from("row 1"), Value::from("changed"))
    );
    assert_eq!(
        column(&r, "public.kinds", "3", "txt"),
        (Value::Null, Value::from(""))
    );
    assert_eq!(
        column(&r, "public.kinds", "7", "num"),
        (Value::from("10.5"), Value::from("10.50"))
    );
    assert_eq!(
        column(&r, "public.kinds", "8", "fl"),
        (Value::from("0"), Value::from("-0"))
    );
    assert_eq!(
        column(&r, "public.kinds", "5", "arr"),
        (Value::from("{5,6,7}"), Value::from("{5,0,7}"))
    );
    let nokey = r["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .find(|d| d["table"] == "public.nokey")
        .expect("nokey");
    assert_eq!(nokey["copies"], 1, "{nokey:#}");
    assert_eq!(nokey["row"]["b"], "a", "{nokey:#}");
    let wide = validated_table(&r, "public.wide");
    assert!(
        wide["chunks"].as_u64().unwrap_or(0) > 1,
        "a 30,000-row table with one changed row is bisected: {wide:#}"
    );

    // Only the tables asked for; the stored result is the last one.
    let out = m
        .run_async("validate", &["--tables", "public.wide", "--json"])
        .await;
    assert_eq!(out.code, Some(4), "{}", out.text());
    let r = validation_report(&out);
    assert_eq!(r["tables"].as_array().map(Vec::len), Some(1), "{r:#}");
    let status = m.status_async().await;
    assert_eq!(status["validation"]["result"], "different", "{status:#}");
    assert_eq!(status["validation"]["differences"], 1, "{status:#}");
}

#[tokio::test]
async fn bad_input_exits_2_with_the_way_out() {
    let (source, target) = pair().await;
    let m = Migration::between("validate-bad", &source, &target, "");
    let out = m
        .run_async("validate", &["--tables", "public.nosuch"])
        .await;
    assert_eq!(out.code, Some(2), "{}", out.text());
    assert!(out.stderr.contains("no table matches"), "{}", out.text());
    let out = m.run_async("validate", &["--tables", "a.b.c"]).await;
    assert_eq!(out.code, Some(2), "{}", out.text());
    let broken = Migration::new(
        "validate-bad",
        &source.conninfo(),
        "host=127.0.0.1 port=1 dbname=x user=nobody password=Sekr1t",
        "",
    );
    let out = broken.run_async("validate", &[]).await.failure();
    assert!(!out.text().contains("Sekr1t"), "{}", out.text());
}

#[tokio::test]
async fn a_table_emptied_on_the_target_is_counted_not_fetched_past_max_differences() {
    let (source, target) = pair().await;
    source
        .execute_batch(
            "CREATE TABLE gone (id int PRIMARY KEY, v text);
             INSERT INTO gone SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
             ANALYZE gone;",
        )
        .await;
    target
        .execute_batch("CREATE TABLE gone (id int PRIMARY KEY, v text);")
        .await;
    let m = Migration::between("validate-gone", &source, &target, "");
    let out = m
        .run_async(
            "validate",
            &[
                "--tables",
                "public.gone",
                "--max-differences",
                "10",
                "--json",
            ],
        )
        .await;
    assert_eq!(out.code, Some(4), "{}", out.text());
    let r = validation_report(&out);
    let diffs = r["differences"].as_array().expect("differences");
    let named = diffs
        .iter()
        .filter(|d| d["kind"] == "missing_on_target")
        .count();
    let more: Vec<&Value> = diffs
        .iter()
        .filter(|d| d["kind"] == "more_differences")
        .collect();
    assert!(named > 0 && named < 5000, "{named} rows named: {r:#}");
    assert_eq!(more.len(), 1, "{r:#}");
    assert!(more[0]["ranges"].as_u64().unwrap_or(0) > 0, "{r:#}");
}
