//! `cargo bench -p slicelab-node --bench image`: a published Debian image (mmdebstrap bookworm +
//! python3, ~67 MB zstd / 216 MB unpacked; cached in $SLICELAB_IMAGE_CACHE or
//! /var/cache/slicelab/images) on a real central and a real node manager, next to peers measured
//! in the same run:
//! - **first sliver**: slice tag set → sliver running (fetch from central over HTTP, verify every
//!   digest, unpack, start), next to `skopeo copy` from Debian's `docker-registry` on loopback +
//!   `umoci unpack` of the same image (no start at all);
//! - **next slivers**: create → initscript running with the image already on the node, next to
//!   the built-in busybox image (sharing: equal within 10%).
//!
//! Needs root; prints a skip reason otherwise. Run by `cargo test --all-targets` (without
//! `--bench`) it only checks that it runs, with 3 slivers.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slicelab_client::Client;
use slicelab_model::image::{NewImage, Visibility};
use slicelab_model::objects::{LoginResponse, NodeWithKey, SliceTagSet};
use slicelab_model::TagName;
use slicelab_node::bench::{median, time_sliver_starts};
use slicelab_node::{LinuxRuntime, NodeNames, RuntimeConfig};

type R<T> = Result<T, String>;

fn main() {
    slicelab_node::maybe_run_sliver_init();
    if !nix::unistd::geteuid().is_root() {
        println!("bench image: skipped (needs root)");
        return;
    }
    let benching = std::env::args().any(|a| a == "--bench");
    let n = if benching { 20 } else { 3 };
    let names = NodeNames {
        gateway_if: "slbench1".into(),
        subnet: Ipv4Addr::new(10, 79, 251, 0),
        nft_table: "slicelab_bench_img".into(),
        cgroup_parent: "slicelab-bench-img".into(),
    };
    let dir = match tempfile::Builder::new()
        .prefix("slicelab-bench-img")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("bench image: {e}");
            std::process::exit(1);
        }
    };
    let result = run(n, dir.path(), &names);
    let _ = slicelab_node::cleanup(&dir.path().join("node"), &names, true);
    match result {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("bench image: {e}");
            std::process::exit(1);
        }
    }
}

fn cache_dir() -> PathBuf {
    std::env::var_os("SLICELAB_IMAGE_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/slicelab/images"))
}

/// The Debian tarball `slicelab up` and the tests share, recompressed with gzip (umoci 0.4, the
/// peer, cannot read zstd layers; both sides get the same blob). Built if missing.
fn debian_tarball() -> R<PathBuf> {
    let zst = zstd_tarball()?;
    let gz = cache_dir().join("debian-bookworm-python3.tar.gz");
    if gz.is_file() {
        return Ok(gz);
    }
    let tmp = cache_dir().join(format!(".bench-{}.tar.gz", std::process::id()));
    let r = (|| -> std::io::Result<()> {
        let mut input = zstd::Decoder::new(std::fs::File::open(&zst)?)?;
        let mut out = flate2::write::GzEncoder::new(
            std::fs::File::create(&tmp)?,
            flate2::Compression::default(),
        );
        std::io::copy(&mut input, &mut out)?;
        out.finish()?.sync_all()
    })();
    r.map_err(|e| format!("recompressing {}: {e}", zst.display()))?;
    std::fs::rename(&tmp, &gz).map_err(|e| e.to_string())?;
    Ok(gz)
}

fn zstd_tarball() -> R<PathBuf> {
    let ext = slicelab_image::build::TARBALL_EXTENSION;
    let path = cache_dir().join(format!("debian-bookworm-python3.{ext}"));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache_dir()).map_err(|e| e.to_string())?;
    let tmp = cache_dir().join(format!(".bench-{}.{ext}", std::process::id()));
    slicelab_image::build::debian("bookworm", &["python3".into()], None, &tmp, &mut |l| {
        eprintln!("{l}")
    })
    .map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    Ok(path)
}

fn free_port() -> R<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(cmd: &mut Command) -> R<()> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&o.stderr)))
    }
}

