//! Wake-ups between central replicas on one PostgreSQL database.
//!
//! A write wakes the long-polls it concerns through `AppState::changed`/`changed_nodes`, after
//! its commit. Those also hand the wake-up to this replica's [`Publisher`], whose task sends it
//! to the other replicas as a notification on `slicelab_store::CHANGES_CHANNEL`; each replica's
//! [`listen`] task bumps the same local signals for what it hears (which also invalidates its
//! desired-state cache, keyed by those signals). So every write path that wakes local polls
//! wakes the other replicas' too, with no second call to forget.
//!
//! A payload is `<replica> all`, `<replica> <hostname> <hostname> …` (hostnames hold no
//! spaces) or `<replica> slices=<id>,<id> <hostname> …` (a slice change: each part of a split
//! repeats the ids), split to stay under PostgreSQL's 8000-byte limit; past [`MAX_PAYLOADS`] it
//! becomes `all`. A replica ignores its own notifications. A listener that lost its connection wakes
//! every local poll once it listens again, since notifications sent meanwhile are lost. If a
//! replica dies between a commit and its notification, the other replicas' polls still see the
//! write at their periodic re-check (`api::node`, every 5 s). On SQLite (one process) there is
//! no publisher and no listener.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use slicelab_store::{Heard, Store, MAX_NOTIFY_PAYLOAD};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::state::AppState;

/// Most notifications one burst of wake-ups becomes before it is sent as `all` instead.
const MAX_PAYLOADS: usize = 16;
/// In a slice change's notification instead of its hostnames: every node the slices were or are on.
const EVERY_NODE_OF: &str = "*";
/// Pause before listening again after the listener failed to reconnect.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// What a write wakes (and marks stale in the desired-state index, `crate::desired`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Anything may have changed (a person's keys, a site, the platform's defaults).
    All,
    /// These nodes themselves changed (and possibly which slices they hold).
    Nodes(Vec<String>),
    /// Only these slices changed; `hosts` are their nodes before and after.
    Slices {
        slices: Vec<i64>,
        hosts: Vec<String>,
    },
}

/// Hands this replica's wake-ups to the task that notifies the other replicas.
#[derive(Clone)]
pub(crate) struct Publisher {
    tx: mpsc::UnboundedSender<Wake>,
}

impl Publisher {
    /// Starts the notifying task (needs a tokio runtime); it ends when every `Publisher` is gone.
    pub(crate) fn start(store: Arc<Store>, metrics: Arc<Metrics>, replica: Arc<str>) -> Publisher {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(publish(store, metrics, replica, rx));
        Publisher { tx }
    }

    pub(crate) fn send(&self, w: Wake) {
        // Only fails once the task is gone (shutting down): nobody is left to tell.
        let _ = self.tx.send(w);
    }
}

/// Sends wake-ups as they come; those queued meanwhile go out together.
async fn publish(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    replica: Arc<str>,
    mut rx: mpsc::UnboundedReceiver<Wake>,
) {
    while let Some(first) = rx.recv().await {
        let mut all = false;
        let mut hosts = BTreeSet::new();
        let mut by_slice: Vec<(Vec<i64>, BTreeSet<String>)> = Vec::new();
        let mut absorb = |w: Wake| match w {
            Wake::All => all = true,
            Wake::Nodes(h) => hosts.extend(h),
            Wake::Slices { slices, hosts } => by_slice.push((slices, hosts.into_iter().collect())),
        };
        absorb(first);
        while let Ok(w) = rx.try_recv() {
            absorb(w);
        }
        let mut out = payloads(&replica, all, None, &hosts);
        if !all {
            for (slices, h) in &by_slice {
                out.extend(payloads(&replica, false, Some(slices), h));
            }
            if out.len() > MAX_PAYLOADS {
                out = payloads(&replica, true, None, &hosts);
            }
        }
        for p in out {
            match store.notify_changes(&p).await {
                Ok(()) => {
                    metrics
                        .replica_notifies_sent
                        .fetch_add(1, Ordering::Relaxed);
                }
                // The write is committed; other replicas' polls see it at their re-check.
                Err(e) => tracing::warn!(error = %e, "cannot notify the other central replicas"),
            }
        }
    }
}

