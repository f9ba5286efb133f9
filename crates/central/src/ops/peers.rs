//! Peers (`model::peer`): admins register, change, suspend, resume and remove peer
//! authorities; and, as the *host* of a peer's slices, the one write a peer's signed call makes
//! here: its slice on our nodes, decided by our policy (its quota, our nodes only, tags that
//! grant no resources), run under our defaults.

use slicelab_model::peer::{
    foreign_slice_name, ForeignSlice, ForeignSliceAck, Peer, PeerCreate, PeerRegistry, PeerState,
    PeerStatus, PeerSuspend, PeerUpdate,
};
use slicelab_model::time::WEEK;
use slicelab_model::{names, ssh_key, tags, Actor, TagName};
use slicelab_placement::Reservation;
use slicelab_store::StoreError;

use crate::ops::{OpError, OpResult};
use crate::state::AppState;

/// The most keys and tags a peer's slice may bring.
const MAX_KEYS: usize = 1000;
const MAX_TAGS: usize = 200;
/// Our bound on a peer's slice's life here, whatever its expiry at home.
const MAX_LIFETIME: i64 = 8 * WEEK;

fn check_fingerprint(fp: Option<&str>) -> OpResult<()> {
    if let Some(fp) = fp {
        slicelab_client::Trust::fingerprint(fp)
            .map_err(|e| OpError::invalid("ca_fingerprint", e.to_string()))?;
    }
    Ok(())
}

fn person(actor: &Actor) -> OpResult<()> {
    match actor {
        Actor::Person { .. } => Ok(()),
        _ => Err(OpError::Unauthorized("log in first".into())),
    }
}

