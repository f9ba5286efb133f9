//! `registry::pull` against Debian's real `docker-registry` (images pushed by skopeo, OCI and
//! Docker v2 manifests, by tag and by digest), and against a small fake registry that demands a
//! Bearer token obtained with Basic credentials and serves a multi-platform index. Loopback
//! only.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{json, Value};
use slicelab_image::archive::{open, write_oci_layout};
use slicelab_image::registry::{pull, RegistryAuth};
use slicelab_image::{ImageError, ImageSource};

/// A `docker-registry serve` process, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    fn start() -> Registry {
        common::require("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let r = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }
}

/// A layout (tag v1) of the small rootfs with a command; returns it and the source.
fn image(dir: &Path) -> (PathBuf, ImageSource) {
    let tarball = common::small_rootfs().write_gzip(&dir.join("rootfs.tar.gz"));
    let mut src = open(&tarball).unwrap();
    src.config.entrypoint = vec!["/bin/hello".into()];
    src.config.env.push("LANG=C.UTF-8".into());
    let layout = dir.join("layout");
    write_oci_layout(&src, &layout, "v1").unwrap();
    (layout, src)
}

fn skopeo_push(layout: &Path, dest: &str, extra: &[&str]) {
    common::require("skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
        .args(extra)
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(dest);
    common::run(&mut cmd);
}

#[tokio::test]
async fn pulls_from_a_real_registry() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (layout, src) = image(dir.path());
    let host = format!("127.0.0.1:{}", reg.port);
    skopeo_push(&layout, &format!("docker://{host}/demo:v1"), &[]);
    skopeo_push(
        &layout,
        &format!("docker://{host}/team/demo:v2s2"),
        &["--format", "v2s2"],
    );

    let pulled = pull(&format!("{host}/demo:v1"), &RegistryAuth::Anonymous, true)
        .await
        .unwrap();
    assert_eq!(pulled.manifest(), src.manifest());
    for l in &pulled.layers {
        assert_eq!(
            slicelab_image::digest::sha256_file(&l.path).unwrap(),
            l.layer.digest
        );
    }

    // Docker v2 schema 2: same blobs, Docker's media type for the gzip layer.
    let v2 = pull(
        &format!("{host}/team/demo:v2s2"),
        &RegistryAuth::Anonymous,
        true,
    )
    .await
    .unwrap();
    assert_eq!(v2.config, src.config);
    assert_eq!(v2.layers[0].layer.digest, src.layers[0].layer.digest);
    assert_eq!(
        v2.layers[0].layer.media_type,
        slicelab_model::image::DOCKER_LAYER_GZIP
    );

    // By digest.
    let inspect = common::run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/demo:v1"),
    ]));
    let digest = serde_json::from_str::<Value>(&inspect).unwrap()["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let by_digest = pull(
        &format!("{host}/demo@{digest}"),
        &RegistryAuth::Anonymous,
        true,
    )
    .await
    .unwrap();
    assert_eq!(by_digest.manifest(), src.manifest());

    match pull(&format!("{host}/demo:nope"), &RegistryAuth::Anonymous, true).await {
        Err(ImageError::Registry(m)) => assert!(m.contains("404"), "{m}"),
        other => panic!("expected a 404, got {other:?}"),
    }
    match pull("not a reference!", &RegistryAuth::Anonymous, true).await {
        Err(ImageError::Registry(m)) => assert!(m.contains("not an image reference"), "{m}"),
        other => panic!("expected a bad reference, got {other:?}"),
    }
}

/// The fake registry's state: a layout to serve, its address, whether to corrupt blobs.
struct Fake {
    layout: PathBuf,
    port: u16,
    corrupt: bool,
}

const TOKEN: &str = "t0k3n";

fn challenge(port: u16) -> Response {
    let value = format!(
        r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake",scope="repository:team/demo:pull""#
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, value)],
    )
        .into_response()
}

fn authorized(h: &HeaderMap) -> bool {
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

async fn token(headers: HeaderMap, q: axum::extract::Query<Vec<(String, String)>>) -> Response {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:secret");
    let ok_scope =
        q.0.iter()
            .any(|(k, v)| k == "scope" && v == "repository:team/demo:pull");
    let ok_service = q.0.iter().any(|(k, v)| k == "service" && v == "fake");
    let ok_auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Basic {basic}"));
    if !(ok_scope && ok_service && ok_auth) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(json!({ "token": TOKEN })).into_response()
}

fn blob(fake: &Fake, digest: &str) -> Option<Vec<u8>> {
    let hex = digest.strip_prefix("sha256:")?;
    std::fs::read(fake.layout.join("blobs/sha256").join(hex)).ok()
}

async fn manifests(
    State(fake): State<Arc<Fake>>,
    UrlPath(reference): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return challenge(fake.port);
    }
    let index: Value =
        serde_json::from_slice(&std::fs::read(fake.layout.join("index.json")).unwrap()).unwrap();
    let real = index["manifests"][0].clone();
    if reference == "v1" {
        // A multi-platform index: arm64 first (a digest that does not exist), then amd64.
        let mut arm = real.clone();
        arm["digest"] = json!(format!("sha256:{}", "0".repeat(64)));
        arm["platform"] = json!({"os": "linux", "architecture": "arm64"});
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [arm, real],
        });
        return (
            [(
                header::CONTENT_TYPE,
                "application/vnd.oci.image.index.v1+json",
            )],
            serde_json::to_vec(&doc).unwrap(),
        )
            .into_response();
    }
    match blob(&fake, &reference) {
        Some(b) => (
            [(
                header::CONTENT_TYPE,
                "application/vnd.oci.image.manifest.v1+json",
            )],
            b,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn blobs(
    State(fake): State<Arc<Fake>>,
    UrlPath(digest): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return challenge(fake.port);
    }
    match blob(&fake, &digest) {
        Some(mut b) => {
            if fake.corrupt && b.len() > 100 {
                b[50] ^= 1;
            }
            b.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_fake(layout: &Path, corrupt: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = Arc::new(Fake {
        layout: layout.to_path_buf(),
        port,
        corrupt,
    });
    let app = axum::Router::new()
        .route("/token", get(token))
        .route("/v2/team/demo/manifests/{reference}", get(manifests))
        .route("/v2/team/demo/blobs/{digest}", get(blobs))
        .with_state(fake);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

#[tokio::test]
async fn bearer_tokens_basic_credentials_and_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, src) = image(dir.path());
    let port = start_fake(&layout, false).await;
    let reference = format!("127.0.0.1:{port}/team/demo:v1");
    let alice = RegistryAuth::Basic {
        user: "alice".into(),
        password: "secret".into(),
    };
    let pulled = pull(&reference, &alice, true).await.unwrap();
    assert_eq!(pulled.manifest(), src.manifest());

    match pull(&reference, &RegistryAuth::Anonymous, true).await {
        Err(ImageError::Registry(m)) => assert!(m.contains("wants credentials"), "{m}"),
        other => panic!("expected a refused token, got {other:?}"),
    }
    let mallory = RegistryAuth::Basic {
        user: "alice".into(),
        password: "guess".into(),
    };
    match pull(&reference, &mallory, true).await {
        Err(ImageError::Registry(m)) => assert!(m.contains("401"), "{m}"),
        other => panic!("expected a refused token, got {other:?}"),
    }

    let bad_port = start_fake(&layout, true).await;
    let bad = format!("127.0.0.1:{bad_port}/team/demo:v1");
    match pull(&bad, &alice, true).await {
        Err(ImageError::DigestMismatch { what, .. }) => assert!(what.contains("blob"), "{what}"),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
}
