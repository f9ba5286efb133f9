//! `slicelab bench sliver`: time from create to the initscript running, for N slivers (each in
//! its own user namespace, as always), next to `runc run`, `lxc-execute` with a veth, and
//! `unshare` of the same image measured in the same run.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slicelab_model::{Resources, SliverSpec};

use crate::error::{IoContext, NodeError};
use crate::image;
use crate::names;
use crate::runtime::{LinuxRuntime, Runtime, RuntimeConfig};

#[derive(Debug, Clone, Default)]
pub struct BenchReport {
    pub n: usize,
    /// Median create → initscript-running, milliseconds.
    pub sliver_ms: f64,
    pub runc_ms: Option<f64>,
    /// `lxc-execute` of the same image with a veth interface.
    pub lxc_ms: Option<f64>,
    pub unshare_ms: Option<f64>,
    /// Median create → `start` returned (the running sliver's record saved), milliseconds.
    pub sliver_returned_ms: f64,
    /// Median time of `Runtime::destroy` of a running sliver, milliseconds.
    pub sliver_destroy_ms: f64,
    /// Median time from the peer's command printing "ready" to the peer process having exited
    /// (its own teardown of the container: namespaces, cgroup, veth), milliseconds.
    pub runc_teardown_ms: Option<f64>,
    pub lxc_teardown_ms: Option<f64>,
    /// How many of the `n` starts took a launcher from the pool (the others spawned one).
    pub sliver_pooled: usize,
    /// How many of the `n` starts were of a sliver built ahead (`warm`); the others were cold.
    pub sliver_warm: usize,
    /// Median create → initscript-running of `n` more slivers with nothing built ahead but the
    /// launcher (warm slivers off), milliseconds.
    pub sliver_cold_ms: f64,
    /// Median time of each step of a sliver start / destroy (`LinuxRuntime::last_start_steps`):
    /// of the starts from a warm sliver, and of the cold ones.
    pub start_steps: Vec<(String, f64)>,
    pub cold_steps: Vec<(String, f64)>,
    /// With the platform's default disk quota (`model::defaults::BUILTIN`): how many starts,
    /// and the medians from a sliver built ahead and cold (its quota filesystem made on the
    /// start's path), milliseconds.
    pub quota_n: usize,
    pub quota_warm_ms: Option<f64>,
    pub quota_cold_ms: Option<f64>,
    pub destroy_steps: Vec<(String, f64)>,
    /// Resident memory of this process (which holds the `LinuxRuntime`, as the node manager does)
    /// with `rss_slivers` slivers running, KiB.
    pub rss_kib: Option<u64>,
    pub rss_slivers: usize,
    /// Why a peer was not measured.
    pub notes: Vec<String>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sliver start, create → initscript running, median of {}:",
            self.n
        )?;
        writeln!(f, "  slicelab sliver  {:8.1} ms", self.sliver_ms)?;
        writeln!(
            f,
            "  ({} of {} from a sliver built ahead; start returned {:.1} ms: the record saved \
             after the init's release)",
            self.sliver_warm, self.n, self.sliver_returned_ms
        )?;
        writeln!(
            f,
            "  slicelab cold    {:8.1} ms   (nothing built ahead but the launcher, median of {})",
            self.sliver_cold_ms, self.n
        )?;
        for (name, v) in [
            ("runc run", self.runc_ms),
            ("lxc-execute", self.lxc_ms),
            ("unshare", self.unshare_ms),
        ] {
            match v {
                Some(ms) => writeln!(
                    f,
                    "  {name:<15} {ms:8.1} ms   (slicelab / {name} = {:.2})",
                    self.sliver_ms / ms
                )?,
                None => writeln!(f, "  {name:<15}      n/a")?,
            }
        }
        writeln!(
            f,
            "  ({} of {} starts took a launcher from the pool; the others spawned one)",
            self.sliver_pooled, self.n
        )?;
        for (kind, steps) in [
            ("from a warm sliver", &self.start_steps),
            ("cold", &self.cold_steps),
        ] {
            writeln!(f, "  start steps, {kind} (median ms):")?;
            for (step, ms) in steps {
                writeln!(f, "    {step:<24} {ms:7.2}")?;
            }
        }
        if let (Some(w), Some(c)) = (self.quota_warm_ms, self.quota_cold_ms) {
            writeln!(
                f,
                "  with the default {} disk quota, median of {}: {w:.1} ms built ahead, \
                 {c:.1} ms cold",
                DEFAULT_DISK, self.quota_n
            )?;
        }
        writeln!(f, "sliver destroy, median of {}:", self.n)?;
        writeln!(f, "  slicelab destroy {:8.1} ms", self.sliver_destroy_ms)?;
        for (name, v) in [
            ("runc teardown", self.runc_teardown_ms),
            ("lxc teardown", self.lxc_teardown_ms),
        ] {
            match v {
                Some(ms) => writeln!(
                    f,
                    "  {name:<15} {ms:8.1} ms   (after exit; slicelab destroy / it = {:.2})",
                    self.sliver_destroy_ms / ms
                )?,
                None => writeln!(f, "  {name:<15}      n/a")?,
            }
        }
        writeln!(f, "  destroy steps (median ms):")?;
        for (step, ms) in &self.destroy_steps {
            writeln!(f, "    {step:<24} {ms:7.2}")?;
        }
        if let Some(kib) = self.rss_kib {
            writeln!(
                f,
                "node manager RSS with {} slivers running: {:.1} MiB (goal < 40 MiB)",
                self.rss_slivers,
                kib as f64 / 1024.0
            )?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() & 1 == 0 {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Time from spawning `cmd` to its first stdout line "ready", and from then to its exit.
fn time_to_ready(cmd: &mut Command) -> Result<(f64, f64), String> {
    let t0 = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    let mut out = BufReader::new(out);
    let _ = out.read_line(&mut line);
    let ready = t0.elapsed();
    let _ = std::io::copy(&mut out, &mut std::io::sink());
    let o = child.wait_with_output().map_err(|e| e.to_string())?;
    let exited = t0.elapsed();
    if line.trim() != "ready" {
        return Err(format!(
            "{}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok((ms(ready), ms(exited - ready)))
}

/// What [`time_sliver_cycles`] measured, per sliver.
#[derive(Debug, Default)]
pub struct SliverTimes {
    /// Create → initscript output, ms.
    pub start: Vec<f64>,
    /// Create → `start` returned (the record of the running sliver saved), ms.
    pub returned: Vec<f64>,
    /// `destroy`, ms.
    pub destroy: Vec<f64>,
    pub start_steps: Vec<Vec<(&'static str, Duration)>>,
    pub destroy_steps: Vec<Vec<(&'static str, Duration)>>,
    /// Whether each start was of a sliver built ahead (`warm`).
    pub warm: Vec<bool>,
}

/// Median of each named step over `runs` (steps in the order of the first run).
fn step_medians(runs: &[Vec<(&'static str, Duration)>]) -> Vec<(String, f64)> {
    let Some(first) = runs.first() else {
        return vec![];
    };
    first
        .iter()
        .map(|(step, _)| {
            let v = runs
                .iter()
                .filter_map(|r| r.iter().find(|(s, _)| s == step).map(|(_, d)| ms(*d)))
                .collect();
            (step.to_string(), median(v))
        })
        .collect()
}

/// Creates and starts `n` slivers named `<prefix><i>` of image `image_digest` (`None`: the
/// built-in one) with initscript `echo ready`, one after the other, then destroys them: each one's
/// milliseconds from create to the initscript's output.
pub fn time_sliver_starts(
    rt: &LinuxRuntime,
    cfg: &RuntimeConfig,
    n: usize,
    prefix: &str,
    image_digest: Option<&str>,
) -> Result<Vec<f64>, NodeError> {
    time_sliver_cycles(rt, cfg, n, prefix, image_digest, |_| ()).map(|t| t.start)
}

/// The platform's default disk quota, as `model::defaults::BUILTIN` gives every sliver.
const DEFAULT_DISK: &str = "10G";

fn bench_spec(slice: &str, image_digest: Option<&str>, disk_max: Option<u64>) -> SliverSpec {
    SliverSpec {
        slice_id: 0,
        slice_name: slice.into(),
        expires: i64::MAX,
        run: true,
        keys: vec![],
        resources: Resources {
            initscript: Some("echo ready; exec sleep 1000000".into()),
            disk_max,
            ..Default::default()
        },
        image_digest: image_digest.map(String::from),
    }
}

/// [`time_sliver_starts`], also timing each destroy and recording the steps of both;
/// `while_running` is called once all `n` run, before they are destroyed.
pub fn time_sliver_cycles(
    rt: &LinuxRuntime,
    cfg: &RuntimeConfig,
    n: usize,
    prefix: &str,
    image_digest: Option<&str>,
    while_running: impl FnOnce(usize),
) -> Result<SliverTimes, NodeError> {
    time_cycles(rt, cfg, n, prefix, image_digest, None, while_running)
}

/// [`time_sliver_cycles`] of slivers with disk quota `disk_max`.
fn time_cycles(
    rt: &LinuxRuntime,
    cfg: &RuntimeConfig,
    n: usize,
    prefix: &str,
    image_digest: Option<&str>,
    disk_max: Option<u64>,
    while_running: impl FnOnce(usize),
) -> Result<SliverTimes, NodeError> {
    let mut times = SliverTimes::default();
    let slices: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let mut result = Ok(());
    for s in &slices {
        // As between two slice creations on a node, which come seconds apart.
        rt.wait_built_ahead(Duration::from_secs(5));
        let spec = bench_spec(s, image_digest, disk_max);
        let console = names::sliver_dir(&cfg.state_dir, s).join("console.log");
        let warm_before = rt.warm_slivers_taken();
        let t0 = Instant::now();
        if let Err(e) = rt.create(&spec) {
            result = Err(e);
            break;
        }
        let created = t0.elapsed();
        times.warm.push(rt.warm_slivers_taken() > warm_before);
        // The initscript runs as soon as the init is released, while `start` still does its
        // bookkeeping: a watcher on the sliver's directory sees its output when it happens, as
        // the peers' "ready" line is read while they still run.
        let dir = names::sliver_dir(&cfg.state_dir, s);
        let deadline = t0 + Duration::from_secs(30);
        let (ready, started) = std::thread::scope(|sc| {
            let watcher = sc.spawn(|| wait_for_output(&dir, &console, "ready", deadline));
            let r = rt.start(s).map(|()| t0.elapsed());
            (watcher.join().ok().flatten(), r)
        });
        let started = match started {
            Ok(d) => d,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let Some(ready) = ready else {
            result = Err(NodeError::Start {
                slice: s.clone(),
                message: "initscript did not run within 30 s".into(),
            });
            break;
        };
        let ready = ready.duration_since(t0);
        times.start.push(ms(ready));
        times.returned.push(ms(started));
        let mut steps = vec![("create (record)", created)];
        let inner = rt.last_start_steps();
        let inner_sum: Duration = inner
            .iter()
            .filter(|(step, _)| !step.starts_with('('))
            .map(|(_, d)| *d)
            .sum();
        steps.extend(inner);
        steps.push((
            "record, checks",
            (started - created).saturating_sub(inner_sum),
        ));
        // Beside the bookkeeping above: from the init's release to the initscript's output.
        steps.push((
            "(release → output)",
            ready.saturating_sub(created + inner_sum),
        ));
        times.start_steps.push(steps);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        while_running(slices.len());
    }
    for s in &slices {
        let t0 = Instant::now();
        if rt.destroy(s).is_ok() {
            times.destroy.push(ms(t0.elapsed()));
            times.destroy_steps.push(rt.last_destroy_steps());
        }
    }
    result.map(|()| times)
}

/// Waits until `file` (in `dir`) contains `needle`, woken by inotify on `dir`; when it did.
fn wait_for_output(dir: &Path, file: &Path, needle: &str, deadline: Instant) -> Option<Instant> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let seen = || fs::read_to_string(file).is_ok_and(|c| c.contains(needle));
    // SAFETY: inotify_init1 takes flags and returns a new descriptor or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid descriptor and NUL-terminated path.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0 {
        return None;
    }
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if seen() {
            return Some(Instant::now());
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; then a read into a valid buffer (events are only drained).
        unsafe {
            if libc::poll(&mut pfd, 1, 100) > 0 {
                libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
            }
        }
    }
    None
}

/// Waits (bounded) until destroyed slivers' directories are removed from the trash.
fn wait_trash_empty(state_dir: &Path, timeout: Duration) {
    let trash = names::trash_dir(state_dir);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && fs::read_dir(&trash).is_ok_and(|mut d| d.next().is_some()) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// This process's resident memory, KiB.
fn rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Creates and starts `n` slivers (initscript `echo ready`), then destroys them, timing each
/// start and destroy step by step; runs the same image `n` times under `runc run`,
/// `lxc-execute` and `unshare` for comparison. With `rss_slivers` > 0, then starts that many
/// slivers at once and reads this process's RSS while they run.
pub fn bench_sliver(
    n: usize,
    rss_slivers: usize,
    cfg: &RuntimeConfig,
) -> Result<BenchReport, NodeError> {
    let rt = LinuxRuntime::new(cfg.clone())?;
    let img = image::ensure_image(&cfg.state_dir, image::DEFAULT_IMAGE)?;
    let mut report = BenchReport {
        n,
        ..Default::default()
    };
    let pooled_before = rt.pooled_launchers_taken();
    let times = time_sliver_cycles(&rt, cfg, n, "bench_s", None, |_| ())?;
    report.sliver_pooled = rt.pooled_launchers_taken() - pooled_before;
    report.sliver_warm = times.warm.iter().filter(|w| **w).count();
    report.sliver_ms = median(times.start);
    report.sliver_returned_ms = median(times.returned);
    report.sliver_destroy_ms = median(times.destroy);
    let warm_steps: Vec<_> = times
        .start_steps
        .into_iter()
        .zip(&times.warm)
        .filter_map(|(s, w)| w.then_some(s))
        .collect();
    report.start_steps = step_medians(&warm_steps);
    // The same again with nothing built ahead but the launcher.
    rt.set_warm_slivers(false);
    let cold = time_sliver_cycles(&rt, cfg, n, "bench_c", None, |_| ())?;
    report.sliver_cold_ms = median(cold.start);
    report.cold_steps = step_medians(&cold.start_steps);
    // What a sliver with the platform's defaults gets: a quota filesystem, whose `mkfs` and
    // mounts a cold start pays on its path.
    let disk = slicelab_model::tags::parse_bytes(slicelab_model::TagName::DiskMax, DEFAULT_DISK)
        .map_err(|e| NodeError::Invalid {
            what: "disk quota",
            message: e.message,
        })?;
    report.quota_n = n.min(10);
    rt.set_warm_slivers(true);
    let warm = time_cycles(
        &rt,
        cfg,
        report.quota_n + 1,
        "bench_qw",
        None,
        Some(disk),
        |_| (),
    )?;
    // The first start of a kind is cold: it has the next ones built ahead.
    let warm: Vec<f64> = warm
        .start
        .into_iter()
        .zip(warm.warm)
        .filter_map(|(t, w)| w.then_some(t))
        .collect();
    report.quota_warm_ms = (!warm.is_empty()).then(|| median(warm));
    rt.set_warm_slivers(false);
    let cold = time_cycles(
        &rt,
        cfg,
        report.quota_n,
        "bench_qc",
        None,
        Some(disk),
        |_| (),
    )?;
    report.quota_cold_ms = Some(median(cold.start));
    wait_trash_empty(&cfg.state_dir, Duration::from_secs(60));

    report.destroy_steps = step_medians(&times.destroy_steps);
    if rss_slivers > 0 {
        let mut rss = None;
        time_sliver_cycles(&rt, cfg, rss_slivers, "bench_m", None, |_| rss = rss_kib())?;
        report.rss_kib = rss;
        report.rss_slivers = rss_slivers;
    }

    // Destroys finish removing files in the background (`LinuxRuntime::destroy`): that disk
    // work must not overlap the peers' runs.
    wait_trash_empty(&cfg.state_dir, Duration::from_secs(60));

    // runc: an OCI bundle over the same image, read-only root, same command.
    let bundle = cfg.state_dir.join("bench-runc");
    let _ = fs::remove_dir_all(&bundle);
    fs::create_dir_all(&bundle).ctx(|| format!("creating {}", bundle.display()))?;
    match make_runc_bundle(&bundle, &img) {
        Ok(()) => {
            let (mut t, mut down) = (Vec::new(), Vec::new());
            for i in 0..n {
                let id = format!("slicelab-bench-{}-{i}", std::process::id());
                match time_to_ready(
                    Command::new("runc")
                        .args(["run", "--bundle"])
                        .arg(&bundle)
                        .arg(&id),
                ) {
                    Ok((ms, teardown)) => {
                        t.push(ms);
                        down.push(teardown);
                    }
                    Err(e) => {
                        report.notes.push(format!("runc run failed: {e}"));
                        let _ = Command::new("runc").args(["delete", "-f", &id]).output();
                        break;
                    }
                }
            }
            if t.len() == n {
                report.runc_ms = Some(median(t));
                report.runc_teardown_ms = Some(median(down));
            }
        }
        Err(e) => report.notes.push(format!("runc bundle: {e}")),
    }
    let _ = fs::remove_dir_all(&bundle);

    match bench_lxc(n, cfg, &img) {
        Ok((ms, teardown)) => {
            report.lxc_ms = Some(ms);
            report.lxc_teardown_ms = Some(teardown);
        }
        Err(e) => report.notes.push(format!("lxc-execute: {e}")),
    }

    // unshare: namespaces + chroot only (no overlay, cgroup, network or confinement).
    let mut t = Vec::new();
    for _ in 0..n {
        let proc_dir = format!("--mount-proc={}", img.join("proc").display());
        match time_to_ready(
            Command::new("unshare")
                .args(["-fmpiun", &proc_dir, "chroot"])
                .arg(&img)
                .args(["/bin/sh", "-c", "echo ready"]),
        ) {
            Ok((ms, _)) => t.push(ms),
            Err(e) => {
                report.notes.push(format!("unshare failed: {e}"));
                break;
            }
        }
    }
    if t.len() == n {
        report.unshare_ms = Some(median(t));
    }
    Ok(report)
}

/// `lxc-execute` of a copy of the image (LXC writes its init into the rootfs) with a veth
/// interface, proc and sys mounted: LXC's nearest equivalent of a sliver start.
fn bench_lxc(n: usize, cfg: &RuntimeConfig, img: &Path) -> Result<(f64, f64), String> {
    let dir = cfg.state_dir.join("bench-lxc");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let rootfs = dir.join("rootfs");
    let o = Command::new("cp")
        .arg("-a")
        .arg(img)
        .arg(&rootfs)
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let config = dir.join("config");
    fs::write(
        &config,
        format!(
            "lxc.uts.name = bench\nlxc.rootfs.path = dir:{}\nlxc.net.0.type = veth\n\
             lxc.net.0.flags = up\nlxc.mount.auto = proc:mixed sys:ro\n\
             lxc.apparmor.profile = unconfined\n",
            rootfs.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let (mut t, mut down) = (Vec::new(), Vec::new());
    for i in 0..n {
        let name = format!("slicelab-bench-{}-{i}", std::process::id());
        let (ms, teardown) = time_to_ready(
            Command::new("lxc-execute")
                .args(["-n", &name, "-P"])
                .arg(&dir)
                .arg("-f")
                .arg(&config)
                .args(["--", "/bin/sh", "-c", "echo ready"]),
        )?;
        t.push(ms);
        down.push(teardown);
    }
    let _ = fs::remove_dir_all(&dir);
    Ok((median(t), median(down)))
}

fn make_runc_bundle(bundle: &Path, rootfs: &Path) -> Result<(), String> {
    let o = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(bundle)
        .output()
        .map_err(|e| format!("runc: {e}"))?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    spec["root"] = serde_json::json!({ "path": rootfs, "readonly": true });
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["process"]["args"] = serde_json::json!(["/bin/sh", "-c", "echo ready"]);
    spec["hostname"] = serde_json::json!("bench");
    fs::write(
        &path,
        serde_json::to_vec_pretty(&spec).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
