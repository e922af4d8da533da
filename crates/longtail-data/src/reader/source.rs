//! Opens a text input as a buffered byte stream, transparently gunzipping.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use flate2::read::MultiGzDecoder;

use crate::DataError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const BUF_BYTES: usize = 256 * 1024;

/// Shared count of on-disk bytes consumed, for progress reporting.
#[derive(Debug, Clone, Default)]
pub(crate) struct ByteCounter(Rc<Cell<u64>>);

impl ByteCounter {
    pub(crate) fn get(&self) -> u64 {
        self.0.get()
    }
}

struct Counting<R> {
    inner: R,
    counter: ByteCounter,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.0.set(self.counter.0.get() + n as u64);
        Ok(n)
    }
}

/// Opens `path` for line reading. Gzip is recognised by its magic bytes, so
/// a compressed file without `.gz` (or a plain one with it) still works.
pub(crate) fn open_text(path: &Path) -> Result<(Box<dyn BufRead>, ByteCounter), DataError> {
    let open_err = |source| DataError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    if !meta.is_file() {
        return Err(open_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let counter = ByteCounter::default();
    let mut raw = BufReader::with_capacity(
        BUF_BYTES,
        Counting {
            inner: file,
            counter: counter.clone(),
        },
    );
    let is_gzip = raw
        .fill_buf()
        .map_err(DataError::read(path))?
        .starts_with(&GZIP_MAGIC);
    let reader: Box<dyn BufRead> = if is_gzip {
        // multi-member: `cat a.gz b.gz` is a valid gzip stream
        Box::new(BufReader::with_capacity(
            BUF_BYTES,
            MultiGzDecoder::new(raw),
        ))
    } else {
        Box::new(raw)
    };
    Ok((reader, counter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn read_all(path: &Path) -> Vec<u8> {
        let (mut r, counter) = open_text(path).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(counter.get(), std::fs::metadata(path).unwrap().len());
        out
    }

    #[test]
    fn gzip_detected_by_magic_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let disguised = dir.path().join("plain-name.jsonl");
        std::fs::write(&disguised, gz(b"hello\n")).unwrap();
        assert_eq!(read_all(&disguised), b"hello\n");

        let not_gz = dir.path().join("x.jsonl.gz");
        std::fs::write(&not_gz, b"plain\n").unwrap();
        assert_eq!(read_all(&not_gz), b"plain\n");

        let multi = dir.path().join("m.csv.gz");
        let mut both = gz(b"a\n");
        both.extend(gz(b"b\n"));
        std::fs::write(&multi, both).unwrap();
        assert_eq!(read_all(&multi), b"a\nb\n");
    }

    #[test]
    fn missing_file_and_directory_are_open_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.csv");
        let err = open_text(&missing).err().unwrap();
        assert!(matches!(err, DataError::Open { .. }));
        assert!(err.to_string().contains("nope.csv"));
        assert!(matches!(
            open_text(dir.path()).err().unwrap(),
            DataError::Open { .. }
        ));
    }
}
