//! The node manager daemon: long-polls central for desired slivers, reconciles, reports.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use slicelab_client::Client;
use slicelab_model::objects::BootState;
use slicelab_model::time::now;
use slicelab_model::{
    DesiredSlivers, NodeHealth, NodeReport, SliverSpec, SliverState, SliverStatus,
};
use tracing::{info, warn};

use crate::accounting::{self, Accountant};
use crate::actions::ActionLog;
use crate::error::NodeError;
use crate::holds::Holds;
use crate::host::MemInfo;
use crate::image::fetch::{Fetcher, Sources};
use crate::image::gate;
use crate::image::store::ImageStore;
use crate::names::NodeNames;
use crate::plan::{plan, Action};
use crate::runtime::{default_init_exe, LinuxRuntime, Runtime, RuntimeConfig};
use crate::sandbox::Spawner;
use crate::site_admin::AdminContext;
use crate::ssh::{NodeAccess, SharedDesired};
use crate::state;

/// Unpacked images a node keeps by default: 20 GiB, room for a few dozen distribution images.
pub const DEFAULT_IMAGE_BUDGET: u64 = 20 << 30;

#[derive(Debug, Clone)]
pub struct Config {
    /// Central's base URL, or several replicas' separated by commas (tried in turn).
    pub central: String,
    /// Which CA central's HTTPS must come from.
    pub trust: slicelab_client::Trust,
    /// Allow plain `http://` to a central that is not on loopback.
    pub allow_plain_http: bool,
    /// The node key central issued for this node.
    pub key: String,
    /// Where sliver layers, images, the desired-state cache and the report sequence live.
    pub state_dir: PathBuf,
    /// Names of this node instance's gateway interface, nft table, cgroup parent and address range.
    pub names: NodeNames,
    /// Binary re-executed as sliver init; `None`: the running binary.
    pub init_exe: Option<PathBuf>,
    /// How often to reconcile without news from central (crashed slivers, expiry).
    pub reconcile_every: Duration,
    /// Where the SSH gateway (`ssh SLICE@NODE`) listens; `None`: no gateway.
    pub ssh_listen: Option<SocketAddr>,
    /// The gateway's host key (OpenSSH format, created if missing); `None`:
    /// `<state_dir>/ssh_host_ed25519_key`.
    pub ssh_host_key: Option<PathBuf>,
    /// How often usage is sampled (and queued batches sent) and bwmon checks daily caps.
    pub usage_every: Duration,
    /// Length of bwmon's accounting day (`net_max_kbyte` is per day); shorter only in tests.
    pub bwmon_day: Duration,
    /// Record every flow slivers send (conntrack events in this network namespace) and ship
    /// the records to central: PlanetLab's packet auditing. On by default.
    pub audit_flows: bool,
    /// How often long flows get an interim record (with running totals); shorter only in tests.
    pub flow_update_every: Duration,
    /// Mirrors tried before central for image blobs (`<mirror>/blobs/sha256/<hex>`).
    pub image_mirrors: Vec<String>,
    /// Bytes of unpacked images this node keeps; unused images beyond it are removed, least
    /// recently used first (images slivers use are never removed).
    pub image_budget: u64,
    /// Images fetched at once.
    pub image_parallel: usize,
    /// The interface whose egress the site's bandwidth cap (`bwlimit`) shapes; `None`: the
    /// device of the default route.
    pub uplink: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            central: "http://127.0.0.1:8080".into(),
            trust: Default::default(),
            allow_plain_http: false,
            key: String::new(),
            state_dir: PathBuf::from("/var/lib/slicelab/node"),
            names: NodeNames::default(),
            init_exe: None,
            reconcile_every: Duration::from_secs(10),
            ssh_listen: None,
            ssh_host_key: None,
            usage_every: Duration::from_secs(10),
            bwmon_day: Duration::from_secs(crate::accounting::DAY_S as u64),
            audit_flows: true,
            flow_update_every: Duration::from_secs(30),
            image_mirrors: Vec::new(),
            image_budget: DEFAULT_IMAGE_BUDGET,
            image_parallel: 2,
            uplink: None,
        }
    }
}

