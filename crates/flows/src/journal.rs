//! The on-disk queue of flow batches waiting for central's acknowledgement, so neither a central
//! outage nor a node restart loses records: a [`Spool`] whose batches are exactly the body of
//! `POST /api/v1/node/flows` (`{"seq": N, "flows": [...]}`, a [`FlowBatch`]), so the sender can ship
//! the bytes as they are.
//!
//! What the journal adds to the spool (which gives the layout, crash safety and numbering): a
//! batch file that does not parse or holds another `seq` (disk damage) is set aside as
//! `*.corrupt` at open, for an operator, rather than sent or silently deleted; appends are split
//! into batches central accepts; and `max_bytes` bounds the disk used in a long outage.

use std::path::Path;

use serde::Serialize;
use slicelab_spool::{Seq, Spool};
use tracing::warn;

use crate::error::FlowError;
use crate::{FlowBatch, FlowRecord};

/// Central accepts at most 100 000 flows per batch; larger appends are split.
pub const MAX_FLOWS_PER_BATCH: usize = 50_000;

#[derive(Debug)]
pub struct FlowJournal {
    spool: Spool,
    max_bytes: u64,
    dropped_batches: u64,
    dropped_flows: u64,
}

impl FlowJournal {
    /// Opens (creating) the journal in `dir`. `max_bytes` bounds the disk it uses during a long
    /// central outage: past it the oldest batches are dropped (counted, logged), since a full
    /// disk would stop the node manager itself.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<FlowJournal, FlowError> {
        let mut j = FlowJournal {
            spool: Spool::open(dir)?,
            max_bytes,
            dropped_batches: 0,
            dropped_flows: 0,
        };
        for seq in j.spool.pending() {
            let why = match j.load(seq) {
                Ok(b) if b.seq == seq => continue,
                Ok(b) => format!("holds seq {} instead of {seq}", b.seq),
                Err(e) => e.to_string(),
            };
            let aside = j.spool.set_aside(seq)?;
            warn!(
                "flow journal: set aside damaged batch {}: {why}",
                aside.display()
            );
        }
        Ok(j)
    }

    pub fn dir(&self) -> &Path {
        self.spool.dir()
    }

    /// Stores `flows` durably as one or more new batches; returns the last sequence number
    /// written, or `None` for an empty slice (no empty batches).
    pub fn append(&mut self, flows: &[FlowRecord]) -> Result<Option<Seq>, FlowError> {
        let mut last = None;
        for chunk in flows.chunks(MAX_FLOWS_PER_BATCH) {
            let seq = self.spool.next_seq();
            let body = serde_json::to_vec(&FlowBatchRef { seq, flows: chunk }).map_err(|e| {
                FlowError::Journal {
                    path: self.dir().to_path_buf(),
                    message: format!("encoding batch {seq}: {e}"),
                }
            })?;
            last = Some(self.spool.push(&body)?);
        }
        self.enforce_limit()?;
        Ok(last)
    }

    fn enforce_limit(&mut self) -> Result<(), FlowError> {
        // Always keep the newest batch, whatever its size.
        while self.spool.pending_bytes() > self.max_bytes && self.spool.pending().len() > 1 {
            let Some(seq) = self.spool.oldest() else {
                break;
            };
            let flows = self.load(seq).map(|b| b.flows.len()).unwrap_or(0);
            self.spool.discard(seq)?;
            self.dropped_batches += 1;
            self.dropped_flows += flows as u64;
            warn!(
                "flow journal over {} bytes: dropped unsent batch {seq} ({flows} flows)",
                self.max_bytes
            );
        }
        Ok(())
    }

    fn load(&self, seq: Seq) -> Result<FlowBatch, FlowError> {
        let bytes = self.spool.read(seq)?;
        serde_json::from_slice(&bytes).map_err(|e| FlowError::Journal {
            path: self.spool.path(seq),
            message: e.to_string(),
        })
    }

    /// Sequence numbers of the batches not acknowledged yet, oldest first.
    pub fn pending_seqs(&self) -> Vec<Seq> {
        self.spool.pending()
    }

    /// The pending batches, oldest first.
    pub fn pending(&self) -> Result<Vec<(Seq, Vec<FlowRecord>)>, FlowError> {
        self.spool
            .pending()
            .into_iter()
            .map(|seq| self.load(seq).map(|b| (seq, b.flows)))
            .collect()
    }

    /// One pending batch as the exact JSON body to POST.
    pub fn body(&self, seq: Seq) -> Result<Vec<u8>, FlowError> {
        Ok(self.spool.read(seq)?)
    }

    /// Central acknowledged every batch up to `seq`: forget them. Never beyond the last batch
    /// written (see [`Spool::ack`]).
    pub fn ack(&mut self, seq: Seq) -> Result<(), FlowError> {
        Ok(self.spool.ack(seq)?)
    }

    pub fn last_acked(&self) -> Seq {
        self.spool.last_acked()
    }

    /// Bytes of unsent batches on disk.
    pub fn pending_bytes(&self) -> u64 {
        self.spool.pending_bytes()
    }

    /// Batches and flows dropped because of `max_bytes` since open.
    pub fn dropped(&self) -> (u64, u64) {
        (self.dropped_batches, self.dropped_flows)
    }
}

/// Serialises like [`FlowBatch`] without copying the records.
#[derive(Serialize)]
struct FlowBatchRef<'a> {
    seq: Seq,
    flows: &'a [FlowRecord],
}

#[cfg(test)]
mod tests {
    use super::*;
    use slicelab_spool::{batch_file_name as batch_name, SpoolError};
    use std::fs;

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
            Err(FlowError::Spool(SpoolError::BadAcked { .. }))
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
