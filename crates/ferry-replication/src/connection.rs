//! Startup, authentication (trust, cleartext, md5, SCRAM-SHA-256) and the simple query
//! protocol on a walsender connection.

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use ferry_pg::Connector;
use postgres_protocol::authentication::{self, sasl};
use postgres_protocol::message::backend::ErrorFields;
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::{self, BoxStream};
use crate::ReplicationError;

/// One row of a simple-query result: column names and text values.
#[derive(Debug, Clone)]
pub struct SimpleRow {
    columns: Vec<(String, Option<String>)>,
}

impl SimpleRow {
    pub fn get(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(n, _)| n == column)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A `replication=database` session with the source.
pub struct ReplicationConnection {
    stream: BoxStream,
    read_buf: BytesMut,
    side: &'static str,
    endpoint: String,
}

impl ReplicationConnection {
    /// Connects and authenticates as the endpoint's user on its database.
    pub async fn connect(connector: &Connector) -> Result<ReplicationConnection, ReplicationError> {
        let side = connector.side();
        let endpoint = connector.identity();
        let fail = |reason: String, code: Option<String>| ReplicationError::Connect {
            side,
            endpoint: endpoint.clone(),
            reason,
            code,
        };
        let stream = transport::open(connector)
            .await
            .map_err(|reason| fail(reason, None))?;
        let mut conn = ReplicationConnection {
            stream,
            read_buf: BytesMut::with_capacity(8192),
            side,
            endpoint: endpoint.clone(),
        };
        let ci = connector.conninfo();
        let (user, dbname) = (ci.user(), ci.dbname());
        let mut buf = BytesMut::new();
        let params = [
            ("user", user.as_str()),
            ("database", dbname.as_str()),
            ("replication", "database"),
            ("application_name", "ferry"),
            ("client_encoding", "UTF8"),
        ];
        frontend::startup_message(params, &mut buf)?;
        conn.send(&buf).await?;
        conn.authenticate(connector, &user)
            .await
            .map_err(|e| match e {
                ReplicationError::Server { message, code, .. } => {
                    fail(auth_reason(&message, &code, &user, &dbname), Some(code))
                }
                other => other,
            })?;
        Ok(conn)
    }

