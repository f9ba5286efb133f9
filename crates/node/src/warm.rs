//! Warm slivers: slivers built before their slice is known, so that creating and starting a new
//! sliver only hands one over instead of building it on the start's critical path.
//!
//! A warm sliver is everything of a sliver that does not depend on which slice it is for, made
//! for the *profile* (image and disk quota) of the last sliver this node started:
//!
//! * its directory under `<state>/warm/` with the writable layer (on its own quota filesystem if
//!   the profile has one, made and mounted ahead: `mkfs` is no longer on any start's path);
//! * a uid range of its own from the machine's registry (`idmap`), owned by that directory;
//! * its user namespace mapped to that range, the network namespace it owns and the overlay root,
//!   made by a launcher (`sandbox::launch`), which is ended once the init has built the root: its
//!   mount namespaces are copies of the host's, and would keep every other sliver's quota
//!   filesystem alive (a later `e2fsck` of one would find it mounted) for as long as the warm
//!   sliver waits;
//! * its veth pair (`veth::prepare`): the host end down, under a temporary name, with the
//!   gateway address; `eth0` up in the sliver's namespace, without an address;
//! * its init, PID 1 of the sliver's PID namespace, with the root built and pivoted into,
//!   waiting on its stdin for an `Assignment`. It is unconfined (it still has every capability
//!   of its user namespace), and nothing of any slice's has run in it;
//! * where cgroups can be renamed (v1), the sliver's cgroups under a name no slice can have
//!   (`warm.<instance>.<n>`), without limits, with the init in them. Elsewhere the init is in no
//!   sliver's cgroups until a slice takes it.
//!
//! `create` of a *new* sliver of the same profile takes one ([`WarmPool::take`]): its directory
//! is renamed to the sliver's (a rename keeps the layer's quota mount and the overlay that uses
//! it), its range is re-registered to that directory, and the record is written with that range.
//! `start` then does what is slice-specific (`LinuxRuntime::start_warm`): renames the cgroups to
//! the slice's and applies its limits (or makes them and moves the init in), tells the init its
//! slice and service, plugs in the network and the anti-spoofing rules, and releases the sliver
//! as a cold start does. The init forks nothing before it is in the slice's cgroups, and nothing
//! of the slice's runs before their limits are applied. A sliver created but not started keeps its warm processes until it is started, stopped,
//! updated or destroyed.
//!
//! Nothing of a warm sliver outlives the node manager: its init reads its stdin from the node
//! manager, and exits at end of file (the init's exit takes its namespaces with
//! it). What is left on disk (the directory, a quota mount) is removed when the next runtime opens
//! and by `cleanup` ([`clear_leftovers`]); a leftover's registry entry is reclaimed at the next
//! allocation (its directory is gone).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cgroup::Cgroups;
use crate::disk;
use crate::error::{IoContext, NodeError};
use crate::idmap;
use crate::launchers::{self, LauncherPool};
use crate::names::NodeNames;
use crate::netlink::route::Route;
use crate::reports::Reports;
use crate::sandbox::handshake::Report;
use crate::sandbox::userns::IdRange;
use crate::sandbox::LaunchSpec;
use crate::shift;
use crate::state::{self, ProcId};
use crate::sync::lock;
use crate::veth;
use slicelab_model::Resources;

/// How many warm slivers wait at most. One: a node starts slivers one at a time, and seldom; a
/// burst takes the cold path for the rest. Each holds a process (its init), a uid range, a
/// network namespace, and with a quota, a loop device.
const POOL_SIZE: usize = 1;

/// Numbers warm directories, unique within this process (which may hold several runtimes).
static NEXT: AtomicU64 = AtomicU64::new(0);

/// How long making one warm sliver may take before it is given up.
const MAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a warm sliver is made for: the image's layers and the writable layer's quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    pub lowers: Vec<PathBuf>,
    pub disk_max: Option<u64>,
}

