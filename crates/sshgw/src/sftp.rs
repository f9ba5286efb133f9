//! The `sftp` subsystem, served in process under the sliver's root directory.
//!
//! The gateway runs as root on the host, so path handling is the security boundary here:
//! * every path the client names is resolved with `openat2(root, path, RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)`: `..` and symlinks (absolute or relative) are resolved as if the
//!   sliver's root were `/`, so no path can reach outside it;
//! * operations on a name itself (remove, rmdir, mkdir, rename, lstat, readlink, symlink) first
//!   open the parent directory that way, then act with `*at` calls on a single final component;
//! * operations that follow a path (stat, open, setstat) act on the descriptor `openat2` returned
//!   (or on its `/proc/self/fd/N` alias, which names that very inode and is not re-resolved).
//!
//! Paths are shown to the client as absolute paths inside the sliver; relative paths are relative
//! to the sliver's `/`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File as StdFile;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode};
use nix::unistd::{fchownat, unlinkat, Gid, Uid, UnlinkatFlags};
use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use tokio::io::AsyncWriteExt;

/// Largest read the client gets in one reply.
const MAX_READ: u32 = 256 * 1024;
/// Entries per READDIR reply.
const DIR_BATCH: usize = 128;
/// Open handles per session.
const MAX_HANDLES: usize = 256;

