//! The initial copy of a live database: schema through `pg_dump`/`pg_restore` sections,
//! data by parallel COPY inside one exported snapshot (large tables in ranges), indexes and
//! constraints per table as soon as its data is in, sequences, large objects. Resumable per
//! table and range; see `docs/architecture.md`.

mod abort;
mod commit;
mod data;
mod error;
pub mod holder;
pub mod names;
mod postdata;
mod progress;
mod publication;
mod recopy;
mod roles;
mod run;
mod scheduler;
mod schema;
mod sequences;
mod spool;
mod summary;
mod toc;
mod units;
mod watch;

pub use abort::{abort, remove_from_source};
pub use error::CopyError;
pub use progress::{Observer, Silent};
pub use recopy::recopy;
pub use run::{run, CopyInput, CopyOptions, HolderLauncher};
pub use schema::Tools;
pub use sequences::sync as sync_sequences;
pub use spool::{spool_bytes, spool_dir, SPOOL_CONFIRMED, SPOOL_FULL};
pub use summary::{CopySummary, TableCount, TableSummary};
