use ferry_pg::PgError;

/// What can stop a validation. Differences are not errors: they are the report.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Pg(#[from] PgError),

    /// A table to validate is not on the source.
    #[error("no table matches {pattern} on the source: check the name, or leave --tables out to validate every table")]
    NoTables { pattern: String },

    /// The source answered with something Ferry cannot read.
    #[error("{what}: {detail}")]
    Unexpected { what: String, detail: String },
}

impl ValidateError {
    pub(crate) fn unexpected(what: impl Into<String>, detail: impl Into<String>) -> ValidateError {
        ValidateError::Unexpected {
            what: what.into(),
            detail: detail.into(),
        }
    }
}
