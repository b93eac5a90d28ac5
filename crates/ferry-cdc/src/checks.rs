//! What must hold before a session streams, checked again after every fault: both endpoints
//! are the clusters the copy ran against, Ferry's slot and publications are still there and
//! usable, and the source was never told that more is applied than the target holds. Any of
//! these failing means resuming would start from a wrong position, so none is retried.

use std::fmt;
use std::str::FromStr;

use ferry_model::Lsn;
use ferry_pg::{catalog, sql_error};
use ferry_replication::ReplicationConnection;
use tokio_postgres::Client;

use crate::CdcError;

/// What the copy recorded, which every session checks before it streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The source cluster's `system_identifier` (empty: not checked).
    pub source_system_id: String,
    /// The target cluster's `system_identifier` (empty: not checked).
    pub target_system_id: String,
    /// Where the copy's snapshot ends: the slot's position before anything is applied.
    pub consistent_lsn: Lsn,
    /// The last position confirmed past the target's origin (see
    /// [`crate::SyncEvent::ConfirmedAhead`]), as stored by the caller.
    pub confirmed_ahead: Option<ConfirmedAhead>,
    /// The last position `ferry copy` confirmed to the source once its spool held everything
    /// up to it (docs/adr/0010-spool-during-copy.md).
    pub spooled: Option<Lsn>,
}

/// What the spool on disk holds: every change from `start` to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpoolCover {
    pub start: Lsn,
    pub end: Lsn,
}

/// A confirmation past the target's origin: the source was told `confirmed` while the
/// origin held `applied`, because nothing between the two had to be written — the stream was
/// idle, or a group of transactions wrote nothing (only the caught-up marker, or changes that
/// cancelled out), so PostgreSQL gave its commit no record and the origin did not move. A
/// target at `applied` may resume from `confirmed`; a target found anywhere else may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmedAhead {
    pub applied: Lsn,
    pub confirmed: Lsn,
}

impl fmt::Display for ConfirmedAhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.applied, self.confirmed)
    }
}

impl FromStr for ConfirmedAhead {
    type Err = String;

    /// `"<applied> <confirmed>"`, as written by `Display`.
    fn from_str(s: &str) -> Result<ConfirmedAhead, String> {
        let mut parts = s.split_whitespace();
        let mut next = || -> Result<Lsn, String> {
            parts
                .next()
                .ok_or_else(|| format!("{s:?} is not two positions"))?
                .parse()
                .map_err(|e| format!("{s:?}: {e}"))
        };
        Ok(ConfirmedAhead {
            applied: next()?,
            confirmed: next()?,
        })
    }
}

/// The target is the cluster the copy wrote to.
pub(crate) async fn target_identity(target: &Client, recorded: &str) -> Result<(), CdcError> {
    let found = catalog::system_identifier(target).await?;
    same_system("target", recorded, found)
}

/// The source behind the replication connection is the cluster the copy read.
pub(crate) async fn source_identity(
    conn: &mut ReplicationConnection,
    recorded: &str,
) -> Result<(), CdcError> {
    let found = conn.identify_system().await?.system_id;
    same_system("source", recorded, found)
}

fn same_system(side: &'static str, recorded: &str, found: String) -> Result<(), CdcError> {
    if recorded.is_empty() || recorded == found {
        return Ok(());
    }
    Err(CdcError::SystemChanged {
        side,
        recorded: recorded.to_owned(),
        found,
    })
}

/// The slot exists and can still get changes; returns how far the source was told the
/// target is (its `confirmed_flush_lsn`).
pub(crate) async fn slot(admin: &Client, slot: &str) -> Result<Lsn, CdcError> {
    let what = || format!("reading the state of replication slot \"{slot}\" on the source");
    let row = admin
        .query_opt(include_str!("../sql/slot.sql"), &[&slot])
        .await
        .map_err(sql_error(what()))?
        .ok_or_else(|| CdcError::SlotMissing {
            slot: slot.to_owned(),
        })?;
    let wal_status: Option<String> = row.try_get(0).map_err(sql_error(what()))?;
    if wal_status.as_deref() == Some("lost") {
        return Err(CdcError::SlotInvalidated {
            slot: slot.to_owned(),
            detail: "wal_status = lost".into(),
        });
    }
    let confirmed: Option<String> = row.try_get(1).map_err(sql_error(what()))?;
    Ok(confirmed.and_then(|c| c.parse().ok()).unwrap_or_default())
}

