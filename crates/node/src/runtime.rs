//! The runtime: applies actions to the machine. `LinuxRuntime` does it for real (as root);
//! `FakeRuntime` only records them (unit tests, scale simulation).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use slicelab_model::image::ImageConfig;
use slicelab_model::sliver::LimitCounts;
use slicelab_model::time::now;
use slicelab_model::SliverSpec;

use crate::cgroup::{Cgroups, Reserve};
use crate::disk;
use crate::error::{IoContext, NodeError};
use crate::idmap;
use crate::image;
use crate::image::store::ImageStore;
use crate::launchers::{self, LauncherPool};
use crate::names::{self, NodeNames};
use crate::net;
use crate::netlink::route::Route;
use crate::plan::{Action, ObservedSliver};
use crate::reports::Reports;
use crate::sandbox::handshake::{Release, Report};
use crate::sandbox::userns::{self, IdRange};
use crate::sandbox::{Assignment, Builtin, ExecSpec, LaunchSpec, Service, EXEC_ENV};
use crate::shift;
use crate::sitecap::{self, CapSliver, SiteCap};
use crate::state::{self, ProcId, SliverRecord};
use crate::sync::lock;
use crate::veth;
use crate::warm::{self, Profile, Warm, WarmPool};

/// The OS side of the reconciler. Blocking calls; the daemon runs them off the async executor.
pub trait Runtime: Send + Sync {
    fn list(&self) -> Result<Vec<ObservedSliver>, NodeError>;
    fn create(&self, spec: &SliverSpec) -> Result<(), NodeError>;
    fn update(&self, spec: &SliverSpec) -> Result<(), NodeError>;
    fn start(&self, slice: &str) -> Result<(), NodeError>;
    fn stop(&self, slice: &str) -> Result<(), NodeError>;
    fn destroy(&self, slice: &str) -> Result<(), NodeError>;
    fn exec(&self, slice: &str, argv: &[String]) -> Result<Output, NodeError>;

    fn apply(&self, action: &Action) -> Result<(), NodeError> {
        match action {
            Action::Create(s) => self.create(s),
            Action::Update(s) => self.update(s),
            Action::Start(n) => self.start(n),
            Action::Stop(n) => self.stop(n),
            Action::Destroy(n) => self.destroy(n),
        }
    }
}

/// Everything the Linux runtime needs to know.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub state_dir: PathBuf,
    pub names: NodeNames,
    /// The executable re-executed as sliver init / exec helper; it must call
    /// `maybe_run_sliver_init()` first thing in `main`. Default: `/proc/self/exe`.
    pub init_exe: PathBuf,
    /// The machine-wide registry of slices' uid ranges (see `idmap`); shared by every node
    /// manager on the machine.
    pub idmap_registry: PathBuf,
    /// What no combination of slivers may take from the machine (see `cgroup::Reserve`).
    pub reserve: Reserve,
    /// The interface the site's bandwidth cap shapes (see `sitecap`); `None`: the device of
    /// the default route.
    pub uplink: Option<String>,
}

impl RuntimeConfig {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            names: NodeNames::default(),
            init_exe: default_init_exe(),
            idmap_registry: PathBuf::from(idmap::DEFAULT_REGISTRY),
            reserve: Reserve::default(),
            uplink: None,
        }
    }
}

/// The running binary, resolved now: `/proc/self/exe` still works after an upgrade replaced the
/// file, but a resolved path is what we can hand to `Command`.
pub fn default_init_exe() -> PathBuf {
    fs::read_link("/proc/self/exe").unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
}

