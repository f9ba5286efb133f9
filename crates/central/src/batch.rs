//! Group commit of node reports: reports arriving together are stored in one transaction.
//!
//! Each request still waits for the commit that holds its report before it is acknowledged, so a
//! 2xx keeps its meaning (durable); the batch only shares the commit's fsync.

use std::sync::Arc;

use slicelab_model::{Node, NodeReport};
use slicelab_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Most reports per transaction: bounds a transaction's length and the wait of its first report.
const MAX_BATCH: usize = 512;

pub struct Pending {
    pub node: Node,
    pub report: NodeReport,
    pub now: i64,
    pub reply: oneshot::Sender<Result<i64, String>>,
}

pub type ReportQueue = mpsc::Sender<Pending>;

/// Starts the writer; it ends when every sender is gone.
pub fn start(store: Arc<Store>) -> ReportQueue {
    let (tx, mut rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            let now = batch.iter().map(|p| p.now).max().unwrap_or(0);
            let items: Vec<(&Node, &NodeReport)> =
                batch.iter().map(|p| (&p.node, &p.report)).collect();
            match store.store_reports(now, &items).await {
                Ok(acked) => {
                    for (p, seq) in batch.into_iter().zip(acked) {
                        let _ = p.reply.send(Ok(seq));
                    }
                }
                Err(e) => {
                    let msg = match &e {
                        StoreError::Conflict(m) => m.clone(),
                        other => {
                            tracing::error!(error = %other, "storing a batch of reports failed");
                            String::new()
                        }
                    };
                    for p in batch {
                        let _ = p.reply.send(Err(msg.clone()));
                    }
                }
            }
        }
    });
    tx
}
