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

/// Time from spawning `cmd` to its first stdout line "ready".
fn time_to_ready(cmd: &mut Command) -> Result<f64, String> {
    let t0 = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    let t = ms(t0.elapsed());
    let o = child.wait_with_output().map_err(|e| e.to_string())?;
    if line.trim() != "ready" {
        return Err(format!(
            "{}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(t)
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
    let mut times = Vec::new();
    let slices: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let mut result = Ok(());
    for s in &slices {
        let spec = SliverSpec {
            slice_id: 0,
            slice_name: s.clone(),
            expires: i64::MAX,
            run: true,
            keys: vec![],
            resources: Resources {
                initscript: Some("echo ready; exec sleep 1000000".into()),
                ..Default::default()
            },
            image_digest: image_digest.map(String::from),
        };
        let console = names::sliver_dir(&cfg.state_dir, s).join("console.log");
        let t0 = Instant::now();
        if let Err(e) = rt.create(&spec).and_then(|_| rt.start(s)) {
            result = Err(e);
            break;
        }
        let deadline = t0 + Duration::from_secs(30);
        loop {
            if fs::read_to_string(&console).is_ok_and(|c| c.contains("ready")) {
                times.push(ms(t0.elapsed()));
                break;
            }
            if Instant::now() > deadline {
                result = Err(NodeError::Start {
                    slice: s.clone(),
                    message: "initscript did not run within 30 s".into(),
                });
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        if result.is_err() {
            break;
        }
    }
    for s in &slices {
        let _ = rt.destroy(s);
    }
    result.map(|()| times)
}

/// Creates and starts `n` slivers (initscript `echo ready`), then destroys them; runs the same
/// image `n` times under `runc run` and `unshare` for comparison.
pub fn bench_sliver(n: usize, cfg: &RuntimeConfig) -> Result<BenchReport, NodeError> {
    let rt = LinuxRuntime::new(cfg.clone())?;
    let img = image::ensure_image(&cfg.state_dir, image::DEFAULT_IMAGE)?;
    let mut report = BenchReport {
        n,
        ..Default::default()
    };
    let times = time_sliver_starts(&rt, cfg, n, "bench_s", None)?;
    report.sliver_ms = median(times);

    // runc: an OCI bundle over the same image, read-only root, same command.
    let bundle = cfg.state_dir.join("bench-runc");
    let _ = fs::remove_dir_all(&bundle);
    fs::create_dir_all(&bundle).ctx(|| format!("creating {}", bundle.display()))?;
    match make_runc_bundle(&bundle, &img) {
        Ok(()) => {
            let mut t = Vec::new();
            for i in 0..n {
                let id = format!("slicelab-bench-{}-{i}", std::process::id());
                match time_to_ready(
                    Command::new("runc")
                        .args(["run", "--bundle"])
                        .arg(&bundle)
                        .arg(&id),
                ) {
                    Ok(ms) => t.push(ms),
                    Err(e) => {
                        report.notes.push(format!("runc run failed: {e}"));
                        let _ = Command::new("runc").args(["delete", "-f", &id]).output();
                        break;
                    }
                }
            }
            if t.len() == n {
                report.runc_ms = Some(median(t));
            }
        }
        Err(e) => report.notes.push(format!("runc bundle: {e}")),
    }
    let _ = fs::remove_dir_all(&bundle);

    match bench_lxc(n, cfg, &img) {
        Ok(ms) => report.lxc_ms = Some(ms),
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
            Ok(ms) => t.push(ms),
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
fn bench_lxc(n: usize, cfg: &RuntimeConfig, img: &Path) -> Result<f64, String> {
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
    let mut t = Vec::new();
    for i in 0..n {
        let name = format!("slicelab-bench-{}-{i}", std::process::id());
        t.push(time_to_ready(
            Command::new("lxc-execute")
                .args(["-n", &name, "-P"])
                .arg(&dir)
                .arg("-f")
                .arg(&config)
                .args(["--", "/bin/sh", "-c", "echo ready"]),
        )?);
    }
    let _ = fs::remove_dir_all(&dir);
    Ok(median(t))
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
