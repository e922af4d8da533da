//! Physical line reading with a hard per-line memory bound.

use std::io::{self, BufRead};

/// What [`BoundedLines::next_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineStatus {
    /// The line (without `\n` / `\r\n`) is in the buffer.
    Complete,
    /// The line exceeded the limit; the buffer is empty and the rest of the
    /// line was skipped. `len` is its full length in bytes.
    TooLong { len: u64 },
}

/// Splits a byte stream into lines, never buffering more than `max` bytes of
/// one line: longer lines are scanned to their end and discarded.
pub(crate) struct BoundedLines<R> {
    inner: R,
    max: usize,
    line_no: u64,
}

impl<R: BufRead> BoundedLines<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            line_no: 0,
        }
    }

    /// Reads the next line into `buf` (cleared first). Returns its 1-based
    /// number and status, or `None` at end of input. A final line without a
    /// trailing newline still counts; an empty remainder after the last
    /// newline does not.
    pub(crate) fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<(u64, LineStatus)>> {
        buf.clear();
        let mut len: u64 = 0;
        let mut too_long = false;
        let mut saw_bytes = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !saw_bytes {
                    return Ok(None);
                }
                break;
            }
            saw_bytes = true;
            let (chunk, consumed, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            len += chunk.len() as u64;
            if !too_long {
                if buf.len() + chunk.len() > self.max {
                    too_long = true;
                    buf.clear();
                    // give back the memory a huge line would otherwise pin
                    buf.shrink_to(self.max.min(64 * 1024));
                } else {
                    buf.extend_from_slice(chunk);
                }
            }
            self.inner.consume(consumed);
            if done {
                break;
            }
        }
        self.line_no += 1;
        if too_long {
            return Ok(Some((self.line_no, LineStatus::TooLong { len })));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        if self.line_no == 1 && buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
            buf.drain(..3);
        }
        Ok(Some((self.line_no, LineStatus::Complete)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn collect(input: &[u8], max: usize, cap: usize) -> Vec<(u64, LineStatus, Vec<u8>)> {
        let mut lines = BoundedLines::new(
            BufReader::with_capacity(cap, Cursor::new(input.to_vec())),
            max,
        );
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some((n, s)) = lines.next_line(&mut buf).unwrap() {
            out.push((n, s, buf.clone()));
        }
        out
    }

    #[test]
    fn splits_lines_and_strips_crlf_and_bom() {
        let out = collect(b"\xEF\xBB\xBFa\r\nbb\n\nccc", 100, 3);
        let got: Vec<_> = out.iter().map(|(n, _, b)| (*n, b.as_slice())).collect();
        assert_eq!(got, vec![(1, &b"a"[..]), (2, b"bb"), (3, b""), (4, b"ccc")]);
        assert!(collect(b"", 10, 4).is_empty());
        assert_eq!(collect(b"x\n", 10, 4).len(), 1);
    }

    #[test]
    fn over_long_lines_are_skipped_not_buffered() {
        let mut input = b"short\n".to_vec();
        input.extend(vec![b'x'; 10_000]);
        input.extend(b"\nafter\n");
        // small BufReader capacity: the long line arrives in many chunks
        let out = collect(&input, 100, 16);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].2, b"short");
        assert_eq!(out[1].0, 2);
        assert_eq!(out[1].1, LineStatus::TooLong { len: 10_000 });
        assert!(out[1].2.is_empty());
        assert_eq!((out[2].0, out[2].2.as_slice()), (3, &b"after"[..]));
    }

    #[test]
    fn line_exactly_at_limit_is_fine() {
        let out = collect(b"abcd\nabcde\n", 4, 2);
        assert_eq!(out[0].1, LineStatus::Complete);
        assert_eq!(out[1].1, LineStatus::TooLong { len: 5 });
    }
}

/// Shared row-level checks for text formats: valid UTF-8 and not blank.
pub(crate) fn line_text(line: u64, bytes: &[u8]) -> Result<&str, super::Reject> {
    use super::{Reject, RejectReason};
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Reject::new(
            line,
            RejectReason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(Reject::new(line, RejectReason::EmptyLine, "blank line"));
    }
    Ok(text)
}

/// The reject for a line that exceeded `max` bytes.
pub(crate) fn too_long(line: u64, len: u64, max: usize) -> super::Reject {
    super::Reject::new(
        line,
        super::RejectReason::LineTooLong,
        format!("line is {len} bytes, limit is {max}"),
    )
}

#[cfg(test)]
mod text_tests {
    use super::*;
    use crate::reader::RejectReason;

    #[test]
    fn line_text_rejects_bad_utf8_and_blank() {
        assert_eq!(line_text(1, b"ok").unwrap(), "ok");
        let r = line_text(7, b"ab\xffcd").unwrap_err();
        assert_eq!((r.line, r.reason), (7, RejectReason::InvalidUtf8));
        assert!(r.detail.contains("byte 2"));
        assert_eq!(
            line_text(2, b" \t ").unwrap_err().reason,
            RejectReason::EmptyLine
        );
        assert_eq!(
            line_text(2, b"").unwrap_err().reason,
            RejectReason::EmptyLine
        );
    }
}
