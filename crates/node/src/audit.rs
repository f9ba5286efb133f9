//! Packet auditing on the node: the conntrack collector (`slicelab_flows`) attributes every flow a
//! sliver sends to its slice; records are journalled on disk and sent to central in
//! acknowledged batches, so neither a central outage nor a node restart loses or repeats one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use slicelab_client::Client;
use slicelab_flows::{Auditor, Collector, CollectorOptions, FlowJournal};
use tracing::warn;

use crate::runtime::Runtime;

/// Most bytes of unsent flow batches kept on disk; past it the oldest are dropped (and counted).
const JOURNAL_MAX: u64 = 256 << 20;
/// How often the collector's records are cut into a journal batch.
const BATCH_EVERY: Duration = Duration::from_secs(5);

/// Sliver address → slice, refreshed from the runtime when an unknown source shows up (a sliver
/// just created) at most once a second.
struct AddressBook {
    map: RwLock<HashMap<IpAddr, String>>,
    refreshed: Mutex<Instant>,
    rt: Arc<dyn Runtime + Send + Sync>,
}

impl AddressBook {
    fn refresh(&self) {
        let Ok(list) = self.rt.list() else { return };
        let fresh: HashMap<IpAddr, String> = list
            .into_iter()
            .filter_map(|o| Some((IpAddr::V4(o.address?), o.slice_name)))
            .collect();
        if let Ok(mut m) = self.map.write() {
            *m = fresh;
        }
    }

    fn resolve(&self, ip: IpAddr) -> Option<String> {
        if let Some(s) = self.map.read().ok().and_then(|m| m.get(&ip).cloned()) {
            return Some(s);
        }
        {
            let Ok(mut last) = self.refreshed.lock() else {
                return None;
            };
            if last.elapsed() < Duration::from_secs(1) {
                return None;
            }
            *last = Instant::now();
        }
        self.refresh();
        self.map.read().ok().and_then(|m| m.get(&ip).cloned())
    }
}

/// The running auditor of one node manager.
pub struct Audit {
    auditor: Auditor,
    journal: Arc<Mutex<FlowJournal>>,
}

impl Audit {
    /// Opens the collector in the calling thread's network namespace (the node manager's, which
    /// holds the slivers' NAT) and starts it. `None`, with a warning, when conntrack is not
    /// available: the node still runs slivers, unaudited, and says so.
    pub fn start(
        state_dir: &Path,
        rt: Arc<dyn Runtime + Send + Sync>,
        update_every: Duration,
    ) -> Option<Audit> {
        let book = Arc::new(AddressBook {
            map: RwLock::new(HashMap::new()),
            refreshed: Mutex::new(Instant::now() - Duration::from_secs(2)),
            rt,
        });
        book.refresh();
        let resolver = {
            let book = book.clone();
            move |ip: IpAddr| book.resolve(ip)
        };
        let opts = CollectorOptions {
            update_interval: update_every,
            ..CollectorOptions::default()
        };
        let collector = match Collector::open(opts, resolver) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "packet auditing is OFF: cannot open conntrack events");
                return None;
            }
        };
        let journal = match FlowJournal::open(&state_dir.join("flows"), JOURNAL_MAX) {
            Ok(j) => Arc::new(Mutex::new(j)),
            Err(e) => {
                warn!(error = %e, "packet auditing is OFF: cannot open the flow journal");
                return None;
            }
        };
        match Auditor::spawn(collector, journal.clone(), BATCH_EVERY) {
            Ok(auditor) => Some(Audit { auditor, journal }),
            Err(e) => {
                warn!(error = %e, "packet auditing is OFF: cannot start the auditor");
                None
            }
        }
    }

    /// Sends every journalled batch central has not acknowledged, oldest first; stops at the
    /// first failure (the rest wait for the next round).
    pub async fn send(&self, client: &Client) {
        let seqs = self
            .journal
            .lock()
            .map(|j| j.pending_seqs())
            .unwrap_or_default();
        for seq in seqs {
            let body = match self.journal.lock().map(|j| j.body(seq)) {
                Ok(Ok(b)) => b,
                _ => continue,
            };
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
                continue;
            };
            match client
                .post::<_, slicelab_model::sliver::ReportAck>("/node/flows", &value)
                .await
            {
                Ok(ack) => {
                    let upto = ack.acked_seq.max(seq);
                    if let Ok(mut j) = self.journal.lock() {
                        if let Err(e) = j.ack(upto) {
                            warn!(error = %e, "cannot record a flow batch as sent");
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, seq, "cannot send flow records; kept for later");
                    return;
                }
            }
        }
    }

    /// Stops the collector, saving what it holds.
    pub fn stop(self) {
        self.auditor.stop();
    }
}
