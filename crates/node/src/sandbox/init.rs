use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{chdir, dup2, fork, getpid, pivot_root, sethostname, setsid, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use super::{caps, seccomp};

/// Environment variable that turns the current binary into a sliver launcher; its value is the
/// path of a [`LaunchSpec`] JSON file.
pub const INIT_ENV: &str = "SLICELAB_SLIVER_INIT";
/// Environment variable that turns the current binary into the exec helper; its value is an
/// [`ExecSpec`] as JSON.
pub const EXEC_ENV: &str = "SLICELAB_SLIVER_EXEC";

/// What the launcher needs to build a sliver. Written by the runtime next to the sliver's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub slice: String,
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub rootfs: PathBuf,
    /// The initscript's stdout/stderr and the init's own messages.
    pub console: PathBuf,
    /// `cgroup.procs` files to join (one per v1 hierarchy, or one for v2).
    pub cgroup_procs: Vec<PathBuf>,
    pub initscript: Option<String>,
}

/// What the exec helper needs to run a command inside a running sliver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    pub init_pid: i32,
    pub cgroup_procs: Vec<PathBuf>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Call this first thing in `main` of any binary that hosts the node manager, *before* starting
/// threads or a tokio runtime: when the process was re-executed as a sliver launcher or exec
/// helper it does that job and exits; otherwise it returns at once.
pub fn maybe_run_sliver_init() {
    if let Some(path) = std::env::var_os(INIT_ENV) {
        let code = match launch(Path::new(&path)) {
            Ok(()) => 0,
            Err(e) => {
                // stdout is the node manager's pipe: it reads this line as the failure reason.
                println!("error: {e}");
                1
            }
        };
        std::process::exit(code);
    }
    if let Ok(json) = std::env::var(EXEC_ENV) {
        let code = match serde_json::from_str::<ExecSpec>(&json) {
            Ok(spec) => exec_helper(&spec),
            Err(e) => {
                eprintln!("slicelab exec: bad spec: {e}");
                125
            }
        };
        std::process::exit(code);
    }
}

type R<T> = Result<T, String>;

fn sys<T>(what: &str, r: nix::Result<T>) -> R<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn io<T>(what: &str, r: std::io::Result<T>) -> R<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn join_cgroups(files: &[PathBuf]) -> R<()> {
    let pid = getpid().to_string();
    for f in files {
        io(
            &format!("joining cgroup {}", f.display()),
            fs::write(f, &pid),
        )?;
    }
    Ok(())
}

fn launch(spec_path: &Path) -> R<()> {
    let spec: LaunchSpec = serde_json::from_slice(&io("reading launch spec", fs::read(spec_path))?)
        .map_err(|e| format!("launch spec: {e}"))?;
    let console = io(
        "opening console log",
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.console),
    )?;
    join_cgroups(&spec.cgroup_procs)?;
    sys(
        "unshare",
        unshare(
            CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWPID,
        ),
    )?;
    let filter = seccomp::program();
    // SAFETY: the launcher is single-threaded (maybe_run_sliver_init runs before any thread).
    match sys("fork", unsafe { fork() })? {
        ForkResult::Parent { child } => {
            println!("pid {child}");
            let _ = std::io::stdout().flush();
            Ok(())
        }
        ForkResult::Child => {
            let code = match init_main(&spec, console, &filter) {
                Ok(()) => 0,
                Err(e) => {
                    println!("error: {e}");
                    let _ = std::io::stdout().flush();
                    1
                }
            };
            std::process::exit(code);
        }
    }
}

fn mnt(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> R<()> {
    sys(
        &format!(
            "mounting {} on {}",
            fstype.or(src).unwrap_or("-"),
            target.display()
        ),
        mount(src, target, fstype, flags, data),
    )
}

fn bind(src: &Path, target: &Path, extra: MsFlags) -> R<()> {
    sys(
        &format!("bind-mounting {} on {}", src.display(), target.display()),
        mount(
            Some(src),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ),
    )?;
    if !extra.is_empty() {
        sys(
            &format!("remounting {}", target.display()),
            mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra,
                None::<&str>,
            ),
        )?;
    }
    Ok(())
}

