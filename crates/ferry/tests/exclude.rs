//! `[tables] exclude`: a pattern that names a partitioned (or inheritance) parent leaves out
//! its partitions and children too, so the schema restore never meets a child whose parent
//! is missing; tables that are not excluded arrive whole.

mod common;

use common::{stored_tables, Migration};
use ferry_testkit::TestDb;

#[tokio::test]
async fn excluding_a_parent_excludes_its_partitions_and_children() {
    let cluster = ferry_testkit::cluster();
    let source = TestDb::create(cluster).await;
    let target = TestDb::create(cluster).await;
    source
        .execute_batch(
            "CREATE TABLE events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
             CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
             CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
                 PARTITION BY HASH (id);
             CREATE TABLE events_2026_a PARTITION OF events_2026 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
             CREATE TABLE events_2026_b PARTITION OF events_2026 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
             INSERT INTO events SELECT g, date '2025-06-01' + g FROM generate_series(1, 500) g;
             CREATE TABLE animals (id int PRIMARY KEY, name text);
             CREATE TABLE dogs (breed text) INHERITS (animals);
             INSERT INTO dogs VALUES (1, 'rex', 'collie');
             CREATE TABLE keep (id int PRIMARY KEY);
             INSERT INTO keep SELECT generate_series(1, 10);",
        )
        .await;
    let m = Migration::between(
        "exclude-parents",
        &source,
        &target,
        "[tables]\nexclude = [\"public.events\", \"animals\"]\n",
    );
    m.run("copy", &["--verify"]).success();

    let dst = target.client().await;
    assert_eq!(stored_tables(&dst).await, vec!["public.keep".to_owned()]);
    let kept: i64 = dst
        .query_one("SELECT count(*) FROM keep", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(kept, 10);

    // Nothing excluded is streamed either.
    let src = source.client().await;
    let published: Vec<String> = src
        .query("SELECT tablename::text FROM pg_publication_tables WHERE pubname LIKE 'ferry_%' ORDER BY 1", &[])
        .await
        .expect("publication tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(published, vec!["keep".to_owned()]);
    m.run("abort", &[]).success();
}
