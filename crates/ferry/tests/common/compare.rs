//! Comparing two databases: rows, sequences, large objects, slots, publications, schema.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_testkit::TestDb;
use tokio_postgres::Client;

/// User tables that store rows (plain tables and partitions; partitioned parents hold none),
/// as `schema.table` quoted for SQL, extension members left out.
pub async fn stored_tables(db: &Client) -> Vec<String> {
    db.query(
        "SELECT format('%I.%I', n.nspname, c.relname) \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind = 'r' \
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
            AND n.nspname !~ '^pg_(toast|temp)' \
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                             AND d.objid = c.oid AND d.deptype = 'e') \
          ORDER BY 1",
        &[],
    )
    .await
    .expect("list tables")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Per table: row count and an order-independent digest of its rows' text forms (a row
/// present twice changes both).
pub async fn table_digests(db: &Client) -> BTreeMap<String, (i64, String)> {
    let mut out = BTreeMap::new();
    for t in stored_tables(db).await {
        let row = db
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' \
                     ORDER BY md5(t::text))), '') FROM ONLY {t} t"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("digest of {t}: {e}"));
        out.insert(t, (row.get(0), row.get(1)));
    }
    out
}

/// Every sequence's `(last_value, is_called)`, read from the sequence itself.
pub async fn sequence_states(db: &Client) -> BTreeMap<String, (i64, bool)> {
    let names: Vec<String> = db
        .query(
            "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1",
            &[],
        )
        .await
        .expect("list sequences")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = BTreeMap::new();
    for s in names {
        let row = db
            .query_one(&format!("SELECT last_value, is_called FROM {s}"), &[])
            .await
            .unwrap_or_else(|e| panic!("read {s}: {e}"));
        out.insert(s, (row.get(0), row.get(1)));
    }
    out
}

/// Every large object's OID and the md5 of its contents.
pub async fn large_objects(db: &Client) -> Vec<(u32, String)> {
    db.query(
        "SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid",
        &[],
    )
    .await
    .expect("list large objects")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Asserts both databases hold the same tables with the same rows.
pub async fn assert_same_rows(source: &Client, target: &Client) {
    let (s, t) = (table_digests(source).await, table_digests(target).await);
    assert!(!s.is_empty(), "the source has no tables");
    assert_eq!(
        s.keys().collect::<Vec<_>>(),
        t.keys().collect::<Vec<_>>(),
        "the target's tables differ from the source's"
    );
    for (name, src) in &s {
        assert_eq!(
            Some(src),
            t.get(name),
            "{name}: (rows, digest) differ, source vs target"
        );
    }
}

/// Ferry's slots on the cluster of `db` (name, database, confirmed_flush_lsn as text).
pub async fn slots(db: &Client, slot: &str) -> Vec<(String, String, Option<String>)> {
    db.query(
        "SELECT slot_name::text, database::text, confirmed_flush_lsn::text \
           FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .expect("list slots")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Names of the publications of `db`, sorted.
pub async fn publications(db: &Client) -> Vec<String> {
    db.query("SELECT pubname::text FROM pg_publication ORDER BY 1", &[])
        .await
        .expect("list publications")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `pg_dump --schema-only` of `db` (a tool of the cluster's major or newer), with what
/// legitimately differs between two databases removed: Ferry's publications and the random
/// `\restrict` keys of recent pg_dump releases.
pub fn schema_dump(db: &TestDb, ferry_publications: &[String]) -> String {
    let tool = ferry_pg::binaries::client_tool("pg_dump", db.cluster().major())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = tool
        .command()
        .args(["--schema-only", "--dbname"])
        .arg(db.conninfo())
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump of {} failed: {}",
        db.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    normalize_dump(&String::from_utf8_lossy(&out.stdout), ferry_publications)
}

fn normalize_dump(dump: &str, ferry_publications: &[String]) -> String {
    // A dump is a series of blocks, each introduced by a `-- Name: …; Type: …` comment; the
    // bare `--` and blank lines around them are layout only, and left out.
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in dump.lines() {
        if line.starts_with("-- Name: ") || line.starts_with("-- PostgreSQL database dump complete")
        {
            skipping = line.contains("; Type: PUBLICATION")
                && ferry_publications.iter().any(|p| {
                    line.starts_with(&format!("-- Name: {p};"))
                        || line.starts_with(&format!("-- Name: {p} "))
                });
        }
        let noise = line.trim().is_empty()
            || line == "--"
            || line.starts_with("\\restrict ")
            || line.starts_with("\\unrestrict ")
            || line.starts_with("-- Dumped ");
        if !skipping && !noise {
            kept.push(line);
        }
    }
    let text = kept.join("\n");
    for p in ferry_publications {
        assert!(
            !text.contains(&format!("PUBLICATION {p};"))
                && !text.contains(&format!("PUBLICATION {p} ")),
            "publication {p} survived the normalization:\n{text}"
        );
    }
    text
}

/// Writes `text` to `path` (handy for looking at a failing diff).
pub fn save(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

/// Every row of `table` (`schema.table`, quoted) as text, with how often it occurs.
pub async fn row_multiset(db: &Client, table: &str) -> BTreeMap<String, i64> {
    db.query(
        &format!("SELECT t::text, count(*) FROM ONLY {table} t GROUP BY 1"),
        &[],
    )
    .await
    .unwrap_or_else(|e| panic!("rows of {table}: {e}"))
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Asserts `table` holds the same rows, each as often, on both sides; on a difference, lists
/// the first rows that differ (missing, extra or present a different number of times).
pub async fn assert_same_multiset(source: &Client, target: &Client, table: &str) {
    let (s, t) = (
        row_multiset(source, table).await,
        row_multiset(target, table).await,
    );
    if s == t {
        return;
    }
    let mut diffs = Vec::new();
    for row in s
        .keys()
        .chain(t.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (s.get(row).copied(), t.get(row).copied());
        if a != b {
            let mut shown = row.clone();
            if shown.len() > 200 {
                shown.truncate(200);
                shown.push('…');
            }
            diffs.push(format!(
                "  {shown}: source {} time(s), target {}",
                a.unwrap_or(0),
                b.unwrap_or(0)
            ));
        }
    }
    let n = diffs.len();
    diffs.truncate(20);
    panic!(
        "{table}: {n} row(s) differ between source and target:\n{}",
        diffs.join("\n")
    );
}

/// [`assert_same_multiset`] for every table that stores rows (the same tables on both sides).
pub async fn assert_every_table_same(source: &Client, target: &Client) {
    let tables = stored_tables(source).await;
    assert!(!tables.is_empty(), "the source has no tables");
    assert_eq!(
        tables,
        stored_tables(target).await,
        "the target's tables differ from the source's"
    );
    for t in &tables {
        assert_same_multiset(source, target, t).await;
    }
}
