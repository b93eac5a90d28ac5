//! Where a password comes from, in libpq's order after the spec's own `password_env`:
//! the named environment variable, `PGPASSWORD`, then the password file (`passfile`,
//! `PGPASSFILE` or `~/.pgpass`). A password never comes from the spec itself.

use std::fmt;
use std::path::PathBuf;

use ferry_spec::{ConnInfo, Endpoint};

use crate::PgError;

/// A password. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The password for `endpoint`, if one is configured anywhere.
pub fn resolve(side: &'static str, endpoint: &Endpoint) -> Result<Option<Secret>, PgError> {
    if let Some(var) = &endpoint.password_env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(Secret(v))),
            _ => Err(PgError::Connect {
                side,
                endpoint: endpoint.conninfo.identity(),
                reason: format!(
                    "the spec's password_env names the environment variable {var}, but it is \
                     not set: export {var} with the password, or remove password_env to use \
                     PGPASSWORD or ~/.pgpass"
                ),
                code: None,
            }),
        };
    }
    if let Ok(v) = std::env::var("PGPASSWORD") {
        if !v.is_empty() {
            return Ok(Some(Secret(v)));
        }
    }
    Ok(from_passfile(&endpoint.conninfo))
}

fn passfile_path(conninfo: &ConnInfo) -> Option<PathBuf> {
    if let Some(p) = conninfo.get("passfile") {
        return Some(PathBuf::from(p));
    }
    if let Ok(p) = std::env::var("PGPASSFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))
}

fn from_passfile(conninfo: &ConnInfo) -> Option<Secret> {
    let text = std::fs::read_to_string(passfile_path(conninfo)?).ok()?;
    let host = conninfo.host();
    // libpq matches a socket directory against "localhost".
    let host = if host.starts_with('/') {
        "localhost".to_owned()
    } else {
        host
    };
    let wanted = [
        host,
        conninfo.port().to_string(),
        conninfo.dbname(),
        conninfo.user(),
    ];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_passfile_line(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(&wanted)
                .all(|(f, w)| f == "*" || f == w);
            matches.then(|| Secret(fields[4].clone()))
        })
}

/// Splits `host:port:db:user:password`, honouring `\:` and `\\`.
fn split_passfile_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(last)) = (chars.next(), fields.last_mut()) {
                    last.push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_escaped_passfile_fields() {
        assert_eq!(
            split_passfile_line(r"db\:host:5432:*:bob:pa\:ss:word"),
            vec!["db:host", "5432", "*", "bob", "pa:ss:word"]
        );
    }

    #[test]
    fn secret_debug_hides_value() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(..)");
    }
}