/// One warm sliver (see the module doc).
pub(crate) struct Warm {
    /// Its directory: under `<state>/warm/` until taken, the sliver's own after.
    pub dir: PathBuf,
    pub range: IdRange,
    pub profile: Profile,
    /// The identity (device, inode) of each of the profile's layers when it was built: a layer
    /// removed since (image garbage collection) and fetched again is another directory.
    lowers: Vec<(u64, u64)>,
    /// The ended launcher's stdin, which the init shares: the handshake's channel to it.
    pub stdin: ChildStdin,
    pub reports: Reports,
    /// The sliver's network namespace (`/proc/<launcher>/ns/net`, opened while it ran).
    pub netns: File,
    /// A copy of the launcher's rtnetlink socket in that namespace, if `pidfd_getfd` allowed it.
    pub route: Option<Route>,
    /// The host end's index of the veth pair made ahead in that namespace (`veth::prepare`),
    /// if the socket above allowed it.
    pub veth: Option<u32>,
    /// The host end's temporary name (until `veth::plug` names it after the slice).
    temp_veth: String,
    pub init: ProcId,
    /// The cgroups the init is in, made ahead (see the module doc); `None` once renamed to the
    /// slice's, or where none were made.
    pub cgroup: Option<String>,
    cgroups: Cgroups,
}

impl Warm {
    /// Writes `line` to the init (through the launcher's stdin, which the init shares).
    pub fn tell(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.stdin.write_all(line)
    }

    /// Ends its processes (the init's death takes its namespaces and mounts with it) and the
    /// cgroups made for it; what is on disk stays.
    pub fn end_processes(self) {
        end_init(self.init);
        drop(self.stdin);
        if let Some(name) = &self.cgroup {
            end_cgroups(&self.cgroups, name);
        }
        // The pair would go with the namespace, but asynchronously; gone now (a pair plugged
        // in meanwhile has the slice's name, and is the sliver's to remove).
        if self.veth.is_some() {
            let _ = Route::open().and_then(|mut r| r.del_link_named(&self.temp_veth));
        }
    }

    /// Ends a warm sliver no slice took: its processes, its quota mount, its directory and its
    /// uid range.
    pub fn discard(self, registry: &Path) {
        let dir = self.dir.clone();
        self.end_processes();
        remove_dir(&dir);
        if let Err(e) = idmap::release(registry, &dir) {
            tracing::warn!("releasing the uid range of {}: {e}", dir.display());
        }
    }
}

/// Empties and removes the cgroups `name` made for a warm sliver.
pub(crate) fn end_cgroups(cgroups: &Cgroups, name: &str) {
    cgroups.kill_all(name, Duration::from_secs(5));
    if let Err(e) = cgroups.remove(name) {
        tracing::warn!("removing the warm sliver's cgroups {name}: {e}");
    }
}

/// Kills a warm sliver's init (which takes its PID namespace) and reaps it: once its launcher is
/// gone it is the node manager's child (a subreaper), and nothing else would.
fn end_init(init: ProcId) {
    let pid = Pid::from_raw(init.pid);
    if init.is_alive() {
        let _ = kill(pid, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while init.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Dead (a zombie is not alive): ours to reap if it is our child, as the same process (its
    // start time still matches); its parent's otherwise (ECHILD).
    if state::proc_stat(init.pid).is_some_and(|(st, start)| st == 'Z' && start == init.start_time) {
        let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    }
}

/// The first 8 hex digits of this boot's id: pid and start time repeat across reboots.
fn boot() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.chars().filter(char::is_ascii_hexdigit).take(8).collect())
        .unwrap_or_default()
}

/// This node manager among those that ever ran on the machine: `<boot>-<pid>-<start time>` (a
/// pid alone is reused, and a node manager in a container may have the same one every time).
fn instance() -> String {
    let pid = std::process::id();
    let start = ProcId::of(pid as i32).map_or(0, |p| p.start_time);
    format!("{}-{pid}-{start}", boot())
}

/// Whether the node manager `instance` names (see [`instance`]) is gone. A name of another form
/// is a leftover of an earlier format, gone unless its first number is a live pid.
fn is_gone(instance: &str) -> bool {
    let parts: Vec<&str> = instance.split('-').collect();
    match parts[..] {
        [b, pid, start] => {
            let (Ok(pid), Ok(start)) = (pid.parse(), start.parse()) else {
                return true;
            };
            b != boot()
                || !ProcId {
                    pid,
                    start_time: start,
                }
                .is_alive()
        }
        // SAFETY: kill with signal 0 only checks that the process exists.
        [pid, ..] => pid
            .parse::<i32>()
            .map_or(true, |p| p <= 0 || unsafe { libc::kill(p, 0) } != 0),
        [] => true,
    }
}

/// The name of the cgroups made for warm sliver `number` of this node manager: not a slice name
/// (it has no `_`), so every listing of slices' cgroups leaves it out.
fn cgroup_name(number: u64) -> String {
    format!("warm.{}.{number}", instance())
}

/// Whether `name` is a warm sliver's cgroup name made by a node manager that is gone.
fn is_leftover_cgroup(name: &str) -> bool {
    let mut parts = name.split('.');
    matches!((parts.next(), parts.next()), (Some("warm"), Some(i)) if is_gone(i))
}

/// Ends a warm sliver's launcher once the init has built the root (see the module doc), keeping
/// its stdin, which the init shares. The init is then the subreaper's (the node manager's) child,
/// as a cold start's is once its launcher is dismissed.
fn end_launcher(launcher: &mut Child) -> Option<ChildStdin> {
    let stdin = launcher.stdin.take()?;
    let _ = launcher.kill();
    let _ = launcher.wait();
    Some(stdin)
}

/// The (device, inode) of each directory of `lowers`; `None` if one is gone.
fn identities(lowers: &[PathBuf]) -> Option<Vec<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    lowers
        .iter()
        .map(|l| fs::metadata(l).ok().map(|m| (m.dev(), m.ino())))
        .collect()
}

