//! A cgroup per sliver, `<parent>/<slice>`, with cpu, memory and pids limits from the slice tags.
//!
//! Both layouts are handled, detected at runtime: cgroup v1 (one hierarchy per controller, as
//! mounted on these machines; the hybrid `unified` v2 mount is ignored) and pure v2.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slicelab_model::Resources;

use crate::error::{IoContext, NodeError};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The controllers a sliver is limited by.
const V1_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Mount points of the v1 hierarchies that carry our controllers (deduplicated: `cpu,cpuacct`
    /// may share one).
    V1 {
        cpu: Option<PathBuf>,
        /// The hierarchy carrying `cpuacct` (the same as `cpu` when they are co-mounted).
        cpuacct: Option<PathBuf>,
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        other: Vec<PathBuf>,
    },
    V2 {
        root: PathBuf,
    },
}

/// What the node keeps for itself, whatever the slivers do: the node manager, its SSH gateway
/// and the host must keep working when every sliver is at its limits. Enforced on the parent
/// cgroup of all slivers ([`Cgroups::ensure_parent`]), so no *combination* of slivers can take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve {
    /// Memory kept out of the slivers' reach: at least this, and at least a tenth of the machine.
    pub mem_bytes: u64,
    /// Process ids kept out of the slivers' reach.
    pub pids: u64,
}

impl Default for Reserve {
    fn default() -> Self {
        Self {
            mem_bytes: 512 << 20,
            pids: 4096,
        }
    }
}

impl Reserve {
    /// The slivers' memory limit on a machine with `total` bytes.
    pub fn slivers_mem(&self, total: u64) -> u64 {
        total
            .saturating_sub(self.mem_bytes.max(total / 10))
            .max(64 << 20)
    }

    /// The slivers' pids limit on a machine that allows `max` process ids.
    pub fn slivers_pids(&self, max: u64) -> u64 {
        max.saturating_sub(self.pids).max(64)
    }
}

#[derive(Debug, Clone)]
pub struct Cgroups {
    pub layout: Layout,
    pub parent: String,
}

impl Cgroups {
    pub fn detect(parent: &str) -> Result<Cgroups, NodeError> {
        let root = Path::new(CGROUP_ROOT);
        if let Ok(st) = nix::sys::statfs::statfs(root) {
            // The field's integer type differs between targets.
            #[allow(clippy::unnecessary_cast)]
            if st.filesystem_type().0 as i64 == CGROUP2_SUPER_MAGIC {
                return Ok(Cgroups {
                    layout: Layout::V2 { root: root.into() },
                    parent: parent.into(),
                });
            }
        }
        let info = fs::read_to_string("/proc/self/mountinfo").ctx(|| "reading mountinfo".into())?;
        let (mut cpu, mut memory, mut pids, mut other) = (None, None, None, Vec::<PathBuf>::new());
        let mut cpuacct = None;
        for line in info.lines() {
            // ... mountpoint(5th) ... - fstype source superopts
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let mut post = post.split_whitespace();
            if post.next() != Some("cgroup") {
                continue;
            }
            let opts = post.nth(1).unwrap_or("");
            let Some(mp) = pre.split_whitespace().nth(4) else {
                continue;
            };
            let mp = PathBuf::from(mp);
            let has = |c: &str| opts.split(',').any(|o| o == c);
            if has("cpu") {
                cpu = Some(mp.clone());
            }
            if has("memory") {
                memory = Some(mp.clone());
            }
            if has("pids") {
                pids = Some(mp.clone());
            }
            if has("cpuacct") {
                cpuacct = Some(mp.clone());
                if !has("cpu") {
                    other.push(mp);
                }
            }
        }
        if cpu.is_none() && memory.is_none() && pids.is_none() {
            return Err(NodeError::Invalid {
                what: "cgroups",
                message: format!(
                    "no cgroup v1 controllers ({V1_CONTROLLERS:?}) and no cgroup2 at {CGROUP_ROOT}"
                ),
            });
        }
        Ok(Cgroups {
            layout: Layout::V1 {
                cpu,
                cpuacct,
                memory,
                pids,
                other,
            },
            parent: parent.into(),
        })
    }

