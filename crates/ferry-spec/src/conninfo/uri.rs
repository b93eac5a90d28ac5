//! libpq's URI syntax: `postgresql://user@host:port/dbname?key=value&key=value`, with
//! percent-encoding and IPv6 hosts in brackets (`[::1]`). One host only.

use super::{ConnInfoError, HOLDS_PASSWORD};

const SCHEMES: &[&str] = &["postgresql://", "postgres://"];

pub(super) fn is_uri(s: &str) -> bool {
    SCHEMES
        .iter()
        .any(|scheme| s.trim_start().starts_with(scheme))
}

pub(super) fn parse(s: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let s = s.trim();
    let rest = SCHEMES
        .iter()
        .find_map(|scheme| s.strip_prefix(scheme))
        .ok_or_else(|| ConnInfoError::new("a URI starts with postgresql:// or postgres://"))?;
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (before_query, None),
    };
    let mut pairs = Vec::new();
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hostspec)) => {
            if userinfo.contains(':') {
                return Err(ConnInfoError::new(HOLDS_PASSWORD));
            }
            if !userinfo.is_empty() {
                pairs.push(("user".to_owned(), decode(userinfo, "user name")?));
            }
            hostspec
        }
        None => authority,
    };
    if hostspec.contains(',') {
        return Err(ConnInfoError::new(
            "the URI lists several hosts; Ferry connects to exactly one server: name one",
        ));
    }
    let (host, port) = split_hostspec(hostspec)?;
    if !host.is_empty() {
        pairs.push(("host".to_owned(), decode(host, "host")?));
    }
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        pairs.push(("port".to_owned(), decode(port, "port")?));
    }
    if let Some(path) = path.filter(|p| !p.is_empty()) {
        pairs.push(("dbname".to_owned(), decode(path, "database name")?));
    }
    for param in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (key, value) = param.split_once('=').ok_or_else(|| {
            ConnInfoError::new("a URI query parameter has no `=`; write ?key=value&key=value")
        })?;
        let key = decode(key, "query parameter name")?;
        let value = decode(value, "query parameter value")?;
        // libpq's JDBC-compatible spelling.
        if key == "ssl" && value == "true" {
            pairs.push(("sslmode".to_owned(), "require".to_owned()));
        } else {
            pairs.push((key, value));
        }
    }
    Ok(pairs)
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_hostspec(hostspec: &str) -> Result<(&str, Option<&str>), ConnInfoError> {
    if let Some(bracketed) = hostspec.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| ConnInfoError::new("the URI's IPv6 host has no closing `]`"))?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(ConnInfoError::new(
                    "unexpected text after the URI's `[host]`",
                )),
            },
        };
    }
    match hostspec.split_once(':') {
        Some((_, port)) if port.contains(':') => Err(ConnInfoError::new(
            "the URI's host has several `:`; write an IPv6 address in brackets, like [::1]",
        )),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((hostspec, None)),
    }
}

/// Percent-decodes one URI component; `what` names it in the error.
fn decode(s: &str, what: &str) -> Result<String, ConnInfoError> {
    let bad = || ConnInfoError::new(format!("the URI's {what} has an invalid %-escape"));
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad());
            }
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConnInfoError::new(format!("the URI's {what} is not UTF-8 once decoded")))
}
