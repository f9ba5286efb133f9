//! Entry names of a layer tar, checked before anything touches the disk (pure).
//!
//! A name is split on `/`; empty and `.` components are dropped, so a leading `/` or `./` is
//! neutralised to the layer's root; a `..` component anywhere refuses the whole layer.

/// The components of an entry name or hard-link target, root first; empty for the root itself.
pub(crate) fn components(raw: &[u8]) -> Result<Vec<&[u8]>, String> {
    if raw.contains(&0) {
        return Err("a NUL byte in the name".into());
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("a `..` component".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `a/b/c` from components (a path relative to the layer's root; `.` for the root).
pub(crate) fn join(comps: &[&[u8]]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What the last component of an entry name means to overlayfs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    /// An ordinary name.
    Plain,
    /// `.wh.NAME`: NAME is deleted from the layers below.
    Whiteout(&'a [u8]),
    /// `.wh..wh..opq`: the directory hides everything below it.
    Opaque,
    /// Another `.wh.` name (e.g. aufs' `.wh..wh.plnk`): not created.
    Ignored,
}

pub(crate) fn kind(last: &[u8]) -> Kind<'_> {
    if last == OPAQUE {
        return Kind::Opaque;
    }
    match last.strip_prefix(WHITEOUT) {
        None => Kind::Plain,
        Some(rest) if rest.starts_with(WHITEOUT) => Kind::Ignored,
        Some(b"" | b"." | b"..") => Kind::Ignored,
        Some(rest) => Kind::Whiteout(rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_neutralised_or_refused() {
        let ok: &[(&[u8], &[&[u8]])] = &[
            (b"etc/passwd", &[b"etc", b"passwd"]),
            (b"./etc//passwd", &[b"etc", b"passwd"]),
            (b"/abs/file", &[b"abs", b"file"]),
            (b"///./abs/./", &[b"abs"]),
            (b"./", &[]),
            (b"", &[]),
            (b"a/...", &[b"a", b"..."]),
        ];
        for (raw, want) in ok {
            assert_eq!(components(raw).unwrap(), *want, "{raw:?}");
        }
        for bad in [&b"../escape"[..], b"a/../../b", b"/..", b"a/..", b"a\0b"] {
            assert!(components(bad).is_err(), "{bad:?}");
        }
        assert_eq!(join(&[]), b".");
        assert_eq!(join(&[b"a", b"b"]), b"a/b");
    }

    #[test]
    fn whiteouts_are_recognised() {
        assert_eq!(kind(b"passwd"), Kind::Plain);
        assert_eq!(kind(b".wh.passwd"), Kind::Whiteout(b"passwd"));
        assert_eq!(kind(b".wh..wh..opq"), Kind::Opaque);
        assert_eq!(kind(b".wh..wh.plnk"), Kind::Ignored);
        assert_eq!(kind(b".wh."), Kind::Ignored);
        assert_eq!(kind(b".wh.."), Kind::Ignored);
        assert_eq!(kind(b".whx"), Kind::Plain);
    }
}
