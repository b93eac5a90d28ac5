use ferry_model::CopyUnit;

/// What can stop a copy. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Pg(#[from] ferry_pg::PgError),

    #[error(transparent)]
    Replication(#[from] ferry_replication::ReplicationError),

    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),

    /// The snapshot of an interrupted run no longer exists.
    #[error(
        "the snapshot this copy started in is gone ({reason}), so the copy cannot resume \
         consistently. Run `ferry copy SPEC --restart` to drop Ferry's slot and publication, \
         clear what the earlier run restored on the target, and start over"
    )]
    SnapshotGone { reason: String },

    /// Ferry's slot was dropped or invalidated while the copy ran.
    #[error(
        "{reason}: change capture can no longer start where this copy's snapshot ends. Give the \
         source room (raise max_slot_wal_keep_size or free disk) and run `ferry copy SPEC \
         --restart`"
    )]
    SlotLost { reason: String },

    /// The spool lacks changes the source was already told it holds (removed or damaged):
    /// they exist nowhere any more.
    #[error(
        "the change stream spooled during the copy is incomplete: {detail}. The changes in \
         between are gone from the source as well, so change capture cannot start where this \
         copy's snapshot ends: start over with `ferry copy SPEC --restart`"
    )]
    SpoolLost { detail: String },

    /// Another `ferry` works on the same state directory.
    #[error(
        "another ferry process is working on this migration (state directory {dir} is locked): \
         wait for it to finish or stop it"
    )]
    Locked { dir: String },

    /// `pg_dump` or `pg_restore` failed.
    #[error("{what} failed: {detail}")]
    Tool { what: String, detail: String },

    /// One unit of data failed to copy.
    #[error("copying {unit} failed: {source}")]
    Unit {
        unit: Box<CopyUnit>,
        #[source]
        source: ferry_pg::PgError,
    },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the copy was interrupted; run `ferry copy SPEC` again to resume where it stopped")]
    Cancelled,
}

impl CopyError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CopyError {
        let what = what.into();
        move |source| CopyError::Io { what, source }
    }
}
