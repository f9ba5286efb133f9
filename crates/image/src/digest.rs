//! sha256 digests in the `sha256:<64 hex>` form of `slicelab_model::image::check_digest`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{ImageError, IoContext};

/// `sha256:` and the hex of a finished hash.
pub(crate) fn format_digest(hasher: Sha256) -> String {
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The digest of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String, ImageError> {
    let mut file = File::open(path).ctx("opening", path)?;
    let mut w = Sha256Writer::new(io::sink());
    io::copy(&mut file, &mut w).ctx("reading", path)?;
    Ok(w.digest())
}

/// Checks that the file hashes to `expected`; `what` names it in the error (e.g. "layer 2").
pub fn verify_file(path: &Path, expected: &str, what: &str) -> Result<(), ImageError> {
    let actual = sha256_file(path)?;
    check(what, expected, actual)
}

/// `Ok` when `actual == expected`, else [`ImageError::DigestMismatch`].
pub(crate) fn check(what: &str, expected: &str, actual: String) -> Result<(), ImageError> {
    if actual == expected {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// A writer that hashes (and counts) every byte passing through to `inner`.
pub struct Sha256Writer<W: Write> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Sha256Writer<W> {
    pub fn new(inner: W) -> Self {
        Sha256Writer {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of what was written so far.
    pub fn digest(&self) -> String {
        format_digest(self.hasher.clone())
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes (and counts) every byte read from `inner`.
pub(crate) struct Sha256Reader<R: Read> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> Sha256Reader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Sha256Reader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Reads the rest of the stream (so the digest covers all of it), then returns the digest
    /// and the total length.
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((format_digest(self.hasher), self.len))
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digests_of_files_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), EMPTY);
        assert!(verify_file(&p, EMPTY, "f").is_ok());
        std::fs::write(&p, b"abc").unwrap();
        let e = verify_file(&p, EMPTY, "blob x").unwrap_err();
        assert!(e.to_string().contains("blob x: digest mismatch"), "{e}");

        let mut w = Sha256Writer::new(Vec::new());
        w.write_all(b"abc").unwrap();
        assert_eq!(w.digest(), sha256_file(&p).unwrap());
        assert_eq!(w.len(), 3);
        let mut r = Sha256Reader::new(&b"abc"[..]);
        let mut first = [0u8; 1];
        r.read_exact(&mut first).unwrap();
        assert_eq!(r.finish().unwrap(), (w.digest(), 3));
        assert!(sha256_file(&dir.path().join("missing")).is_err());
    }
}
