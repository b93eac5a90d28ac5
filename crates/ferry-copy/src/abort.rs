//! `ferry abort`: removes everything Ferry created on the source for one migration.

use std::path::Path;

use ferry_pg::Connector;
use ferry_store::StateStore;

use crate::schema::DumpFiles;
use crate::{holder, names, publication, CopyError};

/// Stops the snapshot holder, drops the slot and the publications, forgets the run (its
/// record and its schema dumps, which belong to its snapshot). Returns a sentence per thing
/// removed.
pub async fn abort(
    migration: &str,
    source: &Connector,
    store: &dyn StateStore,
    state_dir: &Path,
) -> Result<Vec<String>, CopyError> {
    let removed = remove_from_source(migration, source, state_dir).await?;
    store.reset()?;
    store.set_value("phase", "aborted")?;
    Ok(removed)
}

/// Everything of `abort` but forgetting the run: the source keeps nothing of Ferry's (the
/// snapshot holder stopped, the slot and publications dropped) and the snapshot's files are
/// removed, while the store keeps the run's history (a rollback, a finalize).
pub async fn remove_from_source(
    migration: &str,
    source: &Connector,
    state_dir: &Path,
) -> Result<Vec<String>, CopyError> {
    let mut removed = Vec::new();
    if let Some(info) = holder::current(state_dir) {
        holder::release(state_dir).await?;
        removed.push(format!(
            "stopped the snapshot holder (pid {}) and released snapshot {}",
            info.pid, info.snapshot
        ));
    }
    let client = source.connect().await?;
    let slot = names::slot(migration);
    if publication::drop_slot(&client, &slot).await? {
        removed.push(format!("dropped replication slot {slot} on the source"));
    }
    for p in publication::drop_existing(&client, &names::publications(migration)).await? {
        removed.push(format!("dropped publication {p} on the source"));
    }
    // A later run takes a snapshot of its own: a dump of this one's must not be reused.
    let files = DumpFiles::new(state_dir);
    for f in [&files.schema, &files.large_objects] {
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CopyError::Io {
                    what: format!("removing {}", f.display()),
                    source: e,
                })
            }
            _ => {}
        }
    }
    let _ = std::fs::remove_dir_all(&files.lists);
    if crate::spool::spool_dir(state_dir).exists() {
        crate::spool::remove(state_dir).await?;
        removed.push(format!(
            "removed the change stream spooled in {}",
            crate::spool::spool_dir(state_dir).display()
        ));
    }
    Ok(removed)
}
