//! A spool: a durable on-disk queue of numbered batches, each kept until a peer acknowledges it.
//! The node manager queues its usage batches (`slicelab_node::accounting`) and its flow batches
//! (`slicelab_flows::FlowJournal`) for central this way, so neither a central outage nor a node
//! restart loses a batch or sends it under a number central has already seen.
//!
//! Layout of a spool directory:
//! - `batch-<seq, 20 digits>.json`: one batch, bytes as the caller gave them (the names sort by
//!   number);
//! - `acked`: the highest sequence number the peer acknowledged (absent: none yet);
//! - anything else is the caller's (e.g. the accountant's `state.json`) and left alone.
//!
//! Crash safety: every file is written by [`write_atomic`] (temp file, fsync, rename, directory
//! fsync), so a crash leaves either no batch or a whole one; stray `*.tmp` files are removed at
//! [`Spool::open`]. `acked` is replaced *before* acknowledged batches are deleted, so a crash
//! between the two only leaves files that the next open deletes.
//!
//! Numbering: sequence numbers ([`Seq`], the wire's `i64`) start at 1 and never go back, not even
//! when every batch has been acknowledged and deleted, nor over a batch set aside as damaged:
//! central ignores a `seq` it has already stored.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A batch's sequence number: the `seq` of the wire's batches (`i64`, from 1).
pub type Seq = i64;

/// What can go wrong with a spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The `acked` file does not hold a sequence number. Not treated as "none acknowledged": that
    /// would restart the numbering below what the peer has seen.
    #[error("{path}: not a sequence number: {message}")]
    BadAcked { path: PathBuf, message: String },
}

trait Context<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T, SpoolError>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T, SpoolError> {
        self.map_err(|source| SpoolError::Io {
            context: format!("{what} {}", path.display()),
            source,
        })
    }
}

/// The file name of batch `seq`; names sort in numeric order.
pub fn batch_file_name(seq: Seq) -> String {
    format!("batch-{seq:020}.json")
}

/// The number in a batch's file name, also of one set aside as damaged (`….json.corrupt`).
fn parse_batch_name(name: &str) -> Option<(Seq, bool)> {
    let rest = name.strip_prefix("batch-")?;
    let (digits, damaged) = match rest.strip_suffix(".json.corrupt") {
        Some(d) => (d, true),
        None => (rest.strip_suffix(".json")?, false),
    };
    let seq: Seq = digits.parse().ok()?;
    (seq >= 1).then_some((seq, damaged))
}

/// Writes `bytes` to `path` atomically and durably: a temp file next to it (`<name>.tmp`),
/// fsynced, renamed over `path`, then the directory fsynced so the rename survives a power cut.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// An open spool directory. One owner at a time (the caller wraps it in a mutex if threads share
/// it); nothing else writes batch files there.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// seq → bytes on disk, of every batch not acknowledged yet.
    pending: BTreeMap<Seq, u64>,
    acked: Seq,
    next: Seq,
}

impl Spool {
    /// Opens (creating) the spool in `dir`: reads `acked`, deletes acknowledged batches and crash
    /// leftovers, and continues the numbering above every batch ever seen there.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).ctx("creating", dir)?;
        let acked_path = dir.join("acked");
        let acked = match fs::read_to_string(&acked_path) {
            Ok(s) => s.trim().parse::<Seq>().map_err(|e| SpoolError::BadAcked {
                path: acked_path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).ctx("reading", &acked_path),
        };
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            pending: BTreeMap::new(),
            acked,
            next: acked + 1,
        };
        let mut removed = false;
        for entry in fs::read_dir(dir).ctx("listing", dir)? {
            let entry = entry.ctx("listing", dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with(".tmp") {
                // A write that crashed before its rename: it never became visible.
                fs::remove_file(&path).ctx("removing", &path)?;
                removed = true;
                continue;
            }
            let Some((seq, damaged)) = parse_batch_name(&name) else {
                continue;
            };
            spool.next = spool.next.max(seq + 1);
            if damaged {
                continue;
            }
            if seq <= acked {
                // Acknowledged; the crash came between writing `acked` and deleting.
                fs::remove_file(&path).ctx("removing", &path)?;
                removed = true;
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            spool.pending.insert(seq, size);
        }
        if removed {
            spool.sync_dir()?;
        }
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where batch `seq` lives.
    pub fn path(&self, seq: Seq) -> PathBuf {
        self.dir.join(batch_file_name(seq))
    }

    fn sync_dir(&self) -> Result<(), SpoolError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .ctx("syncing", &self.dir)
    }

    /// The number the next [`push`](Self::push) will use (callers put it inside the batch).
    pub fn next_seq(&self) -> Seq {
        self.next
    }

    /// The highest number used so far (0 if none).
    pub fn last_issued(&self) -> Seq {
        self.next - 1
    }

    /// The highest number the peer acknowledged (0 if none).
    pub fn last_acked(&self) -> Seq {
        self.acked
    }

    /// Stores `bytes` durably as batch [`next_seq`](Self::next_seq); returns its number.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Seq, SpoolError> {
        let seq = self.next;
        let path = self.path(seq);
        write_atomic(&path, bytes).ctx("writing", &path)?;
        self.next += 1;
        self.pending.insert(seq, bytes.len() as u64);
        Ok(seq)
    }

