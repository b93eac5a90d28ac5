//! The configuration files written into a fresh local cluster.

use std::fmt::Write as _;
use std::path::Path;

use crate::PgError;

/// Client authentication: trust on the socket and on IPv4/IPv6 loopback, replication included.
pub(super) const PG_HBA: &str = "\
# written by ferry-pg local_cluster: throwaway cluster, loopback only
local   all           all                 trust
local   replication   all                 trust
host    all           all   127.0.0.1/32  trust
host    replication   all   127.0.0.1/32  trust
host    all           all   ::1/128       trust
host    replication   all   ::1/128       trust
";

/// Name of the file `postgresql.conf` includes last; rewritten when the port changes.
pub(super) const INCLUDE_FILE: &str = "ferry.conf";

/// `ferry.conf`: Ferry's base settings (fast, logical decoding ready), then the caller's.
pub(super) fn ferry_conf(
    port: u16,
    socket_dir: &Path,
    extra: &[(String, String)],
) -> Result<String, PgError> {
    let socket_dir = socket_dir.to_string_lossy();
    let port = port.to_string();
    let base: [(&str, &str); 11] = [
        ("listen_addresses", "127.0.0.1"),
        ("port", &port),
        ("unix_socket_directories", &socket_dir),
        ("wal_level", "logical"),
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("max_replication_slots", "20"),
        ("max_wal_senders", "20"),
        ("max_connections", "200"),
        ("shared_buffers", "128MB"),
    ];
    let mut conf = String::from("# written by ferry-pg local_cluster\n");
    let extra = extra.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for (key, value) in base.into_iter().chain(extra) {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(PgError::Cluster {
                what: format!("invalid setting name {key:?}"),
                detail: "setting names are letters, digits, '_' and '.'".into(),
            });
        }
        let _ = writeln!(
            conf,
            "{key} = '{}'",
            value.replace('\\', "\\\\").replace('\'', "''")
        );
    }
    Ok(conf)
}

/// A line for the end of `postgresql.conf` so that `ferry.conf` overrides initdb's defaults.
pub(super) fn include_line() -> String {
    format!("\ninclude '{INCLUDE_FILE}'\n")
}