/// The peer: `skopeo copy` from a loopback registry into an OCI layout, then `umoci unpack`.
fn peer_ms(work: &Path, src: &slicelab_image::ImageSource) -> R<f64> {
    let data = work.join("registry");
    let port = free_port()?;
    let config = work.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            data.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let _reg = Registry(
        Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("docker-registry: {e}"))?,
    );
    let addr = format!("127.0.0.1:{port}");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            return Err("docker-registry did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let layout = work.join("layout");
    slicelab_image::archive::write_oci_layout(src, &layout, "v1").map_err(|e| e.to_string())?;
    sh(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{addr}/debian:v1")))?;
    let pulled = work.join("pulled");
    let bundle = work.join("bundle");
    let t0 = Instant::now();
    sh(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{addr}/debian:v1"))
        .arg(format!("oci:{}:v1", pulled.display())))?;
    sh(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", pulled.display()))
        .arg(&bundle))?;
    Ok(t0.elapsed().as_secs_f64() * 1000.0)
}

async fn login(base: &str, email: &str, password: &str) -> R<Client> {
    let anon = Client::new(base, None);
    let r: LoginResponse = anon
        .post(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(anon.with_token(r.token))
}

/// Ours: publish at a real central, then slice tag set → the sliver runs on a real node manager.
async fn first_sliver_ms(
    work: &Path,
    state: &Path,
    names: &NodeNames,
    src: &slicelab_image::ImageSource,
) -> R<(f64, String)> {
    let central = slicelab_central::start(slicelab_central::Config {
        db_url: format!("sqlite://{}/central.db", work.display()),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_email: "admin@bench.test".into(),
        admin_password: Some("admin-password-1".into()),
        tls: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    let base = format!("http://{}", central.addr);
    let admin = login(&base, "admin@bench.test", "admin-password-1").await?;
    let e = |e: slicelab_client::ClientError| e.to_string();
    let site: Value = admin
        .post(
            "/sites",
            &json!({"login_base": "pl", "name": "PL", "max_slices": 3}),
        )
        .await
        .map_err(e)?;
    let node: NodeWithKey = admin
        .post(
            "/nodes",
            &json!({"hostname": "node1.pl.test", "site": "pl"}),
        )
        .await
        .map_err(e)?;
    for l in &src.layers {
        admin.put_blob(&l.layer.digest, &l.path).await.map_err(e)?;
    }
    let image = admin
        .create_image(&NewImage {
            name: "debian".into(),
            visibility: Visibility::Platform,
            site_id: site["id"].as_i64(),
            manifest: src.manifest(),
        })
        .await
        .map_err(e)?;
    let _: Value = admin
        .post("/slices", &json!({"name": "pl_first"}))
        .await
        .map_err(e)?;
    let _: Value = admin
        .post(
            "/slices/pl_first/nodes",
            &json!({"names": ["node1.pl.test"]}),
        )
        .await
        .map_err(e)?;
    let cfg = slicelab_node::Config {
        central: base.clone(),
        key: node.node_key.clone(),
        state_dir: state.to_path_buf(),
        names: names.clone(),
        reconcile_every: Duration::from_secs(1),
        audit_flows: false,
        ..Default::default()
    };
    let daemon = tokio::spawn(slicelab_node::run(cfg));
    let rt = LinuxRuntime::new(RuntimeConfig {
        names: names.clone(),
        ..RuntimeConfig::new(state)
    })
    .map_err(|e| e.to_string())?;
    let running = |rt: &LinuxRuntime| rt.init_of("pl_first").is_some();
    let t0 = Instant::now();
    while !running(&rt) {
        if t0.elapsed() > Duration::from_secs(30) {
            return Err("the base sliver did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = rt.init_of("pl_first");
    let t0 = Instant::now();
    admin
        .set_slice_tag(
            "pl_first",
            TagName::Image,
            &SliceTagSet {
                value: "debian".into(),
                node: None,
            },
        )
        .await
        .map_err(e)?;
    // Running again, in a new init, on the Debian image.
    loop {
        let now = rt.init_of("pl_first");
        if now.is_some() && now != started {
            break;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            return Err("the Debian sliver did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = t0.elapsed().as_secs_f64() * 1000.0;
    daemon.abort();
    let _ = daemon.await;
    let _ = slicelab_node::Runtime::destroy(&rt, "pl_first");
    central.shutdown().await;
    Ok((took, image.digest))
}

fn run(n: usize, work: &Path, names: &NodeNames) -> R<String> {
    let tarball = debian_tarball()?;
    let src = slicelab_image::archive::open(&tarball).map_err(|e| e.to_string())?;
    let size = src.manifest().size();
    let peer = peer_ms(work, &src)?;
    let state = work.join("node");
    std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (first, digest) = tokio.block_on(first_sliver_ms(work, &state, names, &src))?;
    drop(tokio);
    let cfg = RuntimeConfig {
        names: names.clone(),
        ..RuntimeConfig::new(&state)
    };
    let rt = LinuxRuntime::new(cfg.clone()).map_err(|e| e.to_string())?;
    // Interleaved, so both see the same machine.
    let (mut deb, mut bb) = (Vec::new(), Vec::new());
    for i in 0..n {
        let p = format!("bench_d{i}_");
        deb.extend(time_sliver_starts(&rt, &cfg, 1, &p, Some(&digest)).map_err(|e| e.to_string())?);
        let p = format!("bench_b{i}_");
        bb.extend(time_sliver_starts(&rt, &cfg, 1, &p, None).map_err(|e| e.to_string())?);
    }
    let (deb, bb) = (median(deb), median(bb));
    Ok(format!(
        "image: debian bookworm + python3, {:.1} MB of blobs\n\
         first sliver, tag set → running (fetch + verify + unpack + start):\n\
         \x20 slicelab                    {first:8.0} ms\n\
         \x20 skopeo copy + umoci unpack  {peer:8.0} ms   (slicelab / peer = {:.2})\n\
         next sliver, create → initscript running, median of {n}:\n\
         \x20 debian (shared layers)      {deb:8.1} ms\n\
         \x20 busybox (built-in)          {bb:8.1} ms   (debian / busybox = {:.2})\n",
        size as f64 / 1e6,
        first / peer,
        deb / bb
    ))
}
