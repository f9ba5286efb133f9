//! Moving a sliver's writable layer into its uid range.
//!
//! The overlay's upper layer stores files with *host* ids. A sliver's files must be owned by its
//! slice's range (`sandbox::userns`): a new layer's root is handed to the range's root, and a
//! layer written before user namespaces existed (owned by host ids 0..65535, "root-mapped") is
//! shifted into the range once, keeping every file. The base the layer is owned by is kept in the
//! sliver's record (`layer_owner`, saved after the start that shifted it); a crash mid-shift just
//! repeats it (ids already moved are outside the old range and left alone): the shift is
//! idempotent.

use std::fs;
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, NodeError};
use crate::sandbox::userns::{IdRange, RANGE_SIZE};

/// In-range id `id` of a layer owned from `from` maps to the same offset from `to`; an id
/// outside that range (only host root could have made one) becomes the range's `nobody`.
pub fn shifted(id: u32, from: u32, to: u32) -> u32 {
    if id >= from && id - from < RANGE_SIZE {
        to + (id - from)
    } else if id >= to && id - to < RANGE_SIZE {
        id
    } else {
        to + 65_534
    }
}

/// Makes the layer at `upper`, owned from `owner` (0: a layer from before user namespaces, or a
/// brand-new one whose root is host root's), owned by `range`. Returns the number of entries
/// whose owner changed; the caller records `range.base` as the layer's owner.
pub fn ensure_layer_owned(upper: &Path, owner: u32, range: IdRange) -> Result<usize, NodeError> {
    if owner == range.base {
        return Ok(0);
    }
    shift_tree(upper, owner, range.base)
}

/// Shifts the owner of every entry under `root` (itself included, symlinks not followed, one
/// filesystem) from the range at `from` to the range at `to`.
pub fn shift_tree(root: &Path, from: u32, to: u32) -> Result<usize, NodeError> {
    let dev = fs::symlink_metadata(root)
        .ctx(|| format!("reading {}", root.display()))?
        .dev();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut changed = 0;
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).ctx(|| format!("reading {}", p.display()))?;
        if md.dev() != dev {
            continue;
        }
        let (uid, gid) = (shifted(md.uid(), from, to), shifted(md.gid(), from, to));
        if (uid, gid) != (md.uid(), md.gid()) {
            lchown(&p, Some(uid), Some(gid)).ctx(|| format!("chown {}", p.display()))?;
            changed += 1;
            // chown clears set-user/group-id bits on files; they belong to the same (shifted)
            // owner, so they are restored.
            let mode = md.permissions().mode();
            if md.is_file() && mode & 0o6000 != 0 {
                fs::set_permissions(&p, fs::Permissions::from_mode(mode & 0o7777))
                    .ctx(|| format!("chmod {}", p.display()))?;
            }
        }
        if md.is_dir() {
            for e in fs::read_dir(&p).ctx(|| format!("listing {}", p.display()))? {
                let e = e.ctx(|| format!("listing {}", p.display()))?;
                stack.push(e.path());
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_move_by_offset_and_strays_become_nobody() {
        let to = 1 << 28;
        assert_eq!(shifted(0, 0, to), to);
        assert_eq!(shifted(1000, 0, to), to + 1000);
        assert_eq!(shifted(65_535, 0, to), to + 65_535);
        assert_eq!(shifted(70_000, 0, to), to + 65_534);
        assert_eq!(shifted(to + 5, 0, to), to + 5, "already shifted");
        let other = to + RANGE_SIZE;
        assert_eq!(shifted(to + 7, to, other), other + 7);
    }
}
