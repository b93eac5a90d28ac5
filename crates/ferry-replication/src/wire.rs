//! Checked reads over one message: every read returns an error naming the message and the byte
//! offset instead of panicking, so malformed input can never bring the process down.

use bytes::Bytes;

use crate::error::DecodeProblem;
use crate::ReplicationError;

/// A cursor over one message's bytes (big-endian, as everything on the PostgreSQL wire).
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// The `Bytes` that `data` borrows from, when there is one: values are then shared with
    /// it instead of copied.
    owner: Option<&'a Bytes>,
    /// The message being decoded, for errors.
    message: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], message: &'static str) -> Reader<'a> {
        Reader {
            data,
            pos: 0,
            owner: None,
            message,
        }
    }

    pub(crate) fn shared(data: &'a Bytes, message: &'static str) -> Reader<'a> {
        Reader {
            data,
            pos: 0,
            owner: Some(data),
            message,
        }
    }

    /// Names the message once its type byte is known.
    pub(crate) fn set_message(&mut self, message: &'static str) {
        self.message = message;
    }

    pub(crate) fn error(&self, problem: DecodeProblem) -> ReplicationError {
        ReplicationError::Decode {
            message: self.message,
            at: self.pos,
            problem,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub(crate) fn slice(&mut self, n: usize) -> Result<&'a [u8], ReplicationError> {
        let available = self.remaining();
        let end = self.pos.checked_add(n).filter(|_| n <= available);
        match end.and_then(|end| self.data.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.error(DecodeProblem::Truncated {
                needed: n,
                available,
            })),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReplicationError> {
        let s = self.slice(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ReplicationError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16, ReplicationError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ReplicationError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ReplicationError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, ReplicationError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ReplicationError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A count or length sent as a signed Int16/Int32: negative is an error.
    pub(crate) fn len_i16(&mut self) -> Result<usize, ReplicationError> {
        let n = self.i16()?;
        usize::try_from(n).map_err(|_| self.error(DecodeProblem::NegativeLength(n.into())))
    }

    pub(crate) fn len_i32(&mut self) -> Result<usize, ReplicationError> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| self.error(DecodeProblem::NegativeLength(n.into())))
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self) -> Result<String, ReplicationError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.error(DecodeProblem::UnterminatedString))?;
        let s = self.slice(len)?;
        let s = std::str::from_utf8(s).map_err(|_| self.error(DecodeProblem::InvalidUtf8))?;
        self.pos += 1; // the NUL found above
        Ok(s.to_owned())
    }

    /// The next `n` bytes as `Bytes` (shared with the input when it was `Bytes`).
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, ReplicationError> {
        let owner = self.owner;
        let s = self.slice(n)?;
        Ok(match owner {
            Some(owner) => owner.slice_ref(s),
            None => Bytes::copy_from_slice(s),
        })
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> Result<Bytes, ReplicationError> {
        self.bytes(self.remaining())
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), ReplicationError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(DecodeProblem::TrailingBytes(n))),
        }
    }
}
