/// What can stop the apply engine. Each message names the table or position involved and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    #[error(transparent)]
    Pg(#[from] ferry_pg::PgError),

    #[error(transparent)]
    Replication(#[from] ferry_replication::ReplicationError),

    /// A change names a relation the stream has not described first.
    #[error(
        "a change refers to relation {rel_id}, which the stream never described: the stream \
         is out of step; restart `ferry sync` (it resumes from the last committed position)"
    )]
    UnknownRelation { rel_id: u32 },

    /// The source's table and the target's differ in a way apply cannot bridge.
    #[error("table {table}: {detail}")]
    TableMismatch { table: String, detail: String },

    /// A change that must touch exactly one row touched none.
    #[error(
        "table {table}: the {change} found no matching row on the target, so the target has \
         drifted from the source; validate the table and re-copy it"
    )]
    RowMissing { table: String, change: &'static str },

    /// The stream broke the transaction framing (a change outside Begin/Commit, …).
    #[error("the change stream is malformed: {0}")]
    Stream(String),
}
