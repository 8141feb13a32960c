//! Ranged reads, judged the same way on every REST store: exactly the bytes
//! asked for, or an error. Services shorten a range that runs past the end
//! and some ignore the range altogether; neither may hand back short or
//! other bytes as if they were the range.

use crate::client::Reply;
use bytes::Bytes;
use http::StatusCode;
use lifeboat_store::StoreError;

/// `len` bytes from `offset` of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    pub len: u64,
}

/// Why a ranged answer is not the range.
#[derive(Debug)]
pub enum RangeFailure {
    /// The range does not lie within the object; what came instead.
    Beyond(String),
    /// Any other answer (missing object, refusal...): the caller maps it
    /// as it maps every failed call.
    Failed(Box<Reply>),
}

impl ByteRange {
    /// The range of `len` bytes from `offset`.
    pub fn new(offset: u64, len: u64) -> ByteRange {
        ByteRange { offset, len }
    }

    /// The value of a `Range` header (`bytes=first-last`), or `None` for an
    /// empty range: HTTP cannot express one, so the store asks for the
    /// object's size instead (which still reports a missing object) and
    /// answers with [`ByteRange::empty_within`].
    pub fn header_value(&self) -> Option<String> {
        let last = self.offset.saturating_add(self.len.checked_sub(1)?);
        Some(format!("bytes={}-{last}", self.offset))
    }

    /// An empty range of an object of `size` bytes: empty bytes where it
    /// starts at or before the end (the end included), else the error.
    pub fn empty_within(&self, size: u64) -> Result<Bytes, RangeFailure> {
        if self.offset <= size {
            Ok(Bytes::new())
        } else {
            Err(RangeFailure::Beyond(format!("the object has {size} bytes")))
        }
    }

    /// The range out of the answer to a ranged GET: 206 with exactly the
    /// range, or 200 with the whole object (the range was ignored) that
    /// holds it. A short 206 or a 416 mean the range runs past the end.
    pub fn from_reply(&self, reply: Reply) -> Result<Bytes, RangeFailure> {
        let got = reply.body.len() as u64;
        let got_text = || RangeFailure::Beyond(format!("got {got} bytes"));
        match reply.status {
            StatusCode::PARTIAL_CONTENT if got == self.len => Ok(reply.body),
            StatusCode::PARTIAL_CONTENT => Err(got_text()),
            StatusCode::OK => {
                let end = self.offset.saturating_add(self.len);
                match (usize::try_from(self.offset), usize::try_from(end)) {
                    (Ok(start), Ok(end)) if got >= end as u64 => Ok(reply.body.slice(start..end)),
                    _ => Err(got_text()),
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE => Err(RangeFailure::Beyond(
                "the range starts at or past the end".into(),
            )),
            _ => Err(RangeFailure::Failed(Box::new(reply))),
        }
    }

    /// The error of a range that does not lie within the object: not
    /// retryable, naming the range and what came instead.
    pub fn beyond_error(&self, location: String, key: &str, what: &str) -> StoreError {
        StoreError::Backend {
            location,
            key: key.to_string(),
            detail: format!(
                "range {}+{} beyond the object's end ({what})",
                self.offset, self.len
            ),
        }
    }
}

#[cfg(test)]
#[path = "range_tests.rs"]
mod tests;
