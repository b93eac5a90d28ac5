use ferry_model::Lsn;
use ferry_pg::PgError;
use ferry_replication::{ReplicationError, StreamProblem};

/// What can stop the apply engine. Each message names the table, slot, publication or
/// position involved and what to do. [`CdcError::is_transient`] says which ones `ferry sync`
/// retries.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    #[error(transparent)]
    Pg(#[from] PgError),

    /// Replication errors other than the slot and publication problems below (which
    /// `From<ReplicationError>` turns into their own variants).
    #[error(transparent)]
    Replication(ReplicationError),

    /// A change names a relation the stream has not described first.
    #[error(
        "a change refers to relation {rel_id}, which the stream never described: the stream \
         is out of step; restart `ferry sync` (it resumes from the last committed position)"
    )]
    UnknownRelation { rel_id: u32 },

    /// The source's table and the target's differ in a way apply cannot bridge.
    #[error(
        "table {table} on the target cannot take the source's changes: {detail}. Nothing after \
         the last applied transaction was applied; once the table is fixed, `ferry sync` \
         resumes from there"
    )]
    TableMismatch { table: String, detail: String },

    /// The target rejected a change for what it is (a type, a constraint, a privilege), not
    /// because of a fault: the target's table no longer matches the source's.
    #[error(
        "the target refused a change ({what}: {detail}; SQLSTATE {code}): the table there no \
         longer takes what the source sends (a column's type, a constraint or a privilege \
         changed on the target?). Make it match the source again, or re-copy the table; \
         `ferry sync` then resumes after the last applied transaction"
    )]
    TargetRejected {
        what: String,
        detail: String,
        code: String,
    },

    /// A change that must touch exactly one row touched none.
    #[error(
        "table {table}: the {change} found no matching row on the target, so the target has \
         drifted from the source; validate the table and re-copy it"
    )]
    RowMissing { table: String, change: &'static str },

    /// The stream broke the transaction framing (a change outside Begin/Commit, …).
    #[error("the change stream is malformed: {0}")]
    Stream(String),

    /// Ferry's slot is not on the source any more.
    #[error(
        "replication slot \"{slot}\" does not exist on the source (dropped?): the changes made \
         since the copy can no longer be read. Start over with `ferry copy SPEC --restart` (it \
         removes what this run left on both sides and copies again)"
    )]
    SlotMissing { slot: String },

    /// PostgreSQL invalidated Ferry's slot (`wal_status = lost`).
    #[error(
        "replication slot \"{slot}\" was invalidated on the source ({detail}): the source \
         removed WAL the slot still needed, so the changes since the last applied transaction \
         are lost to change capture. Give the source room (raise max_slot_wal_keep_size, keep \
         `ferry sync` running) and start over with `ferry copy SPEC --restart`"
    )]
    SlotInvalidated { slot: String, detail: String },

    /// One of Ferry's publications is gone, so the slot cannot decode changes.
    #[error(
        "publication \"{publication}\" does not exist on the source any more (dropped?): \
         changes cannot be decoded without it, and creating it again does not bring back those \
         made while it was missing. Start over with `ferry copy SPEC --restart` (it drops this \
         run's slot and publications, clears the target and copies again)"
    )]
    PublicationMissing { publication: String },

    /// The endpoint reaches another cluster than the one the copy ran against.
    #[error(
        "the {side} is not the cluster the copy ran against: its system identifier is {found}, \
         the copy's was {recorded}. Point the spec's {side} back at that cluster; if it was \
         replaced on purpose, start over with `ferry copy SPEC --restart`"
    )]
    SystemChanged {
        side: &'static str,
        recorded: String,
        found: String,
    },

    /// The source was told that more is applied than the target holds: resuming would skip
    /// the difference.
    #[error(
        "replication slot \"{slot}\" was confirmed through {confirmed}, but the target holds \
         changes only through {applied} (replication origin {origin}): the target lost changes \
         it had applied (restored from a backup, or its origin reset?), and the source no \
         longer has them. Resuming would skip them silently: start over with `ferry copy SPEC \
         --restart`"
    )]
    PositionBehind {
        slot: String,
        origin: String,
        confirmed: Lsn,
        applied: Lsn,
    },

    /// The source was told the spool holds changes the target lacks, and the spool is gone.
    #[error(
        "replication slot \"{slot}\" was confirmed through {confirmed} while `ferry copy` \
         spooled the change stream to {dir}, but there is no spool there and the target holds \
         changes only through {applied}: the changes in between exist nowhere else. If the \
         spool was moved, put it back; otherwise start over with `ferry copy SPEC --restart`"
    )]
    SpoolMissing {
        slot: String,
        dir: String,
        confirmed: Lsn,
        applied: Lsn,
    },

    /// The spool does not hold every change between the target's position and the slot's.
    #[error(
        "replication slot \"{slot}\" was confirmed through {confirmed}, but the spool in {dir} \
         holds changes only from {start} to {end} and the target holds changes through \
         {applied}: the changes in between exist nowhere else. Start over with `ferry copy \
         SPEC --restart`"
    )]
    SpoolIncomplete {
        slot: String,
        dir: String,
        start: Lsn,
        end: Lsn,
        confirmed: Lsn,
        applied: Lsn,
    },

    /// The spool is needed and cannot be read back.
    #[error(
        "the change stream `ferry copy` spooled cannot be read back ({detail}), and the source \
         no longer has those changes: start over with `ferry copy SPEC --restart`"
    )]
    SpoolDamaged { detail: String },

    /// The source ended the stream on its own (it does when it shuts down).
    #[error(
        "the source ended the replication stream of slot \"{slot}\" (shutting down or \
         restarting?)"
    )]
    StreamEnded { slot: String },

    /// Transient faults went on longer than the retry budget.
    #[error(
        "gave up after {attempts} attempts in {seconds} s (see --retry-for): {last}. Once the \
         cause is fixed, run `ferry sync SPEC` again: it resumes after the last applied \
         transaction"
    )]
    GaveUp {
        attempts: u32,
        seconds: u64,
        last: Box<CdcError>,
    },
}

