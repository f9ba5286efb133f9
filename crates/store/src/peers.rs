//! Federation (`model::peer`): the peers an admin registered, and both halves of what peers
//! exchange. As the *host* of a peer's slices: our registry as we share it, its foreign slices
//! (with the quota checked in the same transaction), the status we send back, the nonces of its
//! signed calls. At *home*: its nodes as it shares them (under one site row per peer), the
//! records we push for our slices on its nodes, and the status it sends back, stored in our own
//! sliver, usage and flow tables so every view shows it.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::json;
use sha2::{Digest, Sha256};
use slicelab_model::peer::{
    ForeignFlow, ForeignSlice, ForeignSliver, ForeignTag, ForeignUsage, Peer, PeerCreate, PeerNode,
    PeerRegistry, PeerState, PeerStatus, PeerUpdate, DEFAULT_MAX_SLIVERS,
};
use slicelab_model::sliver::SliverKey;
use slicelab_model::{FlowBatch, FlowRecord, Node, Slice, UsageBatch, UsageSample};

use crate::events::NewEvent;
use crate::{conflict_or, Result, Store, StoreError, WriteTx};

#[derive(sqlx::FromRow)]
struct PeerRow {
    id: i64,
    name: String,
    url: String,
    ca_fingerprint: Option<String>,
    state: String,
    reason: String,
    max_slivers: i64,
    max_cpu_reserve: i64,
    max_mem_reserve: i64,
    slivers: i64,
    nodes: i64,
    last_contact: Option<i64>,
    last_error: String,
    peer_state: String,
    created: i64,
}

const PEER_COLS: &str = "p.id, p.name, p.url, p.ca_fingerprint, p.state, p.reason, p.max_slivers, \
     p.max_cpu_reserve, p.max_mem_reserve, \
     (SELECT COUNT(*) FROM slice_nodes sn JOIN peer_slices ps ON ps.slice_id = sn.slice_id \
      WHERE ps.peer_id = p.id) AS slivers, \
     (SELECT COUNT(*) FROM nodes n JOIN sites s ON s.id = n.site_id WHERE s.peer_id = p.id) AS nodes, \
     p.last_contact, p.last_error, p.peer_state, p.created";

impl From<PeerRow> for Peer {
    fn from(r: PeerRow) -> Peer {
        Peer {
            id: r.id,
            name: r.name,
            url: r.url,
            ca_fingerprint: r.ca_fingerprint,
            // Only values we wrote are stored; a stranger one stops the peer's slivers.
            state: PeerState::parse(&r.state).unwrap_or(PeerState::Suspended),
            reason: r.reason,
            max_slivers: r.max_slivers,
            max_cpu_reserve: r.max_cpu_reserve,
            max_mem_reserve_mb: r.max_mem_reserve,
            slivers: r.slivers,
            nodes: r.nodes,
            last_contact: r.last_contact,
            last_error: r.last_error,
            remote_state: r.peer_state,
            created: r.created,
        }
    }
}

/// A peer with the secret its calls are signed with.
#[derive(Debug, Clone)]
pub struct PeerWithSecret {
    pub peer: Peer,
    pub secret: String,
}

/// What changed on our nodes: their hostnames, so their long-polls wake.
pub type Woken = Vec<String>;

impl WriteTx<'_> {
    async fn peer_event(
        &mut self,
        now: i64,
        actor: &str,
        action: &str,
        peer: (i64, &str),
        detail: serde_json::Value,
    ) -> Result<()> {
        self.event(
            now,
            NewEvent {
                actor,
                action,
                object_type: "peer",
                object_id: peer.0,
                object_name: peer.1,
                site_id: None,
                detail,
            },
        )
        .await
    }
}

fn hash_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The hash of a record as pushed: unchanged record, nothing to send.
pub fn foreign_slice_hash(f: &ForeignSlice) -> String {
    hash_hex(&serde_json::to_vec(f).unwrap_or_default())
}

impl Store {
    // ---- The registry of peers (admins) ----

