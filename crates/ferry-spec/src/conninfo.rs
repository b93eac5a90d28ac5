//! Connection parameters of one cluster, parsed from a libpq `key=value` string or a
//! `postgres://` URI. A `ConnInfo` never holds a password: secrets come from the environment
//! (`password_env`, `PGPASSWORD`) or `~/.pgpass`, never from the spec.

mod keyvalue;
mod uri;

use std::fmt;
use std::str::FromStr;

/// The password refusal, shared by both syntaxes.
const HOLDS_PASSWORD: &str = "the dsn holds a password; secrets never live in the spec: \
     remove it and set password_env (or PGPASSWORD, ~/.pgpass)";

/// Keys Ferry accepts, as libpq names them.
const KNOWN_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "application_name",
    "connect_timeout",
    "options",
    "target_session_attrs",
    "passfile",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "channel_binding",
];

/// Keys that carry a secret: refused wherever they appear.
const SECRET_KEYS: &[&str] = &["password", "sslpassword"];

/// Why a connection string was refused. The message names the key or the part that is wrong
/// and never repeats the string itself (it may have been pasted with a password in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ConnInfoError {
    reason: String,
}

impl ConnInfoError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(ConnInfoError::new(format!(
                    "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Validated connection parameters. Getters fall back to the libpq environment variables
/// (`PGHOST`, `PGPORT`, ...) and then to libpq's defaults, read when called.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// In first-seen order; a repeated key replaces the earlier value, as in libpq.
    params: Vec<(String, String)>,
}

impl ConnInfo {
    /// Parses a libpq `key=value` string or a `postgres://` / `postgresql://` URI.
    pub fn parse(s: &str) -> Result<ConnInfo, ConnInfoError> {
        let pairs = if uri::is_uri(s) {
            uri::parse(s)?
        } else {
            keyvalue::parse(s)?
        };
        let mut info = ConnInfo { params: Vec::new() };
        for (key, value) in pairs {
            check_param(&key, &value)?;
            info.set(&key, value);
        }
        Ok(info)
    }

    /// The value given in the dsn for `key`, without any fallback.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The server host: the dsn's `host` (or `hostaddr`), else `PGHOST`, else the default
    /// socket directory `/var/run/postgresql`. A leading `/` names a unix socket directory.
    pub fn host(&self) -> String {
        self.host_from(&env)
    }

    /// The server port: the dsn's, else `PGPORT`, else 5432.
    pub fn port(&self) -> u16 {
        self.port_from(&env)
    }

    /// The role to connect as: the dsn's, else `PGUSER`, else the OS user (`USER`), else
    /// `postgres`.
    pub fn user(&self) -> String {
        self.user_from(&env)
    }

    /// The database: the dsn's, else `PGDATABASE`, else the user name.
    pub fn dbname(&self) -> String {
        self.dbname_from(&env)
    }

    /// The TLS policy: the dsn's, else `PGSSLMODE`, else `prefer`.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode_from(&env)
    }

    /// The dsn's `application_name`, if any.
    pub fn application_name(&self) -> Option<&str> {
        self.get("application_name")
    }

    /// The same parameters pointed at another database (e.g. `postgres` for cluster-wide work).
    pub fn with_dbname(&self, db: &str) -> ConnInfo {
        let mut info = self.clone();
        info.set("dbname", db.to_owned());
        info
    }

    /// `user@host:port/dbname`: who and where, with no secret. Used in logs, errors and the
    /// state store's invariants.
    pub fn identity(&self) -> String {
        self.identity_from(&env)
    }

    /// The parameters given in the dsn, in order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn set(&mut self, key: &str, value: String) {
        match self.params.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.params.push((key.to_owned(), value)),
        }
    }

    fn host_from(&self, env: &dyn Fn(&str) -> Option<String>) -> String {
        self.get("host")
            .or_else(|| self.get("hostaddr"))
            .map(str::to_owned)
            .or_else(|| env("PGHOST").filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "/var/run/postgresql".to_owned())
    }

    fn port_from(&self, env: &dyn Fn(&str) -> Option<String>) -> u16 {
        self.get("port")
            .and_then(|p| p.parse().ok())
            .or_else(|| env("PGPORT").and_then(|p| p.trim().parse().ok()))
            .unwrap_or(5432)
    }

    fn user_from(&self, env: &dyn Fn(&str) -> Option<String>) -> String {
        self.get("user")
            .map(str::to_owned)
            .or_else(|| env("PGUSER").filter(|u| !u.is_empty()))
            .or_else(|| env("USER").filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "postgres".to_owned())
    }

    fn dbname_from(&self, env: &dyn Fn(&str) -> Option<String>) -> String {
        self.get("dbname")
            .map(str::to_owned)
            .or_else(|| env("PGDATABASE").filter(|d| !d.is_empty()))
            .unwrap_or_else(|| self.user_from(env))
    }

    fn sslmode_from(&self, env: &dyn Fn(&str) -> Option<String>) -> SslMode {
        self.get("sslmode")
            .and_then(|m| m.parse().ok())
            .or_else(|| env("PGSSLMODE").and_then(|m| m.parse().ok()))
            .unwrap_or_default()
    }

    fn identity_from(&self, env: &dyn Fn(&str) -> Option<String>) -> String {
        let host = self.host_from(env);
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        format!(
            "{}@{}:{}/{}",
            self.user_from(env),
            host,
            self.port_from(env),
            self.dbname_from(env)
        )
    }
}

/// Shows the identity only, so a `{:?}` in a log can never print more than `identity()`.
impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnInfo({})", self.identity())
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Refuses secrets, unknown keys and values Ferry cannot use.
fn check_param(key: &str, value: &str) -> Result<(), ConnInfoError> {
    if SECRET_KEYS.contains(&key) {
        return Err(ConnInfoError::new(HOLDS_PASSWORD));
    }
    if !KNOWN_KEYS.contains(&key) {
        return Err(ConnInfoError::new(format!(
            "unknown connection parameter `{}`; known: {}",
            key.escape_debug(),
            KNOWN_KEYS.join(", ")
        )));
    }
    match key {
        "host" | "hostaddr" if value.contains(',') => Err(ConnInfoError::new(format!(
            "{key} lists several hosts; Ferry connects to exactly one server: name one"
        ))),
        "port" if value.contains(',') => Err(ConnInfoError::new(
            "port lists several ports; Ferry connects to exactly one server: name one",
        )),
        "port" => match value.parse::<u16>() {
            Ok(p) if p > 0 => Ok(()),
            _ => Err(ConnInfoError::new(
                "port must be a number between 1 and 65535",
            )),
        },
        "sslmode" => value.parse::<SslMode>().map(|_| ()),
        "connect_timeout"
        | "keepalives"
        | "keepalives_idle"
        | "keepalives_interval"
        | "keepalives_count"
        | "tcp_user_timeout" => match value.trim().parse::<u32>() {
            Ok(_) => Ok(()),
            Err(_) => Err(ConnInfoError::new(format!("{key} must be a whole number"))),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
