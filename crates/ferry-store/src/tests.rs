use ferry_model::{CopyUnit, Lsn, RowRange, TableName, UnitState};

use super::*;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("state")).expect("open");
    (dir, store)
}

fn invariants() -> RunInvariants {
    RunInvariants {
        source: "postgres@127.0.0.1:5432/billing".to_owned(),
        source_system_id: "7300000000000000001".to_owned(),
        target: "postgres@127.0.0.1:5433/billing".to_owned(),
        target_system_id: "7300000000000000002".to_owned(),
        snapshot: "00000003-00000002-1".to_owned(),
        slot: "ferry_billing".to_owned(),
        publications: vec!["ferry_billing".to_owned()],
        consistent_lsn: Lsn(0x16_B374_D848),
        tables: vec![TableName::new("public", "a"), TableName::new("public", "b")],
    }
}

fn unit(name: &str) -> CopyUnit {
    CopyUnit {
        table: TableName::new("public", name),
        range: None,
        part: 0,
        parts: 1,
    }
}

#[test]
fn invariants_are_stored_then_compared() {
    let (_dir, store) = store();
    assert_eq!(store.invariants().expect("read"), None);
    let inv = invariants();
    store.set_invariants(&inv).expect("first run");
    assert_eq!(store.invariants().expect("read"), Some(inv.clone()));

    let mut same = inv.clone();
    same.tables.reverse();
    store.set_invariants(&same).expect("order does not matter");

    let mut other = inv.clone();
    other.target = "postgres@10.0.0.2:5432/billing".to_owned();
    other.tables.push(TableName::new("public", "c"));
    let err = store.set_invariants(&other).expect_err("differs");
    let StoreError::InvariantsDiffer { differences } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        differences,
        &[
            "target was postgres@127.0.0.1:5433/billing, now postgres@10.0.0.2:5432/billing",
            "tables added: public.c",
        ]
    );
    let message = err.to_string();
    assert!(
        message.contains("`ferry abort`") && message.contains("`--restart`"),
        "{message}"
    );
    assert_eq!(
        store.invariants().expect("read"),
        Some(inv),
        "the recorded run is kept"
    );
}

#[test]
fn differences_cap_long_table_lists() {
    let inv = invariants();
    let mut other = inv.clone();
    other.tables = (0..25)
        .map(|i| TableName::new("s", format!("t{i:02}")))
        .collect();
    other.consistent_lsn = Lsn(1);
    other.publications.clear();
    let d = inv.differences(&other);
    assert_eq!(d[0], "consistent LSN was 16/B374D848, now 0/1");
    assert_eq!(d[1], "publications were ferry_billing, now none");
    assert!(d[2].starts_with("tables added: s.t00, s.t01,"), "{}", d[2]);
    assert!(d[2].ends_with("s.t19, and 5 more"), "{}", d[2]);
    assert_eq!(d[3], "tables removed: public.a, public.b");
    assert!(inv.differences(&inv).is_empty());
}

#[test]
fn section_lifecycle() {
    let (_dir, store) = store();
    assert_eq!(store.section("copy").expect("read"), None);
    let err = store.section_done("copy").expect_err("never started");
    assert!(matches!(err, StoreError::SectionRefused { .. }), "{err}");

    store.section_started("schema_pre").expect("start");
    store.section_started("copy").expect("start");
    store
        .section_started("copy")
        .expect("restart an interrupted section");
    let copy = store.section("copy").expect("read").expect("exists");
    assert_eq!((copy.done_at, copy.duration), (None, None));

    store.section_done("copy").expect("done");
    store.section_done("copy").expect("done twice is a no-op");
    let copy = store.section("copy").expect("read").expect("exists");
    assert!(copy.done_at.is_some() && copy.duration.is_some());
    let err = store
        .section_started("copy")
        .expect_err("done sections never rerun");
    assert!(err.to_string().contains("already done"), "{err}");

    let names: Vec<String> = store
        .sections()
        .expect("list")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["schema_pre", "copy"]);
}

#[test]
fn unit_lifecycle_moves_forward_only() {
    let (_dir, store) = store();
    let a = unit("a");
    let refused = |e: StoreError| matches!(e, StoreError::UnitRefused { .. });

    assert!(refused(
        store.unit_committing(&a, 1, 0, 0).expect_err("not started")
    ));
    assert!(refused(store.unit_done(&a, 0, 0).expect_err("not started")));

    store.unit_started(&a).expect("start");
    store.unit_committing(&a, 742, 10, 100).expect("commit");
    assert!(refused(
        store.unit_committing(&a, 743, 10, 100).expect_err("twice")
    ));
    let rec = &store.units().expect("list")[0];
    assert_eq!(
        (rec.state, rec.target_xid, rec.rows, rec.bytes),
        (UnitState::Committing, Some(742), 10, 100)
    );

    // Resume found the transaction aborted: redo.
    store.unit_started(&a).expect("restart from committing");
    let rec = &store.units().expect("list")[0];
    assert_eq!(
        (rec.state, rec.target_xid, rec.rows),
        (UnitState::Started, None, 0)
    );
    store.unit_done(&a, 11, 110).expect("done from started");

    let err = store.unit_started(&a).expect_err("never backwards");
    assert_eq!(
        err.to_string(),
        "copy unit public.a#0/1: cannot move from done to started: it is done; progress never moves backwards"
    );
    assert!(refused(
        store.unit_done(&a, 11, 110).expect_err("done twice")
    ));

    let split = CopyUnit {
        table: TableName::new("public", "big"),
        range: Some(RowRange {
            start_block: 1000,
            end_block: None,
        }),
        part: 1,
        parts: 2,
    };
    store.unit_started(&split).expect("start");
    store.unit_committing(&split, 9, 5, 50).expect("commit");
    store
        .unit_done(&split, 5, 50)
        .expect("done from committing");

    let units = store.units().expect("list");
    assert_eq!(units.len(), 2);
    let big = units.iter().find(|u| u.key == split.key()).expect("listed");
    assert_eq!((big.part, big.parts, big.range), (1, 2, split.range));
    assert_eq!(
        (big.state, big.target_xid, big.rows, big.bytes),
        (UnitState::Done, Some(9), 5, 50)
    );
    assert!(big.duration.is_some());
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        store.set_invariants(&invariants()).expect("set");
        store.section_started("copy").expect("start");
        store.unit_started(&unit("a")).expect("start");
        store
            .record_error("copy", "connection lost")
            .expect("error");
        store.set_value("phase", "copy").expect("value");
        store
            .command_started(&["ferry".to_owned(), "migrate".to_owned()])
            .expect("command");
    }
    let store = SqliteStore::open(dir.path()).expect("reopen");
    assert_eq!(store.path(), dir.path().join("state.db"));
    assert_eq!(store.invariants().expect("read"), Some(invariants()));
    assert_eq!(store.sections().expect("read").len(), 1);
    assert_eq!(store.units().expect("read")[0].state, UnitState::Started);
    let errors = store.errors().expect("read");
    assert_eq!(
        (errors[0].section.as_str(), errors[0].message.as_str()),
        ("copy", "connection lost")
    );
    assert_eq!(store.value("phase").expect("read").as_deref(), Some("copy"));
    assert_eq!(store.value("missing").expect("read"), None);
    assert_eq!(
        store.commands().expect("read")[0].argv,
        ["ferry", "migrate"]
    );
}