    async fn authenticate(
        &mut self,
        connector: &Connector,
        user: &str,
    ) -> Result<(), ReplicationError> {
        let (side, endpoint) = (self.side, self.endpoint.clone());
        let password = || {
            connector
                .password()
                .map(|p| p.expose().to_owned())
                .ok_or_else(|| ReplicationError::Connect {
                    side,
                    endpoint: endpoint.clone(),
                    reason: "the server asks for a password and none was found: set \
                             password_env in the spec, PGPASSWORD, or add the endpoint to \
                             ~/.pgpass"
                        .to_owned(),
                    code: None,
                })
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let mut buf = BytesMut::new();
            match self.next_message().await? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?.as_bytes(), &mut buf)?;
                    self.send(&buf).await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = authentication::md5_hash(
                        user.as_bytes(),
                        password()?.as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut buf)?;
                    self.send(&buf).await?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut offered = false;
                    while let Some(m) = mechanisms.next().map_err(io_protocol)? {
                        offered |= m == sasl::SCRAM_SHA_256;
                    }
                    if !offered {
                        return Err(ReplicationError::Protocol(
                            "the server offers no SASL mechanism Ferry supports (SCRAM-SHA-256)"
                                .into(),
                        ));
                    }
                    let s = sasl::ScramSha256::new(
                        password()?.as_bytes(),
                        sasl::ChannelBinding::unsupported(),
                    );
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut buf)?;
                    self.send(&buf).await?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| unexpected("SASL continue"))?;
                    s.update(body.data())?;
                    frontend::sasl_response(s.message(), &mut buf)?;
                    self.send(&buf).await?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let mut s = scram.take().ok_or_else(|| unexpected("SASL final"))?;
                    s.finish(body.data())?;
                }
                Message::ParameterStatus(_)
                | Message::BackendKeyData(_)
                | Message::NoticeResponse(_) => {}
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ErrorResponse(body) => return Err(server_error("authentication", &body)),
                _ => return Err(unexpected("message during startup")),
            }
        }
    }

    /// Runs one command in the simple query protocol and returns its rows.
    pub async fn simple_query(
        &mut self,
        what: &str,
        sql: &str,
    ) -> Result<Vec<SimpleRow>, ReplicationError> {
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf)?;
        self.send(&buf).await?;
        let mut names: Vec<String> = Vec::new();
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.next_message().await? {
                Message::RowDescription(body) => {
                    let mut fields = body.fields();
                    names.clear();
                    while let Some(f) = fields.next().map_err(io_protocol)? {
                        names.push(f.name().to_owned());
                    }
                }
                Message::DataRow(body) => {
                    let mut values = Vec::with_capacity(names.len());
                    let mut ranges = body.ranges();
                    let data = body.buffer();
                    while let Some(r) = ranges.next().map_err(io_protocol)? {
                        values.push(r.map(|r| String::from_utf8_lossy(&data[r]).into_owned()));
                    }
                    rows.push(SimpleRow {
                        columns: names.iter().cloned().zip(values).collect(),
                    });
                }
                Message::ErrorResponse(body) => error = Some(server_error(what, &body)),
                Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// Resolves when the server closes the connection or sends an error (for example when
    /// the session is terminated). Used by the snapshot holder to notice it lost its snapshot.
    pub async fn closed(&mut self) -> ReplicationError {
        loop {
            match self.next_message().await {
                Ok(Message::ErrorResponse(body)) => {
                    return server_error("holding the snapshot", &body)
                }
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    }

    /// Ends the session politely.
    pub async fn terminate(mut self) {
        let mut buf = BytesMut::new();
        frontend::terminate(&mut buf);
        let _ = self.send(&buf).await;
    }

    /// The socket and whatever was read past the last message, for the CopyBoth stream.
    pub(crate) fn into_parts(self) -> (BoxStream, BytesMut) {
        (self.stream, self.read_buf)
    }

    async fn send(&mut self, buf: &[u8]) -> Result<(), ReplicationError> {
        self.stream.write_all(buf).await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn next_message(&mut self) -> Result<Message, ReplicationError> {
        loop {
            if let Some(m) = Message::parse(&mut self.read_buf)? {
                return Ok(m);
            }
            if self.read_buf.capacity() - self.read_buf.len() < 4096 {
                self.read_buf.reserve(8192);
            }
            let n = self.stream.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ReplicationError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
        }
    }
}

fn io_protocol(e: std::io::Error) -> ReplicationError {
    ReplicationError::Protocol(e.to_string())
}

fn unexpected(what: &str) -> ReplicationError {
    ReplicationError::Protocol(format!("unexpected {what} from the server"))
}

pub(crate) fn server_error(what: &str, body: &ErrorResponseBody) -> ReplicationError {
    let mut message = String::new();
    let mut code = String::new();
    let mut fields: ErrorFields<'_> = body.fields();
    while let Ok(Some(f)) = fields.next() {
        match f.type_() {
            b'M' => message = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'C' => code = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            _ => {}
        }
    }
    ReplicationError::Server {
        what: what.to_owned(),
        message,
        code,
    }
}

fn auth_reason(message: &str, code: &str, user: &str, dbname: &str) -> String {
    match code {
        "28P01" => format!(
            "the server refused the password for user \"{user}\": check the variable named by \
             password_env, PGPASSWORD or ~/.pgpass"
        ),
        "3D000" => format!(
            "database \"{dbname}\" does not exist: create it first or fix dbname in the dsn"
        ),
        "28000" | "42501" => format!(
            "the server refused a replication connection for user \"{user}\" ({message}): the role \
             needs the REPLICATION attribute (ALTER ROLE {user} REPLICATION) and pg_hba.conf must \
             allow it"
        ),
        "53300" => {
            "no free connection or WAL sender slots: raise max_wal_senders / max_connections"
                .to_owned()
        }
        _ => format!("{message} (SQLSTATE {code})"),
    }
}