/// Unmounts a warm sliver's quota filesystem, if any, and removes its directory.
fn remove_dir(dir: &Path) {
    if let Err(e) = disk::unmount(dir) {
        tracing::warn!("unmounting the layer of {}: {e}", dir.display());
        return;
    }
    if let Err(e) = fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", dir.display());
        }
    }
}

/// Where warm slivers' directories live (on the state directory's filesystem, so taking one is
/// a rename).
pub(crate) fn warm_root(state_dir: &Path) -> PathBuf {
    state_dir.join("warm")
}

/// Removes what warm slivers of node managers that are gone left (their processes ended with
/// them): cgroups, quota mounts and directories. Each is named after the node manager that made
/// it ([`instance`]); those of a live one (this process included) are its own.
pub(crate) fn clear_leftovers(state_dir: &Path, cgroups: &Cgroups) -> Result<(), NodeError> {
    for name in cgroups.list() {
        if is_leftover_cgroup(&name) {
            end_cgroups(cgroups, &name);
        }
    }
    let root = warm_root(state_dir);
    let rd = match fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("listing {}", root.display())),
    };
    for e in rd.flatten() {
        let dir = e.path();
        // `<instance>-<n>`.
        let name = e.file_name().to_string_lossy().into_owned();
        let maker = name.rsplit_once('-').map_or("", |(m, _)| m);
        if !is_gone(maker) {
            continue;
        }
        disk::unmount(&dir)?;
        fs::remove_dir_all(&dir).ctx(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// The node's warm slivers: made in the background after each start, for that start's profile.
pub(crate) struct WarmPool {
    shared: Arc<Shared>,
}

struct Shared {
    state_dir: PathBuf,
    names: NodeNames,
    cgroups: Cgroups,
    registry: PathBuf,
    launchers: Arc<LauncherPool>,
    ready: Mutex<Vec<Warm>>,
    /// The profile warm slivers are made for (that of the last start); `None`: none yet.
    want: Mutex<Option<Profile>>,
    refilling: AtomicBool,
    closed: AtomicBool,
    /// Whether warm slivers are made at all.
    enabled: AtomicBool,
    /// How many were taken so far (the benchmark reports it).
    taken: AtomicUsize,
}

impl WarmPool {
    pub fn new(
        state_dir: PathBuf,
        names: NodeNames,
        cgroups: Cgroups,
        registry: PathBuf,
        launchers: Arc<LauncherPool>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                state_dir,
                names,
                cgroups,
                registry,
                launchers,
                ready: Mutex::default(),
                want: Mutex::default(),
                refilling: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                enabled: AtomicBool::new(true),
                taken: AtomicUsize::new(0),
            }),
        }
    }

    /// A warm sliver of `profile` whose init is alive, if one is ready.
    pub fn take(&self, profile: &Profile) -> Option<Warm> {
        let mut ready = lock(&self.shared.ready);
        while let Some(i) = ready.iter().position(|w| &w.profile == profile) {
            let w = ready.swap_remove(i);
            // An image removed meanwhile (garbage-collected) ends the warm slivers built on it.
            if w.init.is_alive() && identities(&w.profile.lowers).as_ref() == Some(&w.lowers) {
                self.shared.taken.fetch_add(1, Ordering::Relaxed);
                return Some(w);
            }
            w.discard(&self.shared.registry);
        }
        None
    }

    /// Warm slivers are made for `profile` from now on (those of another profile are ended), in
    /// the background at the lowest priority.
    pub fn refill(&self, profile: Profile) {
        let sh = &self.shared;
        if sh.closed.load(Ordering::Acquire) || !sh.enabled.load(Ordering::Acquire) {
            return;
        }
        *lock(&sh.want) = Some(profile);
        if sh.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let sh = sh.clone();
        std::thread::spawn(move || {
            // SAFETY: setpriority on the calling thread (tid) with plain integer arguments.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
            }
            loop {
                sh.fill();
                sh.refilling.store(false, Ordering::Release);
                if !sh.short() || sh.refilling.swap(true, Ordering::AcqRel) {
                    break;
                }
            }
        });
    }

    /// Makes no more warm slivers and ends the waiting ones, and one being made (`false`), or
    /// makes them again after the next start.
    pub fn set_enabled(&self, on: bool) {
        self.shared.enabled.store(on, Ordering::Release);
        if !on {
            self.end_all();
        }
    }

    /// Whether warm slivers are being made now.
    pub fn busy(&self) -> bool {
        self.shared.refilling.load(Ordering::Acquire)
    }

    /// How many warm slivers were taken so far.
    pub fn taken(&self) -> usize {
        self.shared.taken.load(Ordering::Relaxed)
    }

    /// Ends every waiting warm sliver, and one being made (waiting for it, bounded); none are
    /// made any more.
    pub fn drain(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.end_all();
    }

    /// Ends the waiting warm slivers and one being made, waiting (bounded) for it.
    fn end_all(&self) {
        self.shared.discard_all();
        let deadline = Instant::now() + MAKE_TIMEOUT;
        while self.busy() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.shared.discard_all();
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        self.drain();
    }
}