#[test]
fn reset_forgets_the_run_but_keeps_commands() {
    let (_dir, store) = store();
    let id = store
        .command_started(&["ferry".to_owned(), "migrate".to_owned()])
        .expect("log");
    store.set_invariants(&invariants()).expect("set");
    store.section_started("copy").expect("start");
    store.unit_started(&unit("a")).expect("start");
    store.record_error("copy", "boom").expect("error");
    store.set_value("phase", "copy").expect("value");
    store.set_value("phase", "cdc").expect("overwrite");
    assert_eq!(store.value("phase").expect("read").as_deref(), Some("cdc"));
    store.command_finished(id, "failed: boom").expect("finish");

    store.reset().expect("reset");
    assert_eq!(store.invariants().expect("read"), None);
    assert!(store.sections().expect("read").is_empty());
    assert!(store.units().expect("read").is_empty());
    assert!(store.errors().expect("read").is_empty());
    assert_eq!(store.value("phase").expect("read"), None);
    let commands = store.commands().expect("read");
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].outcome.as_deref(), Some("failed: boom"));
    assert!(commands[0].finished_at.is_some());

    let mut other = invariants();
    other.snapshot = "another".to_owned();
    store.set_invariants(&other).expect("a new run after reset");
    store.unit_started(&unit("a")).expect("units start afresh");
    assert!(matches!(
        store.command_finished(99, "ok"),
        Err(StoreError::UnknownCommand { id: 99 })
    ));
}

#[test]
fn open_reports_an_unusable_state_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let err = SqliteStore::open(&file).expect_err("a file is no directory");
    assert!(matches!(err, StoreError::StateDir { .. }), "{err}");
    // The CLI's flag is `--state`.
    assert!(err.to_string().ends_with("another with --state"), "{err}");

    std::fs::write(dir.path().join("state.db"), "not sqlite at all, just text").expect("write");
    let err = SqliteStore::open(dir.path()).expect_err("not a database");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(SqliteStore::open(dir.path()).expect("open"));
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let err = SqliteStore::open(dir.path()).expect_err("newer");
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn store_is_shared_between_threads() {
    let (_dir, store) = store();
    let store = std::sync::Arc::new(store);
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                let u = unit(&format!("t{i}"));
                store.unit_started(&u).expect("start");
                store.unit_done(&u, 1, 1).expect("done");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let units = store.units().expect("list");
    assert_eq!(units.len(), 4);
    assert!(units.iter().all(|u| u.state == UnitState::Done));
    let dyn_store: &dyn StateStore = store.as_ref();
    assert_eq!(dyn_store.units().expect("list").len(), 4);
}

#[test]
fn validations_keep_each_difference_and_the_last_one_is_shown() {
    let (_dir, store) = store();
    assert_eq!(store.last_validation().expect("read"), None);
    let diff = |n: u32| StoredDifference {
        table: "public.t".into(),
        kind: "changed".into(),
        detail: format!("{{\"key\":{{\"id\":\"{n}\"}}}}"),
    };
    let first = store
        .record_validation(&ValidationRun {
            result: "different".into(),
            tables: 3,
            differences: vec![diff(1), diff(2)],
            unsettled: 1,
            seconds: 1.5,
        })
        .expect("record");
    let second = store
        .record_validation(&ValidationRun {
            result: "equal".into(),
            tables: 3,
            differences: vec![],
            unsettled: 0,
            seconds: 0.5,
        })
        .expect("record");
    let last = store.last_validation().expect("read").expect("one");
    assert_eq!(
        (last.id, last.result.as_str(), last.differences),
        (second, "equal", 0)
    );
    assert_eq!(
        store.validation_differences(first).expect("read"),
        vec![diff(1), diff(2)]
    );
    store
        .record_event("online_mismatch", "public.t (id)=(1)")
        .expect("event");
    store.record_event("other", "x").expect("event");
    assert_eq!(store.event_count("online_mismatch").expect("count"), 1);
    store.reset().expect("reset");
    assert_eq!(store.last_validation().expect("read"), None);
    assert_eq!(store.event_count("online_mismatch").expect("count"), 0);
}
