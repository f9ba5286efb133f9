//! The on-disk queue of flow batches waiting for central's acknowledgement, so neither a central
//! outage nor a node restart loses records.
//!
//! Layout of the journal directory (e.g. `<state_dir>/flows`):
//! - `batch-<seq, 20 digits>.json`: one batch, exactly the body of `POST /api/v1/node/flows`
//!   (`{"seq": N, "flows": [...]}`), so the sender can ship the bytes as they are.
//! - `acked`: the highest sequence number central acknowledged.
//!
//! Crash safety: a batch is written to a `.tmp` file, fsynced, renamed into place and the
//! directory fsynced; a crash leaves either no batch or a whole one (stray `.tmp` files are
//! removed at open). `acked` is replaced the same way *before* acknowledged batches are deleted,
//! so a crash between the two only leaves files that the next open deletes. Sequence numbers
//! never go back, even when every batch has been acknowledged and deleted, because central
//! ignores a `seq` it has already seen. A batch file that does not parse (disk damage) is renamed
//! `*.corrupt` and left for an operator rather than sent or silently deleted.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::{FlowError, IoContext};
use crate::FlowRecord;

/// Central accepts at most 100 000 flows per batch; larger appends are split.
pub const MAX_FLOWS_PER_BATCH: usize = 50_000;

/// The body of `POST /api/v1/node/flows`, and the content of one batch file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowBatch {
    pub seq: u64,
    pub flows: Vec<FlowRecord>,
}

#[derive(Debug)]
pub struct FlowJournal {
    dir: PathBuf,
    /// seq → file size, of every pending batch.
    pending: BTreeMap<u64, u64>,
    acked: u64,
    next_seq: u64,
    max_bytes: u64,
    dropped_batches: u64,
    dropped_flows: u64,
}

fn batch_name(seq: u64) -> String {
    format!("batch-{seq:020}.json")
}