pub(crate) async fn run(channel: Channel<Msg>, root: PathBuf, owner: Option<(u32, u32)>) {
    let root_fd = match std::fs::File::open(&root) {
        Ok(f) => OwnedFd::from(f),
        Err(e) => {
            tracing::warn!("sftp: cannot open sliver root {}: {e}", root.display());
            let _ = channel.close().await;
            return;
        }
    };
    let server = SftpServer {
        root: Arc::new(root_fd),
        owner,
        handles: HashMap::new(),
        next_handle: 0,
    };
    // russh_sftp speaks the protocol over one end of an in-memory pipe, in its own task; this
    // task moves bytes between the other end and the channel, so that it knows when the SFTP
    // session is over and can report an exit status (scp fails without one).
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    russh_sftp::server::run(theirs, server).await;
    let (mut from_sftp, mut to_sftp) = tokio::io::split(ours);
    let (mut rx, tx) = channel.split();
    let mut writer = tx.make_writer();
    let out = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_sftp, &mut writer).await;
    });
    loop {
        match rx.wait().await {
            Some(ChannelMsg::Data { data }) => {
                if to_sftp.write_all(&data).await.is_err() {
                    break;
                }
            }
            Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
    let _ = to_sftp.shutdown().await;
    drop(to_sftp);
    let _ = out.await;
    let _ = tx.eof().await;
    let _ = tx.exit_status(0).await;
    let _ = tx.close().await;
}

enum Open {
    File(Arc<StdFile>),
    Dir { entries: Vec<File>, sent: usize },
}

struct SftpServer {
    root: Arc<OwnedFd>,
    owner: Option<(u32, u32)>,
    handles: HashMap<String, Open>,
    next_handle: u64,
}

fn status_of(e: Errno) -> StatusCode {
    match e {
        Errno::ENOENT | Errno::ENOTDIR => StatusCode::NoSuchFile,
        Errno::EACCES | Errno::EPERM | Errno::EXDEV | Errno::ELOOP => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    }
}

fn io_status(e: std::io::Error) -> StatusCode {
    status_of(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

/// The path inside the sliver, made lexically absolute (`.`/`..` folded, never above `/`).
fn normalize(path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn attrs_of(st: &FileStat) -> FileAttributes {
    FileAttributes {
        size: u64::try_from(st.st_size).ok(),
        uid: Some(st.st_uid),
        gid: Some(st.st_gid),
        permissions: Some(st.st_mode),
        atime: u32::try_from(st.st_atime).ok(),
        mtime: u32::try_from(st.st_mtime).ok(),
        ..Default::default()
    }
}

fn proc_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl SftpServer {
    /// Opens `path` inside the root, following symlinks only within it.
    fn open_in_root(&self, path: &Path, flags: OFlag, mode: Mode) -> Result<OwnedFd, StatusCode> {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // openat2 is strict: O_PATH takes no other access flags, and a mode only with O_CREAT.
        let flags = if flags.contains(OFlag::O_PATH) {
            flags | OFlag::O_CLOEXEC
        } else {
            flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY
        };
        let mode = if flags.contains(OFlag::O_CREAT) {
            mode
        } else {
            Mode::empty()
        };
        let how = OpenHow::new()
            .flags(flags)
            .mode(mode)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = openat2(self.root.as_raw_fd(), rel, how).map_err(status_of)?;
        // SAFETY: openat2 just returned this descriptor and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The directory holding `path`'s last component (opened inside the root) and that
    /// component; `None` for `/` itself.
    fn parent_and_name(&self, path: &str) -> Result<(OwnedFd, Vec<u8>), StatusCode> {
        let p = normalize(path);
        let name = p
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .ok_or(StatusCode::PermissionDenied)?;
        let parent = p.parent().unwrap_or(Path::new("/"));
        let dir = self.open_in_root(parent, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())?;
        Ok((dir, name))
    }

    fn give_to_owner(&self, dir: &OwnedFd, name: &[u8]) {
        if let Some((uid, gid)) = self.owner {
            let _ = fchownat(
                Some(dir.as_raw_fd()),
                OsStr::from_bytes(name),
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            );
        }
    }

    fn new_handle(&mut self, open: Open) -> Result<String, StatusCode> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(StatusCode::Failure);
        }
        self.next_handle += 1;
        let h = self.next_handle.to_string();
        self.handles.insert(h.clone(), open);
        Ok(h)
    }

    fn apply_attrs(&self, fd: &OwnedFd, attrs: &FileAttributes) -> Result<(), StatusCode> {
        let path = proc_path(fd);
        if let Some(size) = attrs.size {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_status)?;
            f.set_len(size).map_err(io_status)?;
        }
        if let Some(mode) = attrs.permissions {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io_status)?;
        }
        if let (Some(atime), Some(mtime)) = (attrs.atime, attrs.mtime) {
            use nix::sys::time::TimeSpec;
            let (a, m) = (
                TimeSpec::new(i64::from(atime), 0),
                TimeSpec::new(i64::from(mtime), 0),
            );
            nix::sys::stat::utimensat(
                None,
                &path,
                &a,
                &m,
                nix::sys::stat::UtimensatFlags::FollowSymlink,
            )
            .map_err(status_of)?;
        }
        Ok(())
    }
}

impl russh_sftp::server::Handler for SftpServer {
    type Error = StatusCode;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let p = normalize(&path);
        Ok(Name {
            id,
            files: vec![File::dummy(p.to_string_lossy().into_owned())],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let fd = self.open_in_root(&normalize(&path), OFlag::O_PATH, Mode::empty())?;
        let st = fstat(fd.as_raw_fd()).map_err(status_of)?;
        Ok(Attrs {
            id,
            attrs: attrs_of(&st),
        })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        if normalize(&path) == Path::new("/") {
            return self.stat(id, path).await;
        }
        let (dir, name) = self.parent_and_name(&path)?;
        let st = fstatat(
            Some(dir.as_raw_fd()),
            OsStr::from_bytes(&name),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(status_of)?;
        Ok(Attrs {
            id,
            attrs: attrs_of(&st),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        match self.handles.get(&handle) {
            Some(Open::File(f)) => {
                let st = fstat(f.as_raw_fd()).map_err(status_of)?;
                Ok(Attrs {
                    id,
                    attrs: attrs_of(&st),
                })
            }
            _ => Err(StatusCode::Failure),
        }
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let fd = self.open_in_root(&normalize(&path), OFlag::O_PATH, Mode::empty())?;
        self.apply_attrs(&fd, &attrs)?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let fd = match self.handles.get(&handle) {
            Some(Open::File(f)) => f.try_clone().map_err(io_status)?,
            _ => return Err(StatusCode::Failure),
        };
        self.apply_attrs(&OwnedFd::from(fd), &attrs)?;
        Ok(ok(id))
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let mut flags = match (
            pflags.contains(OpenFlags::READ),
            pflags.contains(OpenFlags::WRITE),
        ) {
            (true, true) => OFlag::O_RDWR,
            (false, true) => OFlag::O_WRONLY,
            _ => OFlag::O_RDONLY,
        };
        if pflags.contains(OpenFlags::APPEND) {
            flags |= OFlag::O_APPEND;
        }
        if pflags.contains(OpenFlags::CREATE) {
            flags |= OFlag::O_CREAT;
        }
        if pflags.contains(OpenFlags::TRUNCATE) {
            flags |= OFlag::O_TRUNC;
        }
        if pflags.contains(OpenFlags::EXCLUDE) {
            flags |= OFlag::O_EXCL;
        }
        let mode = Mode::from_bits_truncate(attrs.permissions.unwrap_or(0o644) & 0o777);
        let path = normalize(&filename);
        let existed = flags.contains(OFlag::O_CREAT)
            && self
                .open_in_root(&path, OFlag::O_PATH, Mode::empty())
                .is_ok();
        let fd = self.open_in_root(&path, flags, mode)?;
        let st = fstat(fd.as_raw_fd()).map_err(status_of)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(StatusCode::Failure);
        }
        if flags.contains(OFlag::O_CREAT) && !existed {
            if let Some((uid, gid)) = self.owner {
                let _ = nix::unistd::fchown(
                    fd.as_raw_fd(),
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                );
            }
        }
        let handle = self.new_handle(Open::File(Arc::new(StdFile::from(fd))))?;
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(_) => Ok(ok(id)),
            None => Err(StatusCode::Failure),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(Open::File(f)) = self.handles.get(&handle) else {
            return Err(StatusCode::Failure);
        };
        let f = f.clone();
        let len = len.min(MAX_READ) as usize;
        let data = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            let n = f.read_at(&mut buf, offset)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>(buf)
        })
        .await
        .map_err(|_| StatusCode::Failure)?
        .map_err(io_status)?;
        if data.is_empty() && len > 0 {
            return Err(StatusCode::Eof);
        }
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let Some(Open::File(f)) = self.handles.get(&handle) else {
            return Err(StatusCode::Failure);
        };
        let f = f.clone();
        tokio::task::spawn_blocking(move || f.write_all_at(&data, offset))
            .await
            .map_err(|_| StatusCode::Failure)?
            .map_err(io_status)?;
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let dir = self.open_in_root(
            &normalize(&path),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        // Listing through /proc/self/fd/N reads the directory we opened, without re-resolving.
        let mut entries = Vec::new();
        for name in [".", ".."] {
            if let Ok(st) = fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                entries.push(File::new(name, attrs_of(&st)));
            }
        }
        for e in std::fs::read_dir(proc_path(&dir)).map_err(io_status)? {
            let e = e.map_err(io_status)?;
            let name = e.file_name();
            if let Ok(st) = fstatat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                entries.push(File::new(name.to_string_lossy(), attrs_of(&st)));
            }
        }
        let handle = self.new_handle(Open::Dir { entries, sent: 0 })?;
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let Some(Open::Dir { entries, sent }) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure);
        };
        if *sent >= entries.len() {
            return Err(StatusCode::Eof);
        }
        let end = (*sent + DIR_BATCH).min(entries.len());
        let files = entries[*sent..end].to_vec();
        *sent = end;
        Ok(Name { id, files })
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let (dir, name) = self.parent_and_name(&filename)?;
        unlinkat(
            Some(dir.as_raw_fd()),
            OsStr::from_bytes(&name),
            UnlinkatFlags::NoRemoveDir,
        )
        .map_err(status_of)?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let (dir, name) = self.parent_and_name(&path)?;
        let mode = Mode::from_bits_truncate(attrs.permissions.unwrap_or(0o755) & 0o777);
        mkdirat(Some(dir.as_raw_fd()), OsStr::from_bytes(&name), mode).map_err(status_of)?;
        self.give_to_owner(&dir, &name);
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let (dir, name) = self.parent_and_name(&path)?;
        unlinkat(
            Some(dir.as_raw_fd()),
            OsStr::from_bytes(&name),
            UnlinkatFlags::RemoveDir,
        )
        .map_err(status_of)?;
        Ok(ok(id))
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let (odir, oname) = self.parent_and_name(&oldpath)?;
        let (ndir, nname) = self.parent_and_name(&newpath)?;
        nix::fcntl::renameat(
            Some(odir.as_raw_fd()),
            OsStr::from_bytes(&oname),
            Some(ndir.as_raw_fd()),
            OsStr::from_bytes(&nname),
        )
        .map_err(status_of)?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let (dir, name) = self.parent_and_name(&path)?;
        let target = nix::fcntl::readlinkat(Some(dir.as_raw_fd()), OsStr::from_bytes(&name))
            .map_err(status_of)?;
        Ok(Name {
            id,
            files: vec![File::dummy(target.to_string_lossy().into_owned())],
        })
    }

    async fn symlink(
        &mut self,
        id: u32,
        linkpath: String,
        targetpath: String,
    ) -> Result<Status, Self::Error> {
        // The target is stored as given; it is only ever resolved inside the root (above).
        let (dir, name) = self.parent_and_name(&linkpath)?;
        nix::unistd::symlinkat(
            targetpath.as_str(),
            Some(dir.as_raw_fd()),
            OsStr::from_bytes(&name),
        )
        .map_err(status_of)?;
        self.give_to_owner(&dir, &name);
        Ok(ok(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_never_climbs_above_root() {
        assert_eq!(normalize("../../etc/passwd"), PathBuf::from("/etc/passwd"));
        assert_eq!(normalize("/a/./b/../c"), PathBuf::from("/a/c"));
        assert_eq!(normalize(""), PathBuf::from("/"));
        assert_eq!(normalize("."), PathBuf::from("/"));
    }
}