fn build_rootfs(spec: &LaunchSpec) -> R<()> {
    // Nothing we mount may propagate back to the host.
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    for d in [&spec.rootfs, &spec.upper, &spec.work] {
        io("creating sliver dirs", fs::create_dir_all(d))?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        spec.lower.display(),
        spec.upper.display(),
        spec.work.display()
    );
    mnt(
        Some("overlay"),
        &spec.rootfs,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(&opts),
    )?;
    let r = &spec.rootfs;
    for d in ["proc", "sys", "dev", "tmp", "root"] {
        io(&format!("creating /{d}"), fs::create_dir_all(r.join(d)))?;
    }
    let nse = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mnt(Some("proc"), &r.join("proc"), Some("proc"), nse, None)?;
    // Kernel knobs are readable but not writable from a sliver.
    let sysctl = r.join("proc/sys");
    bind(&sysctl, &sysctl, MsFlags::MS_RDONLY | nse)?;
    for masked in ["kcore", "sysrq-trigger", "keys", "timer_list", "kallsyms"] {
        let p = r.join("proc").join(masked);
        if p.exists() {
            bind(Path::new("/dev/null"), &p, MsFlags::empty())?;
        }
    }
    // sysfs needs a network namespace owned by us (it is); read-only, best effort.
    let _ = mount(
        Some("sysfs"),
        &r.join("sys"),
        Some("sysfs"),
        nse | MsFlags::MS_RDONLY,
        None::<&str>,
    );
    let dev = r.join("dev");
    mnt(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(node);
        io("creating device file", File::create(&target))?;
        bind(&Path::new("/dev").join(node), &target, MsFlags::empty())?;
    }
    io("creating /dev/pts", fs::create_dir_all(dev.join("pts")))?;
    mnt(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    io("creating /dev/shm", fs::create_dir_all(dev.join("shm")))?;
    mnt(
        Some("tmpfs"),
        &dev.join("shm"),
        Some("tmpfs"),
        nse,
        Some("mode=1777"),
    )?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        io("creating /dev link", symlink(to, dev.join(link)))?;
    }
    mnt(
        Some("tmpfs"),
        &r.join("tmp"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    // pivot_root with the same old and new root stacks the old root under the new one; detaching
    // it leaves no path back to the host's tree.
    sys("chdir rootfs", chdir(r.as_path()))?;
    sys("pivot_root", pivot_root(".", "."))?;
    sys("detaching old root", umount2(".", MntFlags::MNT_DETACH))?;
    sys("chdir /", chdir("/"))?;
    Ok(())
}

fn init_main(spec: &LaunchSpec, console: File, filter: &[libc::sock_filter]) -> R<()> {
    sys("setsid", setsid())?;
    // The init must survive the sliver's own OOM kills; its children reset this to 0.
    let _ = fs::write("/proc/self/oom_score_adj", "-1000");
    build_rootfs(spec)?;
    sys("sethostname", sethostname(&spec.slice))?;
    println!("ready");
    let _ = std::io::stdout().flush();
    // The node manager plugs in the network, then says "go". EOF means it died first: give up
    // rather than run a sliver without its network; it will be restarted.
    let mut line = String::new();
    let _ = BufReader::new(std::io::stdin()).read_line(&mut line);
    if line.trim() != "go" {
        return Err("node manager went away before the sliver was wired".into());
    }
    let null = io("opening /dev/null", File::open("/dev/null"))?;
    sys("dup2 stdin", dup2(null.as_raw_fd(), 0))?;
    sys("dup2 stdout", dup2(console.as_raw_fd(), 1))?;
    sys("dup2 stderr", dup2(console.as_raw_fd(), 2))?;
    drop(null);
    drop(console);
    sys("confining init", caps::confine(filter))?;
    supervise(spec.initscript.as_deref());
}

fn sliver_env(slice: &str) -> Vec<CString> {
    [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        "HOME=/root".to_string(),
        "TERM=xterm".to_string(),
        format!("SLICE={slice}"),
    ]
    .into_iter()
    .filter_map(|s| CString::new(s).ok())
    .collect()
}

fn spawn_initscript(script: &str) -> Option<Pid> {
    let argv: Vec<CString> = ["/bin/sh", "-c", script]
        .iter()
        .filter_map(|s| CString::new(*s).ok())
        .collect();
    let slice = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let env = sliver_env(&slice);
    // SAFETY: the init is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let _ = setsid();
            let _ = fs::write("/proc/self/oom_score_adj", "0");
            let _ = chdir("/root");
            let _ = nix::unistd::execve(&argv[0], &argv, &env);
            // SAFETY: exiting a forked child without running the parent's destructors.
            unsafe { libc::_exit(127) }
        }
        Ok(ForkResult::Parent { child }) => Some(child),
        Err(e) => {
            eprintln!("slicelab init: cannot fork the initscript: {e}");
            None
        }
    }
}