pub struct LinuxRuntime {
    cfg: RuntimeConfig,
    cgroups: Cgroups,
    /// Published images (opened once: a start or an exec only reads it).
    images: ImageStore,
    /// The site's bandwidth cap on the uplink, as last applied.
    site_cap: SiteCap,
    /// How long each step of the last successful start and destroy took (benchmark breakdown).
    start_steps: Mutex<Vec<(&'static str, Duration)>>,
    destroy_steps: Mutex<Vec<(&'static str, Duration)>>,
    /// Launchers started ahead of the next sliver start (`launchers`).
    launchers: Arc<LauncherPool>,
    /// Slivers built ahead for the next new sliver (`warm`).
    warm: WarmPool,
    /// Warm slivers taken by `create`, each waiting for its sliver's `start`.
    assigned: Mutex<BTreeMap<String, Warm>>,
    /// Each sliver's address, as its record holds it: read from the records at the first
    /// allocation, then kept by `create` and `destroy` (the only writers of an address), so an
    /// allocation reads no record.
    addresses: Mutex<Option<BTreeMap<String, Ipv4Addr>>>,
}

/// Times the steps of one start or destroy.
struct Steps {
    last: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Steps {
    fn new() -> Self {
        Self {
            last: Instant::now(),
            done: Vec::new(),
        }
    }

    fn mark(&mut self, step: &'static str) {
        let now = Instant::now();
        self.done.push((step, now - self.last));
        self.last = now;
    }
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

impl LinuxRuntime {
    /// Opens the runtime and sets up the node's gateway interface and nft table.
    pub fn new(cfg: RuntimeConfig) -> Result<Self, NodeError> {
        let rt = Self::open(cfg)?;
        net::ensure_node(&rt.cfg.names)?;
        net::ensure_antispoof_chain(&rt.cfg.names)?;
        rt.reallow_running()?;
        rt.cgroups.ensure_parent(&rt.cfg.reserve)?;
        rt.reclaim_ranges()?;
        rt.upgrade_root_mapped()?;
        rt.drop_oom_exemptions();
        empty_trash(&rt.cfg.state_dir)?;
        warm::clear_leftovers(&rt.cfg.state_dir, &rt.cgroups)?;
        Ok(rt)
    }

    /// Opens the runtime without touching the network (enough for `exec`).
    pub fn open(cfg: RuntimeConfig) -> Result<Self, NodeError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(NodeError::NotRoot);
        }
        cfg.names.check()?;
        let cgroups = Cgroups::detect(&cfg.names.cgroup_parent)?;
        let dir = names::slivers_dir(&cfg.state_dir);
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let images = ImageStore::open(&cfg.state_dir)?;
        if let Some(u) = &cfg.uplink {
            sitecap::check_uplink(u)?;
        }
        let site_cap = SiteCap::new(&cfg.state_dir, &cfg.names, cfg.uplink.clone());
        let launchers = Arc::new(LauncherPool::new(cfg.init_exe.clone()));
        let warm = WarmPool::new(
            cfg.state_dir.clone(),
            cfg.names.clone(),
            cgroups.clone(),
            cfg.idmap_registry.clone(),
            launchers.clone(),
        );
        Ok(Self {
            launchers,
            warm,
            assigned: Mutex::default(),
            cfg,
            cgroups,
            images,
            site_cap,
            start_steps: Mutex::default(),
            destroy_steps: Mutex::default(),
            addresses: Mutex::default(),
        })
    }

    fn record_steps(&self, to: &Mutex<Vec<(&'static str, Duration)>>, steps: Steps) {
        if let Ok(mut g) = to.lock() {
            *g = steps.done;
        }
    }

    /// The steps of the last successful start, with the time each took (one in parentheses ran
    /// beside the others).
    pub fn last_start_steps(&self) -> Vec<(&'static str, Duration)> {
        self.start_steps
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// The steps of the last successful destroy, with the time each took.
    pub fn last_destroy_steps(&self) -> Vec<(&'static str, Duration)> {
        self.destroy_steps
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// How many starts so far took a launcher from the pool (see `launchers`).
    pub fn pooled_launchers_taken(&self) -> usize {
        self.launchers.taken()
    }

    /// How many new slivers so far were made from a warm sliver (see `warm`).
    pub fn warm_slivers_taken(&self) -> usize {
        self.warm.taken()
    }

    /// Waits up to `timeout` until what is built ahead of the next start (launchers, a warm
    /// sliver) is built: what a node has between two slice creations, which come seconds apart.
    /// Whether it was.
    pub fn wait_built_ahead(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.warm.busy() || self.launchers.busy() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Whether slivers are built ahead for the next new sliver (`warm`; on by default). Off ends
    /// the waiting ones (the benchmark times cold starts this way).
    pub fn set_warm_slivers(&self, on: bool) {
        self.warm.set_enabled(on);
    }

    /// Ends the launchers and warm slivers started ahead of the next start (node manager
    /// shutdown; dropping the runtime does it too). A later start spawns its own; the pools stay
    /// empty.
    pub fn stop_launchers(&self) {
        self.warm.drain();
        let assigned = std::mem::take(&mut *lock(&self.assigned));
        for w in assigned.into_values() {
            w.end_processes();
        }
        self.launchers.drain();
    }

    /// Ends the warm processes `create` gave `slice`, if it has any (its directory is the
    /// sliver's and stays).
    fn unassign(&self, slice: &str) {
        let w = lock(&self.assigned).remove(slice);
        if let Some(w) = w {
            w.end_processes();
        }
    }

    /// What a warm sliver for `spec` is made for.
    fn profile_of(&self, spec: &SliverSpec) -> Result<Profile, NodeError> {
        Ok(Profile {
            lowers: self.image_of(spec)?.0,
            disk_max: spec.resources.disk_max,
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    pub fn cgroups(&self) -> &Cgroups {
        &self.cgroups
    }

    fn record(&self, slice: &str) -> Result<SliverRecord, NodeError> {
        names::check_slice_name(slice)?;
        state::load(&self.cfg.state_dir, slice)?
            .ok_or_else(|| NodeError::NoSuchSliver(slice.into()))
    }

    /// Applies the site's bandwidth cap (`bwlimit`, bits/s; `None`: none) to the uplink, shared
    /// by the running slivers' `net_share` (see `sitecap`). Cheap when nothing changed.
    pub fn apply_site_cap(&self, bwlimit: Option<u64>) -> Result<(), NodeError> {
        let mut slivers = Vec::new();
        if bwlimit.is_some() {
            for slice in state::list_slices(&self.cfg.state_dir)? {
                let Ok(Some(rec)) = state::load(&self.cfg.state_dir, &slice) else {
                    continue;
                };
                if let (Some(address), Some(_)) = (rec.address, self.init_of(&slice)) {
                    slivers.push(CapSliver {
                        slice,
                        address,
                        share: rec.spec.resources.net_share.unwrap_or(1),
                    });
                }
            }
        }
        self.site_cap.apply(bwlimit, &slivers)
    }

    /// The live init of a sliver, if any.
    pub fn init_of(&self, slice: &str) -> Option<ProcId> {
        let rec = state::load(&self.cfg.state_dir, slice).ok()??;
        rec.init.filter(|p| {
            reap(p.pid);
            p.is_alive()
        })
    }

    /// Re-registers every sliver's uid range in the machine's registry (a cache of the records,
    /// written without fsync). A range another sliver took meanwhile is given up: the sliver
    /// gets a new one at its next start and its layer is shifted there.
    fn reclaim_ranges(&self) -> Result<(), NodeError> {
        for slice in state::list_slices(&self.cfg.state_dir)? {
            let Ok(Some(mut rec)) = state::load(&self.cfg.state_dir, &slice) else {
                continue;
            };
            let Some(range) = rec.idmap else { continue };
            let dir = names::sliver_dir(&self.cfg.state_dir, &slice);
            if idmap::claim(&self.cfg.idmap_registry, &dir, range).is_err() {
                tracing::warn!(slice, base = range.base, "uid range lost to another sliver");
                rec.idmap = None;
                state::save(&self.cfg.state_dir, &rec)?;
            }
        }
        Ok(())
    }

    /// Stops every running sliver that shares the host's user namespace (started by a node
    /// manager from before user namespaces): the next reconcile starts it again in its own, with
    /// its files shifted into its range (`shift`), so an upgrade keeps every sliver's files.
    fn upgrade_root_mapped(&self) -> Result<(), NodeError> {
        for slice in state::list_slices(&self.cfg.state_dir)? {
            let Some(init) = self.init_of(&slice) else {
                continue;
            };
            if userns::has_own_userns(init.pid) != Ok(false) {
                continue;
            }
            tracing::info!(
                slice,
                "restarting a root-mapped sliver in its own user namespace"
            );
            self.stop(&slice)?;
        }
        Ok(())
    }

    /// Takes the node manager's OOM exemption from every process of every running sliver: a
    /// sliver started by a node manager from before the launcher reset it inherited -1000, with
    /// the floor at -1000 (so any of its processes could set it again). Written by host root,
    /// 0 also moves the floor to 0. A sliver that keeps forking exempt processes past a few
    /// sweeps is stopped; the next reconcile starts it anew.
    fn drop_oom_exemptions(&self) {
        for slice in state::list_slices(&self.cfg.state_dir).unwrap_or_default() {
            if self.init_of(&slice).is_none() {
                continue;
            }
            let mut clean = false;
            for _ in 0..5 {
                let exempt: Vec<i32> = self
                    .cgroups
                    .pids(&slice)
                    .into_iter()
                    .filter(|p| oom_score_adj(*p).is_some_and(|v| v < 0))
                    .collect();
                if exempt.is_empty() {
                    clean = true;
                    break;
                }
                for p in exempt {
                    let _ = fs::write(format!("/proc/{p}/oom_score_adj"), "0");
                }
            }
            if !clean {
                tracing::warn!(slice, "stopping a sliver whose processes stay OOM-exempt");
                if let Err(e) = self.stop(&slice) {
                    tracing::warn!(slice, "stopping it: {e}");
                }
            }
        }
    }

    /// Re-adds the anti-spoofing elements of every running sliver (a table made or upgraded by
    /// [`net::ensure_antispoof_chain`] holds none).
    fn reallow_running(&self) -> Result<(), NodeError> {
        for slice in state::list_slices(&self.cfg.state_dir)? {
            let Ok(Some(rec)) = state::load(&self.cfg.state_dir, &slice) else {
                continue;
            };
            if let (Some(a), Some(_)) = (rec.address, self.init_of(&slice)) {
                net::allow_sliver(&self.cfg.names, &slice, a)?;
            }
        }
        Ok(())
    }

    /// The slice's uid range: the one its record holds (re-registered if the machine's registry
    /// lost it), or a new one.
    fn id_range(&self, slice: &str, held: Option<IdRange>) -> Result<IdRange, NodeError> {
        let dir = names::sliver_dir(&self.cfg.state_dir, slice);
        match held {
            Some(r) => idmap::claim(&self.cfg.idmap_registry, &dir, r).map(|()| r),
            None => idmap::allocate(&self.cfg.idmap_registry, &dir),
        }
    }

    /// The host uid/gid that root of the sliver maps to (owner of files it creates).
    pub fn root_ids(&self, slice: &str) -> Option<(u32, u32)> {
        let rec = state::load(&self.cfg.state_dir, slice).ok()??;
        rec.idmap.map(|r| (r.host(0), r.host(0)))
    }

    /// The sliver's limits hit so far: OOM kills, refused forks, and a full disk quota now.
    pub fn limits_hit(&self, slice: &str) -> LimitCounts {
        let (memory, pids) = self.cgroups.limit_events(slice);
        let dir = names::sliver_dir(&self.cfg.state_dir, slice);
        let disk = u64::from(disk::is_mounted(&dir) && disk::is_full(&dir));
        LimitCounts { memory, pids, disk }
    }

    /// Creates new sliver `spec` from warm sliver `w` (see `warm`): its directory becomes the
    /// sliver's, its uid range the slice's; `start` hands the rest over.
    fn create_warm(&self, spec: &SliverSpec, mut w: Warm, dir: &Path) -> Result<(), NodeError> {
        let slice = spec.slice_name.as_str();
        // The rename under the registry's lock, so the range is never without an owner.
        if let Err(e) = idmap::move_owner(&self.cfg.idmap_registry, w.range, &w.dir, dir) {
            w.discard(&self.cfg.idmap_registry);
            return Err(e);
        }
        w.dir = dir.to_path_buf();
        let address = match self.allocate_address(slice) {
            Ok(a) => a,
            Err(e) => {
                w.end_processes();
                return Err(e);
            }
        };
        let rec = SliverRecord {
            spec: spec.clone(),
            address: Some(address),
            init: None,
            failure: None,
            failures: 0,
            retry_after: 0,
            throttled: None,
            idmap: Some(w.range),
            // The warm init built the root as root of this range.
            layer_owner: Some(w.range.base),
        };
        // Nothing depends on a new sliver's record until it has run (see `save_unsynced`).
        if let Err(e) = state::save_unsynced(&self.cfg.state_dir, &rec) {
            self.forget_address(slice);
            w.end_processes();
            return Err(e);
        }
        lock(&self.assigned).insert(slice.to_string(), w);
        Ok(())
    }

    /// The record of a sliver being created with `address`, over its `old` one if any.
    fn save_created(
        &self,
        spec: &SliverSpec,
        old: Option<SliverRecord>,
        address: Ipv4Addr,
    ) -> Result<(), NodeError> {
        let slice = spec.slice_name.as_str();
        let idmap = self.id_range(slice, old.as_ref().and_then(|r| r.idmap))?;
        let rec = SliverRecord {
            spec: spec.clone(),
            address: Some(address),
            init: old.as_ref().and_then(|r| r.init),
            failure: None,
            failures: 0,
            retry_after: 0,
            throttled: old.as_ref().and_then(|r| r.throttled.clone()),
            idmap: Some(idmap),
            layer_owner: old.as_ref().and_then(|r| r.layer_owner),
        };
        match old {
            // Nothing depends on a new sliver's record until it has run (see `save_unsynced`).
            None => state::save_unsynced(&self.cfg.state_dir, &rec),
            Some(_) => state::save(&self.cfg.state_dir, &rec),
        }
    }

    /// The lowest address of the node's subnet no other sliver holds, now held by `slice`.
    fn allocate_address(&self, slice: &str) -> Result<Ipv4Addr, NodeError> {
        let mut guard = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let mut held = BTreeMap::new();
            for other in state::list_slices(&self.cfg.state_dir)? {
                if let Ok(Some(r)) = state::load(&self.cfg.state_dir, &other) {
                    held.extend(r.address.map(|a| (other, a)));
                }
            }
            *guard = Some(held);
        }
        let held = guard.get_or_insert_with(BTreeMap::new);
        let used: std::collections::BTreeSet<Ipv4Addr> = held
            .iter()
            .filter(|(s, _)| s.as_str() != slice)
            .map(|(_, a)| *a)
            .collect();
        let address = (2..=254u8)
            .map(|i| self.cfg.names.host(i))
            .find(|a| !used.contains(a))
            .ok_or_else(|| NodeError::NoAddress(self.cfg.names.subnet_cidr()))?;
        held.insert(slice.to_string(), address);
        Ok(address)
    }

    /// `slice`'s address is free again (its record is gone).
    fn forget_address(&self, slice: &str) {
        if let Some(held) = self
            .addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            held.remove(slice);
        }
    }

    /// The sliver's image: its layers, top first, and (for a published image) its config.
    fn image_of(
        &self,
        spec: &SliverSpec,
    ) -> Result<(Vec<PathBuf>, Option<ImageConfig>), NodeError> {
        if let Some(digest) = &spec.image_digest {
            let l = self.images.lowers(digest)?;
            return Ok((l.layers, Some(l.config)));
        }
        let name = spec
            .resources
            .image
            .clone()
            .unwrap_or_else(|| image::DEFAULT_IMAGE.to_string());
        Ok((vec![image::ensure_image(&self.cfg.state_dir, &name)?], None))
    }

    /// The image's Env, which sessions get too (`exec`, ssh).
    fn image_env(&self, slice: &str) -> Vec<(String, String)> {
        let Ok(Some(rec)) = state::load(&self.cfg.state_dir, slice) else {
            return Vec::new();
        };
        let Some(digest) = rec.spec.image_digest else {
            return Vec::new();
        };
        self.images
            .manifest(&digest)
            .ok()
            .flatten()
            .map(|m| {
                m.config
                    .env
                    .iter()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn start_inner(&self, rec: &SliverRecord, mut steps: Steps) -> Result<ProcId, NodeError> {
        let slice = rec.spec.slice_name.as_str();
        let n = &self.cfg.names;
        let fail = |message: String| NodeError::Start {
            slice: slice.into(),
            message,
        };
        net::ensure_node_quick(n)?;
        let (lowers, image_config) = self.image_of(&rec.spec)?;
        steps.mark("image");
        let address = rec
            .address
            .ok_or_else(|| fail("no address allocated".into()))?;
        net::detach(slice)?;
        let dir = names::sliver_dir(&self.cfg.state_dir, slice);
        let disk_max = rec.spec.resources.disk_max;
        disk::place_layer(&dir, disk_max)?;
        steps.mark("disk layer");
        let (upper, work) = disk::layer_dirs(&dir, disk_max.is_some());
        let idmap = rec
            .idmap
            .ok_or_else(|| fail("no uid range allocated".into()))?;
        fs::create_dir_all(&upper).ctx(|| format!("creating {}", upper.display()))?;
        shift::ensure_layer_owned(&upper, rec.layer_owner.unwrap_or(0), idmap)?;
        steps.mark("shift");
        let launch = LaunchSpec {
            slice: slice.into(),
            lowers,
            image_mnt: dir.join("image"),
            idmap,
            upper,
            work,
            rootfs: dir.join("rootfs"),
            console: dir.join("console.log"),
            service: Service::for_sliver(
                rec.spec.resources.initscript.as_deref(),
                image_config.as_ref(),
            ),
            warm: false,
        };
        let mut json = serde_json::to_vec(&launch).map_err(|e| fail(e.to_string()))?;
        json.push(b'\n');
        // A launcher started ahead (`launchers`), told its sliver on its stdin.
        let mut child = self
            .launchers
            .take()
            .ctx(|| format!("spawning sliver launcher {}", self.cfg.init_exe.display()))?;
        // Its stdin stays in `child` (the launcher exits once it is closed), taken only to write.
        let tell = |child: &mut std::process::Child, line: &[u8]| {
            child.stdin.as_mut().map_or(Ok(()), |i| i.write_all(line))
        };
        if let Err(e) = tell(&mut child, &json) {
            launchers::end(child);
            return Err(fail(format!("handing the launcher its spec: {e}")));
        }
        steps.mark("launcher: spec");
        let Some(stdout) = child.stdout.take() else {
            launchers::end(child);
            return Err(fail("no pipe from the launcher".into()));
        };
        let abort = |child: std::process::Child, pid: Option<i32>, msg: String| {
            if let Some(p) = pid {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            launchers::end(child);
            fail(msg)
        };
        // While the launcher maps its user namespace and mounts the root: the sliver's cgroups,
        // rid of a previous incarnation's leftovers (exec helpers, a half-started init), with
        // the launcher moved in. It forks the init only once told.
        self.cgroups.kill_all(slice, Duration::from_secs(5));
        let joined = self
            .cgroups
            .create(slice, &rec.spec.resources)
            .and_then(|()| self.cgroups.join(slice, child.id()))
            .and_then(|()| {
                tell(&mut child, Release::Joined.line().as_bytes())
                    .ctx(|| "telling the launcher it joined its cgroups".into())
            });
        if let Err(e) = joined {
            return Err(abort(child, None, format!("cgroups: {e}")));
        }
        steps.mark("cgroup, joined");
        // Read here, not on a reader thread (a hand-off per line, which a busy node pays in
        // scheduling latency); a launcher that hangs is cut off by the deadline.
        let mut reports = Reports::new(stdout, Instant::now() + START_TIMEOUT);
        let rate = net::effective_rate(rec.spec.resources.net_max_rate, rec.throttled.is_some());
        // The sliver's network namespace exists before its root filesystem: it is wired while the
        // launcher builds the root (the sliver runs nothing of the slice's before it is released
        // below). Through the launcher, which reports when it has joined that namespace and
        // stays until dismissed; failing that, through the init.
        let launcher = child.id();
        let wire = |netns: &File, inside: Option<Route>, steps: &mut Steps| {
            veth::attach(n, slice, netns, inside, address, rate)
                .inspect(|_| steps.mark("veth+addr+route+qdisc"))
                .and_then(|()| net::install_rules(n, slice, address, &rec.spec.resources.ports))
                .inspect(|_| steps.mark("nft"))
        };
        let mut wired = None;
        let (mut pid, mut ready) = (None, false);
        while pid.is_none() || wired.is_none() || !ready {
            let report = match reports.next() {
                Ok(Report::Error(e)) | Err(e) => Err(e),
                Ok(r) => Ok(r),
            };
            match report {
                Ok(Report::Netns(fd)) if wired.is_none() => {
                    steps.mark("launcher: map, netns");
                    if let Ok(ns) = File::open(format!("/proc/{launcher}/ns/net")) {
                        // Failing that (no pidfd_getfd), a thread of ours joins the netns.
                        let inside = Route::of_process(launcher, fd)
                            .inspect_err(|e| tracing::debug!(slice, "launcher's socket: {e}"))
                            .ok();
                        wired = Some(wire(&ns, inside, &mut steps));
                    }
                }
                Ok(Report::Pid(p)) => {
                    pid = Some(p);
                    if wired.is_none() {
                        wired = Some(
                            File::open(format!("/proc/{p}/ns/net"))
                                .map_err(|e| fail(format!("the sliver init's network: {e}")))
                                .and_then(|ns| wire(&ns, None, &mut steps)),
                        );
                    }
                }
                Ok(Report::Ready) => ready = true,
                Ok(_) => {}
                Err(e) if wired.is_some() => {
                    let _ = net::remove_sliver_rules(n, slice, Some(address));
                    return Err(abort(child, pid, e));
                }
                Err(e) => return Err(abort(child, pid, e)),
            }
            if let Some(Err(e)) = &wired {
                let msg = format!("network: {e}");
                let _ = net::remove_sliver_rules(n, slice, Some(address));
                return Err(abort(child, pid, msg));
            }
        }
        let Some(pid) = pid else {
            return Err(abort(child, None, "no pid from launcher".into()));
        };
        // The sliver is wired: a failure from here on also takes its address off the node's rules.
        let abort_wired = |child: std::process::Child, msg: String| {
            let _ = net::remove_sliver_rules(n, slice, Some(address));
            abort(child, Some(pid), msg)
        };
        let Some(id) = ProcId::of(pid) else {
            return Err(abort_wired(child, "sliver init vanished".into()));
        };
        steps.mark("launcher: mounts; init: root");
        if let Err(e) = tell(&mut child, Release::Go.line().as_bytes()) {
            return Err(abort_wired(child, format!("releasing init: {e}")));
        }
        // The launcher exits once dismissed (its stdin closed), and is reaped, in the
        // background (`launchers`).
        drop(reports);
        self.launchers.dismiss(child);
        steps.mark("release");
        self.record_steps(&self.start_steps, steps);
        Ok(id)
    }

    /// Starts a new sliver from the warm sliver `create` gave it (see `warm`): only what is
    /// the slice's is done here. On failure the warm processes are ended; the next start is a
    /// cold one, in the same directory.
    fn start_warm(
        &self,
        rec: &SliverRecord,
        mut w: Warm,
        mut steps: Steps,
    ) -> Result<ProcId, NodeError> {
        match self.hand_over(rec, &mut w, &mut steps) {
            Ok(()) => {
                let init = w.init;
                // Its stdin closed: the init's first process has the release, nothing more is
                // read from it.
                drop(w);
                steps.mark("release");
                self.record_steps(&self.start_steps, steps);
                Ok(init)
            }
            Err(e) => {
                w.end_processes();
                Err(e)
            }
        }
    }

    /// Gives warm sliver `w` its slice: the init is told its name and service, moved into the
    /// slice's cgroups before it forks anything, and released once the network is plugged in
    /// and it has confined itself.
    fn hand_over(
        &self,
        rec: &SliverRecord,
        w: &mut Warm,
        steps: &mut Steps,
    ) -> Result<(), NodeError> {
        let slice = rec.spec.slice_name.as_str();
        let n = &self.cfg.names;
        let fail = |message: String| NodeError::Start {
            slice: slice.into(),
            message,
        };
        // Made at idle priority: the sliver's processes get the node manager's, as a cold start
        // gives them.
        // SAFETY: getpriority of the calling thread and setpriority of the init, with integer
        // arguments (host root may raise a priority).
        unsafe {
            let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            libc::setpriority(libc::PRIO_PROCESS, w.init.pid as libc::id_t, nice);
        }
        net::ensure_node_quick(n)?;
        let (_, image_config) = self.image_of(&rec.spec)?;
        let address = rec
            .address
            .ok_or_else(|| fail("no address allocated".into()))?;
        net::detach(slice)?;
        let assignment = Assignment {
            slice: slice.into(),
            service: Service::for_sliver(
                rec.spec.resources.initscript.as_deref(),
                image_config.as_ref(),
            ),
        };
        let mut line = serde_json::to_vec(&assignment).map_err(|e| fail(e.to_string()))?;
        line.push(b'\n');
        let res = &rec.spec.resources;
        // The init's cgroups made ahead become the slice's, if they can (see `warm`); it is
        // then in them already, and told so with its assignment.
        let renamed = w.cgroup.as_deref().is_some_and(|name| {
            self.cgroups
                .rename(name, slice)
                .inspect_err(|e| tracing::debug!(slice, "warm cgroups: {e}"))
                .is_ok()
        });
        if renamed {
            line.extend_from_slice(Release::Joined.line().as_bytes());
        }
        w.tell(&line)
            .map_err(|e| fail(format!("telling the warm sliver its slice: {e}")))?;
        // Renamed, they are the slice's; if not, ended below whatever happens.
        let left = w.cgroup.take().filter(|_| !renamed);
        steps.mark("warm: assigned");
        // The cgroups on a second thread while this one plugs in the network: the init needs
        // only the former to go on (it confines itself meanwhile), the release needs both.
        let init = w.init.pid as u32;
        let stdin = &mut w.stdin;
        let rate = net::effective_rate(res.net_max_rate, rec.throttled.is_some());
        let (netns, route, pair) = (&w.netns, w.route.take(), w.veth);
        let (joined, wired) = std::thread::scope(|sc| {
            let joined = sc.spawn(move || {
                if renamed {
                    return self.cgroups.apply(slice, res);
                }
                self.cgroups.kill_all(slice, Duration::from_secs(5));
                self.cgroups
                    .create(slice, res)
                    .and_then(|()| self.cgroups.join(slice, init))
                    .and_then(|()| {
                        stdin
                            .write_all(Release::Joined.line().as_bytes())
                            .ctx(|| "telling the init it joined its cgroups".into())
                    })
            });
            let wired = match (pair, route) {
                (Some(host), Some(route)) => veth::plug(n, slice, host, route, address, rate),
                (_, route) => veth::attach(n, slice, netns, route, address, rate),
            }
            .and_then(|()| net::install_rules(n, slice, address, &res.ports));
            let joined = joined.join().unwrap_or_else(|_| {
                Err(NodeError::Invalid {
                    what: "cgroup thread",
                    message: "panicked".into(),
                })
            });
            (joined, wired)
        });
        // The cgroups the init was built in, if they could not become the slice's: empty once
        // it moved, and ended either way.
        if let Some(name) = &left {
            warm::end_cgroups(&self.cgroups, name);
        }
        steps.mark("cgroup, joined | veth, nft");
        let released = joined
            .map_err(|e| fail(format!("cgroups: {e}")))
            .and(wired.map_err(|e| fail(format!("network: {e}"))))
            .and_then(|()| {
                w.reports.wait_within(START_TIMEOUT);
                loop {
                    match w.reports.next() {
                        Ok(Report::Ready) => break Ok(()),
                        Ok(Report::Error(e)) | Err(e) => break Err(fail(e)),
                        Ok(_) => {}
                    }
                }
            })
            .inspect(|()| steps.mark("init: confined"))
            .and_then(|()| {
                w.tell(Release::Go.line().as_bytes())
                    .map_err(|e| fail(format!("releasing init: {e}")))
            });
        if released.is_err() {
            let _ = net::remove_sliver_rules(n, slice, Some(address));
        }
        released
    }

    /// The command that runs `argv` inside the running sliver (same confinement as its init).
    /// Stdio is inherited unless the caller sets it.
    pub fn exec_command(&self, slice: &str, argv: &[String]) -> Result<Command, NodeError> {
        self.exec_command_env(slice, argv, &[])
    }

    /// [`Self::exec_command`] with `env` added to (and overriding) the sliver's environment.
    pub fn exec_command_env(
        &self,
        slice: &str,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<Command, NodeError> {
        self.helper_command(slice, argv, env, None)
    }

    /// The command that runs the node's own `builtin` inside the running sliver, under the same
    /// joining and confinement as [`Self::exec_command`]. Stdio is inherited unless set.
    pub fn builtin_command(&self, slice: &str, builtin: Builtin) -> Result<Command, NodeError> {
        self.helper_command(slice, &[], &[], Some(builtin))
    }

    fn helper_command(
        &self,
        slice: &str,
        argv: &[String],
        env: &[(String, String)],
        builtin: Option<Builtin>,
    ) -> Result<Command, NodeError> {
        let spec = self.exec_spec(slice, argv, env, builtin)?;
        let json = serde_json::to_string(&spec).map_err(|e| NodeError::Invalid {
            what: "exec spec",
            message: e.to_string(),
        })?;
        let mut c = Command::new(&self.cfg.init_exe);
        c.env_clear().env(EXEC_ENV, json);
        Ok(c)
    }

    /// What the exec helper needs to run `argv` (or `builtin`) in the running sliver, with `env`
    /// added to (and overriding) the sliver's environment: for [`Self::exec_command`] and the
    /// exec [`crate::sandbox::Spawner`].
    pub fn exec_spec(
        &self,
        slice: &str,
        argv: &[String],
        env: &[(String, String)],
        builtin: Option<Builtin>,
    ) -> Result<ExecSpec, NodeError> {
        names::check_slice_name(slice)?;
        let init = self.init_of(slice).ok_or_else(|| NodeError::Start {
            slice: slice.into(),
            message: "not running".into(),
        })?;
        let mut all_env = self.image_env(slice);
        all_env.extend(env.iter().cloned());
        Ok(ExecSpec {
            init_pid: init.pid,
            cgroup_procs: self.cgroups.procs_files(slice),
            argv: argv.to_vec(),
            env: all_env,
            builtin,
        })
    }

    /// Throttles (`Some(reason)`) or un-throttles the sliver's egress (bwmon). Recorded, so a
    /// restart keeps it; applied live if the sliver runs.
    pub fn set_throttle(&self, slice: &str, reason: Option<String>) -> Result<(), NodeError> {
        let mut rec = self.record(slice)?;
        if rec.throttled == reason {
            return Ok(());
        }
        // Applied before it is recorded: if tc fails, the record still differs from what bwmon
        // wants, so the next round tries again.
        if let Some(init) = self.init_of(slice) {
            let rate = net::effective_rate(rec.spec.resources.net_max_rate, reason.is_some());
            net::set_egress_rate(init.pid, rate)?;
        }
        rec.throttled = reason;
        state::save(&self.cfg.state_dir, &rec)
    }

    fn stop_init(&self, slice: &str, init: Option<ProcId>) {
        if let Some(p) = init {
            let pid = Pid::from_raw(p.pid);
            if p.is_alive() {
                let _ = kill(pid, Signal::SIGTERM);
                if !wait_dead(&p, Duration::from_secs(5)) {
                    // Killing PID 1 of the sliver kills its whole PID namespace.
                    let _ = kill(pid, Signal::SIGKILL);
                    wait_dead(&p, Duration::from_secs(5));
                }
            }
            reap(p.pid);
        }
        // Exec helpers live in the host PID namespace, and a crash may leave strays.
        self.cgroups.kill_all(slice, Duration::from_secs(5));
    }
}

impl LinuxRuntime {
    /// Takes a stopped sliver off the network while `meanwhile` runs: its nft rules and set
    /// elements are removed on a second thread while this one deletes its veth (which waits for the kernel's
    /// teardown of the sliver's network namespace, tens of ms) and runs `meanwhile`. Only once
    /// the init is dead: a live sliver without its anti-spoofing elements could forge.
    fn unplug_while(
        &self,
        slice: &str,
        address: Option<Ipv4Addr>,
        meanwhile: impl FnOnce() -> Result<(), NodeError>,
    ) -> Result<(), NodeError> {
        std::thread::scope(|s| {
            let rules = s.spawn(|| net::remove_sliver_rules(&self.cfg.names, slice, address));
            let done = net::detach(slice).and_then(|()| meanwhile());
            let rules = rules.join().unwrap_or_else(|_| {
                Err(NodeError::Invalid {
                    what: "netlink thread",
                    message: "panicked".into(),
                })
            });
            rules.and(done)
        })
    }
}

/// Process `pid`'s `oom_score_adj`.
fn oom_score_adj(pid: i32) -> Option<i32> {
    fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reaps `pid` if it is our zombie child (a sliver init reparented to us as subreaper).
fn reap(pid: i32) {
    if matches!(state::proc_stat(pid), Some(('Z', _))) {
        let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
    }
}

/// Waits up to `timeout` for `p` to exit: on a pidfd (woken by the exit itself), or polling
/// where pidfds are missing.
fn wait_dead(p: &ProcId, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, p.pid, 0) };
    let pidfd = (fd >= 0).then(|| {
        // SAFETY: a fresh descriptor we own.
        unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
    });
    while Instant::now() < deadline {
        reap(p.pid);
        if !p.is_alive() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match &pidfd {
            Some(fd) => {
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.as_millis().clamp(1, 1000) as libc::c_int;
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, ms) };
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    !p.is_alive()
}

impl Runtime for LinuxRuntime {
    fn list(&self) -> Result<Vec<ObservedSliver>, NodeError> {
        let mut slices = state::list_slices(&self.cfg.state_dir)?;
        // A cgroup without a state dir is a leftover of a crash mid-destroy: observe it so the
        // planner destroys it.
        slices.extend(
            self.cgroups
                .list()
                .into_iter()
                .filter(|s| names::check_slice_name(s).is_ok()),
        );
        slices.sort();
        slices.dedup();
        let mut out = Vec::new();
        for s in slices {
            let rec = state::load(&self.cfg.state_dir, &s).ok().flatten();
            let running = rec.as_ref().and_then(|r| r.init).is_some_and(|p| {
                reap(p.pid);
                p.is_alive()
            });
            let limits = if running {
                self.limits_hit(&s)
            } else {
                LimitCounts::default()
            };
            out.push(ObservedSliver {
                slice_name: s,
                running,
                failure: rec.as_ref().and_then(|r| r.failure.clone()),
                retry_after: rec.as_ref().map_or(0, |r| r.retry_after),
                address: rec.as_ref().and_then(|r| r.address),
                note: rec.as_ref().and_then(|r| r.throttled.clone()),
                spec: rec.map(|r| r.spec),
                limits,
            });
        }
        Ok(out)
    }

    fn create(&self, spec: &SliverSpec) -> Result<(), NodeError> {
        let slice = spec.slice_name.as_str();
        names::check_slice_name(slice)?;
        let dir = names::sliver_dir(&self.cfg.state_dir, slice);
        self.unassign(slice);
        // Only for a sliver that will run: one created stopped would hold the warm processes
        // for as long as it stays so.
        if spec.run && !dir.exists() {
            if let Some(w) = self.profile_of(spec).ok().and_then(|p| self.warm.take(&p)) {
                match self.create_warm(spec, w, &dir) {
                    Err(e) if !dir.exists() => {
                        // Not taken (its directory could not become the sliver's): cold.
                        tracing::warn!(slice, "creating from a sliver built ahead: {e}");
                    }
                    done => return done,
                }
            }
        }
        for d in ["upper", "work", "rootfs"] {
            let p = dir.join(d);
            fs::create_dir_all(&p).ctx(|| format!("creating {}", p.display()))?;
        }
        // Recreating over a half-written sliver keeps its writable layer and address.
        let old = state::load(&self.cfg.state_dir, slice).ok().flatten();
        let (address, allocated) = match old.as_ref().and_then(|r| r.address) {
            Some(a) => (a, false),
            None => (self.allocate_address(slice)?, true),
        };
        let saved = self.save_created(spec, old, address);
        if saved.is_err() && allocated {
            self.forget_address(slice);
        }
        saved
    }

    fn update(&self, spec: &SliverSpec) -> Result<(), NodeError> {
        let slice = spec.slice_name.as_str();
        let mut rec = self.record(slice)?;
        self.unassign(slice);
        rec.spec = spec.clone();
        // A new spec deserves a fresh try.
        rec.failure = None;
        rec.retry_after = 0;
        state::save(&self.cfg.state_dir, &rec)?;
        if let Some(init) = self.init_of(slice) {
            let r = &spec.resources;
            self.cgroups.apply(slice, r)?;
            if let Some(a) = rec.address {
                net::set_ports(&self.cfg.names, slice, a, &r.ports)?;
            }
            let rate = net::effective_rate(r.net_max_rate, rec.throttled.is_some());
            net::set_egress_rate(init.pid, rate)?;
            let dir = names::sliver_dir(&self.cfg.state_dir, slice);
            // Growth is online; a lower `disk_max` is not applied to an existing layer (see
            // `disk`), and adding or removing one restarts the sliver (see `plan`).
            if let (Some(max), true) = (r.disk_max, disk::is_mounted(&dir)) {
                if !disk::ensure(&dir, max, false)? {
                    tracing::warn!(
                        slice,
                        "disk_max raised, but online resize is not permitted here \
                         (no CAP_SYS_RESOURCE); it applies at the sliver's next start"
                    );
                }
            }
        }
        Ok(())
    }

    fn start(&self, slice: &str) -> Result<(), NodeError> {
        let mut steps = Steps::new();
        let mut rec = self.record(slice)?;
        if self.init_of(slice).is_some() {
            return Ok(());
        }
        if rec.idmap.is_none() {
            // A sliver created before user namespaces: it gets its range now, for good.
            rec.idmap = Some(self.id_range(slice, None)?);
            state::save(&self.cfg.state_dir, &rec)?;
        }
        steps.mark("record, running?");
        let warm = lock(&self.assigned).remove(slice);
        let result = match warm {
            Some(w) if rec.idmap == Some(w.range) => self.start_warm(&rec, w, steps),
            Some(w) => {
                w.end_processes();
                self.start_inner(&rec, steps)
            }
            None => self.start_inner(&rec, steps),
        };
        match &result {
            Ok(id) => {
                rec.init = Some(*id);
                rec.layer_owner = rec.idmap.map(|r| r.base);
                rec.failure = None;
                rec.failures = 0;
                rec.retry_after = 0;
            }
            Err(e) => {
                rec.init = None;
                rec.failure = Some(e.to_string());
                rec.failures = rec.failures.saturating_add(1);
                rec.retry_after = now() + (1i64 << rec.failures.min(8)).min(300);
                self.stop_init(slice, None);
            }
        }
        let saved = state::save(&self.cfg.state_dir, &rec);
        // This start's launcher dismissed and the next ones started at idle priority, whatever
        // becomes of the record (see `launchers`); the next new sliver of this one's kind built
        // ahead (`warm`). After the record, which the initscript's own start overlaps.
        self.launchers.refill();
        if result.is_ok() {
            if let Ok(p) = self.profile_of(&rec.spec) {
                self.warm.refill(p);
            }
        }
        saved?;
        result.map(|_| ())
    }

    fn stop(&self, slice: &str) -> Result<(), NodeError> {
        self.unassign(slice);
        let mut rec = self.record(slice)?;
        self.stop_init(slice, rec.init);
        self.unplug_while(slice, rec.address, || {
            disk::unmount(&names::sliver_dir(&self.cfg.state_dir, slice))
        })?;
        rec.init = None;
        state::save(&self.cfg.state_dir, &rec)
    }

    fn destroy(&self, slice: &str) -> Result<(), NodeError> {
        names::check_slice_name(slice)?;
        let mut steps = Steps::new();
        self.unassign(slice);
        let rec = state::load(&self.cfg.state_dir, slice).ok().flatten();
        let address = rec.as_ref().and_then(|r| r.address);
        self.stop_init(slice, rec.and_then(|r| r.init));
        steps.mark("stop init");
        // The init is dead: nothing is left to forge with the sliver's address (see
        // `unplug_while`). One nft transaction on the node's kept socket (`net`).
        let rules = net::remove_sliver_rules(&self.cfg.names, slice, address);
        steps.mark("nft");
        let dir = names::sliver_dir(&self.cfg.state_dir, slice);
        let veth = net::veth_index(slice);
        self.cgroups.remove(slice)?;
        disk::unmount(&dir)?;
        let trash = move_to_trash(&self.cfg.state_dir, slice, &dir)?;
        self.forget_address(slice);
        steps.mark("cgroup, files");
        // What only waits for the kernel or the disk is finished off the destroy's path: the
        // veth (if the dead sliver's netns still holds it, its deletion waits for the netns'
        // teardown, tens of ms), the uid range (see `idmap::release`) and the files (freed blocks
        // are discarded synchronously on some disks, milliseconds each).
        let registry = self.cfg.idmap_registry.clone();
        let slice_name = slice.to_string();
        std::thread::spawn(move || {
            if let Some(i) = veth {
                if let Err(e) = net::delete_link(i) {
                    tracing::warn!(slice = slice_name, "deleting the veth: {e}");
                }
            }
            if let Err(e) = idmap::release(&registry, &dir) {
                tracing::warn!(slice = slice_name, "releasing the uid range: {e}");
            }
            if let Some(t) = trash {
                if let Err(e) = fs::remove_dir_all(&t) {
                    tracing::warn!(slice = slice_name, "removing {}: {e}", t.display());
                }
            }
        });
        self.record_steps(&self.destroy_steps, steps);
        rules
    }

    fn exec(&self, slice: &str, argv: &[String]) -> Result<Output, NodeError> {
        self.exec_command(slice, argv)?
            .stdin(Stdio::null())
            .output()
            .ctx(|| format!("running exec helper for {slice}"))
    }
}

/// Moves a destroyed sliver's directory out of `slivers/` (one rename: its record goes with it)
/// into the trash, for removal off the destroy's path; where the trash is not on the same
/// filesystem, removes it here. `None`: nothing left to remove.
fn move_to_trash(state_dir: &Path, slice: &str, dir: &Path) -> Result<Option<PathBuf>, NodeError> {
    if !dir.exists() {
        return Ok(None);
    }
    let trash = names::trash_dir(state_dir);
    fs::create_dir_all(&trash).ctx(|| format!("creating {}", trash.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let to = trash.join(format!("{slice}.{nanos}"));
    match fs::rename(dir, &to) {
        Ok(()) => Ok(Some(to)),
        Err(_) => remove_sliver_dir(dir).map(|()| None),
    }
}

/// Removes what destroys left in the trash (a crash or exit before their removal finished).
pub(crate) fn empty_trash(state_dir: &Path) -> Result<(), NodeError> {
    let trash = names::trash_dir(state_dir);
    match fs::remove_dir_all(&trash) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).ctx(|| format!("removing {}", trash.display()))
        }
        _ => Ok(()),
    }
}

/// Removes a sliver's directory with its record last, so a crash part-way leaves a record that
/// makes the next reconcile finish the job.
pub(crate) fn remove_sliver_dir(dir: &Path) -> Result<(), NodeError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("listing {}", dir.display())),
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == "sliver.json") {
            continue;
        }
        let r = if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.ctx(|| format!("removing {}", p.display()))?;
    }
    let rec = dir.join("sliver.json");
    if rec.exists() {
        fs::remove_file(&rec).ctx(|| format!("removing {}", rec.display()))?;
    }
    fs::remove_dir(dir).ctx(|| format!("removing {}", dir.display()))
}

/// A runtime that touches nothing: it keeps slivers in memory and records every call.
#[derive(Default)]
pub struct FakeRuntime {
    slivers: Mutex<BTreeMap<String, (SliverSpec, bool)>>,
    log: Mutex<Vec<String>>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls so far, e.g. `["create pl_a", "start pl_a"]`.
    pub fn calls(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Simulates a crashed sliver.
    pub fn crash(&self, slice: &str) {
        if let Ok(mut s) = self.slivers.lock() {
            if let Some(e) = s.get_mut(slice) {
                e.1 = false;
            }
        }
    }

    fn note(&self, what: &str, slice: &str) {
        if let Ok(mut l) = self.log.lock() {
            l.push(format!("{what} {slice}"));
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, (SliverSpec, bool)>) -> T) -> T {
        let mut g = self.slivers.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

impl Runtime for FakeRuntime {
    fn list(&self) -> Result<Vec<ObservedSliver>, NodeError> {
        Ok(self.with(|m| {
            m.values()
                .map(|(spec, running)| ObservedSliver {
                    slice_name: spec.slice_name.clone(),
                    spec: Some(spec.clone()),
                    running: *running,
                    failure: None,
                    retry_after: 0,
                    address: None,
                    note: None,
                    limits: LimitCounts::default(),
                })
                .collect()
        }))
    }

    fn create(&self, spec: &SliverSpec) -> Result<(), NodeError> {
        self.note("create", &spec.slice_name);
        self.with(|m| {
            let running = m.get(&spec.slice_name).is_some_and(|e| e.1);
            m.insert(spec.slice_name.clone(), (spec.clone(), running));
        });
        Ok(())
    }

    fn update(&self, spec: &SliverSpec) -> Result<(), NodeError> {
        self.note("update", &spec.slice_name);
        self.with(|m| match m.get_mut(&spec.slice_name) {
            Some(e) => {
                e.0 = spec.clone();
                Ok(())
            }
            None => Err(NodeError::NoSuchSliver(spec.slice_name.clone())),
        })
    }

    fn start(&self, slice: &str) -> Result<(), NodeError> {
        self.note("start", slice);
        self.with(|m| match m.get_mut(slice) {
            Some(e) => {
                e.1 = true;
                Ok(())
            }
            None => Err(NodeError::NoSuchSliver(slice.into())),
        })
    }

    fn stop(&self, slice: &str) -> Result<(), NodeError> {
        self.note("stop", slice);
        self.with(|m| {
            if let Some(e) = m.get_mut(slice) {
                e.1 = false;
            }
        });
        Ok(())
    }

    fn destroy(&self, slice: &str) -> Result<(), NodeError> {
        self.note("destroy", slice);
        self.with(|m| m.remove(slice));
        Ok(())
    }

    fn exec(&self, slice: &str, argv: &[String]) -> Result<Output, NodeError> {
        self.note("exec", slice);
        let _ = argv;
        Err(NodeError::Start {
            slice: slice.into(),
            message: "the fake runtime runs nothing".into(),
        })
    }
}
