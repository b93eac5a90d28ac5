/// A preflight that could not run at all (as opposed to one that found problems, which is a
/// [`crate::Preflight`] with blocking findings).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Pg(#[from] ferry_pg::PgError),
}