/// Every publication the stream names exists on the source.
pub(crate) async fn publications(admin: &Client, names: &[String]) -> Result<(), CdcError> {
    let missing = admin
        .query(include_str!("../sql/missing_publications.sql"), &[&names])
        .await
        .map_err(sql_error("looking for Ferry's publications on the source"))?;
    match missing.first() {
        Some(row) => Err(CdcError::PublicationMissing {
            publication: row
                .try_get(0)
                .map_err(sql_error("looking for Ferry's publications on the source"))?,
        }),
        None => Ok(()),
    }
}

/// Where the target's data reaches: the origin's progress, or the consistent point before
/// anything was applied (the target then holds the copy).
pub(crate) fn target_holds(applied: Lsn, recorded: &Recorded) -> Lsn {
    if applied == Lsn(0) {
        recorded.consistent_lsn
    } else {
        applied
    }
}

/// Whether the slot still has every change after what the target holds (its confirmed
/// position is not past it, or only by a confirmation Ferry recorded at exactly this origin).
pub(crate) fn slot_has_the_rest(
    confirmed: Lsn,
    applied: Lsn,
    recorded: &Recorded,
    ahead: Option<ConfirmedAhead>,
) -> bool {
    let ahead_covers = ahead.is_some_and(|a| a.applied == applied && confirmed <= a.confirmed);
    confirmed <= target_holds(applied, recorded) || ahead_covers
}

