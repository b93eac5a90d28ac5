//! The embedded store: one SQLite file, `<state dir>/state.db`, in WAL mode.

mod sections;
mod units;
mod validations;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_model::CopyUnit;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::{
    CommandRecord, ErrorRecord, EventRecord, RunInvariants, SectionRecord, StateStore, StoreError,
    StoredDifference, UnitRecord, ValidationRecord, ValidationRun,
};

/// Schema migrations; the schema version (`PRAGMA user_version`) is how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("sqlite/schema.sql"),
    include_str!("sqlite/schema2.sql"),
];

/// How long a call waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`StateStore`] in a SQLite file. Safe to share between threads; each call takes the
/// connection for one short transaction.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `state_dir/state.db`: creates the directory, sets WAL
    /// journaling and a 5 s busy timeout, and brings the schema to the current version.
    pub fn open(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::StateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let path = state_dir.join("state.db");
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // Two processes opening a new store at once (a `ferry status` polled while `ferry
        // migrate` starts) race to switch it to WAL, and the loser is told "locked" at once,
        // without the busy timeout: it tries again for as long.
        let started = std::time::Instant::now();
        loop {
            let wal = conn
                .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get::<_, String>(0))
                .map_err(open_err)
                .and_then(|_| migrate(&mut conn, &path));
            match wal {
                Err(StoreError::Open { source, .. })
                    if is_locked(&source) && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other?,
            }
        }
        Ok(SqliteStore {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one immediate (write-locking) transaction and commits it.
    fn write<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic elsewhere cannot leave a half-done transaction behind (it rolls back on
        // drop), so a poisoned lock is safe to take over.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::db(what))?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::db(what))?;
        Ok(out)
    }

    /// Runs a read.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn)
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    // Already current (the common case): no write lock, so readers such as a `ferry status`
    // polled every few milliseconds never hold up the process doing the work.
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_err)?;
    if usize::try_from(current).is_ok_and(|v| v == MIGRATIONS.len()) {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_err)?;
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if found > supported {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.execute_batch(sql).map_err(open_err)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(open_err)?;
    }
    tx.commit().map_err(open_err)
}

