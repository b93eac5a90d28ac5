//! `ferry migrate` killed at every step boundary (a failpoint aborts the process like
//! kill -9) while pgbench writes, then run again: it resumes from the recorded step and the
//! target ends with exactly the source's rows — nothing different, missing or doubled — and
//! no slot is left behind once finalized.

mod common;

use common::workflow::{as_role, count, pgbench_database, pgbench_load, QUICK};
use common::{assert_every_table_same, KillOnDrop, Migration, Outcome};
use ferry_testkit::{cluster, TestDb};

/// The step boundaries before the cutover, and those inside it.
const BEFORE: [&str; 5] = ["check", "prepare", "copy", "sync", "validate"];
const INSIDE: [&str; 6] = [
    "ready",
    "cutover.before_fence",
    "cutover.fenced",
    "cutover.applied",
    "cutover.sequences",
    "cut_over",
];

async fn migrate_until(m: &Migration, failpoint: &str) -> Outcome {
    let mut cmd = tokio::process::Command::from(m.command("migrate", &[]));
    cmd.env("FERRY_FAILPOINT", failpoint).kill_on_drop(true);
    let out = cmd.output().await.expect("run ferry migrate");
    Outcome {
        what: format!("ferry migrate (failpoint {failpoint})"),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn killed_before_the_cutover_it_resumes_and_loses_or_doubles_nothing() {
    kill_and_resume(&BEFORE).await;
}

#[tokio::test]
async fn killed_inside_the_cutover_it_resumes_and_loses_or_doubles_nothing() {
    kill_and_resume(&INSIDE).await;
}

/// For each step: a fresh pair of databases, pgbench writing, `ferry migrate` killed at the
/// step, run again to the end, then compared row by row (`FERRY_TEST_STEP` picks one step).
async fn kill_and_resume(steps: &[&str]) {
    let only = std::env::var("FERRY_TEST_STEP").ok();
    for &step in steps
        .iter()
        .filter(|s| only.as_deref().is_none_or(|o| o == **s))
    {
        let started = std::time::Instant::now();
        let (source, target) = (
            TestDb::create(cluster()).await,
            TestDb::create(cluster()).await,
        );
        let app = pgbench_database(&source, 1).await;
        let name = format!("resume-{}", step.replace(['.', '_'], "-"));
        let m = Migration::between(
            &name,
            &source,
            &target,
            &format!("{QUICK}approval = \"auto\"\n"),
        );
        let mut load = KillOnDrop(pgbench_load(&as_role(&source, &app), 2, 50, 600));
        let killed = migrate_until(&m, step).await;
        assert!(
            killed.code != Some(0) && killed.stderr.contains(&format!("failpoint {step}")),
            "{step}: {}",
            killed.text()
        );
        let resumed = m.run_async("migrate", &[]).await.success();
        if step.starts_with("cutover.") && step != "cutover.before_fence" {
            assert!(
                resumed.text().contains("an interrupted cutover was undone"),
                "{step}: {}",
                resumed.text()
            );
        }
        load.kill9();
        let (src, tgt) = (source.client().await, target.client().await);
        assert_eq!(
            count(&src, "pgbench_history").await,
            count(&tgt, "pgbench_history").await,
            "{step}: committed pgbench transactions"
        );
        assert_every_table_same(&src, &tgt).await;
        m.run_async("finalize", &[]).await.success();
        let slots: i64 = src
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()",
                &[],
            )
            .await
            .expect("slots")
            .get(0);
        assert_eq!(slots, 0, "{step}: a slot was left on the source");
        eprintln!(
            "{step}: resumed and equal ({:.1} s)\n--- killed run:\n{}\n--- resumed run:\n{}",
            started.elapsed().as_secs_f64(),
            killed.stderr,
            resumed.stderr
        );
    }
}
