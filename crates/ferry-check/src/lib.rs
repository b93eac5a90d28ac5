//! Preflight: everything Ferry checks before it creates anything on either server. Each
//! problem is a [`Finding`] with a code, a severity, the evidence and the fix; all of them
//! are gathered and reported together so an operator fixes everything in one pass.

mod error;
mod finding;
mod preflight;
mod privileges;
mod roles;
mod selection;
mod wal;

pub use error::CheckError;
pub use finding::{Finding, Severity};
pub use preflight::{preflight, Preflight, PreflightInput, ServerFacts};
pub use privileges::target_privilege_findings;
pub use roles::missing_roles;
pub use selection::{select_tables, TableSelection};