/// SQLite's "busy" or "locked".
fn is_locked(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Now, in unix milliseconds.
fn now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A count for an INTEGER column (saturating: no count reaches 2^63).
fn to_sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl StateStore for SqliteStore {
    fn invariants(&self) -> Result<Option<RunInvariants>, StoreError> {
        self.read(read_invariants)
    }

    fn set_invariants(&self, inv: &RunInvariants) -> Result<(), StoreError> {
        let json = serde_json::to_string(inv).map_err(|e| StoreError::Corrupt {
            what: "run invariants",
            detail: e.to_string(),
        })?;
        self.write(
            "recording the run invariants",
            |tx| match read_invariants(tx)? {
                None => {
                    tx.execute(
                        "INSERT INTO setup (id, invariants, created_at) VALUES (1, ?1, ?2)",
                        params![json, now()],
                    )
                    .map_err(StoreError::db("recording the run invariants"))?;
                    Ok(())
                }
                Some(recorded) => {
                    let differences = recorded.differences(inv);
                    if differences.is_empty() {
                        Ok(())
                    } else {
                        Err(StoreError::InvariantsDiffer { differences })
                    }
                }
            },
        )
    }

    fn reset(&self) -> Result<(), StoreError> {
        self.write("resetting the run", |tx| {
            tx.execute_batch(
                "DELETE FROM setup; DELETE FROM section; DELETE FROM unit; \
                 DELETE FROM error; DELETE FROM kv; DELETE FROM validation_difference; \
                 DELETE FROM validation; DELETE FROM event;",
            )
            .map_err(StoreError::db("resetting the run"))
        })
    }

    fn section_started(&self, name: &str) -> Result<(), StoreError> {
        self.write("starting a section", |tx| {
            sections::started(tx, name, now())
        })
    }

    fn section_done(&self, name: &str) -> Result<(), StoreError> {
        self.write("finishing a section", |tx| sections::done(tx, name, now()))
    }

    fn section(&self, name: &str) -> Result<Option<SectionRecord>, StoreError> {
        self.read(|conn| sections::get(conn, name))
    }

    fn sections(&self) -> Result<Vec<SectionRecord>, StoreError> {
        self.read(sections::list)
    }

    fn unit_started(&self, unit: &CopyUnit) -> Result<(), StoreError> {
        self.write("starting a copy unit", |tx| units::started(tx, unit, now()))
    }

    fn unit_committing(
        &self,
        unit: &CopyUnit,
        target_xid: i64,
        rows: u64,
        bytes: u64,
    ) -> Result<(), StoreError> {
        self.write("marking a copy unit committing", |tx| {
            units::committing(tx, unit, target_xid, rows, bytes)
        })
    }

    fn unit_done(&self, unit: &CopyUnit, rows: u64, bytes: u64) -> Result<(), StoreError> {
        self.write("marking a copy unit done", |tx| {
            units::done(tx, unit, rows, bytes, now())
        })
    }

    fn units(&self) -> Result<Vec<UnitRecord>, StoreError> {
        self.read(units::list)
    }

    fn command_started(&self, argv: &[String]) -> Result<i64, StoreError> {
        let json = serde_json::to_string(argv).map_err(|e| StoreError::Corrupt {
            what: "command line",
            detail: e.to_string(),
        })?;
        self.write("logging a command", |tx| {
            tx.execute(
                "INSERT INTO command (argv, started_at) VALUES (?1, ?2)",
                params![json, now()],
            )
            .map_err(StoreError::db("logging a command"))?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn command_finished(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        self.write("logging a command's outcome", |tx| {
            let changed = tx
                .execute(
                    "UPDATE command SET finished_at = ?2, outcome = ?3 WHERE id = ?1",
                    params![id, now(), outcome],
                )
                .map_err(StoreError::db("logging a command's outcome"))?;
            if changed == 0 {
                return Err(StoreError::UnknownCommand { id });
            }
            Ok(())
        })
    }

    fn commands(&self) -> Result<Vec<CommandRecord>, StoreError> {
        const WHAT: &str = "reading the command log";
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT id, argv, started_at, finished_at, outcome FROM command ORDER BY id",
                )
                .map_err(StoreError::db(WHAT))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                })
                .map_err(StoreError::db(WHAT))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, argv, started_at, finished_at, outcome) =
                    row.map_err(StoreError::db(WHAT))?;
                let argv = serde_json::from_str(&argv).map_err(|e| StoreError::Corrupt {
                    what: "command line",
                    detail: e.to_string(),
                })?;
                out.push(CommandRecord {
                    id,
                    argv,
                    started_at,
                    finished_at,
                    outcome,
                });
            }
            Ok(out)
        })
    }

    fn record_error(&self, section: &str, message: &str) -> Result<(), StoreError> {
        self.write("recording an error", |tx| {
            tx.execute(
                "INSERT INTO error (at, section, message) VALUES (?1, ?2, ?3)",
                params![now(), section, message],
            )
            .map_err(StoreError::db("recording an error"))?;
            Ok(())
        })
    }

    fn errors(&self) -> Result<Vec<ErrorRecord>, StoreError> {
        const WHAT: &str = "reading the error log";
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT at, section, message FROM error ORDER BY id")
                .map_err(StoreError::db(WHAT))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(ErrorRecord {
                        at: r.get(0)?,
                        section: r.get(1)?,
                        message: r.get(2)?,
                    })
                })
                .map_err(StoreError::db(WHAT))?;
            rows.collect::<Result<_, _>>().map_err(StoreError::db(WHAT))
        })
    }

    fn set_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write("setting a value", |tx| {
            tx.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(StoreError::db("setting a value"))?;
            Ok(())
        })
    }

    fn record_validation(&self, run: &ValidationRun) -> Result<i64, StoreError> {
        self.write("recording a validation", |tx| {
            validations::record(tx, run, now())
        })
    }

    fn last_validation(&self) -> Result<Option<ValidationRecord>, StoreError> {
        self.read(validations::last)
    }

    fn validation_differences(&self, id: i64) -> Result<Vec<StoredDifference>, StoreError> {
        self.read(|conn| validations::differences(conn, id))
    }

    fn record_event(&self, kind: &str, message: &str) -> Result<(), StoreError> {
        self.write("recording an event", |tx| {
            validations::event(tx, kind, message, now())
        })
    }

    fn event_count(&self, kind: &str) -> Result<u64, StoreError> {
        self.read(|conn| validations::event_count(conn, kind))
    }

    fn events(&self) -> Result<Vec<EventRecord>, StoreError> {
        self.read(validations::events)
    }

    fn value(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(StoreError::db("reading a value"))
        })
    }
}

fn read_invariants(conn: &Connection) -> Result<Option<RunInvariants>, StoreError> {
    let json: Option<String> = conn
        .query_row("SELECT invariants FROM setup WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(StoreError::db("reading the run invariants"))?;
    json.map(|j| {
        serde_json::from_str(&j).map_err(|e| StoreError::Corrupt {
            what: "run invariants",
            detail: e.to_string(),
        })
    })
    .transpose()
}
