//! Pseudo-terminals on the host: the master side stays in the gateway (async reads and writes),
//! the slave becomes the child's stdio and controlling terminal.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::pty::Winsize;
use tokio::io::unix::AsyncFd;

/// Terminal size as the SSH client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub cols: u32,
    pub rows: u32,
    pub pix_width: u32,
    pub pix_height: u32,
}

fn clamp(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

impl Size {
    fn winsize(self) -> Winsize {
        Winsize {
            // 0 means "unknown" to SSH; give programs the classic default instead.
            ws_row: if self.rows == 0 { 24 } else { clamp(self.rows) },
            ws_col: if self.cols == 0 { 80 } else { clamp(self.cols) },
            ws_xpixel: clamp(self.pix_width),
            ws_ypixel: clamp(self.pix_height),
        }
    }
}

/// The gateway's side of a pty. Cloning shares the same descriptor (one reader, one writer).
#[derive(Clone)]
pub struct Master {
    fd: Arc<AsyncFd<OwnedFd>>,
}

/// Opens a pty of `size`. Both descriptors are close-on-exec; the caller hands the slave to the
/// child as stdio (which clears the flag on the duplicates) and then drops it.
pub fn open(size: Size) -> io::Result<(Master, OwnedFd)> {
    let pty = nix::pty::openpty(Some(&size.winsize()), None).map_err(io::Error::from)?;
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    }
    let flags = fcntl(pty.master.as_raw_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(pty.master.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same for the
    // AsyncFd's whole life.
    let fd = unsafe { AsyncFd::register(pty.master) }.map_err(io::Error::from)?;
    let master = Master { fd: Arc::new(fd) };
    Ok((master, pty.slave))
}

impl Master {
    /// Reads output of the terminal; `Ok(0)` once every slave descriptor is closed (Linux reports
    /// that as `EIO`).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_raw_fd(), buf).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data` as terminal input.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| {
                nix::unistd::write(fd.get_ref().as_fd(), data).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// Tells the terminal (and so the foreground process group, by SIGWINCH) its new size.
    pub fn resize(&self, size: Size) -> io::Result<()> {
        let ws = size.winsize();
        // SAFETY: TIOCSWINSZ reads one `struct winsize` from the pointer, which is valid for the
        // duration of the call; the descriptor is owned by `self`.
        let r = unsafe { libc::ioctl(self.fd.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// For a child's `pre_exec`: start a new session and make fd 0 (the pty slave) its controlling
/// terminal. Only async-signal-safe calls.
pub fn make_controlling_terminal() -> io::Result<()> {
    nix::unistd::setsid().map_err(io::Error::from)?;
    // SAFETY: plain ioctl on fd 0 with an integer argument.
    let r = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