/// PID 1 of the sliver: reaps every orphan, keeps the initscript running with exponential
/// back-off (1 s … 60 s, reset after a minute of uptime), and on SIGTERM stops everything.
fn supervise(initscript: Option<&str>) -> ! {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    let mut child: Option<(Pid, Instant)> = None;
    let mut backoff = Duration::from_secs(1);
    let mut next_start = initscript.map(|_| Instant::now());
    loop {
        if let (Some(script), Some(at)) = (initscript, next_start) {
            if Instant::now() >= at {
                next_start = None;
                match spawn_initscript(script) {
                    Some(pid) => child = Some((pid, Instant::now())),
                    None => next_start = Some(Instant::now() + backoff),
                }
            }
        }
        let wait = next_start
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(60))
            .max(Duration::from_millis(10));
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: valid signal set and timespec; info may be null.
        let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            shutdown();
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) => {
                    let Some(pid) = st.pid() else { break };
                    if let Some((c, started)) = child {
                        if c == pid {
                            child = None;
                            if started.elapsed() > Duration::from_secs(60) {
                                backoff = Duration::from_secs(1);
                            }
                            eprintln!(
                                "slicelab init: initscript ended ({st:?}); restarting in {}s",
                                backoff.as_secs()
                            );
                            next_start = Some(Instant::now() + backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(60));
                        }
                    }
                }
            }
        }
    }
}

fn shutdown() -> ! {
    let all = Pid::from_raw(-1);
    let _ = kill(all, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(_) => std::process::exit(0),
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
            Ok(_) => {}
        }
    }
    let _ = kill(all, Signal::SIGKILL);
    std::process::exit(0);
}

/// Runs `spec.argv` inside the sliver under the same confinement as its init and returns its exit
/// code (128 + signal if killed).
fn exec_helper(spec: &ExecSpec) -> i32 {
    match exec_helper_inner(spec) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("slicelab exec: {e}");
            125
        }
    }
}

fn exec_helper_inner(spec: &ExecSpec) -> R<i32> {
    if spec.argv.is_empty() {
        return Err("empty command".into());
    }
    // Open every namespace before joining any: after joining the mount namespace the host's
    // /proc is out of reach.
    let mut ns: Vec<(OwnedFd, CloneFlags)> = Vec::new();
    for (name, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let f = io(
            &format!("opening {name} namespace of {}", spec.init_pid),
            File::open(format!("/proc/{}/ns/{name}", spec.init_pid)),
        )?;
        ns.push((f.into(), flag));
    }
    // Like the init, the helper must not be the OOM victim; the command resets this to 0.
    let _ = fs::write("/proc/self/oom_score_adj", "-1000");
    join_cgroups(&spec.cgroup_procs)?;
    for (fd, flag) in &ns {
        sys(&format!("setns {flag:?}"), setns(fd, *flag))?;
    }
    sys("chdir /", chdir("/"))?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| "NUL in argument".to_string()))
        .collect::<R<_>>()?;
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let mut env = sliver_env(&hostname);
    // A variable given by the caller (e.g. TERM from an SSH pty) replaces the default: with two
    // entries of one name, which one a program sees depends on its libc.
    env.retain(|kv| {
        let name = kv
            .as_bytes()
            .split(|b| *b == b'=')
            .next()
            .unwrap_or_default();
        !spec.env.iter().any(|(k, _)| k.as_bytes() == name)
    });
    env.extend(
        spec.env
            .iter()
            .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok()),
    );
    let filter = seccomp::program();
    // SAFETY: the helper is single-threaded.
    match sys("fork", unsafe { fork() })? {
        ForkResult::Child => {
            // Entering the PID namespace takes effect for children only: this child is in it.
            let _ = fs::write("/proc/self/oom_score_adj", "0");
            let _ = chdir("/root");
            if let Err(e) = caps::confine(&filter) {
                eprintln!("slicelab exec: confining: {e}");
                // SAFETY: exiting a forked child.
                unsafe { libc::_exit(125) }
            }
            let e = nix::unistd::execvpe(&argv[0], &argv, &env);
            eprintln!("slicelab exec: {}: {e:?}", spec.argv[0]);
            // SAFETY: exiting a forked child.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, c)) => return Ok(c),
                Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
                Ok(_) => {}
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(format!("waiting: {e}")),
            }
        },
    }
}
