//! TLS as libpq users expect it from `sslmode`, `sslrootcert`, `sslcert` and `sslkey`:
//!
//! | sslmode | TLS | certificate checked | host name checked |
//! |---|---|---|---|
//! | disable | never | – | – |
//! | allow, prefer | if the server offers it | no | no |
//! | require | always | only if a root certificate is configured (as libpq) | no |
//! | verify-ca | always | yes | no |
//! | verify-full | always | yes | yes |
//!
//! `allow` is treated as `prefer` (TLS first): the difference only matters for servers that
//! refuse TLS connections outright, which then fall back to plain text in both.

use std::path::{Path, PathBuf};

use ferry_spec::{ConnInfo, SslMode};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;

use crate::PgError;

/// How one endpoint's connections negotiate TLS. Built once per endpoint, shared by its
/// connections (normal and replication).
#[derive(Clone)]
pub struct TlsPolicy {
    mode: SslMode,
    connector: Option<SslConnector>,
    verify_hostname: bool,
}

impl TlsPolicy {
    pub fn for_conninfo(side: &'static str, conninfo: &ConnInfo) -> Result<TlsPolicy, PgError> {
        let mode = conninfo.sslmode();
        if mode == SslMode::Disable {
            return Ok(TlsPolicy {
                mode,
                connector: None,
                verify_hostname: false,
            });
        }
        let fail = |reason: String| PgError::Tls { side, reason };
        let mut builder = SslConnector::builder(SslMethod::tls_client())
            .map_err(|e| fail(format!("cannot initialise OpenSSL: {e}")))?;

        let root = root_cert(conninfo);
        let verify = match mode {
            SslMode::VerifyCa | SslMode::VerifyFull => {
                if root.is_none() {
                    return Err(fail(format!(
                        "sslmode={} needs a root certificate to check the server against: set \
                         sslrootcert in the dsn (a file, or `system` for the system store) or \
                         put it at ~/.postgresql/root.crt",
                        mode.as_str()
                    )));
                }
                true
            }
            SslMode::Require => root.is_some(),
            _ => false,
        };
        if verify {
            match root.as_ref() {
                Some(RootCert::System) => builder
                    .set_default_verify_paths()
                    .map_err(|e| fail(format!("cannot load the system certificates: {e}")))?,
                Some(RootCert::File(path)) => builder
                    .set_ca_file(path)
                    .map_err(|e| fail(file_problem("sslrootcert", path, &e)))?,
                None => {}
            }
            builder.set_verify(SslVerifyMode::PEER);
        } else {
            builder.set_verify(SslVerifyMode::NONE);
        }
        if let Some(cert) = conninfo.get("sslcert") {
            builder
                .set_certificate_chain_file(cert)
                .map_err(|e| fail(file_problem("sslcert", Path::new(cert), &e)))?;
        }
        if let Some(key) = conninfo.get("sslkey") {
            builder
                .set_private_key_file(key, SslFiletype::PEM)
                .map_err(|e| fail(file_problem("sslkey", Path::new(key), &e)))?;
        }
        Ok(TlsPolicy {
            mode,
            connector: Some(builder.build()),
            verify_hostname: mode == SslMode::VerifyFull,
        })
    }

    /// True when the connection must fail rather than continue without TLS.
    pub fn required(&self) -> bool {
        matches!(
            self.mode,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// True when TLS is to be attempted at all.
    pub fn attempted(&self) -> bool {
        self.connector.is_some()
    }

    pub(crate) fn tokio_postgres_mode(&self) -> tokio_postgres::config::SslMode {
        match (self.attempted(), self.required()) {
            (false, _) => tokio_postgres::config::SslMode::Disable,
            (true, false) => tokio_postgres::config::SslMode::Prefer,
            (true, true) => tokio_postgres::config::SslMode::Require,
        }
    }

    /// The `MakeTlsConnect` for tokio-postgres.
    pub(crate) fn make_tls(&self) -> Option<MakeTlsConnector> {
        let connector = self.connector.clone()?;
        let verify_hostname = self.verify_hostname;
        let mut make = MakeTlsConnector::new(connector);
        make.set_callback(move |config, _host| {
            config.set_verify_hostname(verify_hostname);
            Ok(())
        });
        Some(make)
    }

    /// A configured TLS session for `host`, for connections not made by tokio-postgres (the
    /// replication connection). `None` when TLS is not attempted.
    pub fn session_for(&self, host: &str) -> Result<Option<openssl::ssl::Ssl>, String> {
        let Some(connector) = &self.connector else {
            return Ok(None);
        };
        let mut config = connector.configure().map_err(|e| e.to_string())?;
        config.set_verify_hostname(self.verify_hostname);
        if host.parse::<std::net::IpAddr>().is_ok() {
            config.set_use_server_name_indication(false);
        }
        config.into_ssl(host).map(Some).map_err(|e| e.to_string())
    }
}

/// Why the file named by `key` in the dsn is unusable, in words: the system's error when it
/// cannot be opened, else OpenSSL's reason (never its raw error stack).
fn file_problem(key: &str, path: &Path, e: &openssl::error::ErrorStack) -> String {
    match std::fs::File::open(path) {
        Err(io) => format!(
            "cannot read {key} {}: {io}; fix {key} in the dsn",
            path.display()
        ),
        Ok(_) => {
            let reason = e
                .errors()
                .iter()
                .find_map(openssl::error::Error::reason)
                .unwrap_or("OpenSSL cannot load it");
            format!(
                "{key} {} is not usable ({reason}): it must be a PEM file{}",
                path.display(),
                if key == "sslkey" {
                    " holding an unencrypted private key"
                } else {
                    ""
                }
            )
        }
    }
}

enum RootCert {
    System,
    File(PathBuf),
}

fn root_cert(conninfo: &ConnInfo) -> Option<RootCert> {
    match conninfo.get("sslrootcert") {
        Some("system") => Some(RootCert::System),
        Some(path) => Some(RootCert::File(PathBuf::from(path))),
        None => {
            let home = std::env::var_os("HOME")?;
            let default = PathBuf::from(home).join(".postgresql/root.crt");
            default.exists().then_some(RootCert::File(default))
        }
    }
}