    /// Registers a peer and the site its nodes and slices hang off here (`login_base` = its
    /// name, which must be free).
    pub async fn create_peer(&self, actor: &str, now: i64, c: &PeerCreate) -> Result<Peer> {
        let mut w = self.write().await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM sites WHERE login_base = $1")
            .bind(&c.name)
            .fetch_optional(&mut *w.tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "a site with login_base {:?} exists: a peer's name prefixes its slices here, so it \
                 must not be a local site's",
                c.name
            )));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO peers (name, url, ca_fingerprint, secret, max_slivers, max_cpu_reserve, \
             max_mem_reserve, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(&c.name)
        .bind(&c.url)
        .bind(c.ca_fingerprint.as_deref())
        .bind(&c.secret)
        .bind(c.max_slivers.unwrap_or(DEFAULT_MAX_SLIVERS))
        .bind(c.max_cpu_reserve.unwrap_or(0))
        .bind(c.max_mem_reserve_mb.unwrap_or(0))
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, &format!("a peer named {:?} exists", c.name), ""))?;
        sqlx::query(
            "INSERT INTO sites (login_base, name, url, max_slices, enabled, created, peer_id) \
             VALUES ($1, $2, $3, $4, 1, $5, $6)",
        )
        .bind(&c.name)
        .bind(format!("peer authority {}", c.name))
        .bind(&c.url)
        .bind(1_000_000_i64)
        .bind(now)
        .bind(id)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, &format!("a site {:?} exists", c.name), ""))?;
        w.peer_event(
            now,
            actor,
            "peer.add",
            (id, &c.name),
            json!({"url": c.url, "ca_fingerprint": c.ca_fingerprint, "max_slivers": c.max_slivers,
                   "max_cpu_reserve": c.max_cpu_reserve, "max_mem_reserve_mb": c.max_mem_reserve_mb}),
        )
        .await?;
        w.commit().await?;
        self.peer(&c.name).await
    }

    /// A peer by id or name.
    pub async fn peer(&self, key: &str) -> Result<Peer> {
        Ok(self.peer_with_secret(key).await?.peer)
    }

    pub async fn peer_with_secret(&self, key: &str) -> Result<PeerWithSecret> {
        let by_id = key.parse::<i64>().ok();
        let row: Option<(PeerRow, String)> = {
            let sql = format!(
                "SELECT {PEER_COLS}, p.secret FROM peers p WHERE {}",
                if by_id.is_some() {
                    "p.id = $1"
                } else {
                    "p.name = $1"
                }
            );
            let q = sqlx::query_as::<_, PeerRowWithSecret>(&sql);
            let q = match by_id {
                Some(id) => q.bind(id),
                None => q.bind(key),
            };
            q.fetch_optional(self.pool())
                .await?
                .map(|r| (r.row, r.secret))
        };
        let (row, secret) = row.ok_or_else(|| StoreError::NotFound(format!("peer {key:?}")))?;
        Ok(PeerWithSecret {
            peer: row.into(),
            secret,
        })
    }

    pub async fn list_peers(&self) -> Result<Vec<Peer>> {
        let rows: Vec<PeerRow> =
            sqlx::query_as(&format!("SELECT {PEER_COLS} FROM peers p ORDER BY p.name"))
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Active peers with their secrets, for the exchange loop.
    pub async fn peers_to_sync(&self) -> Result<Vec<PeerWithSecret>> {
        let rows: Vec<PeerRowWithSecret> = sqlx::query_as(&format!(
            "SELECT {PEER_COLS}, p.secret FROM peers p ORDER BY p.name"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PeerWithSecret {
                peer: r.row.into(),
                secret: r.secret,
            })
            .collect())
    }

    pub async fn update_peer(
        &self,
        actor: &str,
        now: i64,
        p: &Peer,
        u: &PeerUpdate,
    ) -> Result<(Peer, Woken)> {
        let mut w = self.write().await?;
        sqlx::query(
            "UPDATE peers SET url = COALESCE($1, url), ca_fingerprint = COALESCE($2, ca_fingerprint), \
             secret = COALESCE($3, secret), max_slivers = COALESCE($4, max_slivers), \
             max_cpu_reserve = COALESCE($5, max_cpu_reserve), \
             max_mem_reserve = COALESCE($6, max_mem_reserve) WHERE id = $7",
        )
        .bind(u.url.as_deref())
        .bind(u.ca_fingerprint.as_deref())
        .bind(u.secret.as_deref())
        .bind(u.max_slivers)
        .bind(u.max_cpu_reserve)
        .bind(u.max_mem_reserve_mb)
        .bind(p.id)
        .execute(&mut *w.tx)
        .await?;
        // The secret itself never enters the log.
        w.peer_event(
            now,
            actor,
            "peer.update",
            (p.id, &p.name),
            json!({"url": u.url, "ca_fingerprint": u.ca_fingerprint, "max_slivers": u.max_slivers,
                   "max_cpu_reserve": u.max_cpu_reserve, "max_mem_reserve_mb": u.max_mem_reserve_mb,
                   "secret_changed": u.secret.is_some()}),
        )
        .await?;
        w.commit().await?;
        Ok((self.peer(&p.id.to_string()).await?, Vec::new()))
    }

    /// Suspends (its slivers here stop, kept; it may add none) or resumes a peer.
    pub async fn set_peer_state(
        &self,
        actor: &str,
        now: i64,
        p: &Peer,
        state: PeerState,
        reason: &str,
    ) -> Result<(Peer, Woken)> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE peers SET state = $1, reason = $2 WHERE id = $3")
            .bind(state.as_str())
            .bind(reason)
            .bind(p.id)
            .execute(&mut *w.tx)
            .await?;
        let action = match state {
            PeerState::Active => "peer.resume",
            PeerState::Suspended => "peer.suspend",
        };
        w.peer_event(
            now,
            actor,
            action,
            (p.id, &p.name),
            json!({"reason": reason}),
        )
        .await?;
        w.commit().await?;
        let woken = self.peer_sliver_nodes(p.id).await?;
        Ok((self.peer(&p.id.to_string()).await?, woken))
    }

    /// Hostnames of our nodes holding a sliver of the peer's slices.
    async fn peer_sliver_nodes(&self, peer_id: i64) -> Result<Woken> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT n.hostname FROM slice_nodes sn JOIN peer_slices ps ON ps.slice_id = sn.slice_id \
             JOIN nodes n ON n.id = sn.node_id WHERE ps.peer_id = $1 ORDER BY n.hostname",
        )
        .bind(peer_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Removes a peer: its slices here (an event per sliver: their nodes destroy them), its
    /// nodes as we knew them (our slices lose them), its site, and the peer.
    pub async fn delete_peer(&self, actor: &str, now: i64, p: &Peer) -> Result<Woken> {
        let woken = self.peer_sliver_nodes(p.id).await?;
        let mut w = self.write().await?;
        let slivers: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT sl.id, sl.name, sl.site_id, n.hostname FROM slices sl \
             JOIN peer_slices ps ON ps.slice_id = sl.id JOIN slice_nodes sn ON sn.slice_id = sl.id \
             JOIN nodes n ON n.id = sn.node_id WHERE ps.peer_id = $1 ORDER BY sl.name, n.hostname",
        )
        .bind(p.id)
        .fetch_all(&mut *w.tx)
        .await?;
        for (slice_id, name, site_id, host) in &slivers {
            w.event(
                now,
                NewEvent {
                    actor,
                    action: "sliver.delete",
                    object_type: "slice",
                    object_id: *slice_id,
                    object_name: name,
                    site_id: Some(*site_id),
                    detail: json!({"node": host, "reason": format!("peer {} removed", p.name)}),
                },
            )
            .await?;
        }
        let site: Option<i64> = sqlx::query_scalar("SELECT id FROM sites WHERE peer_id = $1")
            .bind(p.id)
            .fetch_optional(&mut *w.tx)
            .await?;
        if let Some(site) = site {
            for sql in [
                "DELETE FROM slices WHERE site_id = $1",
                "DELETE FROM nodes WHERE site_id = $1",
                "DELETE FROM sites WHERE id = $1",
            ] {
                sqlx::query(sql).bind(site).execute(&mut *w.tx).await?;
            }
        }
        sqlx::query("DELETE FROM peer_slices WHERE peer_id = $1")
            .bind(p.id)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM peers WHERE id = $1")
            .bind(p.id)
            .execute(&mut *w.tx)
            .await?;
        w.peer_event(
            now,
            actor,
            "peer.remove",
            (p.id, &p.name),
            json!({"slivers": slivers.len()}),
        )
        .await?;
        w.commit().await?;
        Ok(woken)
    }

    /// Notes a signed call's nonce; `false` if it was seen within its window (a replay).
    pub async fn take_peer_nonce(
        &self,
        peer_id: i64,
        nonce: &str,
        expires: i64,
        now: i64,
    ) -> Result<bool> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM peer_nonces WHERE expires < $1")
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        let r = sqlx::query(
            "INSERT INTO peer_nonces (peer_id, nonce, expires) VALUES ($1, $2, $3) \
             ON CONFLICT (peer_id, nonce) DO NOTHING",
        )
        .bind(peer_id)
        .bind(nonce)
        .bind(expires)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records the outcome of an exchange with a peer (`error` empty: it went well).
    pub async fn note_peer_contact(
        &self,
        peer_id: i64,
        now: i64,
        error: &str,
        remote_state: Option<&str>,
    ) -> Result<()> {
        let mut w = self.write().await?;
        if error.is_empty() {
            sqlx::query(
                "UPDATE peers SET last_contact = $1, last_error = '', \
                 peer_state = COALESCE($2, peer_state) WHERE id = $3",
            )
            .bind(now)
            .bind(remote_state)
            .bind(peer_id)
            .execute(&mut *w.tx)
            .await?;
        } else {
            let e: String = error.chars().take(500).collect();
            sqlx::query("UPDATE peers SET last_error = $1 WHERE id = $2")
                .bind(e)
                .bind(peer_id)
                .execute(&mut *w.tx)
                .await?;
        }
        w.commit().await
    }

    // ---- As host: what we share, and the peer's slices on our nodes ----

    /// Our own nodes as we share them (never a third authority's).
    pub async fn shared_registry(&self, authority: &str) -> Result<PeerRegistry> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            String,
            String,
            String,
            String,
            i64,
            i64,
            i64,
            String,
            i64,
            i64,
        )> = sqlx::query_as(
            "SELECT n.hostname, s.login_base, n.boot_state, n.status, n.cpu_cores, n.mem_mb, \
                 n.disk_gb, n.region, n.reservable, \
                 (SELECT COUNT(*) FROM slice_nodes sn WHERE sn.node_id = n.id) \
                 FROM nodes n JOIN sites s ON s.id = n.site_id WHERE s.peer_id IS NULL \
                 ORDER BY n.hostname",
        )
        .fetch_all(self.pool())
        .await?;
        let nodes: Vec<PeerNode> = rows
            .into_iter()
            .map(|r| PeerNode {
                hostname: r.0,
                site: r.1,
                boot_state: r.2,
                status: r.3,
                cpu_cores: r.4,
                mem_mb: r.5,
                disk_gb: r.6,
                region: r.7,
                reservable: r.8 != 0,
                slivers: r.9,
            })
            .collect();
        let revision = hash_hex(&serde_json::to_vec(&nodes).unwrap_or_default());
        Ok(PeerRegistry {
            authority: authority.to_string(),
            revision,
            nodes,
        })
    }

    /// Creates, changes or (no nodes) ends a peer's slice on our nodes. `name` is its name here,
    /// `node_ids` our nodes it wants (checked by the caller), `tags` those our policy takes.
    /// The peer's quota of slivers is checked in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn apply_foreign_slice(
        &self,
        peer: &Peer,
        now: i64,
        f: &ForeignSlice,
        name: &str,
        node_ids: &[(i64, String)],
        tags: &[(String, String, Option<i64>)],
    ) -> Result<(Option<Slice>, Woken)> {
        let actor = format!("peer:{}", peer.name);
        let mut w = self.write().await?;
        let site_id: i64 = sqlx::query_scalar("SELECT id FROM sites WHERE peer_id = $1")
            .bind(peer.id)
            .fetch_one(&mut *w.tx)
            .await?;
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT slice_id FROM peer_slices WHERE peer_id = $1 AND home_name = $2",
        )
        .bind(peer.id)
        .bind(&f.name)
        .fetch_optional(&mut *w.tx)
        .await?;
        let before: Vec<(i64, String)> = match existing {
            Some(id) => sqlx::query_as(
                "SELECT n.id, n.hostname FROM slice_nodes sn JOIN nodes n ON n.id = sn.node_id \
                     WHERE sn.slice_id = $1",
            )
            .bind(id)
            .fetch_all(&mut *w.tx)
            .await?,
            None => Vec::new(),
        };
        let mut woken: HashSet<String> = before.iter().map(|(_, h)| h.clone()).collect();
        woken.extend(node_ids.iter().map(|(_, h)| h.clone()));
        let mut woken: Woken = woken.into_iter().collect();
        woken.sort();
        if node_ids.is_empty() {
            if let Some(id) = existing {
                sqlx::query("DELETE FROM slices WHERE id = $1")
                    .bind(id)
                    .execute(&mut *w.tx)
                    .await?;
                w.event(
                    now,
                    NewEvent {
                        actor: &actor,
                        action: "slice.delete",
                        object_type: "slice",
                        object_id: id,
                        object_name: name,
                        site_id: Some(site_id),
                        detail: json!({"nodes": before.iter().map(|b| &b.1).collect::<Vec<_>>()}),
                    },
                )
                .await?;
            }
            w.commit().await?;
            return Ok((None, woken));
        }
        // The quota: the peer's slivers here after this change.
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM slice_nodes sn JOIN peer_slices ps ON ps.slice_id = sn.slice_id \
             WHERE ps.peer_id = $1 AND ps.home_name <> $2",
        )
        .bind(peer.id)
        .bind(&f.name)
        .fetch_one(&mut *w.tx)
        .await?;
        let after = others + node_ids.len() as i64;
        let grows = node_ids.len() > before.len();
        if grows && after > peer.max_slivers {
            return Err(StoreError::Conflict(format!(
                "quota: peer {} may hold {} sliver(s) on this authority's nodes; its slices hold {} \
                 and this change would make {} (an admin here can raise it: slicelab peer update {} \
                 --max-slivers N)",
                peer.name,
                peer.max_slivers,
                others + before.len() as i64,
                after,
                peer.name
            )));
        }
        let keys = serde_json::to_string(&f.keys).unwrap_or_else(|_| "[]".into());
        let description: String = f.description.chars().take(2000).collect();
        let slice_id = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE slices SET expires = $1, enabled = $2, description = $3 WHERE id = $4",
                )
                .bind(f.expires)
                .bind(i64::from(f.enabled))
                .bind(&description)
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
                sqlx::query("UPDATE peer_slices SET contact = $1, keys = $2 WHERE slice_id = $3")
                    .bind(&f.contact)
                    .bind(&keys)
                    .bind(id)
                    .execute(&mut *w.tx)
                    .await?;
                id
            }
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO slices (name, site_id, description, url, expires, enabled, created) \
                     VALUES ($1, $2, $3, '', $4, $5, $6) RETURNING id",
                )
                .bind(name)
                .bind(site_id)
                .bind(&description)
                .bind(f.expires)
                .bind(i64::from(f.enabled))
                .bind(now)
                .fetch_one(&mut *w.tx)
                .await
                .map_err(|e| conflict_or(e, &format!("a slice {name:?} exists"), ""))?;
                sqlx::query(
                    "INSERT INTO peer_slices (slice_id, peer_id, home_name, contact, keys) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(peer.id)
                .bind(&f.name)
                .bind(&f.contact)
                .bind(&keys)
                .execute(&mut *w.tx)
                .await?;
                w.event(
                    now,
                    NewEvent {
                        actor: &actor,
                        action: "slice.create",
                        object_type: "slice",
                        object_id: id,
                        object_name: name,
                        site_id: Some(site_id),
                        detail: json!({"authority": peer.name, "home_name": f.name, "contact": f.contact}),
                    },
                )
                .await?;
                id
            }
        };
        // Nodes: exactly those asked.
        let want: HashSet<i64> = node_ids.iter().map(|(id, _)| *id).collect();
        let had: HashSet<i64> = before.iter().map(|(id, _)| *id).collect();
        let added: Vec<&String> = node_ids
            .iter()
            .filter(|(id, _)| !had.contains(id))
            .map(|(_, h)| h)
            .collect();
        let removed: Vec<&String> = before
            .iter()
            .filter(|(id, _)| !want.contains(id))
            .map(|(_, h)| h)
            .collect();
        for (id, _) in before.iter().filter(|(id, _)| !want.contains(id)) {
            sqlx::query("DELETE FROM slice_nodes WHERE slice_id = $1 AND node_id = $2")
                .bind(slice_id)
                .bind(*id)
                .execute(&mut *w.tx)
                .await?;
        }
        for (id, _) in node_ids.iter().filter(|(id, _)| !had.contains(id)) {
            sqlx::query("INSERT INTO slice_nodes (slice_id, node_id) VALUES ($1, $2)")
                .bind(slice_id)
                .bind(*id)
                .execute(&mut *w.tx)
                .await?;
        }
        // Tags: exactly those taken.
        sqlx::query("DELETE FROM slice_tags WHERE slice_id = $1")
            .bind(slice_id)
            .execute(&mut *w.tx)
            .await?;
        for (n, v, node) in tags {
            sqlx::query(
                "INSERT INTO slice_tags (slice_id, node_id, name, value) VALUES ($1, $2, $3, $4)",
            )
            .bind(slice_id)
            .bind(*node)
            .bind(n)
            .bind(v)
            .execute(&mut *w.tx)
            .await?;
        }
        w.event(
            now,
            NewEvent {
                actor: &actor,
                action: "slice.peer_update",
                object_type: "slice",
                object_id: slice_id,
                object_name: name,
                site_id: Some(site_id),
                detail: json!({"added": added, "removed": removed, "expires": f.expires,
                               "enabled": f.enabled, "tags": tags.len(), "keys": f.keys.len()}),
            },
        )
        .await?;
        w.commit().await?;
        Ok((Some(self.slice(&slice_id.to_string()).await?), woken))
    }

    /// The guarantees the peer's slices other than `except` (its name at home) hold here.
    pub async fn peer_reserved(
        &self,
        peer_id: i64,
        except: &str,
    ) -> Result<slicelab_placement::Reservation> {
        let slices: HashSet<i64> = sqlx::query_scalar::<_, i64>(
            "SELECT slice_id FROM peer_slices WHERE peer_id = $1 AND home_name <> $2",
        )
        .bind(peer_id)
        .bind(except)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .collect();
        let mut total = slicelab_placement::Reservation::default();
        for ((slice, _), r) in self.reservations().await? {
            if slices.contains(&slice) {
                total.cpu_pct += r.cpu_pct;
                total.mem_mb += r.mem_mb;
            }
        }
        Ok(total)
    }

    /// What became of a peer's slices on our nodes: states, and usage and flows after the
    /// cursors it gives (at most `limit` of each).
    pub async fn status_for_peer(
        &self,
        peer: &Peer,
        usage_after: i64,
        flows_after: i64,
        limit: i64,
    ) -> Result<PeerStatus> {
        let slivers: Vec<(String, String, String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT ps.home_name, n.hostname, sv.state, sv.message, sv.address, sv.updated \
             FROM peer_slices ps JOIN slivers sv ON sv.slice_id = ps.slice_id \
             JOIN nodes n ON n.id = sv.node_id WHERE ps.peer_id = $1 ORDER BY ps.home_name, n.hostname",
        )
        .bind(peer.id)
        .fetch_all(self.pool())
        .await?;
        let suspended = (peer.state == PeerState::Suspended).then(|| peer.reason.clone());
        let slivers = slivers
            .into_iter()
            .map(
                |(slice, node, state, message, address, updated)| ForeignSliver {
                    message: match &suspended {
                        Some(r) => format!("suspended by the node's authority: {r}"),
                        None => message,
                    },
                    slice,
                    node,
                    state,
                    address,
                    updated,
                },
            )
            .collect();
        #[allow(clippy::type_complexity)]
        let usage: Vec<(String, String, i64, i64, f64, i64, i64, i64, i64, i64, i64, i64)> =
            sqlx::query_as(
                "SELECT n.hostname, ps.home_name, u.t, u.resolution, u.cpu_s, u.mem_bytes, u.disk_bytes, \
                 u.tx_bytes, u.rx_bytes, u.tx_pkts, u.rx_pkts, u.spoofed_pkts \
                 FROM usage u JOIN peer_slices ps ON ps.slice_id = u.slice_id \
                 JOIN nodes n ON n.id = u.node_id \
                 WHERE ps.peer_id = $1 AND u.t > $2 ORDER BY u.t LIMIT $3",
            )
            .bind(peer.id)
            .bind(usage_after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        let usage = usage
            .into_iter()
            .map(|r| ForeignUsage {
                node: r.0,
                sample: UsageSample {
                    slice: Some(r.1),
                    time: r.2,
                    interval_s: u32::try_from(r.3).unwrap_or(1).max(1),
                    cpu_s: r.4,
                    mem_bytes: u(r.5),
                    disk_bytes: u(r.6),
                    tx_bytes: u(r.7),
                    rx_bytes: u(r.8),
                    tx_pkts: u(r.9),
                    rx_pkts: u(r.10),
                    spoofed_pkts: u(r.11),
                },
            })
            .collect();
        let flows: Vec<crate::flows::FlowRow> = sqlx::query_as(
            "SELECT n.hostname, ps.home_name AS slice_name, f.proto, f.src, f.sport, f.dst, f.dport, \
             f.nat_src, f.nat_sport, f.ct_id, f.t_start, f.t_end, f.done, f.tx_bytes, f.tx_pkts, \
             f.rx_bytes, f.rx_pkts \
             FROM flows f JOIN slices sl ON sl.name = f.slice_name \
             JOIN peer_slices ps ON ps.slice_id = sl.id JOIN nodes n ON n.id = f.node_id \
             WHERE ps.peer_id = $1 AND f.t_end >= $2 ORDER BY f.t_end LIMIT $3",
        )
        .bind(peer.id)
        .bind(flows_after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let flows = flows
            .into_iter()
            .map(|r| {
                let f = slicelab_model::Flow::from(r);
                ForeignFlow {
                    node: f.node,
                    flow: f.flow,
                }
            })
            .collect();
        Ok(PeerStatus {
            suspended,
            slivers,
            usage,
            flows,
        })
    }

    // ---- At home: a peer's nodes, our slices on them, what comes back ----

    /// Takes a peer's registry: its nodes under its site here (a node whose hostname one of
    /// ours or another peer's holds is skipped and named in the answer). Returns whether
    /// anything changed and the skipped hostnames.
    pub async fn apply_peer_registry(
        &self,
        peer: &Peer,
        now: i64,
        reg: &PeerRegistry,
    ) -> Result<(bool, Vec<String>)> {
        let mut w = self.write().await?;
        let rev: String = sqlx::query_scalar("SELECT registry_rev FROM peers WHERE id = $1")
            .bind(peer.id)
            .fetch_one(&mut *w.tx)
            .await?;
        if rev == reg.revision {
            w.commit().await?;
            return Ok((false, Vec::new()));
        }
        let site_id: i64 = sqlx::query_scalar("SELECT id FROM sites WHERE peer_id = $1")
            .bind(peer.id)
            .fetch_one(&mut *w.tx)
            .await?;
        let known: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT id, hostname, site_id FROM nodes")
                .fetch_all(&mut *w.tx)
                .await?;
        let mine: HashMap<&str, i64> = known
            .iter()
            .filter(|k| k.2 == site_id)
            .map(|k| (k.1.as_str(), k.0))
            .collect();
        let others: HashSet<&str> = known
            .iter()
            .filter(|k| k.2 != site_id)
            .map(|k| k.1.as_str())
            .collect();
        let mut skipped = Vec::new();
        let mut added = Vec::new();
        for n in &reg.nodes {
            if others.contains(n.hostname.as_str())
                || slicelab_model::names::hostname(&n.hostname).is_err()
            {
                skipped.push(n.hostname.clone());
                continue;
            }
            let boot = slicelab_model::BootState::parse(&n.boot_state)
                .map(|b| b.as_str())
                .unwrap_or("disabled");
            let status = slicelab_model::NodeStatus::parse(&n.status)
                .map(|s| s.as_str())
                .unwrap_or("down");
            let region: String = n.region.chars().take(64).collect();
            match mine.get(n.hostname.as_str()) {
                Some(id) => {
                    sqlx::query(
                        "UPDATE nodes SET boot_state = $1, status = $2, cpu_cores = $3, mem_mb = $4, \
                         disk_gb = $5, region = $6, reservable = $7 WHERE id = $8",
                    )
                    .bind(boot)
                    .bind(status)
                    .bind(n.cpu_cores)
                    .bind(n.mem_mb)
                    .bind(n.disk_gb)
                    .bind(&region)
                    .bind(i64::from(n.reservable))
                    .bind(*id)
                    .execute(&mut *w.tx)
                    .await?;
                }
                None => {
                    // A peer's node has no key here: nothing can log in as it.
                    sqlx::query(
                        "INSERT INTO nodes (hostname, site_id, boot_state, cpu_cores, mem_mb, disk_gb, \
                         region, key_hash, created, reservable, status) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(&n.hostname)
                    .bind(site_id)
                    .bind(boot)
                    .bind(n.cpu_cores)
                    .bind(n.mem_mb)
                    .bind(n.disk_gb)
                    .bind(&region)
                    .bind(format!("peer:{}:{}", peer.name, n.hostname))
                    .bind(now)
                    .bind(i64::from(n.reservable))
                    .bind(status)
                    .execute(&mut *w.tx)
                    .await?;
                    added.push(n.hostname.clone());
                }
            }
        }
        let listed: HashSet<&str> = reg.nodes.iter().map(|n| n.hostname.as_str()).collect();
        let mut gone = Vec::new();
        for (host, id) in &mine {
            if !listed.contains(host) {
                sqlx::query("DELETE FROM nodes WHERE id = $1")
                    .bind(*id)
                    .execute(&mut *w.tx)
                    .await?;
                gone.push(host.to_string());
            }
        }
        sqlx::query("UPDATE peers SET registry_rev = $1 WHERE id = $2")
            .bind(&reg.revision)
            .bind(peer.id)
            .execute(&mut *w.tx)
            .await?;
        // The revision changed: something of its nodes did (liveness, capacity, the set).
        {
            w.peer_event(
                now,
                &format!("peer:{}", peer.name),
                "peer.nodes",
                (peer.id, &peer.name),
                json!({"added": added, "removed": gone, "skipped": skipped,
                       "nodes": reg.nodes.len(), "revision": reg.revision}),
            )
            .await?;
        }
        w.commit().await?;
        Ok((true, skipped))
    }

    /// Our slices that use the peer's nodes, as the peer needs them.
    pub async fn foreign_slices_for(&self, peer: &Peer, now: i64) -> Result<Vec<ForeignSlice>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT sl.id FROM slices sl JOIN slice_nodes sn ON sn.slice_id = sl.id \
             JOIN nodes n ON n.id = sn.node_id JOIN sites s ON s.id = n.site_id \
             WHERE s.peer_id = $1 AND sl.expires > $2",
        )
        .bind(peer.id)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(f) = self.foreign_slice(peer, id, &[]).await? {
                out.push(f);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One of our slices as the peer needs it, with `extra` of the peer's nodes added (what a
    /// change would make it); `None` if it then uses none of the peer's nodes.
    pub async fn foreign_slice(
        &self,
        peer: &Peer,
        slice_id: i64,
        extra: &[String],
    ) -> Result<Option<ForeignSlice>> {
        let Some((id, name, expires, enabled, description, site_id)): Option<(
            i64,
            String,
            i64,
            i64,
            String,
            i64,
        )> = sqlx::query_as(
            "SELECT id, name, expires, enabled, description, site_id FROM slices WHERE id = $1",
        )
        .bind(slice_id)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        let nodes: Vec<(i64, String)> = sqlx::query_as(
            "SELECT n.id, n.hostname FROM slice_nodes sn JOIN nodes n ON n.id = sn.node_id \
             JOIN sites s ON s.id = n.site_id WHERE sn.slice_id = $1 AND s.peer_id = $2 \
             ORDER BY n.hostname",
        )
        .bind(id)
        .bind(peer.id)
        .fetch_all(self.pool())
        .await?;
        let mut hostnames: Vec<String> = nodes.iter().map(|(_, h)| h.clone()).collect();
        hostnames.extend(extra.iter().cloned());
        hostnames.sort();
        hostnames.dedup();
        if hostnames.is_empty() {
            return Ok(None);
        }
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT p.email, k.key FROM slice_persons sp JOIN persons p ON p.id = sp.person_id \
             JOIN keys k ON k.person_id = p.id WHERE sp.slice_id = $1 AND p.enabled = 1 \
             ORDER BY p.email, k.id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        // Whom to contact: the site's PIs, else the slice's persons.
        let pis: Vec<String> = sqlx::query_scalar(
            "SELECT p.email FROM persons p JOIN person_sites ps ON ps.person_id = p.id \
             WHERE ps.site_id = $1 AND (',' || p.roles || ',') LIKE '%,pi,%' ORDER BY p.email",
        )
        .bind(site_id)
        .fetch_all(self.pool())
        .await?;
        let mut persons: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        persons.dedup();
        let contact = if pis.is_empty() { persons } else { pis }.join(", ");
        let by_id: BTreeMap<i64, &String> = nodes.iter().map(|(i, h)| (*i, h)).collect();
        let tag_rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT name, value, node_id FROM slice_tags WHERE slice_id = $1 ORDER BY name, node_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let tags = tag_rows
            .into_iter()
            .filter_map(|(n, v, node)| match node {
                None => Some(ForeignTag {
                    name: n,
                    value: v,
                    node: None,
                }),
                // Node-specific tags travel only for that peer's nodes.
                Some(nid) => by_id.get(&nid).map(|h| ForeignTag {
                    name: n,
                    value: v,
                    node: Some((*h).clone()),
                }),
            })
            .collect();
        Ok(Some(ForeignSlice {
            name,
            expires,
            enabled: enabled != 0,
            description,
            contact,
            keys: keys
                .into_iter()
                .map(|(person, key)| SliverKey { person, key })
                .collect(),
            tags,
            nodes: hostnames,
        }))
    }

    /// What we last pushed to the peer, by slice name.
    pub async fn peer_pushes(&self, peer_id: i64) -> Result<HashMap<String, String>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT slice_name, hash FROM peer_pushes WHERE peer_id = $1")
                .bind(peer_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Notes a push the peer accepted (`hash` None: the slice ended there).
    pub async fn record_peer_push(
        &self,
        peer_id: i64,
        slice: &str,
        hash: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let mut w = self.write().await?;
        match hash {
            Some(h) => {
                sqlx::query(
                    "INSERT INTO peer_pushes (peer_id, slice_name, hash, pushed) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (peer_id, slice_name) DO UPDATE SET hash = excluded.hash, pushed = excluded.pushed",
                )
                .bind(peer_id)
                .bind(slice)
                .bind(h)
                .bind(now)
                .execute(&mut *w.tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM peer_pushes WHERE peer_id = $1 AND slice_name = $2")
                    .bind(peer_id)
                    .bind(slice)
                    .execute(&mut *w.tx)
                    .await?;
            }
        }
        w.commit().await
    }

    /// The cursors to ask the peer's status with: the newest usage sample and flow end we hold
    /// from its nodes (flows are asked again from a minute earlier: a long flow's record grows).
    pub async fn peer_cursors(&self, peer_id: i64) -> Result<(i64, i64)> {
        let usage: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(u.t) FROM usage u JOIN nodes n ON n.id = u.node_id \
             JOIN sites s ON s.id = n.site_id WHERE s.peer_id = $1",
        )
        .bind(peer_id)
        .fetch_one(self.pool())
        .await?;
        let flows: i64 = sqlx::query_scalar("SELECT flows_after FROM peers WHERE id = $1")
            .bind(peer_id)
            .fetch_one(self.pool())
            .await?;
        Ok((usage.unwrap_or(0), flows))
    }

    /// Stores what the peer says of our slices on its nodes in our own sliver, usage and flow
    /// tables (an event per sliver state change), so every view shows it.
    pub async fn apply_peer_status(&self, peer: &Peer, now: i64, st: &PeerStatus) -> Result<()> {
        let nodes: Vec<Node> = {
            let f = crate::NodeFilter {
                site_id: Some(self.site(&peer.name).await?.id),
                ..Default::default()
            };
            self.list_nodes(
                &f,
                crate::Paging {
                    limit: 1_000_000,
                    offset: 0,
                },
            )
            .await?
            .0
        };
        let node_by_host: HashMap<&str, &Node> =
            nodes.iter().map(|n| (n.hostname.as_str(), n)).collect();
        let actor = format!("peer:{}", peer.name);
        let mut w = self.write().await?;
        // Slivers: the peer's word replaces what we had for its nodes.
        let old: Vec<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT sv.slice_id, sv.node_id, sv.state, sv.message FROM slivers sv \
             JOIN nodes n ON n.id = sv.node_id JOIN sites s ON s.id = n.site_id WHERE s.peer_id = $1",
        )
        .bind(peer.id)
        .fetch_all(&mut *w.tx)
        .await?;
        let old: HashMap<(i64, i64), (String, String)> = old
            .into_iter()
            .map(|(a, b, c, d)| ((a, b), (c, d)))
            .collect();
        sqlx::query(
            "DELETE FROM slivers WHERE node_id IN (SELECT n.id FROM nodes n JOIN sites s ON s.id = n.site_id \
             WHERE s.peer_id = $1)",
        )
        .bind(peer.id)
        .execute(&mut *w.tx)
        .await?;
        let mut slice_ids: HashMap<String, Option<(i64, i64)>> = HashMap::new();
        for s in &st.slivers {
            let Some(node) = node_by_host.get(s.node.as_str()) else {
                continue;
            };
            if !slice_ids.contains_key(&s.slice) {
                let found: Option<(i64, i64)> = sqlx::query_as(
                    "SELECT sl.id, sl.site_id FROM slices sl JOIN sites s ON s.id = sl.site_id \
                     WHERE sl.name = $1 AND s.peer_id IS NULL",
                )
                .bind(&s.slice)
                .fetch_optional(&mut *w.tx)
                .await?;
                slice_ids.insert(s.slice.clone(), found);
            }
            let Some(Some((slice_id, site_id))) = slice_ids.get(&s.slice).copied() else {
                continue;
            };
            let message: String = s.message.chars().take(2000).collect();
            sqlx::query(
                "INSERT INTO slivers (slice_id, node_id, state, message, address, updated) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(slice_id)
            .bind(node.id)
            .bind(&s.state)
            .bind(&message)
            .bind(s.address.as_deref())
            .bind(s.updated)
            .execute(&mut *w.tx)
            .await?;
            let before = old.get(&(slice_id, node.id));
            if before.map(|b| (&b.0, &b.1)) != Some((&s.state, &message)) {
                w.event(
                    now,
                    NewEvent {
                        actor: &actor,
                        action: "sliver.state",
                        object_type: "slice",
                        object_id: slice_id,
                        object_name: &s.slice,
                        site_id: Some(site_id),
                        detail: json!({"node": s.node, "authority": peer.name,
                                       "from": before.map(|b| &b.0), "to": s.state, "message": message}),
                    },
                )
                .await?;
            }
        }
        w.commit().await?;
        // Usage and flows: through the nodes' own ingest, one batch per node with the next seq.
        let mut usage: BTreeMap<&str, Vec<UsageSample>> = BTreeMap::new();
        for u in &st.usage {
            usage
                .entry(u.node.as_str())
                .or_default()
                .push(u.sample.clone());
        }
        for (host, samples) in usage {
            let Some(node) = node_by_host.get(host) else {
                continue;
            };
            // Only samples newer than what we hold of the node: a status taken twice counts once.
            let newest: Option<i64> =
                sqlx::query_scalar("SELECT MAX(t) FROM usage WHERE node_id = $1")
                    .bind(node.id)
                    .fetch_one(self.pool())
                    .await?;
            let samples: Vec<UsageSample> = samples
                .into_iter()
                .filter(|u| newest.is_none_or(|n| u.time > n))
                .collect();
            if samples.is_empty() {
                continue;
            }
            let seq = self.node_seqs(node.id).await?.0 + 1;
            self.store_usage(node, &UsageBatch { seq, samples }).await?;
        }
        let mut flows: BTreeMap<&str, Vec<FlowRecord>> = BTreeMap::new();
        let mut newest = 0;
        for f in &st.flows {
            newest = newest.max(f.flow.end);
            flows
                .entry(f.node.as_str())
                .or_default()
                .push(f.flow.clone());
        }
        for (host, records) in flows {
            let Some(node) = node_by_host.get(host) else {
                continue;
            };
            let seq = self.node_seqs(node.id).await?.1 + 1;
            self.store_flows(
                node,
                &FlowBatch {
                    seq,
                    flows: records,
                },
            )
            .await?;
        }
        if newest > 0 {
            let mut w = self.write().await?;
            sqlx::query("UPDATE peers SET flows_after = $1 WHERE id = $2 AND flows_after < $3")
                .bind(newest - 60)
                .bind(peer.id)
                .bind(newest - 60)
                .execute(&mut *w.tx)
                .await?;
            w.commit().await?;
        }
        Ok(())
    }

    async fn node_seqs(&self, node_id: i64) -> Result<(i64, i64)> {
        Ok(
            sqlx::query_as("SELECT usage_seq, flow_seq FROM nodes WHERE id = $1")
                .bind(node_id)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Who to name for a slice in the public lookup: its authority and contact if it is a
    /// peer's, `None` for ours.
    pub async fn foreign_contact(&self, slice_name: &str) -> Result<Option<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT p.name, ps.contact FROM peer_slices ps JOIN slices sl ON sl.id = ps.slice_id \
             JOIN peers p ON p.id = ps.peer_id WHERE sl.name = $1",
        )
        .bind(slice_name)
        .fetch_optional(self.pool())
        .await?)
    }
}

#[derive(sqlx::FromRow)]
struct PeerRowWithSecret {
    #[sqlx(flatten)]
    row: PeerRow,
    secret: String,
}
