//! The pgoutput options of `START_REPLICATION … LOGICAL`.

/// The newest pgoutput protocol version a server speaks, from `server_version_num`:
/// 10–13 → 1, 14 → 2 (streaming), 15 → 3 (two-phase), 16+ → 4 (parallel streaming).
pub fn protocol_version_for(server_version_num: u32) -> u32 {
    match server_version_num / 10_000 {
        0..=13 => 1,
        14 => 2,
        15 => 3,
        _ => 4,
    }
}

/// Whether large in-progress transactions are streamed (protocol 2+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streaming {
    /// `streaming 'on'`
    On,
    /// `streaming 'parallel'` (protocol 4): Stream Abort then carries its LSN and time.
    Parallel,
}

/// The option list of `START_REPLICATION SLOT s LOGICAL lsn (…)` for pgoutput.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartReplicationOptions {
    pub proto_version: u32,
    pub publication_names: Vec<String>,
    /// `messages 'true'`: deliver `pg_logical_emit_message` content.
    pub messages: bool,
    /// `None` sends no `streaming` option (the server then sends whole transactions only).
    pub streaming: Option<Streaming>,
}

impl StartReplicationOptions {
    /// `(proto_version '4', publication_names '"a","b"', messages 'true', streaming 'on')`.
    /// Each publication name is a quoted identifier inside one quoted literal, as pgoutput
    /// splits the list with `SplitIdentifierString`.
    pub fn to_sql(&self) -> String {
        let names = self
            .publication_names
            .iter()
            .map(|n| postgres_protocol::escape::escape_identifier(n))
            .collect::<Vec<_>>()
            .join(",");
        let mut out = format!(
            "(proto_version '{}', publication_names {}",
            self.proto_version,
            quote_literal(&names)
        );
        if self.messages {
            out.push_str(", messages 'true'");
        }
        match self.streaming {
            Some(Streaming::On) => out.push_str(", streaming 'on'"),
            Some(Streaming::Parallel) => out.push_str(", streaming 'parallel'"),
            None => {}
        }
        out.push(')');
        out
    }
}

/// A literal for the replication command grammar, which knows `'…'` with `''` but no `E'…'`.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_follows_the_server_major() {
        assert_eq!(protocol_version_for(100_023), 1);
        assert_eq!(protocol_version_for(130_016), 1);
        assert_eq!(protocol_version_for(140_011), 2);
        assert_eq!(protocol_version_for(150_007), 3);
        assert_eq!(protocol_version_for(160_003), 4);
        assert_eq!(protocol_version_for(180_000), 4);
    }

    #[test]
    fn options_quote_publication_names() {
        let opts = StartReplicationOptions {
            proto_version: 2,
            publication_names: vec!["plain".into(), "it's \"odd\", yes".into()],
            messages: true,
            streaming: Some(Streaming::On),
        };
        assert_eq!(
            opts.to_sql(),
            r#"(proto_version '2', publication_names '"plain","it''s ""odd"", yes"', messages 'true', streaming 'on')"#
        );
    }
}