fn parse_batch_name(name: &str) -> Option<u64> {
    name.strip_prefix("batch-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

impl FlowJournal {
    /// Opens (creating) the journal in `dir`. `max_bytes` bounds the disk it uses during a long
    /// central outage: past it the oldest batches are dropped (counted, logged), since a full
    /// disk would stop the node manager itself.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<FlowJournal, FlowError> {
        fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        let acked_path = dir.join("acked");
        let acked = match fs::read_to_string(&acked_path) {
            Ok(s) => s.trim().parse::<u64>().map_err(|e| FlowError::Journal {
                path: acked_path.clone(),
                message: format!("not a sequence number: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).ctx(|| format!("reading {}", acked_path.display())),
        };
        let mut j = FlowJournal {
            dir: dir.to_path_buf(),
            pending: BTreeMap::new(),
            acked,
            next_seq: acked + 1,
            max_bytes,
            dropped_batches: 0,
            dropped_flows: 0,
        };
        let mut removed = false;
        for entry in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
            let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with(".tmp") {
                // An append or ack that crashed before its rename: never became visible.
                fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
                removed = true;
                continue;
            }
            let Some(seq) = parse_batch_name(&name) else {
                continue;
            };
            j.next_seq = j.next_seq.max(seq + 1);
            if seq <= acked {
                // Acknowledged; the crash came between writing `acked` and deleting.
                fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
                removed = true;
                continue;
            }
            match j.load(seq) {
                Ok(b) if b.seq == seq => {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    j.pending.insert(seq, size);
                }
                other => {
                    let why = match other {
                        Ok(b) => format!("holds seq {} instead of {seq}", b.seq),
                        Err(e) => e.to_string(),
                    };
                    warn!(
                        "flow journal: setting aside damaged batch {}: {why}",
                        path.display()
                    );
                    let aside = path.with_extension("json.corrupt");
                    fs::rename(&path, &aside).ctx(|| format!("renaming {}", path.display()))?;
                    removed = true;
                }
            }
        }
        if removed {
            j.sync_dir()?;
        }
        Ok(j)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sync_dir(&self) -> Result<(), FlowError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .ctx(|| format!("syncing {}", self.dir.display()))
    }

    /// Writes `content` to `name` atomically and durably.
    fn replace(&self, name: &str, content: &[u8]) -> Result<u64, FlowError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        f.write_all(content)
            .and_then(|_| f.sync_all())
            .ctx(|| format!("writing {}", tmp.display()))?;
        drop(f);
        fs::rename(&tmp, &path).ctx(|| format!("renaming {}", tmp.display()))?;
        self.sync_dir()?;
        Ok(content.len() as u64)
    }

    /// Stores `flows` durably as one or more new batches; returns the last sequence number
    /// written, or `None` for an empty slice (no empty batches).
    pub fn append(&mut self, flows: &[FlowRecord]) -> Result<Option<u64>, FlowError> {
        let mut last = None;
        for chunk in flows.chunks(MAX_FLOWS_PER_BATCH) {
            let seq = self.next_seq;
            let body = serde_json::to_vec(&FlowBatchRef { seq, flows: chunk }).map_err(|e| {
                FlowError::Journal {
                    path: self.dir.clone(),
                    message: format!("encoding batch {seq}: {e}"),
                }
            })?;
            let size = self.replace(&batch_name(seq), &body)?;
            self.next_seq += 1;
            self.pending.insert(seq, size);
            last = Some(seq);
        }
        self.enforce_limit()?;
        Ok(last)
    }

    fn enforce_limit(&mut self) -> Result<(), FlowError> {
        let mut total: u64 = self.pending.values().sum();
        // Always keep the newest batch, whatever its size.
        while total > self.max_bytes && self.pending.len() > 1 {
            let Some((&seq, &size)) = self.pending.iter().next() else {
                break;
            };
            let flows = self.load(seq).map(|b| b.flows.len()).unwrap_or(0);
            let path = self.dir.join(batch_name(seq));
            fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
            self.pending.remove(&seq);
            total -= size;
            self.dropped_batches += 1;
            self.dropped_flows += flows as u64;
            warn!(
                "flow journal over {} bytes: dropped unsent batch {seq} ({flows} flows)",
                self.max_bytes
            );
        }
        Ok(())
    }

    fn load(&self, seq: u64) -> Result<FlowBatch, FlowError> {
        let path = self.dir.join(batch_name(seq));
        let bytes = fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| FlowError::Journal {
            path,
            message: e.to_string(),
        })
    }

    /// Sequence numbers of the batches not acknowledged yet, oldest first.
    pub fn pending_seqs(&self) -> Vec<u64> {
        self.pending.keys().copied().collect()
    }

    /// The pending batches, oldest first.
    pub fn pending(&self) -> Result<Vec<(u64, Vec<FlowRecord>)>, FlowError> {
        self.pending
            .keys()
            .map(|&seq| self.load(seq).map(|b| (seq, b.flows)))
            .collect()
    }

    /// One pending batch as the exact JSON body to POST.
    pub fn body(&self, seq: u64) -> Result<Vec<u8>, FlowError> {
        let path = self.dir.join(batch_name(seq));
        fs::read(&path).ctx(|| format!("reading {}", path.display()))
    }

    /// Central acknowledged every batch up to `seq`: forget them.
    pub fn ack(&mut self, seq: u64) -> Result<(), FlowError> {
        if seq <= self.acked {
            return Ok(());
        }
        // Never acknowledge what was not written: a confused peer must not make us skip numbers
        // we have not used yet.
        let seq = seq.min(self.next_seq - 1);
        self.replace("acked", seq.to_string().as_bytes())?;
        self.acked = seq;
        let done: Vec<u64> = self.pending.range(..=seq).map(|(&s, _)| s).collect();
        for s in done {
            let path = self.dir.join(batch_name(s));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx(|| format!("removing {}", path.display())),
            }
            self.pending.remove(&s);
        }
        Ok(())
    }

    pub fn last_acked(&self) -> u64 {
        self.acked
    }

    /// Bytes of unsent batches on disk.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.values().sum()
    }

    /// Batches and flows dropped because of `max_bytes` since open.
    pub fn dropped(&self) -> (u64, u64) {
        (self.dropped_batches, self.dropped_flows)
    }
}