impl CdcError {
    /// Whether retrying can help: the connection to either side was lost or refused for a
    /// while (a restart, a failover, the network), a backend was terminated, or the slot or
    /// the replication origin is still held by the session that just broke. Everything else
    /// needs a person and is reported at once: the slot or a publication gone, another
    /// cluster, authentication or privileges, a table that does not match, drift
    /// ([`CdcError::RowMissing`]), a malformed stream. Retrying those would only repeat them,
    /// or hide them.
    pub fn is_transient(&self) -> bool {
        match self {
            CdcError::Pg(e) => pg_transient(e),
            CdcError::Replication(e) => replication_transient(e),
            CdcError::StreamEnded { .. } => true,
            CdcError::UnknownRelation { .. }
            | CdcError::TableMismatch { .. }
            | CdcError::TargetRejected { .. }
            | CdcError::RowMissing { .. }
            | CdcError::Stream(_)
            | CdcError::SlotMissing { .. }
            | CdcError::SlotInvalidated { .. }
            | CdcError::PublicationMissing { .. }
            | CdcError::SystemChanged { .. }
            | CdcError::PositionBehind { .. }
            | CdcError::SpoolMissing { .. }
            | CdcError::SpoolIncomplete { .. }
            | CdcError::SpoolDamaged { .. }
            | CdcError::GaveUp { .. } => false,
        }
    }

    /// A failure of the target that says its tables reject the source's changes (the class of
    /// the SQLSTATE: 22 data exception, 23 integrity constraint, 42 syntax or access rule —
    /// undefined column, datatype mismatch, insufficient privilege), as
    /// [`CdcError::TargetRejected`]; anything else unchanged.
    pub(crate) fn explain_target(self) -> CdcError {
        match self {
            CdcError::Pg(PgError::Sql {
                what,
                detail,
                code: Some(code),
            }) if ["22", "23", "42"].iter().any(|c| code.starts_with(c)) => {
                CdcError::TargetRejected { what, detail, code }
            }
            other => other,
        }
    }
}

impl From<ReplicationError> for CdcError {
    /// The slot and publication problems get Ferry's own way out; the rest pass through.
    fn from(e: ReplicationError) -> CdcError {
        match e {
            ReplicationError::Stream {
                slot,
                problem,
                code,
            } => match problem {
                StreamProblem::SlotMissing => CdcError::SlotMissing { slot },
                StreamProblem::SlotInvalidated { message } => CdcError::SlotInvalidated {
                    slot,
                    detail: message,
                },
                StreamProblem::PublicationMissing { publication } => {
                    CdcError::PublicationMissing { publication }
                }
                problem => CdcError::Replication(ReplicationError::Stream {
                    slot,
                    problem,
                    code,
                }),
            },
            ReplicationError::Pg(e) => CdcError::Pg(e),
            other => CdcError::Replication(other),
        }
    }
}

/// SQLSTATEs of faults that pass: class 08 (connection exception), a backend terminated by an
/// administrator or a crash (57P01, 57P02), a server starting or stopping (57P03), no free
/// connection (53300), a transaction rolled back by a conflict (40001, 40P01), an object
/// still held by the session that just broke (55006: the slot or the origin), a target that
/// is read-only for a moment during a failover (25006).
fn transient_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "55006" | "25006"
        )
}