    fn hierarchies(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V2 { root } => vec![root.clone()],
            Layout::V1 {
                cpu,
                memory,
                pids,
                other,
                ..
            } => {
                let mut v: Vec<PathBuf> =
                    [cpu, memory, pids].into_iter().flatten().cloned().collect();
                v.extend(other.iter().cloned());
                v.sort();
                v.dedup();
                v
            }
        }
    }

    /// The sliver's directory in every hierarchy.
    pub fn dirs(&self, slice: &str) -> Vec<PathBuf> {
        self.hierarchies()
            .into_iter()
            .map(|h| h.join(&self.parent).join(slice))
            .collect()
    }

    pub fn procs_files(&self, slice: &str) -> Vec<PathBuf> {
        self.dirs(slice)
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Where the pids controller's files for the sliver are.
    pub fn pids_dir(&self, slice: &str) -> Option<PathBuf> {
        match &self.layout {
            Layout::V2 { root } => Some(root.join(&self.parent).join(slice)),
            Layout::V1 { pids, .. } => pids.as_ref().map(|p| p.join(&self.parent).join(slice)),
        }
    }

    pub fn memory_dir(&self, slice: &str) -> Option<PathBuf> {
        match &self.layout {
            Layout::V2 { root } => Some(root.join(&self.parent).join(slice)),
            Layout::V1 { memory, .. } => memory.as_ref().map(|p| p.join(&self.parent).join(slice)),
        }
    }

    /// CPU time the sliver used since its cgroup was created, in nanoseconds.
    pub fn cpu_usage_ns(&self, slice: &str) -> Option<u64> {
        match &self.layout {
            Layout::V2 { root } => {
                let stat = fs::read_to_string(root.join(&self.parent).join(slice).join("cpu.stat"))
                    .ok()?;
                stat.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|us| us * 1000)
            }
            Layout::V1 { cpuacct, .. } => {
                let d = cpuacct.as_ref()?.join(&self.parent).join(slice);
                read_u64(&d.join("cpuacct.usage"))
            }
        }
    }

    /// Memory charged to the sliver now (page cache included, as the limit counts it).
    pub fn mem_usage(&self, slice: &str) -> Option<u64> {
        let d = self.memory_dir(slice)?;
        match &self.layout {
            Layout::V2 { .. } => read_u64(&d.join("memory.current")),
            Layout::V1 { .. } => read_u64(&d.join("memory.usage_in_bytes")),
        }
    }

    /// Creates the parent cgroup of all slivers and bounds it below the machine's size by
    /// `reserve`. Idempotent; called when the runtime opens.
    pub fn ensure_parent(&self, reserve: &Reserve) -> Result<(), NodeError> {
        let total = machine_mem_bytes()?;
        let mem = reserve.slivers_mem(total);
        let pids = reserve.slivers_pids(machine_max_pids());
        match &self.layout {
            Layout::V2 { root } => {
                enable_v2_controllers(root)?;
                let d = root.join(&self.parent);
                fs::create_dir_all(&d).ctx(|| format!("creating {}", d.display()))?;
                enable_v2_controllers(&d)?;
                write(&d.join("memory.max"), &mem.to_string())?;
                write(&d.join("pids.max"), &pids.to_string())?;
            }
            Layout::V1 {
                memory, pids: p, ..
            } => {
                for h in self.hierarchies() {
                    let d = h.join(&self.parent);
                    fs::create_dir_all(&d).ctx(|| format!("creating {}", d.display()))?;
                }
                if let Some(m) = memory {
                    write(
                        &m.join(&self.parent).join("memory.limit_in_bytes"),
                        &mem.to_string(),
                    )?;
                }
                if let Some(p) = p {
                    write(&p.join(&self.parent).join("pids.max"), &pids.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// How often each of the sliver's limits was hit so far: (memory, pids). Memory counts the
    /// OOM kills in the sliver (v1 `memory.oom_control` `oom_kill`, v2 `memory.events`
    /// `oom_kill`), pids the refused forks (`pids.events` `max`).
    pub fn limit_events(&self, slice: &str) -> (u64, u64) {
        let mem = self.memory_dir(slice).map_or(0, |d| {
            let file = match self.layout {
                Layout::V2 { .. } => "memory.events",
                Layout::V1 { .. } => "memory.oom_control",
            };
            keyed(&d.join(file), "oom_kill")
        });
        let pids = self
            .pids_dir(slice)
            .map_or(0, |d| keyed(&d.join("pids.events"), "max"));
        (mem, pids)
    }

    /// Creates the sliver's cgroups (idempotent) and applies its limits.
    pub fn create(&self, slice: &str, r: &Resources) -> Result<(), NodeError> {
        if let Layout::V2 { root } = &self.layout {
            // Controllers must be enabled on every level above the sliver.
            enable_v2_controllers(root)?;
            let parent = root.join(&self.parent);
            fs::create_dir_all(&parent).ctx(|| format!("creating {}", parent.display()))?;
            enable_v2_controllers(&parent)?;
        }
        for d in self.dirs(slice) {
            fs::create_dir_all(&d).ctx(|| format!("creating cgroup {}", d.display()))?;
        }
        self.apply(slice, r)
    }

    /// Whether a sliver's cgroups can be renamed ([`Self::rename`]): cgroup v1 only, v2 has no
    /// rename.
    pub fn can_rename(&self) -> bool {
        matches!(self.layout, Layout::V1 { .. })
    }

    /// Renames the cgroups of `from` to `to` in every hierarchy, with their processes and
    /// limits (v1 only, see [`Self::can_rename`]). All or nothing: on failure, what was renamed
    /// is renamed back.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), NodeError> {
        if !self.can_rename() {
            return Err(NodeError::Invalid {
                what: "cgroup",
                message: "cgroup v2 cannot rename a cgroup".into(),
            });
        }
        let pairs: Vec<(PathBuf, PathBuf)> =
            self.dirs(from).into_iter().zip(self.dirs(to)).collect();
        for (i, (a, b)) in pairs.iter().enumerate() {
            if let Err(e) = fs::rename(a, b) {
                for (a, b) in &pairs[..i] {
                    let _ = fs::rename(b, a);
                }
                return Err(e)
                    .ctx(|| format!("renaming cgroup {} to {}", a.display(), b.display()));
            }
        }
        Ok(())
    }

    /// Moves process `pid` into the sliver's cgroups (every hierarchy); its children are born
    /// there.
    pub fn join(&self, slice: &str, pid: u32) -> Result<(), NodeError> {
        let pid = pid.to_string();
        for f in self.procs_files(slice) {
            fs::write(&f, &pid).ctx(|| format!("joining cgroup {}", f.display()))?;
        }
        Ok(())
    }

    /// Writes the limits; `None` resets to unlimited so a removed tag takes effect live.
    ///
    /// `cpu_share` (1..=1024, default 1) maps linearly: ×256 `cpu.shares` on v1 (share 4 equals a
    /// plain task group's 1024), ×10 `cpu.weight` on v2 (share 10 equals the default weight 100).
    /// Only ratios between siblings matter, so 1:3 shares give 1:3 CPU under contention.
    /// `cpu_pct` is a CFS bandwidth cap: `pct`% of one core per 100 ms period.
    pub fn apply(&self, slice: &str, r: &Resources) -> Result<(), NodeError> {
        let share = u64::from(r.cpu_share.unwrap_or(1).max(1));
        match &self.layout {
            Layout::V2 { root } => {
                let d = root.join(&self.parent).join(slice);
                write(
                    &d.join("cpu.weight"),
                    &(share * 10).clamp(1, 10_000).to_string(),
                )?;
                let max = match r.cpu_pct {
                    Some(p) => format!("{} 100000", u64::from(p) * 1000),
                    None => "max 100000".into(),
                };
                write(&d.join("cpu.max"), &max)?;
                write(&d.join("memory.max"), &opt(r.mem_max))?;
                // No swap escape from the limit.
                let _ = write(&d.join("memory.swap.max"), "0");
                write(&d.join("pids.max"), &opt(r.pids_max))?;
            }
            Layout::V1 {
                cpu, memory, pids, ..
            } => {
                if let Some(c) = cpu {
                    let d = c.join(&self.parent).join(slice);
                    write(
                        &d.join("cpu.shares"),
                        &(share * 256).clamp(2, 262_144).to_string(),
                    )?;
                    let _ = write(&d.join("cpu.cfs_period_us"), "100000");
                    let quota = r.cpu_pct.map(|p| (i64::from(p) * 1000).to_string());
                    write(
                        &d.join("cpu.cfs_quota_us"),
                        quota.as_deref().unwrap_or("-1"),
                    )?;
                }
                if let Some(m) = memory {
                    let d = m.join(&self.parent).join(slice);
                    let limit = r
                        .mem_max
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-1".into());
                    // memsw must stay >= the memory limit: order the writes accordingly.
                    let memsw = d.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        let _ = write(&memsw, "-1");
                    }
                    write(&d.join("memory.limit_in_bytes"), &limit)?;
                    if memsw.exists() {
                        write(&memsw, &limit)?;
                    }
                }
                if let Some(p) = pids {
                    let d = p.join(&self.parent).join(slice);
                    write(&d.join("pids.max"), &opt(r.pids_max))?;
                }
            }
        }
        Ok(())
    }

    /// Pids in the sliver's cgroup (host pid namespace).
    pub fn pids(&self, slice: &str) -> Vec<i32> {
        let mut out: Vec<i32> = Vec::new();
        for f in self.procs_files(slice) {
            if let Ok(s) = fs::read_to_string(&f) {
                out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// SIGKILLs everything in the sliver's cgroup until it is empty (or `timeout`).
    pub fn kill_all(&self, slice: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let pids = self.pids(slice);
            if pids.is_empty() {
                return true;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Removes the sliver's cgroups; they must be empty (processes exit asynchronously after
    /// SIGKILL, so this retries briefly).
    pub fn remove(&self, slice: &str) -> Result<(), NodeError> {
        for d in self.dirs(slice) {
            rmdir_retry(&d)?;
        }
        Ok(())
    }

    /// Slice names that have a cgroup under the parent in any hierarchy.
    pub fn list(&self) -> Vec<String> {
        let mut out = Vec::new();
        for h in self.hierarchies() {
            if let Ok(rd) = fs::read_dir(h.join(&self.parent)) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        if let Some(n) = e.file_name().to_str() {
                            out.push(n.to_string());
                        }
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Removes the (empty) parent cgroup in every hierarchy.
    pub fn remove_parent(&self) -> Result<(), NodeError> {
        for h in self.hierarchies() {
            rmdir_retry(&h.join(&self.parent))?;
        }
        Ok(())
    }
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines); 0 if absent.
fn keyed(path: &Path, key: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

/// The machine's memory (`MemTotal`).
fn machine_mem_bytes() -> Result<u64, NodeError> {
    match crate::host::MemInfo::read().total {
        0 => Err(NodeError::Invalid {
            what: "/proc/meminfo",
            message: "no MemTotal".into(),
        }),
        total => Ok(total),
    }
}

/// Process ids the kernel hands out: the lower of `pid_max` and `threads-max`.
fn machine_max_pids() -> u64 {
    ["/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"]
        .iter()
        .filter_map(|f| read_u64(Path::new(f)))
        .min()
        .unwrap_or(32_768)
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "max".into())
}

fn write(path: &Path, value: &str) -> Result<(), NodeError> {
    fs::write(path, value).ctx(|| format!("writing {value:?} to {}", path.display()))
}

fn enable_v2_controllers(dir: &Path) -> Result<(), NodeError> {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for c in ["cpu", "memory", "pids"] {
        if available.split_whitespace().any(|a| a == c) {
            write(&dir.join("cgroup.subtree_control"), &format!("+{c}"))?;
        }
    }
    Ok(())
}

fn rmdir_retry(d: &Path) -> Result<(), NodeError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).ctx(|| format!("removing cgroup {}", d.display())),
        }
    }
}
