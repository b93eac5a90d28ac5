//! Opening sessions with the source and the target.

use std::time::Duration;

use ferry_spec::{ConnInfo, Endpoint};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use crate::password::{self, Secret};
use crate::tls::TlsPolicy;
use crate::PgError;

/// Everything needed to open sessions with one endpoint: cheap to clone, one per side.
#[derive(Clone)]
pub struct Connector {
    side: &'static str,
    conninfo: ConnInfo,
    password: Option<Secret>,
    tls: TlsPolicy,
}

impl Connector {
    /// Resolves the password and the TLS policy; connects to nothing yet.
    pub fn new(side: &'static str, endpoint: &Endpoint) -> Result<Connector, PgError> {
        Ok(Connector {
            side,
            conninfo: endpoint.conninfo.clone(),
            password: password::resolve(side, endpoint)?,
            tls: TlsPolicy::for_conninfo(side, &endpoint.conninfo)?,
        })
    }

    /// `"source"` or `"target"`, for messages.
    pub fn side(&self) -> &'static str {
        self.side
    }

    pub fn conninfo(&self) -> &ConnInfo {
        &self.conninfo
    }

    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    pub fn tls(&self) -> &TlsPolicy {
        &self.tls
    }

    /// `user@host:port/dbname`: safe for logs, errors and the state store.
    pub fn identity(&self) -> String {
        self.conninfo.identity()
    }

    /// A connection string for the PostgreSQL client binaries: every parameter of the spec's
    /// dsn, never a password (hand those over with [`Connector::tool_env`]).
    pub fn tool_conninfo(&self) -> String {
        let mut parts: Vec<String> = self
            .conninfo
            .params()
            .filter(|(k, _)| !matches!(*k, "host" | "port" | "dbname" | "user"))
            .map(|(k, v)| format!("{k}={}", libpq_value(v)))
            .collect();
        parts.push(format!("host={}", libpq_value(&self.conninfo.host())));
        parts.push(format!("port={}", self.conninfo.port()));
        parts.push(format!("dbname={}", libpq_value(&self.conninfo.dbname())));
        parts.push(format!("user={}", libpq_value(&self.conninfo.user())));
        parts.join(" ")
    }

    /// Environment for a client binary: the password, so it never appears in an argv.
    pub fn tool_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("PGAPPNAME".to_owned(), "ferry".to_owned())];
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD".to_owned(), p.expose().to_owned()));
        }
        env
    }

    /// Opens a session. The connection task runs on the current runtime until the
    /// returned client is dropped.
    pub async fn connect(&self) -> Result<Client, PgError> {
        let config = self.config();
        let result = match self.tls.make_tls() {
            Some(tls) => config.connect(tls).await.map(|(c, conn)| {
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection closed");
                    }
                });
                c
            }),
            None => config.connect(NoTls).await.map(|(c, conn)| {
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection closed");
                    }
                });
                c
            }),
        };
        result.map_err(|e| self.connect_error(&e))
    }

    /// The same endpoint with another database (used to reach `postgres` for admin work).
    pub fn with_dbname(&self, dbname: &str) -> Connector {
        Connector {
            conninfo: self.conninfo.with_dbname(dbname),
            ..self.clone()
        }
    }

    fn config(&self) -> Config {
        let ci = &self.conninfo;
        let mut config = Config::new();
        config
            .host(ci.host())
            .port(ci.port())
            .user(ci.user())
            .dbname(ci.dbname())
            .application_name(ci.get("application_name").unwrap_or("ferry"))
            .ssl_mode(self.tls.tokio_postgres_mode())
            .connect_timeout(connect_timeout(ci))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if let Some(addr) = ci.get("hostaddr").and_then(|a| a.parse().ok()) {
            config.hostaddr(addr);
        }
        if let Some(options) = ci.get("options") {
            config.options(options);
        }
        if let Some(p) = &self.password {
            config.password(p.expose());
        }
        config
    }

    /// Turns a failed connection attempt into a sentence a user can act on.
    pub fn connect_error(&self, e: &tokio_postgres::Error) -> PgError {
        let ci = &self.conninfo;
        let user = ci.user();
        let code = e.as_db_error().map(|db| db.code().code().to_owned());
        let reason = if let Some(db) = e.as_db_error() {
            let code = db.code();
            if *code == SqlState::INVALID_PASSWORD {
                format!(
                    "the server refused the password for user \"{user}\": check the variable \
                     named by password_env, PGPASSWORD or ~/.pgpass"
                )
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                format!(
                    "database \"{}\" does not exist: create it first or fix dbname in the dsn",
                    ci.dbname()
                )
            } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
                format!(
                    "the server does not let user \"{user}\" in ({}): check the role exists, \
                     can log in, and pg_hba.conf allows this host",
                    db.message()
                )
            } else if *code == SqlState::TOO_MANY_CONNECTIONS {
                "the server has no free connection slots: raise max_connections or lower \
                 [copy] jobs"
                    .to_owned()
            } else {
                format!("{} (SQLSTATE {})", db.message(), code.code())
            }
        } else {
            describe_transport_error(e, self.tls.required(), &ci.host(), ci.port())
        };
        PgError::Connect {
            side: self.side,
            endpoint: self.identity(),
            reason,
            code,
        }
    }
}

