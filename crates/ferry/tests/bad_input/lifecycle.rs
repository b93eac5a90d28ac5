//! Commands at the wrong moment: status and abort on a migration that never ran (not an
//! error), a second copy while one runs (refused: the state directory is locked), and what a
//! copy that fails halfway leaves and how abort removes it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use ferry_pg::binaries::{client_tool, client_tools, ClientTool};
use ferry_testkit::{cluster, TestDb};

use crate::support::{
    assert_source_untouched, assert_target_empty, closed_port, connect, count, ferry_objects,
    path_str, seed, wait_until, Side, Workdir,
};

#[tokio::test]
async fn status_and_abort_on_a_never_run_spec_succeed() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    seed(&src).await;
    let work = Workdir::new();
    let spec = work.spec("never_ran", &Side::new(&src), &Side::new(&dst), "");
    let spec_path = spec.clone();
    let spec = path_str(&spec);

    work.assert_not_started(&spec_path).await;
    work.ferry(&["status", spec])
        .await
        .assert_ok(&[])
        .assert_mentions(&["migration  never_ran", "phase      check"]);

    // status reads only the state directory: it works with both servers unreachable.
    let dead = format!("host=127.0.0.1 port={} dbname=x user=x", closed_port());
    let offline = work.spec("offline", &Side::new(&dead), &Side::new(&dead), "");
    work.assert_not_started(&offline).await;

    work.ferry(&["abort", spec])
        .await
        .assert_ok(&[])
        .assert_mentions(&["nothing of Ferry's was left on the source", "not touched"]);
    work.ferry(&["status", spec, "--json"])
        .await
        .assert_ok(&[])
        .assert_mentions(&["\"phase\": \"aborted\""]);
    // Twice is fine too.
    work.ferry(&["abort", spec])
        .await
        .assert_ok(&[])
        .assert_mentions(&["nothing of Ferry's was left"]);
    assert_source_untouched(&src).await;
    assert_target_empty(&dst).await;
}

/// A copy waits on a table lock the test holds (in its preflight, while holding the state
/// directory's lock); meanwhile a second copy and an abort are refused at once, status still
/// answers, and the first copy finishes once the lock is released.
#[tokio::test]
async fn second_copy_while_one_runs_is_refused() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    seed(&src).await;
    let work = Workdir::new();
    let spec = work.spec("busy", &Side::new(&src), &Side::new(&dst), "");
    let spec = path_str(&spec);

    let blocker = connect(&src).await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = work.spawn(&["copy", spec], &[]);
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
         AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        source.name()
    );
    wait_until(
        "the first copy to wait on the table lock",
        Duration::from_secs(60),
        || {
            let (src, waiting) = (src.clone(), waiting.clone());
            async move { count(&src, &waiting).await > 0 }
        },
    )
    .await;

    for cmd in ["copy", "abort"] {
        work.ferry(&[cmd, spec]).await.assert_refused(
            &[
                "another ferry process is working on this migration",
                "is locked",
                "wait for it to finish",
            ],
            &[],
        );
    }
    work.ferry(&["status", spec])
        .await
        .assert_ok(&[])
        .assert_mentions(&["migration  busy"]);

    blocker
        .batch_execute("ROLLBACK")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = tokio::time::timeout(Duration::from_secs(180), first.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the first copy did not finish"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "the first copy failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&dst, "SELECT count(*) FROM items").await, 100);

    work.ferry(&["abort", spec]).await.assert_ok(&[]);
    assert_source_untouched(&src).await;
}

/// A directory for FERRY_PG_BIN with the real pg_dump and a pg_restore that reports its real
/// version but fails every restore: a failure after preflight, once the slot exists.
fn tools_with_failing_restore(dir: &Path) {
    // The pg_dump preflight would pick anyway: the cluster's own major when installed.
    let major = cluster().major();
    let dump = client_tools("pg_dump")
        .into_iter()
        .find(|t| t.major == major)
        .map_or_else(|| client_tool("pg_dump", major), Ok)
        .unwrap_or_else(|e| panic!("{e}"));
    let restore = client_tools("pg_restore")
        .into_iter()
        .find(|t| t.major == dump.major)
        .unwrap_or_else(|| panic!("no pg_restore {}", dump.major));
    let env = |t: &ClientTool| {
        t.lib_dir.as_ref().map_or(String::new(), |l| {
            format!("LD_LIBRARY_PATH='{}' ", l.display())
        })
    };
    let scripts = [
        (
            "pg_dump",
            format!("exec {}'{}' \"$@\"\n", env(&dump), dump.path.display()),
        ),
        (
            "pg_restore",
            format!(
                "[ \"$1\" = --version ] && exec {}'{}' --version\n\
                 echo 'pg_restore: error: simulated failure' >&2\nexit 1\n",
                env(&restore),
                restore.path.display()
            ),
        ),
    ];
    for (name, body) in scripts {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A copy that fails after its slot exists says what stays behind and how to go on; `ferry
/// abort` then leaves nothing (no slot, no publication, no snapshot holder), and a new copy
/// works.
#[tokio::test]
async fn failed_copy_says_what_stays_and_abort_removes_it() {
    let source = TestDb::create(cluster()).await;
    let target = TestDb::create(cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    seed(&src).await;
    let tools = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    tools_with_failing_restore(tools.path());
    let work = Workdir::new();
    let spec = work.spec("fails", &Side::new(&src), &Side::new(&dst), "");
    let spec = path_str(&spec);

    work.ferry_env(&["copy", spec], &[("FERRY_PG_BIN", path_str(tools.path()))])
        .await
        .assert_refused(
            &[
                "slot ferry_fails and its snapshot stay on the source",
                "`ferry copy` resumes where it stopped",
                "`ferry abort` removes them",
                "pg_restore exited",
                "simulated failure",
            ],
            &[],
        );
    assert!(!ferry_objects(&src).await.is_empty());
    let status = work.ferry(&["status", spec, "--json"]).await;
    status.assert_ok(&[]).assert_mentions(&[
        "\"phase\": \"copy\"",
        "\"snapshot_held\": true",
        "simulated failure",
    ]);

    work.ferry(&["abort", spec])
        .await
        .assert_ok(&[])
        .assert_mentions(&[
            "stopped the snapshot holder",
            "dropped replication slot ferry_fails",
            "dropped publication ferry_fails",
        ]);
    assert_source_untouched(&src).await;
    assert_target_empty(&dst).await;
    work.ferry(&["status", spec, "--json"])
        .await
        .assert_ok(&[])
        .assert_mentions(&["\"phase\": \"aborted\"", "\"snapshot_held\": false"]);

    // A new run takes its own snapshot and dump: nothing of the aborted run is reused.
    assert!(
        !work.state_root().join("fails/schema.dump").exists(),
        "abort left the aborted run's schema dump behind"
    );
    source
        .execute_batch("ALTER TABLE items ADD COLUMN added int")
        .await;
    work.ferry(&["copy", spec]).await.assert_ok(&[]);
    assert_eq!(count(&dst, "SELECT count(*) FROM items").await, 100);
    assert_eq!(
        count(
            &dst,
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_name = 'items' AND column_name = 'added'"
        )
        .await,
        1,
        "the new run restored the aborted run's schema"
    );
    work.ferry(&["abort", spec]).await.assert_ok(&[]);
    assert_source_untouched(&src).await;
}