impl Shared {
    fn wanted(&self) -> Option<Profile> {
        if self.closed.load(Ordering::Acquire) || !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.want).clone()
    }

    /// Whether fewer than [`POOL_SIZE`] warm slivers of the wanted profile wait.
    fn short(&self) -> bool {
        let Some(p) = self.wanted() else {
            return false;
        };
        lock(&self.ready).iter().filter(|w| w.profile == p).count() < POOL_SIZE
    }

    /// Ends warm slivers of another profile than the wanted one, then makes warm slivers until
    /// [`POOL_SIZE`] wait; stops at the first failure (the next start tries again).
    fn fill(&self) {
        let stale: Vec<Warm> = {
            let want = self.wanted();
            let mut ready = lock(&self.ready);
            let (keep, stale) = std::mem::take(&mut *ready)
                .into_iter()
                .partition(|w| Some(&w.profile) == want.as_ref());
            *ready = keep;
            stale
        };
        for w in stale {
            w.discard(&self.registry);
        }
        while self.short() {
            let Some(profile) = self.wanted() else {
                return;
            };
            match self.make(profile) {
                Ok(w) => lock(&self.ready).push(w),
                Err(e) => {
                    tracing::warn!("making a warm sliver: {e}");
                    return;
                }
            }
        }
        // A drain that came meanwhile ends what was added after it.
        if self.wanted().is_none() {
            self.discard_all();
        }
    }

    fn discard_all(&self) {
        let all = std::mem::take(&mut *lock(&self.ready));
        for w in all {
            w.discard(&self.registry);
        }
    }

    /// Makes one warm sliver of `profile`.
    fn make(&self, profile: Profile) -> Result<Warm, String> {
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = warm_root(&self.state_dir).join(format!("{}-{number}", instance()));
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let range = match idmap::allocate(&self.registry, &dir) {
            Ok(r) => r,
            Err(e) => {
                remove_dir(&dir);
                return Err(e.to_string());
            }
        };
        // The host's interface names are shared by every node manager of the machine: pid and
        // number make this one unique (15 bytes at most).
        let temp = format!(
            "slw{:x}-{:x}",
            std::process::id() & 0xff_ffff,
            number & 0xffff
        );
        let made = self.launch(&dir, range, &profile, &temp, number);
        made.inspect_err(|_| {
            remove_dir(&dir);
            let _ = idmap::release(&self.registry, &dir);
        })
    }

    fn launch(
        &self,
        dir: &Path,
        range: IdRange,
        profile: &Profile,
        temp: &str,
        number: u64,
    ) -> Result<Warm, String> {
        let lowers = identities(&profile.lowers).ok_or("the image's layers are gone")?;
        disk::place_layer(dir, profile.disk_max).map_err(|e| e.to_string())?;
        let (upper, work) = disk::layer_dirs(dir, profile.disk_max.is_some());
        // The layer's root is the sliver's `/`: its root's, as a cold start makes it.
        fs::create_dir_all(&upper).map_err(|e| format!("creating {}: {e}", upper.display()))?;
        shift::ensure_layer_owned(&upper, 0, range).map_err(|e| e.to_string())?;
        let spec = LaunchSpec {
            slice: String::new(),
            lowers: profile.lowers.clone(),
            image_mnt: dir.join("image"),
            upper,
            work,
            rootfs: dir.join("rootfs"),
            console: dir.join("console.log"),
            service: None,
            idmap: range,
            warm: true,
        };
        let mut json = serde_json::to_vec(&spec).map_err(|e| e.to_string())?;
        json.push(b'\n');
        let mut launcher = self
            .launchers
            .take()
            .map_err(|e| format!("spawning a launcher: {e}"))?;
        let stdout = launcher.stdout.take();
        let sent = launcher
            .stdin
            .as_mut()
            .map_or(Ok(()), |i| i.write_all(&json));
        let (Some(stdout), Ok(())) = (stdout, sent) else {
            launchers::end(launcher);
            return Err("handing the launcher its spec".into());
        };
        let mut reports = Reports::new(stdout, Instant::now() + MAKE_TIMEOUT);
        let (mut net, mut init, mut cgroup, mut built) = (None, None, None, false);
        let failed = loop {
            // The launcher's reports and the init's come on one pipe from two processes: `Warm`
            // may come before `Pid`.
            if let (true, Some(_), Some(init)) = (built, &net, init) {
                let Some((netns, route, veth)) = net.take() else {
                    break "no network namespace".into();
                };
                let Some(stdin) = end_launcher(&mut launcher) else {
                    break "no pipe to the init".into();
                };
                return Ok(Warm {
                    dir: dir.to_path_buf(),
                    range,
                    profile: profile.clone(),
                    lowers,
                    stdin,
                    reports,
                    netns,
                    route,
                    veth,
                    temp_veth: temp.to_string(),
                    init,
                    cgroup,
                    cgroups: self.cgroups.clone(),
                });
            }
            match reports.next() {
                Ok(Report::Netns(fd)) => {
                    let pid = launcher.id();
                    let ns = match File::open(format!("/proc/{pid}/ns/net")) {
                        Ok(ns) => ns,
                        Err(e) => break format!("the launcher's network namespace: {e}"),
                    };
                    let mut route = Route::of_process(pid, fd)
                        .inspect_err(|e| tracing::debug!("launcher's socket: {e}"))
                        .ok();
                    let pair = match route.as_mut() {
                        Some(r) => match veth::prepare(&self.names, temp, &ns, r) {
                            Ok(host) => Some(host),
                            Err(e) => break e.to_string(),
                        },
                        None => None,
                    };
                    net = Some((ns, route, pair));
                }
                Ok(Report::Pid(p)) => {
                    init = ProcId::of(p);
                    // The init forks nothing before its assignment: moved now, all it will
                    // fork is born in these cgroups.
                    if self.cgroups.can_rename() {
                        let name = cgroup_name(number);
                        let made = self
                            .cgroups
                            .create(&name, &Resources::default())
                            .and_then(|()| self.cgroups.join(&name, p as u32));
                        cgroup = Some(name);
                        if let Err(e) = made {
                            break format!("the warm sliver's cgroups: {e}");
                        }
                    }
                }
                Ok(Report::Warm) => built = true,
                Ok(Report::Error(e)) | Err(e) => break e,
                Ok(_) => {}
            }
        };
        // The launcher first: the init, its child, is then ours to reap.
        launchers::end(launcher);
        if let Some(p) = init {
            end_init(p);
        }
        if let Some(name) = &cgroup {
            end_cgroups(&self.cgroups, name);
        }
        Err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_node_managers_that_are_gone_are_leftovers() {
        assert!(!is_gone(&instance()), "this process");
        let other_boot = format!("00000000-{}-1", std::process::id());
        assert!(is_gone(&other_boot), "another boot");
        let ours = instance();
        let (boot_and_pid, _) = ours.rsplit_once('-').unwrap();
        assert!(is_gone(&format!("{boot_and_pid}-1")), "a reused pid");
        assert!(
            !is_gone(&std::process::id().to_string()),
            "the pid-only form, live"
        );
        assert!(is_gone("x"), "not a name of ours");
        assert!(!is_leftover_cgroup(&cgroup_name(3)));
        assert!(is_leftover_cgroup(&format!("warm.{other_boot}.3")));
        assert!(!is_leftover_cgroup("pl_slice"));
    }
}
