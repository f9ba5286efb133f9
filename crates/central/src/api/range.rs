//! The `Range` header of a blob download (RFC 9110 §14): one range of bytes, so a node resumes
//! a broken fetch where it stopped. Pure; the handler (`api::blobs`) turns it into 206 or 416.

/// The part of a blob of `size` bytes a `Range` header asks for, as `(first, last)` byte
/// (inclusive): `Ok(None)` for the whole blob — no header, or one not served partially
/// (another unit, several ranges, a malformed value: RFC 9110 lets a server ignore those) —
/// and `Err(Unsatisfiable)` for a range that starts at or past the end.
pub fn byte_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if first.is_empty() {
        // `bytes=-N`: the last N bytes.
        let Some(n) = num(last) else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(Unsatisfiable);
        }
        return Ok(Some((size.saturating_sub(n), size - 1)));
    }
    // `bytes=N-` and `bytes=N-M`.
    let Some(f) = num(first) else {
        return Ok(None);
    };
    let l = if last.is_empty() {
        u64::MAX
    } else {
        match num(last) {
            Some(l) if l >= f => l,
            _ => return Ok(None),
        }
    };
    if f >= size {
        return Err(Unsatisfiable);
    }
    Ok(Some((f, l.min(size - 1))))
}

/// A `Range` that asks for bytes a blob does not have (HTTP 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-"), 10), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some("bytes=4-"), 10), Ok(Some((4, 9))));
        assert_eq!(byte_range(Some("bytes=4-6"), 10), Ok(Some((4, 6))));
        assert_eq!(byte_range(Some("bytes=4-60"), 10), Ok(Some((4, 9))));
        assert_eq!(byte_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(byte_range(Some("bytes=-30"), 10), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Err(Unsatisfiable));
        assert_eq!(byte_range(Some("bytes=0-"), 0), Err(Unsatisfiable));
        assert_eq!(byte_range(Some("bytes=-0"), 10), Err(Unsatisfiable));
        // Not served partially: the whole blob.
        for ignored in [
            "items=0-",
            "bytes=6-4",
            "bytes=0-1,4-5",
            "bytes=x-",
            "bytes=-",
            "bytes=1",
        ] {
            assert_eq!(byte_range(Some(ignored), 10), Ok(None), "{ignored}");
        }
    }
}