impl Config {
    pub fn runtime(&self) -> RuntimeConfig {
        RuntimeConfig {
            names: self.names.clone(),
            init_exe: self.init_exe.clone().unwrap_or_else(default_init_exe),
            uplink: self.uplink.clone(),
            ..RuntimeConfig::new(&self.state_dir)
        }
    }
}

/// What one reconcile did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub actions: Vec<Action>,
    /// Actions that failed, with the reason (they are retried on the next round).
    pub errors: Vec<(Action, String)>,
}

/// The specs as they must be enforced: outside `boot`, nothing runs.
fn effective(desired: &DesiredSlivers) -> Vec<SliverSpec> {
    let mut specs = desired.slivers.clone();
    if desired.boot_state != BootState::Boot {
        for s in &mut specs {
            s.run = false;
        }
    }
    specs
}

/// One reconcile round: observe, plan, apply. A failed action does not stop the others.
pub fn reconcile(
    rt: &dyn Runtime,
    desired: &DesiredSlivers,
    now: i64,
) -> Result<Outcome, NodeError> {
    let observed = rt.list()?;
    let actions = plan(&effective(desired), &observed, now);
    let mut errors = Vec::new();
    for a in &actions {
        if let Err(e) = rt.apply(a) {
            warn!(action = ?a, error = %e, "reconcile action failed");
            errors.push((a.clone(), e.to_string()));
        }
    }
    Ok(Outcome { actions, errors })
}

/// The sliver part of a report, from what the runtime observes now.
pub fn statuses(
    rt: &dyn Runtime,
    desired: &DesiredSlivers,
    now: i64,
) -> Result<Vec<SliverStatus>, NodeError> {
    let specs = effective(desired);
    let mut out = Vec::new();
    for o in rt.list()? {
        let want = specs
            .iter()
            .find(|s| s.slice_name == o.slice_name && s.expires > now);
        let (state, message) = if o.running {
            (SliverState::Running, String::new())
        } else if let Some(f) = &o.failure {
            (SliverState::Failed, f.clone())
        } else if want.is_some_and(|s| s.run) {
            (SliverState::Creating, String::new())
        } else {
            (SliverState::Stopped, String::new())
        };
        out.push(SliverStatus {
            slice_name: o.slice_name,
            state,
            message,
            address: o.address.map(|a| a.to_string()),
            // A throttle is detail of the sliver whatever its state (see `accounting`); central
            // turns its start and end into events that tell the slice's persons.
            throttled: o.note.clone(),
            // Central turns each increase into a `sliver.limit_hit` event.
            limits: o.limits,
        });
    }
    Ok(out)
}

