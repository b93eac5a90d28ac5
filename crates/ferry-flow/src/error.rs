//! The workflow library's one error type.

use ferry_pg::PgError;

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Pg(#[from] PgError),
    /// A record in the state store that this version cannot read.
    #[error("the stored {what} cannot be read ({detail}): was the state directory written by another version of Ferry?")]
    Record { what: &'static str, detail: String },
}