fn pg_transient(e: &PgError) -> bool {
    match e {
        // No server answered: it is restarting, or the network is down for a moment.
        PgError::Connect { code: None, .. } => true,
        PgError::Connect {
            code: Some(code), ..
        }
        | PgError::Sql {
            code: Some(code), ..
        } => transient_code(code),
        PgError::Sql { code: None, .. }
        | PgError::Binary { .. }
        | PgError::Cluster { .. }
        | PgError::Tls { .. }
        | PgError::Io { .. } => false,
    }
}

fn replication_transient(e: &ReplicationError) -> bool {
    match e {
        ReplicationError::Connect { code: None, .. } | ReplicationError::Io(_) => true,
        ReplicationError::Stream {
            problem: StreamProblem::Closed | StreamProblem::SlotInUse { .. },
            ..
        } => true,
        ReplicationError::Connect { .. }
        | ReplicationError::Server { .. }
        | ReplicationError::Stream { .. } => e.code().is_some_and(transient_code),
        ReplicationError::Pg(e) => pg_transient(e),
        ReplicationError::Protocol(_)
        | ReplicationError::Decode { .. }
        | ReplicationError::SpoolIo { .. }
        | ReplicationError::SpoolCorrupt { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(code: Option<&str>) -> CdcError {
        CdcError::Pg(PgError::Sql {
            what: "applying an insert to public.t".into(),
            detail: "boom".into(),
            code: code.map(str::to_owned),
        })
    }

    fn stream(problem: StreamProblem, code: Option<&str>) -> CdcError {
        CdcError::from(ReplicationError::Stream {
            slot: "ferry_m".into(),
            problem,
            code: code.map(str::to_owned),
        })
    }

    #[test]
    fn faults_that_pass_are_transient() {
        for e in [
            sql(Some("08006")),
            sql(Some("57P01")),
            sql(Some("57P03")),
            sql(Some("55006")),
            sql(Some("40P01")),
            CdcError::Pg(PgError::Connect {
                side: "target",
                endpoint: "u@h:1/d".into(),
                reason: "connection refused".into(),
                code: None,
            }),
            CdcError::Replication(ReplicationError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            ))),
            stream(StreamProblem::Closed, None),
            stream(
                StreamProblem::Server {
                    message: "terminating connection due to administrator command".into(),
                },
                Some("57P01"),
            ),
            stream(
                StreamProblem::SlotInUse {
                    message: "slot is active".into(),
                },
                Some("55006"),
            ),
            CdcError::StreamEnded {
                slot: "ferry_m".into(),
            },
        ] {
            assert!(e.is_transient(), "{e:?}");
        }
    }

    #[test]
    fn faults_that_need_a_person_are_permanent() {
        for e in [
            sql(None),
            sql(Some("42703")),
            sql(Some("22P02")),
            sql(Some("XX000")),
            CdcError::Pg(PgError::Connect {
                side: "source",
                endpoint: "u@h:1/d".into(),
                reason: "the server refused the password".into(),
                code: Some("28P01".into()),
            }),
            CdcError::Replication(ReplicationError::Connect {
                side: "source",
                endpoint: "u@h:1/d".into(),
                reason: "no REPLICATION attribute".into(),
                code: Some("28000".into()),
            }),
            stream(StreamProblem::SlotMissing, Some("42704")),
            stream(
                StreamProblem::SlotInvalidated {
                    message: "can no longer get changes".into(),
                },
                Some("55000"),
            ),
            stream(
                StreamProblem::PublicationMissing {
                    publication: "ferry_m".into(),
                },
                Some("42704"),
            ),
            CdcError::RowMissing {
                table: "public.t".into(),
                change: "update",
            },
            CdcError::TableMismatch {
                table: "public.t".into(),
                detail: "column c is missing".into(),
            },
        ] {
            assert!(!e.is_transient(), "{e:?}");
        }
    }

    #[test]
    fn slot_and_publication_problems_get_their_own_variants() {
        assert!(matches!(
            stream(StreamProblem::SlotMissing, Some("42704")),
            CdcError::SlotMissing { slot } if slot == "ferry_m"
        ));
        let e = stream(
            StreamProblem::PublicationMissing {
                publication: "ferry_m_append".into(),
            },
            Some("42704"),
        );
        let text = e.to_string();
        assert!(text.contains("\"ferry_m_append\""), "{text}");
        assert!(text.contains("ferry copy SPEC --restart"), "{text}");
    }

    #[test]
    fn target_rejections_are_explained() {
        let e = sql(Some("22P02")).explain_target();
        assert!(matches!(e, CdcError::TargetRejected { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("public.t"), "{text}");
        assert!(text.contains("re-copy the table"), "{text}");
        assert!(matches!(
            sql(Some("08006")).explain_target(),
            CdcError::Pg(_)
        ));
    }
}