/// The notifications announcing `all`, or `hosts` (with the `slices` that changed on them, if
/// only those), from `replica`: none if nothing changed.
pub(crate) fn payloads(
    replica: &str,
    all: bool,
    slices: Option<&[i64]>,
    hosts: &BTreeSet<String>,
) -> Vec<String> {
    let everything = vec![format!("{replica} all")];
    if all {
        return everything;
    }
    let head = match slices {
        Some(ids) => {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!("{replica} slices={}", ids.join(","))
        }
        None => replica.to_string(),
    };
    if head.len() > MAX_NOTIFY_PAYLOAD / 2 {
        return everything;
    }
    // Too many hosts for a slice change: each replica finds them itself, from the slices' nodes
    // before and after (`DesiredIndex::reread_slices`), instead of marking everything.
    let theirs = vec![format!("{head} {EVERY_NODE_OF}")];
    let everything = if slices.is_some() {
        theirs.clone()
    } else {
        everything
    };
    if slices.is_some() && hosts.is_empty() {
        return theirs;
    }
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for h in hosts {
        if h.is_empty() || h.contains(char::is_whitespace) || h == "all" || h == EVERY_NODE_OF {
            // Not a hostname central stores; waking everyone is always correct.
            return everything;
        }
        if !cur.is_empty() && cur.len() + 1 + h.len() > MAX_NOTIFY_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        if cur.is_empty() {
            cur.push_str(&head);
        }
        cur.push(' ');
        cur.push_str(h);
        if cur.len() > MAX_NOTIFY_PAYLOAD || out.len() > MAX_PAYLOADS {
            return everything;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    if out.len() > MAX_PAYLOADS {
        return everything;
    }
    out
}

/// A notification read back: who sent it and what it wakes; `None` if malformed.
pub(crate) fn parse(payload: &str) -> Option<(&str, Wake)> {
    let mut words = payload.split(' ');
    let from = words.next().filter(|w| !w.is_empty())?;
    let rest: Vec<&str> = words.collect();
    match rest.as_slice() {
        [] => None,
        ["all"] => Some((from, Wake::All)),
        [first, hosts @ ..] if first.starts_with("slices=") => {
            let ids = first.trim_start_matches("slices=").split(',');
            let slices = ids.map(|i| i.parse().ok()).collect::<Option<Vec<i64>>>()?;
            let hosts = hosts.iter().map(|h| h.to_string()).collect();
            Some((from, Wake::Slices { slices, hosts }))
        }
        hosts => Some((
            from,
            Wake::Nodes(hosts.iter().map(|h| h.to_string()).collect()),
        )),
    }
}

/// Listens for the other replicas' notifications until `stop`, waking local polls as they say.
/// Returns at once on SQLite.
pub(crate) async fn listen(st: AppState, stop: CancellationToken) {
    let mut listener = None;
    loop {
        let l = match &mut listener {
            Some(l) => l,
            None => {
                let made = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = st.store.change_listener() => r,
                };
                match made {
                    Ok(None) => return,
                    Ok(Some(l)) => {
                        // Whatever was sent before we listened is unknown.
                        st.wake_local(&Wake::All);
                        listener.insert(l)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for other central replicas' changes; retrying");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(LISTEN_RETRY) => continue,
                        }
                    }
                }
            }
        };
        let heard = tokio::select! {
            _ = stop.cancelled() => return,
            h = l.next() => h,
        };
        match heard {
            Ok(Heard::Payload(p)) => match parse(&p) {
                Some((from, _)) if from == st.replica.as_ref() => {}
                Some((_, wake)) => {
                    st.metrics
                        .replica_notifies_heard
                        .fetch_add(1, Ordering::Relaxed);
                    match wake {
                        Wake::Slices { slices, hosts } if hosts == [EVERY_NODE_OF] => {
                            match st.desired.reread_slices(&st.store, &slices).await {
                                Ok(hosts) => st.bump_nodes(&hosts),
                                Err(e) => {
                                    tracing::warn!(error = %e, "cannot re-read changed slices; waking every poll");
                                    st.wake_local(&Wake::All);
                                }
                            }
                        }
                        wake => st.wake_local(&wake),
                    }
                }
                None => tracing::warn!(payload = %p, "malformed change notification"),
            },
            Ok(Heard::Reconnected) => {
                tracing::warn!("change listener reconnected; waking every poll (notifications may have been missed)");
                st.wake_local(&Wake::All);
            }
            Err(e) => {
                // The next call reconnects (and then says `Reconnected`).
                tracing::warn!(error = %e, "change listener failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(LISTEN_RETRY) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> BTreeSet<String> {
        (0..n).map(|i| format!("node{i:05}.example.org")).collect()
    }

    #[test]
    fn a_payload_names_its_sender_and_round_trips() {
        assert_eq!(payloads("r1", true, None, &hosts(3)), ["r1 all"]);
        assert!(payloads("r1", false, None, &BTreeSet::new()).is_empty());
        let p = payloads("r1", false, None, &hosts(2));
        assert_eq!(p, ["r1 node00000.example.org node00001.example.org"]);
        assert_eq!(
            parse(&p[0]),
            Some((
                "r1",
                Wake::Nodes(vec![
                    "node00000.example.org".into(),
                    "node00001.example.org".into()
                ])
            ))
        );
        assert_eq!(parse("r2 all"), Some(("r2", Wake::All)));
        assert_eq!(parse("r2"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn many_hosts_are_split_under_the_limit_then_become_all() {
        // 1,000 hostnames of 21 bytes: three notifications, each under PostgreSQL's limit, that
        // together name every host once.
        let h = hosts(1000);
        let p = payloads("r1", false, None, &h);
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|x| x.len() <= MAX_NOTIFY_PAYLOAD));
        let mut back = BTreeSet::new();
        for x in &p {
            match parse(x) {
                Some(("r1", Wake::Nodes(v))) => back.extend(v),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, h);
        // Past MAX_PAYLOADS notifications, one `all` says it more cheaply.
        assert_eq!(payloads("r1", false, None, &hosts(20_000)), ["r1 all"]);
        // Something that is not a hostname cannot be told apart: wake all.
        let odd: BTreeSet<String> = ["a b".to_string()].into();
        assert_eq!(payloads("r1", false, None, &odd), ["r1 all"]);
    }

    #[test]
    fn a_slice_change_names_its_slices_in_every_part() {
        let h = hosts(1000);
        let p = payloads("r1", false, Some(&[7, 42]), &h);
        assert_eq!(p.len(), 3);
        let mut back = BTreeSet::new();
        for x in &p {
            assert!(x.len() <= MAX_NOTIFY_PAYLOAD);
            match parse(x) {
                Some(("r1", Wake::Slices { slices, hosts })) => {
                    assert_eq!(slices, [7, 42]);
                    back.extend(hosts);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, h);
        assert_eq!(parse("r1 slices=x a.b"), None);
        // Past the limit: the slices alone, each replica finds their nodes.
        let p = payloads("r1", false, Some(&[7]), &hosts(20_000));
        assert_eq!(p, ["r1 slices=7 *"]);
        assert_eq!(
            payloads("r1", false, Some(&[7]), &BTreeSet::new()),
            ["r1 slices=7 *"]
        );
    }
}
