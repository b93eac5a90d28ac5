//! Counting rows in a COPY stream as it passes, for progress: text format ends every row with
//! a newline (embedded newlines are escaped); binary format frames rows with a field count and
//! per-field lengths, which this walks across chunk boundaries without copying data.

/// Binary COPY header: 11-byte signature, 4-byte flags, 4-byte extension length (+ extension).
const SIGNATURE_LEN: usize = 11;

#[derive(Debug)]
pub(crate) struct RowCounter {
    binary: bool,
    state: State,
    /// Bytes gathered for the integer being read (field count or length).
    pending: [u8; 4],
    pending_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Skipping `n` more bytes of header.
    Header(usize),
    /// Reading the 4-byte header extension length.
    ExtensionLength,
    /// Skipping `n` more bytes of header extension.
    Extension(usize),
    /// Reading a tuple's 2-byte field count.
    FieldCount,
    /// Reading the 4-byte length of one of `fields` remaining fields.
    FieldLength { fields: u16 },
    /// Skipping `bytes` of field data, then `fields` more fields.
    FieldData { fields: u16, bytes: usize },
    /// The trailer (-1) was seen.
    Done,
}

impl RowCounter {
    pub fn new(binary: bool) -> RowCounter {
        RowCounter {
            binary,
            state: State::Header(SIGNATURE_LEN + 4),
            pending: [0; 4],
            pending_len: 0,
        }
    }

    /// Rows completed in `chunk`.
    pub fn feed(&mut self, chunk: &[u8]) -> u64 {
        if !self.binary {
            return chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        let mut rows = 0;
        let mut i = 0;
        while i < chunk.len() {
            match self.state {
                State::Done => return rows,
                State::Header(n) | State::Extension(n) | State::FieldData { bytes: n, .. }
                    if n > 0 =>
                {
                    let take = n.min(chunk.len() - i);
                    i += take;
                    self.state = match self.state {
                        State::Header(_) if n == take => State::ExtensionLength,
                        State::Header(_) => State::Header(n - take),
                        State::Extension(_) if n == take => State::FieldCount,
                        State::Extension(_) => State::Extension(n - take),
                        State::FieldData { fields, .. } => State::FieldData {
                            fields,
                            bytes: n - take,
                        },
                        other => other,
                    };
                }
                State::Header(_) => self.state = State::ExtensionLength,
                State::Extension(_) => self.state = State::FieldCount,
                State::FieldData { fields, .. } => {
                    self.state = if fields == 0 {
                        rows += 1;
                        State::FieldCount
                    } else {
                        State::FieldLength { fields }
                    };
                }
                State::ExtensionLength => {
                    if let Some(v) = self.read_int(chunk, &mut i, 4) {
                        self.state = match usize::try_from(v).unwrap_or(0) {
                            0 => State::FieldCount,
                            n => State::Extension(n),
                        };
                    }
                }
                State::FieldCount => {
                    if let Some(v) = self.read_int(chunk, &mut i, 2) {
                        let count = v as i16;
                        self.state = match count {
                            -1 => State::Done,
                            0 => {
                                rows += 1;
                                State::FieldCount
                            }
                            n => State::FieldLength {
                                fields: n.unsigned_abs(),
                            },
                        };
                    }
                }
                State::FieldLength { fields } => {
                    if let Some(v) = self.read_int(chunk, &mut i, 4) {
                        let len = v as i32;
                        let bytes = usize::try_from(len).unwrap_or(0); // -1 is NULL: no data
                        self.state = State::FieldData {
                            fields: fields - 1,
                            bytes,
                        };
                    }
                }
            }
        }
        // A row whose last field ended exactly at the chunk's end.
        if let State::FieldData {
            fields: 0,
            bytes: 0,
        } = self.state
        {
            rows += 1;
            self.state = State::FieldCount;
        }
        rows
    }

    /// Reads a big-endian integer of `width` bytes, possibly split across chunks.
    fn read_int(&mut self, chunk: &[u8], i: &mut usize, width: usize) -> Option<u32> {
        while self.pending_len < width && *i < chunk.len() {
            self.pending[self.pending_len] = chunk[*i];
            self.pending_len += 1;
            *i += 1;
        }
        if self.pending_len < width {
            return None;
        }
        self.pending_len = 0;
        let v = self.pending[..width]
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary_stream(rows: &[Vec<Option<&[u8]>>], extension: &[u8]) -> Vec<u8> {
        let mut s = b"PGCOPY\n\xff\r\n\0".to_vec();
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend_from_slice(&(extension.len() as u32).to_be_bytes());
        s.extend_from_slice(extension);
        for row in rows {
            s.extend_from_slice(&(row.len() as u16).to_be_bytes());
            for f in row {
                match f {
                    Some(d) => {
                        s.extend_from_slice(&(d.len() as u32).to_be_bytes());
                        s.extend_from_slice(d);
                    }
                    None => s.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
        }
        s.extend_from_slice(&(-1i16).to_be_bytes());
        s
    }

    #[test]
    fn counts_binary_rows_across_any_chunking() {
        let rows = vec![
            vec![Some(&b"abc"[..]), None, Some(&b""[..])],
            vec![],
            vec![Some(&b"0123456789"[..])],
            vec![None],
        ];
        for extension in [&b""[..], &b"ext"[..]] {
            let stream = binary_stream(&rows, extension);
            for size in 1..stream.len() {
                let mut c = RowCounter::new(true);
                let total: u64 = stream.chunks(size).map(|ch| c.feed(ch)).sum();
                assert_eq!(total, 4, "chunk size {size}");
            }
        }
    }

    #[test]
    fn counts_text_rows() {
        let mut c = RowCounter::new(false);
        assert_eq!(c.feed(b"1\ta\\nb\n2\tc\n"), 2);
    }
}