/// Serialises like [`FlowBatch`] without copying the records.
#[derive(Serialize)]
struct FlowBatchRef<'a> {
    seq: u64,
    flows: &'a [FlowRecord],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u16) -> FlowRecord {
        FlowRecord {
            slice: "pl_a".into(),
            proto: 6,
            src: "10.77.0.2".parse().unwrap(),
            sport: 40000u16.wrapping_add(i),
            dst: "192.0.2.2".parse().unwrap(),
            dport: 9000,
            nat_src: Some("192.0.2.1".parse().unwrap()),
            nat_sport: Some(40000u16.wrapping_add(i)),
            ct_id: i.into(),
            start: 1_700_000_000,
            end: 1_700_000_001,
            done: true,
            tx_bytes: 1000,
            tx_pkts: 10,
            rx_bytes: 100,
            rx_pkts: 2,
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn append_pending_ack_and_reopen() {
        let d = tempfile::tempdir().unwrap();
        let mut j = FlowJournal::open(d.path(), u64::MAX).unwrap();
        assert_eq!(j.append(&[]).unwrap(), None);
        assert_eq!(j.append(&[rec(1), rec(2)]).unwrap(), Some(1));
        assert_eq!(j.append(&[rec(3)]).unwrap(), Some(2));
        assert_eq!(
            j.pending().unwrap(),
            vec![(1, vec![rec(1), rec(2)]), (2, vec![rec(3)])]
        );
        // The file is the POST body.
        let body: FlowBatch = serde_json::from_slice(&j.body(2).unwrap()).unwrap();
        assert_eq!(
            body,
            FlowBatch {
                seq: 2,
                flows: vec![rec(3)]
            }
        );
        drop(j);
        let mut j = FlowJournal::open(d.path(), u64::MAX).unwrap();
        assert_eq!(j.pending_seqs(), vec![1, 2]);
        j.ack(1).unwrap();
        assert_eq!(j.pending_seqs(), vec![2]);
        j.ack(1).unwrap(); // repeated ack: harmless
        j.ack(2).unwrap();
        assert!(j.pending().unwrap().is_empty());
        drop(j);
        // Everything acknowledged and deleted: numbering still goes on.
        let mut j = FlowJournal::open(d.path(), u64::MAX).unwrap();
        assert_eq!(j.last_acked(), 2);
        assert_eq!(j.append(&[rec(4)]).unwrap(), Some(3));
        assert_eq!(files(d.path()), vec!["acked", &batch_name(3)]);
    }

    #[test]
    fn ack_beyond_what_was_written_does_not_skip_numbers() {
        let d = tempfile::tempdir().unwrap();
        let mut j = FlowJournal::open(d.path(), u64::MAX).unwrap();
        j.append(&[rec(1)]).unwrap();
        j.ack(1000).unwrap();
        assert_eq!(j.last_acked(), 1);
        assert_eq!(j.append(&[rec(2)]).unwrap(), Some(2));
    }

    #[test]
    fn crash_leftovers_are_cleaned_at_open() {
        let d = tempfile::tempdir().unwrap();
        let mut j = FlowJournal::open(d.path(), u64::MAX).unwrap();
        j.append(&[rec(1)]).unwrap();
        j.append(&[rec(2)]).unwrap();
        j.append(&[rec(3)]).unwrap();
        drop(j);
        // A crash during an append: half a temp file that was never renamed.
        fs::write(
            d.path().join(format!("{}.tmp", batch_name(4))),
            b"{\"seq\":4,\"flo",
        )
        .unwrap();
        // A crash during an ack: new `acked` written, batches not yet deleted; and a torn temp
        // file of the ack after it.
        fs::write(d.path().join("acked"), b"1").unwrap();
        fs::write(d.path().join("acked.tmp"), b"").unwrap();
        // A damaged batch (as if the disk lost its tail).
        let b3 = d.path().join(batch_name(3));
        let full = fs::read(&b3).unwrap();
        fs::write(&b3, &full[..full.len() / 2]).unwrap();

        let mut j = FlowJournal::open(d.path(), u64::MAX).unwrap();
        assert_eq!(j.pending().unwrap(), vec![(2, vec![rec(2)])]);
        assert_eq!(
            files(d.path()),
            vec![
                "acked".to_string(),
                batch_name(2),
                format!("batch-{:020}.json.corrupt", 3)
            ]
        );
        // Numbers are not reused, not even the damaged one's.
        assert_eq!(j.append(&[rec(5)]).unwrap(), Some(4));
    }

    #[test]
    fn garbage_acked_file_is_an_error_not_a_reset() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("acked"), b"twelve").unwrap();
        assert!(matches!(
            FlowJournal::open(d.path(), u64::MAX),
            Err(FlowError::Journal { .. })
        ));
    }

    #[test]
    fn size_limit_drops_the_oldest_batches_but_keeps_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let one = serde_json::to_vec(&FlowBatch {
            seq: 1,
            flows: vec![rec(1)],
        })
        .unwrap()
        .len() as u64;
        let mut j = FlowJournal::open(d.path(), one * 2 + 10).unwrap();
        for i in 1..=4 {
            j.append(&[rec(i)]).unwrap();
        }
        assert_eq!(j.pending_seqs(), vec![3, 4]);
        assert_eq!(j.dropped(), (2, 2));
        let mut tiny = FlowJournal::open(&d.path().join("tiny"), 1).unwrap();
        tiny.append(&[rec(1)]).unwrap();
        assert_eq!(tiny.pending_seqs(), vec![1]);
    }

    #[test]
    fn big_appends_are_split_into_batches_central_accepts() {
        let d = tempfile::tempdir().unwrap();
        let mut j = FlowJournal::open(d.path(), u64::MAX).unwrap();
        let many: Vec<FlowRecord> = (0..(MAX_FLOWS_PER_BATCH + 5))
            .map(|i| rec(i as u16))
            .collect();
        assert_eq!(j.append(&many).unwrap(), Some(2));
        let p = j.pending().unwrap();
        assert_eq!(p[0].1.len(), MAX_FLOWS_PER_BATCH);
        assert_eq!(p[1].1.len(), 5);
    }
}