    /// Numbers of the batches not acknowledged yet, oldest first.
    pub fn pending(&self) -> Vec<Seq> {
        self.pending.keys().copied().collect()
    }

    /// The oldest batch not acknowledged yet.
    pub fn oldest(&self) -> Option<Seq> {
        self.pending.keys().next().copied()
    }

    /// Bytes of the batches not acknowledged yet.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.values().sum()
    }

    /// The content of batch `seq`.
    pub fn read(&self, seq: Seq) -> Result<Vec<u8>, SpoolError> {
        let path = self.path(seq);
        fs::read(&path).ctx("reading", &path)
    }

    /// The peer acknowledged every batch up to `upto`: record it, then delete them. Never beyond
    /// the last number used: a confused peer must not make us skip numbers not used yet.
    pub fn ack(&mut self, upto: Seq) -> Result<(), SpoolError> {
        let upto = upto.min(self.last_issued());
        if upto <= self.acked {
            return Ok(());
        }
        let acked_path = self.dir.join("acked");
        write_atomic(&acked_path, upto.to_string().as_bytes()).ctx("writing", &acked_path)?;
        self.acked = upto;
        let done: Vec<Seq> = self.pending.range(..=upto).map(|(&s, _)| s).collect();
        for seq in done {
            self.remove(seq)?;
        }
        Ok(())
    }

    /// Deletes one unacknowledged batch that will never be sent (too old, refused by the peer,
    /// over a size limit); returns the bytes it held. Its number stays used.
    pub fn discard(&mut self, seq: Seq) -> Result<u64, SpoolError> {
        let size = self.pending.get(&seq).copied().unwrap_or(0);
        self.remove(seq)?;
        Ok(size)
    }

    fn remove(&mut self, seq: Seq) -> Result<(), SpoolError> {
        let path = self.path(seq);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("removing", &path),
        }
        self.pending.remove(&seq);
        Ok(())
    }

    /// Moves a damaged batch out of the queue, renamed `….json.corrupt`, for an operator to look
    /// at rather than sending or silently deleting it. Returns its new path.
    pub fn set_aside(&mut self, seq: Seq) -> Result<PathBuf, SpoolError> {
        let path = self.path(seq);
        let aside = path.with_extension("json.corrupt");
        fs::rename(&path, &aside).ctx("renaming", &path)?;
        self.pending.remove(&seq);
        self.sync_dir()?;
        Ok(aside)
    }

    /// Numbering continues above `seq` from now on: for a caller that also keeps the highest
    /// number it used elsewhere. Takes effect on disk with the next push.
    pub fn issue_after(&mut self, seq: Seq) {
        self.next = self.next.max(seq + 1);
    }

    /// The peer holds numbers up to `floor` that we never used (our directory was reset): give
    /// every pending batch, oldest first, a new number above `floor`. `rewrite(new_seq, bytes)`
    /// returns the batch with its new number inside, or `None` for a batch it cannot read (it is
    /// discarded). Each new batch is written before its old file is deleted, so a crash keeps
    /// every batch at least once.
    pub fn renumber_after(
        &mut self,
        floor: Seq,
        mut rewrite: impl FnMut(Seq, &[u8]) -> Option<Vec<u8>>,
    ) -> Result<(), SpoolError> {
        self.issue_after(floor);
        for old in self.pending() {
            if old > floor {
                continue;
            }
            let bytes = self.read(old)?;
            if let Some(new_bytes) = rewrite(self.next, &bytes) {
                self.push(&new_bytes)?;
            }
            self.remove(old)?;
        }
        if floor > self.acked {
            let acked_path = self.dir.join("acked");
            write_atomic(&acked_path, floor.to_string().as_bytes()).ctx("writing", &acked_path)?;
            self.acked = floor;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