pub fn health(state_dir: &Path) -> NodeHealth {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let load1 = read("/proc/loadavg")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let mem = MemInfo::read();
    let (disk_total_mb, disk_used_mb) = match nix::sys::statvfs::statvfs(state_dir) {
        Ok(s) => {
            let f = s.fragment_size();
            let t = s.blocks() * f;
            let free = s.blocks_free() * f;
            (t >> 20, t.saturating_sub(free) >> 20)
        }
        Err(_) => (0, 0),
    };
    let uptime_s = read("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    NodeHealth {
        load1,
        mem_total_mb: mem.total >> 20,
        mem_used_mb: mem.used() >> 20,
        disk_total_mb,
        disk_used_mb,
        uptime_s,
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Report batches are full snapshots, so an unsent one is superseded by the next; only the
/// sequence number must survive restarts (central ignores a `seq` it has seen).
struct Reporter {
    seq_path: PathBuf,
    seq: i64,
}

impl Reporter {
    fn load(state_dir: &Path) -> Self {
        let seq_path = state_dir.join("report-seq");
        let seq = fs::read_to_string(&seq_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Self { seq_path, seq }
    }

    /// Sends the state, with the actions not yet stored (which leave the journal only once a
    /// report carrying them is acknowledged).
    async fn send(
        &mut self,
        client: &Client,
        slivers: Vec<SliverStatus>,
        health: NodeHealth,
        journal: &ActionLog,
    ) {
        self.seq += 1;
        let _ = state::write_atomic(&self.seq_path, self.seq.to_string().as_bytes());
        let actions = journal.next_batch();
        let carried = actions.len();
        let report = NodeReport {
            seq: self.seq,
            slivers,
            health: Some(health),
            actions,
        };
        match client.report(&report).await {
            // Our counter was reset (state dir wiped): jump past what central holds and resend.
            Ok(ack) if ack.acked_seq > self.seq => {
                self.seq = ack.acked_seq;
                let mut again = report;
                self.seq += 1;
                again.seq = self.seq;
                let _ = state::write_atomic(&self.seq_path, self.seq.to_string().as_bytes());
                match client.report(&again).await {
                    Ok(ack) if ack.acked_seq >= again.seq => journal.acknowledged(carried),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "report failed; the next round resends the state"),
                }
            }
            Ok(ack) if ack.acked_seq == report.seq => journal.acknowledged(carried),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "report failed; the next round resends the state"),
        }
    }
}

/// One accounting round: sample, queue, apply bwmon, then send what is queued. Runs between
/// reconcile rounds (never concurrently), so throttles and spec updates do not race.
async fn account(
    rt: &Arc<LinuxRuntime>,
    acct: &Arc<std::sync::Mutex<Accountant>>,
    client: &Client,
) {
    let (rt2, acct2) = (rt.clone(), acct.clone());
    let done = tokio::task::spawn_blocking(move || {
        let mut a = acct2.lock().unwrap_or_else(|p| p.into_inner());
        a.tick(&rt2, now())
    })
    .await;
    match done {
        Ok(Ok(t)) => {
            for c in t.throttles {
                match c.reason {
                    Some(r) => info!(slice = %c.slice, reason = %r, "bwmon: sliver throttled"),
                    None => info!(slice = %c.slice, "bwmon: throttle lifted"),
                }
            }
        }
        Ok(Err(e)) => warn!(error = %e, "usage sampling failed"),
        Err(e) => warn!(error = %e, "usage sampling panicked"),
    }
    if let Err(e) = accounting::flush(acct, client).await {
        warn!(error = %e, "cannot send usage; kept on disk for the next round");
    }
}

/// Removes unused images beyond the node's budget (never one a sliver here uses or is about to).
fn collect_images(store: &ImageStore, desired: &DesiredSlivers, rt: &LinuxRuntime, budget: u64) {
    let recorded = rt
        .list()
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.spec.and_then(|s| s.image_digest));
    match store.gc(&gate::in_use(Some(desired), recorded), budget) {
        Ok(r) if !r.images.is_empty() || r.layers > 0 => {
            info!(images = ?r.images, layers = r.layers, bytes = r.bytes, "unused images removed")
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "image garbage collection failed"),
    }
}

/// Hands the gateway the new desired state: logins are checked against it from now on.
fn publish(shared: &SharedDesired, desired: Option<DesiredSlivers>) {
    *shared.write().unwrap_or_else(|p| p.into_inner()) = desired;
}

fn cache_path(state_dir: &Path) -> PathBuf {
    state_dir.join("desired.json")
}