/// The source must not have been told more than the target holds: streaming starts at the
/// later of the two, so anything between would be skipped without a word. `applied` is the
/// origin's progress (0/0 before anything was applied: the target then holds the copy, up to
/// the consistent point). A confirmation ahead made at exactly this `applied` covers the gap;
/// so does the spool `ferry copy` wrote, when the position was confirmed by it (`spooled`)
/// and the spool on disk (`spool`) holds every change from the target's position on.
pub(crate) fn resume_position(
    slot: &str,
    origin: &str,
    confirmed: Lsn,
    applied: Lsn,
    recorded: &Recorded,
    ahead: Option<ConfirmedAhead>,
    spool: (Option<SpoolCover>, &str),
) -> Result<(), CdcError> {
    if slot_has_the_rest(confirmed, applied, recorded, ahead) {
        return Ok(());
    }
    let holds = target_holds(applied, recorded);
    let (cover, dir) = spool;
    if recorded.spooled.is_some_and(|s| confirmed <= s) {
        return match cover {
            Some(c) if c.start <= holds && confirmed <= c.end => Ok(()),
            Some(c) => Err(CdcError::SpoolIncomplete {
                slot: slot.to_owned(),
                dir: dir.to_owned(),
                start: c.start,
                end: c.end,
                confirmed,
                applied: holds,
            }),
            None => Err(CdcError::SpoolMissing {
                slot: slot.to_owned(),
                dir: dir.to_owned(),
                confirmed,
                applied: holds,
            }),
        };
    }
    Err(CdcError::PositionBehind {
        slot: slot.to_owned(),
        origin: origin.to_owned(),
        confirmed,
        applied: holds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> Recorded {
        Recorded {
            consistent_lsn: Lsn(100),
            ..Recorded::default()
        }
    }

    fn check(confirmed: u64, applied: u64, idle: Option<(u64, u64)>) -> Result<(), CdcError> {
        let idle = idle.map(|(a, c)| ConfirmedAhead {
            applied: Lsn(a),
            confirmed: Lsn(c),
        });
        let spool = (None, "spool");
        resume_position(
            "s",
            "o",
            Lsn(confirmed),
            Lsn(applied),
            &recorded(),
            idle,
            spool,
        )
    }

    /// The slot confirmed through `confirmed` by the spooler (which recorded `spooled`), the
    /// spool on disk holding `cover`.
    fn spooled(
        confirmed: u64,
        applied: u64,
        spooled: u64,
        cover: Option<(u64, u64)>,
    ) -> Result<(), CdcError> {
        let recorded = Recorded {
            spooled: Some(Lsn(spooled)),
            ..recorded()
        };
        let cover = cover.map(|(start, end)| SpoolCover {
            start: Lsn(start),
            end: Lsn(end),
        });
        let spool = (cover, "spool");
        resume_position(
            "s",
            "o",
            Lsn(confirmed),
            Lsn(applied),
            &recorded,
            None,
            spool,
        )
    }

    #[test]
    fn a_slot_confirmed_by_the_spooler_resumes_from_the_spool() {
        assert!(spooled(300, 0, 300, Some((100, 300))).is_ok(), "first sync");
        assert!(
            spooled(300, 200, 300, Some((150, 320))).is_ok(),
            "part applied"
        );
        let e = spooled(300, 0, 300, None).expect_err("spool gone");
        assert!(matches!(e, CdcError::SpoolMissing { .. }), "{e:?}");
        let e = spooled(300, 0, 300, Some((100, 250))).expect_err("spool short");
        assert!(matches!(e, CdcError::SpoolIncomplete { .. }), "{e:?}");
        let e = spooled(300, 120, 300, Some((150, 300))).expect_err("gap before the spool");
        assert!(matches!(e, CdcError::SpoolIncomplete { .. }), "{e:?}");
        // Confirmed further than the spooler ever recorded: not the spool's doing.
        let e = spooled(400, 0, 300, Some((100, 400))).expect_err("not recorded");
        assert!(matches!(e, CdcError::PositionBehind { .. }), "{e:?}");
        // The slot still has everything: no spool needed.
        assert!(spooled(100, 0, 300, None).is_ok());
    }

    #[test]
    fn a_slot_confirmed_no_further_than_the_target_resumes() {
        assert!(check(100, 0, None).is_ok(), "fresh after the copy");
        assert!(check(150, 200, None).is_ok(), "confirmations lag commits");
        assert!(check(200, 200, None).is_ok());
    }

    #[test]
    fn a_target_behind_the_slot_is_refused() {
        let e = check(300, 200, None).expect_err("refused");
        assert!(
            matches!(
                e,
                CdcError::PositionBehind {
                    confirmed: Lsn(300),
                    applied: Lsn(200),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            check(120, 0, None).is_err(),
            "no origin, but the slot moved on"
        );
    }

    #[test]
    fn a_confirmation_ahead_covers_only_its_own_applied_position() {
        assert!(check(300, 200, Some((200, 300))).is_ok());
        assert!(
            check(300, 0, Some((0, 350))).is_ok(),
            "idle before any commit"
        );
        // The target went back to 150 (a backup): the confirmation made at 200 does not
        // vouch for it.
        assert!(check(300, 150, Some((200, 300))).is_err());
        assert!(check(400, 200, Some((200, 300))).is_err());
    }

    #[test]
    fn confirmations_ahead_round_trip_as_text() {
        let i = ConfirmedAhead {
            applied: Lsn(0x1_0000_0010),
            confirmed: Lsn(0x1_0000_0400),
        };
        assert_eq!(i.to_string().parse::<ConfirmedAhead>(), Ok(i));
        assert!("0/10".parse::<ConfirmedAhead>().is_err());
    }

    #[test]
    fn another_cluster_is_named_with_both_identifiers() {
        let e = same_system("source", "7001", "7002".into()).expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("7001") && text.contains("7002"), "{text}");
        assert!(same_system("target", "", "7002".into()).is_ok());
    }
}
