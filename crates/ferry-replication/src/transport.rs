//! The byte stream under a replication connection: TCP or a Unix socket, with TLS when the
//! endpoint's sslmode asks for it.

use std::pin::Pin;

use bytes::BytesMut;
use ferry_pg::Connector;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub(crate) type BoxStream = Box<dyn Stream>;

/// Opens the socket and negotiates TLS. Errors are plain sentences for `Connect`.
pub(crate) async fn open(connector: &Connector) -> Result<BoxStream, String> {
    let ci = connector.conninfo();
    let (host, port) = (ci.host(), ci.port());
    if host.starts_with('/') {
        let path = format!("{host}/.s.PGSQL.{port}");
        let s = UnixStream::connect(&path)
            .await
            .map_err(|e| format!("cannot open the socket {path}: {e}"))?;
        return Ok(Box::new(s));
    }
    let addr = ci
        .get("hostaddr")
        .map_or_else(|| host.clone(), str::to_owned);
    let tcp = TcpStream::connect((addr.as_str(), port))
        .await
        .map_err(|e| {
            format!(
                "cannot reach {host}:{port} ({e}): check host and port and that the server runs"
            )
        })?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let tls = connector.tls();
    if !tls.attempted() {
        return Ok(Box::new(tcp));
    }
    let mut tcp = tcp;
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    tcp.write_all(&buf).await.map_err(|e| e.to_string())?;
    let answer = tcp.read_u8().await.map_err(|e| e.to_string())?;
    if answer != b'S' {
        if tls.required() {
            return Err(format!(
                "the server at {host}:{port} does not offer TLS but sslmode requires it: \
                 enable ssl on the server or lower sslmode"
            ));
        }
        return Ok(Box::new(tcp));
    }
    let ssl = tls.session_for(&host)?.ok_or("TLS is not configured")?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| format!("the TLS handshake failed ({e}): check sslrootcert and sslmode"))?;
    Ok(Box::new(stream))
}
