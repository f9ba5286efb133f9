//! Compression of tar streams: sniffed by magic bytes, undone by flate2 (gzip) and zstd.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use slicelab_model::image::{Compression, LAYER_TAR, LAYER_TAR_GZIP, LAYER_TAR_ZSTD};

use crate::digest::Sha256Reader;
use crate::error::{ImageError, IoContext};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// The compression of a stream starting with `head` (anything else: none).
pub(crate) fn sniff_bytes(head: &[u8]) -> Compression {
    if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The compression of a file, by its first bytes.
pub(crate) fn sniff(path: &Path) -> Result<Compression, ImageError> {
    let mut head = [0u8; 4];
    let mut f = File::open(path).ctx("opening", path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).ctx("reading", path)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(sniff_bytes(&head[..n]))
}

/// The OCI media type of a tar layer compressed so.
pub(crate) fn layer_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => LAYER_TAR,
        Compression::Gzip => LAYER_TAR_GZIP,
        Compression::Zstd => LAYER_TAR_ZSTD,
    }
}

/// A reader of the uncompressed bytes of `file`.
pub(crate) fn decoder(file: File, c: Compression) -> io::Result<Box<dyn Read>> {
    let buffered = BufReader::with_capacity(256 * 1024, file);
    Ok(match c {
        Compression::None => Box::new(buffered),
        // Multi-member: pigz and concatenated gzip streams are one stream.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

/// The sha256 of the uncompressed stream of a blob (its OCI `diff_id`).
pub(crate) fn diff_id(path: &Path, c: Compression) -> Result<String, ImageError> {
    let file = File::open(path).ctx("opening", path)?;
    let reader = Sha256Reader::new(decoder(file, c).ctx("decompressing", path)?);
    let (digest, _) = reader
        .finish()
        .map_err(|e| ImageError::bad(format!("{}: decompressing: {e}", path.display())))?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn magic_bytes_and_round_trips() {
        assert_eq!(sniff_bytes(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff_bytes(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff_bytes(b"usr/"), Compression::None);
        assert_eq!(sniff_bytes(b""), Compression::None);

        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("p");
        std::fs::write(&plain, b"hello").unwrap();
        let gz = dir.path().join("g");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), Default::default());
        enc.write_all(b"hello").unwrap();
        enc.finish().unwrap();
        let zst = dir.path().join("z");
        std::fs::write(&zst, zstd::encode_all(&b"hello"[..], 3).unwrap()).unwrap();
        let want = crate::digest::sha256_file(&plain).unwrap();
        for (p, c) in [
            (&plain, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            assert_eq!(sniff(p).unwrap(), c);
            assert_eq!(diff_id(p, c).unwrap(), want);
        }
        assert!(diff_id(&plain, Compression::Gzip).is_err());
    }
}