/// The node manager daemon. Returns `Ok(())` on SIGINT or SIGTERM, which it handles itself;
/// slivers keep running across a restart of the daemon (they are found again by name).
/// Must run inside a tokio runtime, in a binary whose `main` called `maybe_run_sliver_init()`.
pub async fn run(cfg: Config) -> Result<(), NodeError> {
    // The node reserve: the kernel's OOM killer never picks the node manager (nor the SSH
    // gateway it hosts), whatever the slivers do; they are bounded by their parent cgroup.
    let _ = fs::write("/proc/self/oom_score_adj", "-1000");
    // Central's URL and trust are checked before anything is made on this machine.
    let endpoint = slicelab_client::Endpoint::new(&cfg.central)
        .trust(cfg.trust.clone())
        .allow_plain_http(cfg.allow_plain_http);
    let client = Client::connect(&endpoint, Some(cfg.key.clone()))?;
    // Sliver inits are orphaned on purpose (they outlive us); as subreaper we get them back and
    // reap them when they die, instead of leaving zombies to a PID 1 that may not reap.
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let rcfg = cfg.runtime();
    let rt: Arc<LinuxRuntime> = Arc::new(
        tokio::task::spawn_blocking(move || LinuxRuntime::new(rcfg))
            .await
            .map_err(|e| NodeError::Invalid {
                what: "runtime",
                message: e.to_string(),
            })??,
    );
    let image_ready = Arc::new(tokio::sync::Notify::new());
    let images = ImageStore::open(&cfg.state_dir)?;
    images.clear_staging();
    let fetcher = Fetcher::new(
        images,
        Sources {
            central: client.clone(),
            mirrors: cfg.image_mirrors.clone(),
        },
        cfg.image_parallel,
        cfg.image_budget,
        image_ready.clone(),
    );
    let shared: SharedDesired = Arc::new(RwLock::new(None));
    let journal = ActionLog::open(&cfg.state_dir);
    let holds = Holds::open(&cfg.state_dir);
    // The last answer survives restarts, so a node that cannot reach central keeps (and restarts)
    // what it had instead of waiting with nothing running.
    let mut desired: Option<DesiredSlivers> = fs::read(cache_path(&cfg.state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    publish(&shared, desired.clone());
    let gateway = match cfg.ssh_listen {
        Some(listen) => {
            let key = cfg
                .ssh_host_key
                .clone()
                .unwrap_or_else(|| cfg.state_dir.join("ssh_host_ed25519_key"));
            let admin = AdminContext {
                rt: rt.clone(),
                holds: holds.clone(),
                actions: journal.clone(),
            };
            let mut access = NodeAccess::new(shared.clone(), admin);
            // Forks each session's exec helper; if it cannot start, the gateway spawns them.
            match Spawner::start(&rt.config().init_exe) {
                Ok(s) => access = access.with_spawner(Arc::new(s)),
                Err(e) => warn!("exec spawner not started ({e}); SSH sessions spawn their helper"),
            }
            let access = Arc::new(access);
            let gw = slicelab_sshgw::start(slicelab_sshgw::GatewayConfig::new(listen, key), access)
                .await?;
            info!(listen = %gw.local_addr(), "SSH gateway listening (ssh SLICE@NODE)");
            Some(gw)
        }
        None => None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<DesiredSlivers>(4);
    let poll_client = client.clone();
    let mut after = desired.as_ref().map(|d| d.revision.clone());
    let poller = tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            match poll_client
                .desired_slivers(after.as_deref(), Duration::from_secs(30))
                .await
            {
                Ok(d) => {
                    backoff = Duration::from_secs(1);
                    if after.as_deref() != Some(d.revision.as_str()) {
                        after = Some(d.revision.clone());
                        if tx.send(d).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot get desired slivers; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    });
    // Opened before the first reconcile, so the conntrack accounting it switches on covers the
    // slivers' first flows.
    let audit = if cfg.audit_flows {
        crate::audit::Audit::start(&cfg.state_dir, rt.clone(), cfg.flow_update_every)
    } else {
        None
    };
    let mut reporter = Reporter::load(&cfg.state_dir);
    let acct = Arc::new(std::sync::Mutex::new(Accountant::open(
        &cfg.state_dir,
        cfg.usage_every.as_secs().max(1) as u32,
        cfg.bwmon_day.as_secs().max(1) as i64,
    )?));
    let mut usage_tick = tokio::time::interval(cfg.usage_every);
    usage_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; the first sample is one interval in.
    usage_tick.tick().await;
    let mut tick = tokio::time::interval(cfg.reconcile_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| NodeError::Io {
            context: "installing SIGTERM handler".into(),
            source: e,
        })?;
    info!(central = %cfg.central, state_dir = %cfg.state_dir.display(), "node manager started");
    loop {
        tokio::select! {
            Some(d) = rx.recv() => {
                if let Ok(b) = serde_json::to_vec(&d) {
                    let _ = state::write_atomic(&cache_path(&cfg.state_dir), &b);
                }
                info!(revision = %d.revision, slivers = d.slivers.len(), "desired slivers changed");
                desired = Some(d);
                publish(&shared, desired.clone());
            }
            _ = tick.tick() => {}
            // An image arrived (or failed): start its slivers (or say why not) now.
            _ = image_ready.notified() => {}
            // A person acted through the node's services (a stop, a restart, a capture): apply
            // it and tell central now.
            _ = journal.kicked() => {}
            _ = usage_tick.tick() => {
                account(&rt, &acct, &client).await;
                if let Some(a) = &audit {
                    a.send(&client).await;
                }
                continue;
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        let Some(d) = desired.clone() else { continue };
        let (mut held, waiting) = gate::hold(&fetcher, &d);
        holds.apply(&mut held);
        let holds2 = holds.clone();
        let rt2 = rt.clone();
        let (store, budget) = (fetcher.store().clone(), cfg.image_budget);
        let done = tokio::task::spawn_blocking(move || {
            let t = now();
            let outcome = reconcile(&*rt2, &held, t);
            // After the starts, off their path: the site's cap follows the running slivers.
            if let Err(e) = rt2.apply_site_cap(held.bwlimit) {
                warn!(error = %e, "cannot apply the site's bandwidth cap");
            }
            let mut st = statuses(&*rt2, &held, t);
            if let Ok(st) = &mut st {
                gate::annotate(st, &waiting);
                holds2.annotate(st);
            }
            collect_images(&store, &d, &rt2, budget);
            (outcome, st)
        })
        .await;
        match done {
            Ok((outcome, st)) => {
                if let Err(e) = outcome {
                    warn!(error = %e, "reconcile failed");
                }
                match st {
                    Ok(st) => {
                        reporter
                            .send(&client, st, health(&cfg.state_dir), &journal)
                            .await
                    }
                    Err(e) => warn!(error = %e, "cannot observe slivers"),
                }
            }
            Err(e) => warn!(error = %e, "reconcile task panicked"),
        }
    }
    poller.abort();
    if let Some(a) = audit {
        let _ = tokio::task::spawn_blocking(move || a.stop()).await;
    }
    if let Some(gw) = gateway {
        gw.shutdown().await;
    }
    // The launchers started ahead end now, not whenever the last task lets go of the runtime.
    rt.stop_launchers();
    info!("node manager stopping; slivers keep running");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FakeRuntime;
    use slicelab_model::Resources;

    fn desired(slivers: Vec<SliverSpec>, boot: BootState) -> DesiredSlivers {
        DesiredSlivers {
            node_id: 1,
            hostname: "n1".into(),
            boot_state: boot,
            revision: "r".into(),
            bwlimit: None,
            slivers,
            staff: Vec::new(),
        }
    }

    fn spec(name: &str) -> SliverSpec {
        SliverSpec {
            slice_id: 1,
            slice_name: name.into(),
            expires: 100,
            run: true,
            keys: vec![],
            resources: Resources::default(),
            image_digest: None,
        }
    }

    #[test]
    fn fake_runtime_converges_and_reports() {
        let rt = FakeRuntime::new();
        let d = desired(vec![spec("pl_a"), spec("pl_b")], BootState::Boot);
        let o = reconcile(&rt, &d, 10).unwrap();
        assert_eq!(o.actions.len(), 4);
        assert!(reconcile(&rt, &d, 10).unwrap().actions.is_empty());
        rt.crash("pl_b");
        let st = statuses(&rt, &d, 10).unwrap();
        assert_eq!(st[1].state, SliverState::Creating);
        assert_eq!(
            reconcile(&rt, &d, 10).unwrap().actions,
            vec![Action::Start("pl_b".into())]
        );
        // safeboot stops everything, keeps the slivers
        let safe = desired(d.slivers.clone(), BootState::Safeboot);
        reconcile(&rt, &safe, 10).unwrap();
        let st = statuses(&rt, &safe, 10).unwrap();
        assert!(st.iter().all(|s| s.state == SliverState::Stopped));
        // expiry destroys
        reconcile(&rt, &d, 100).unwrap();
        assert!(rt.list().unwrap().is_empty());
        assert_eq!(rt.calls().last().map(String::as_str), Some("destroy pl_b"));
    }

    #[test]
    fn health_reads_proc() {
        let h = health(Path::new("/"));
        assert!(h.mem_total_mb > 0);
        assert!(h.disk_total_mb > 0);
    }
}