fn connect_timeout(ci: &ConnInfo) -> Duration {
    ci.get("connect_timeout")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(10), Duration::from_secs)
}

fn describe_transport_error(
    e: &tokio_postgres::Error,
    tls_required: bool,
    host: &str,
    port: u16,
) -> String {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let lower = chain.to_lowercase();
    if lower.contains("connection refused") {
        format!(
            "nothing accepts connections at {host}:{port} (connection refused): check host and \
             port in the dsn and that the server is running"
        )
    } else if lower.contains("timed out") || lower.contains("timeout") {
        format!(
            "no answer from {host}:{port} within the connect timeout: check the address, \
             firewalls, and connect_timeout in the dsn"
        )
    } else if lower.contains("password missing") {
        "the server asks for a password and none was found: set password_env in the spec, \
         PGPASSWORD, or add the endpoint to ~/.pgpass"
            .to_owned()
    } else if lower.contains("failed to lookup address") || lower.contains("name or service") {
        format!("the host name {host} does not resolve: check host in the dsn")
    } else if tls_required && lower.contains("tls") {
        format!(
            "the server at {host}:{port} does not offer TLS but sslmode requires it: enable \
             ssl on the server or lower sslmode"
        )
    } else if lower.contains("certificate") || lower.contains("ssl") {
        format!("the TLS handshake failed ({chain}): check sslrootcert and sslmode")
    } else {
        format!("{chain}: check the dsn and that the server is reachable")
    }
}

/// Quotes a libpq connection-string value when it needs it.
fn libpq_value(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return v.to_owned();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// SQLSTATE 08006, given to statements whose connection broke before the server answered.
const CONNECTION_FAILURE: &str = "08006";

/// The session is gone (closed, reset, or its socket failed), as opposed to a statement the
/// server rejected or a value the client could not read.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// Maps a failed statement to [`PgError::Sql`], keeping the server's message and SQLSTATE.
pub fn sql_error(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    let what = what.into();
    move |e| {
        let (detail, code) = match e.as_db_error() {
            Some(db) => {
                let mut d = db.message().to_owned();
                if let Some(detail) = db.detail() {
                    d.push_str(" (");
                    d.push_str(detail);
                    d.push(')');
                }
                if let Some(hint) = db.hint() {
                    d.push_str("; hint: ");
                    d.push_str(hint);
                }
                (d, Some(db.code().code().to_owned()))
            }
            None if connection_lost(&e) => (
                format!("{e}: the connection was lost or closed"),
                Some(CONNECTION_FAILURE.to_owned()),
            ),
            None => (e.to_string(), None),
        };
        PgError::Sql { what, detail, code }
    }
}

#[cfg(test)]
mod tests {
    use super::libpq_value;

    #[test]
    fn quotes_libpq_values() {
        assert_eq!(libpq_value("abc"), "abc");
        assert_eq!(libpq_value("a b"), "'a b'");
        assert_eq!(libpq_value("it's"), "'it\\'s'");
        assert_eq!(libpq_value(""), "''");
    }
}
