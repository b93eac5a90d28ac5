//! The spec exactly as written: serde's view, before any value is checked. Fields checked
//! later are `Spanned` so their problems can name the line.

use serde::Deserialize;
use toml::{Spanned, Value};

use crate::workflow::{RawCutover, RawSync};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    pub name: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub source: Option<Spanned<RawEndpoint>>,
    pub target: Option<Spanned<RawEndpoint>>,
    #[serde(default)]
    pub copy: RawCopy,
    #[serde(default)]
    pub tables: RawTables,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub cutover: RawCutover,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpoint {
    pub dsn: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCopy {
    pub jobs: Option<Spanned<i64>>,
    /// A string with a unit or a bare integer of bytes.
    pub split_tables_larger_than: Option<Spanned<Value>>,
    pub missing_roles: Option<Spanned<String>>,
    pub snapshot_hold_timeout: Option<Spanned<String>>,
    /// A string with a unit or a bare integer of bytes.
    pub max_spool: Option<Spanned<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTables {
    pub without_identity: Option<Spanned<String>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
}