/// Refuses a local change on the site that stands for a peer here (its nodes and slices are
/// its own authority's to change).
pub(crate) async fn refuse_peer_site(st: &AppState, login_base: &str) -> OpResult<()> {
    match st.store.peer(login_base).await {
        Ok(p) => Err(OpError::Conflict(format!(
            "{login_base} stands for peer authority {}: its nodes and slices are made there",
            p.name
        ))),
        Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Registers a peer (admins): its name must be free as a site's `login_base` here.
pub async fn create(st: &AppState, actor: &Actor, c: &PeerCreate) -> OpResult<Peer> {
    actor.require_admin("register peer authorities")?;
    let own = st.authority()?;
    c.validate(own)?;
    check_fingerprint(c.ca_fingerprint.as_deref())?;
    let p = st
        .store
        .create_peer(&actor.label(), crate::now(), c)
        .await?;
    st.peering_kick.notify_one();
    Ok(p)
}

/// Every peer (any person: they see the peers' nodes anyway).
pub async fn list(st: &AppState, actor: &Actor) -> OpResult<Vec<Peer>> {
    person(actor)?;
    Ok(st.store.list_peers().await?)
}

pub async fn show(st: &AppState, actor: &Actor, key: &str) -> OpResult<Peer> {
    person(actor)?;
    Ok(st.store.peer(key).await?)
}

pub async fn update(st: &AppState, actor: &Actor, key: &str, u: &PeerUpdate) -> OpResult<Peer> {
    actor.require_admin("change peer authorities")?;
    u.validate()?;
    check_fingerprint(u.ca_fingerprint.as_deref())?;
    let p = st.store.peer(key).await?;
    let (p, _) = st
        .store
        .update_peer(&actor.label(), crate::now(), &p, u)
        .await?;
    st.peering_kick.notify_one();
    Ok(p)
}

/// Mission control: stops every sliver of the peer's slices here at once (kept, not
/// destroyed) and refuses its changes until resumed; the peer learns the reason.
pub async fn suspend(st: &AppState, actor: &Actor, key: &str, s: &PeerSuspend) -> OpResult<Peer> {
    actor.require_admin("suspend peer authorities")?;
    s.validate()?;
    let p = st.store.peer(key).await?;
    let (p, woken) = st
        .store
        .set_peer_state(
            &actor.label(),
            crate::now(),
            &p,
            PeerState::Suspended,
            &s.reason,
        )
        .await?;
    st.changed_nodes(&woken);
    Ok(p)
}

pub async fn resume(st: &AppState, actor: &Actor, key: &str) -> OpResult<Peer> {
    actor.require_admin("resume peer authorities")?;
    let p = st.store.peer(key).await?;
    let (p, woken) = st
        .store
        .set_peer_state(&actor.label(), crate::now(), &p, PeerState::Active, "")
        .await?;
    st.changed_nodes(&woken);
    Ok(p)
}

/// Removes a peer: its slivers here are destroyed (an event each), its nodes leave our slices.
pub async fn remove(st: &AppState, actor: &Actor, key: &str) -> OpResult<()> {
    actor.require_admin("remove peer authorities")?;
    let p = st.store.peer(key).await?;
    let woken = st
        .store
        .delete_peer(&actor.label(), crate::now(), &p)
        .await?;
    st.changed_nodes(&woken);
    st.changed();
    Ok(())
}

// ---- As host: what a peer's signed calls read and write ----

/// Our own nodes, as we share them.
pub async fn registry(st: &AppState) -> OpResult<PeerRegistry> {
    Ok(st.store.shared_registry(st.authority()?).await?)
}

/// What became of the peer's slices here.
pub async fn status(
    st: &AppState,
    peer: &Peer,
    usage_after: i64,
    flows_after: i64,
) -> OpResult<PeerStatus> {
    Ok(st
        .store
        .status_for_peer(peer, usage_after, flows_after, 20_000)
        .await?)
}

/// Takes a peer's slice (`name`: its name at home, as in the path) with our policy: our nodes
/// only, the peer's quota, its persons' keys checked, tags that grant resources left out (a
/// peer's slivers run under our defaults), the expiry bounded by ours.
pub async fn accept_slice(
    st: &AppState,
    peer: &Peer,
    name: &str,
    f: &ForeignSlice,
) -> OpResult<ForeignSliceAck> {
    if f.name != name {
        return Err(OpError::invalid(
            "name",
            format!("the body names slice {:?}, the path {name:?}", f.name),
        ));
    }
    names::SliceName::parse(&f.name)?;
    let here = foreign_slice_name(&peer.name, &f.name)?;
    if f.keys.len() > MAX_KEYS || f.tags.len() > MAX_TAGS || f.nodes.len() > 10_000 {
        return Err(OpError::invalid(
            "slice",
            format!("at most {MAX_KEYS} keys, {MAX_TAGS} tags and 10000 nodes"),
        ));
    }
    let adds = !f.nodes.is_empty();
    if adds && peer.state == PeerState::Suspended {
        return Err(OpError::Conflict(format!(
            "peer {} is suspended here: {}",
            peer.name, peer.reason
        )));
    }
    let now = crate::now();
    let mut nodes = Vec::with_capacity(f.nodes.len());
    for h in &f.nodes {
        match st.store.node(h).await {
            Ok(n) if n.authority.is_none() => nodes.push((n.id, n.hostname)),
            Ok(_) | Err(StoreError::NotFound(_)) => {
                return Err(OpError::invalid(
                    "nodes",
                    format!("{h:?} is not one of this authority's nodes"),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    nodes.sort();
    nodes.dedup();
    let mut keys = f.keys.clone();
    keys.retain(|k| ssh_key::parse(&k.key).is_ok() && names::email(&k.person).is_ok());
    let mut accepted = Vec::new();
    let mut ignored = Vec::new();
    for t in &f.tags {
        let Ok(tag) = TagName::parse(&t.name) else {
            ignored.push(format!("{}: unknown here", t.name));
            continue;
        };
        // Guarantees are taken within the peer's reservation quota (below); other resource
        // tags are not: a peer's slivers run under this authority's defaults and limits.
        let guarantee = matches!(tag, TagName::CpuReserve | TagName::MemReserve);
        if tag.is_resource() && !guarantee {
            ignored.push(format!(
                "{}: grants resources; a peer's slivers run under this authority's defaults",
                t.name
            ));
            continue;
        }
        let value = match tags::validate(tag, &t.value) {
            Ok(v) => v,
            Err(e) => {
                ignored.push(format!("{}: {}", t.name, e.message));
                continue;
            }
        };
        let node = match &t.node {
            None => None,
            Some(h) => match nodes.iter().find(|(_, host)| host == h) {
                Some((id, _)) => Some(*id),
                None => {
                    ignored.push(format!("{} on {h}: not a node of the slice here", t.name));
                    continue;
                }
            },
        };
        accepted.push((tag.as_str().to_string(), value, node));
    }
    check_reservations(st, peer, &here, &f.name, &nodes, &accepted, now).await?;
    let g = ForeignSlice {
        expires: f.expires.min(now + MAX_LIFETIME),
        keys,
        ..f.clone()
    };
    let (slice, woken) = st
        .store
        .apply_foreign_slice(peer, now, &g, &here, &nodes, &accepted)
        .await?;
    st.changed_nodes(&woken);
    Ok(ForeignSliceAck {
        name: here,
        nodes: slice.map(|s| s.nodes).unwrap_or_default(),
        ignored_tags: ignored,
    })
}

/// The guarantees a peer's slice asks on each of its nodes here: within the peer's reservation
/// quota (all its slices together), and admitted on each node like any slice's (the broker never
/// over-commits a node).
async fn check_reservations(
    st: &AppState,
    peer: &Peer,
    here: &str,
    home_name: &str,
    nodes: &[(i64, String)],
    tags: &[(String, String, Option<i64>)],
    now: i64,
) -> OpResult<()> {
    let values: Vec<tags::TagValue> = tags
        .iter()
        .filter_map(|(n, v, node)| {
            Some(tags::TagValue {
                name: TagName::parse(n).ok()?,
                value: v,
                node_id: *node,
            })
        })
        .collect();
    let wants: Vec<(&(i64, String), Reservation)> = nodes
        .iter()
        .map(|n| {
            let r = tags::resolve(values.iter().cloned(), n.0);
            (n, Reservation::from_resources(&r))
        })
        .filter(|(_, r)| r.cpu_pct > 0 || r.mem_mb > 0)
        .collect();
    if wants.is_empty() {
        return Ok(());
    }
    let others = st.store.peer_reserved(peer.id, home_name).await?;
    let cpu = others.cpu_pct + wants.iter().map(|(_, r)| r.cpu_pct).sum::<u64>();
    let mem = others.mem_mb + wants.iter().map(|(_, r)| r.mem_mb).sum::<u64>();
    let (max_cpu, max_mem) = (
        u64::try_from(peer.max_cpu_reserve).unwrap_or(0),
        u64::try_from(peer.max_mem_reserve_mb).unwrap_or(0),
    );
    if cpu > max_cpu || mem > max_mem {
        return Err(OpError::Conflict(format!(
            "quota: peer {} may reserve {max_cpu}% CPU and {max_mem} MiB on this authority's nodes \
             together; its slices would reserve {cpu}% and {mem} MiB (an admin here can raise it: \
             slicelab peer update {} --max-cpu-reserve PCT --max-mem-reserve MIB)",
            peer.name, peer.name
        )));
    }
    // Each node: the others' guarantees plus this one's within the node (this slice's own
    // current ones left out, as for local slices).
    let slice_id = match st.store.slice(here).await {
        Ok(s) => s.id,
        Err(StoreError::NotFound(_)) => -1,
        Err(e) => return Err(e.into()),
    };
    let candidates = st.store.placement_candidates(slice_id, now).await?;
    for ((id, _), want) in wants {
        if let Some(c) = candidates.iter().find(|c| c.node_id == *id) {
            slicelab_placement::admit(c, want)
                .map_err(|e| OpError::Conflict(format!("admission control: {e}")))?;
        }
    }
    Ok(())
}
