//! An in-process central serving the web routes on loopback (temp SQLite), a small registry
//! made over the JSON API, simulated node managers speaking the real node protocol, and a
//! cookie-keeping browser-like HTTP client.

#![allow(dead_code)]

use serde_json::{json, Value};
use slicelab_central::{Config, Running};

pub const ADMIN_EMAIL: &str = "admin@slicelab.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "password-123";

pub struct TestCentral {
    pub running: Option<Running>,
    pub base: String,
    pub admin_token: String,
    http: reqwest::Client,
    _tmp: tempfile::TempDir,
}

impl TestCentral {
    pub async fn start() -> TestCentral {
        let tmp = tempfile::tempdir().expect("tempdir");
        let db_url = format!("sqlite://{}/central.db", tmp.path().display());
        Self::start_on(tmp, &db_url).await
    }

    /// A central (one of several replicas, on PostgreSQL) on the database at `db_url`, its blobs
    /// in `tmp`.
    pub async fn start_on(tmp: tempfile::TempDir, db_url: &str) -> TestCentral {
        let running = slicelab_central::start_with(
            Config {
                db_url: db_url.to_string(),
                listen: "127.0.0.1:0".parse().expect("addr"),
                admin_email: ADMIN_EMAIL.into(),
                admin_password: Some(ADMIN_PASSWORD.into()),
                tls: None,
            },
            slicelab_central::BlobConfig {
                blob_dir: Some(tmp.path().join("blobs")),
                ..Default::default()
            },
            slicelab_web::router(),
        )
        .await
        .expect("central starts");
        let base = format!("http://{}", running.addr);
        let http = reqwest::Client::new();
        let mut tc = TestCentral {
            running: Some(running),
            base,
            admin_token: String::new(),
            http,
            _tmp: tmp,
        };
        tc.admin_token = tc.api_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        tc
    }

    pub async fn api_login(&self, email: &str, password: &str) -> String {
        let r: Value = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login request")
            .json()
            .await
            .expect("login answer");
        r["token"].as_str().expect("token").to_string()
    }

    /// A JSON API call with a bearer token; panics unless it succeeds.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let mut rq = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.expect("api request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// Two sites (princeton with a PI and a tech, mit with a PI), a node at mit and two at
/// princeton, each simulated by a `SimNode`.
pub struct Fixture {
    pub nodes: Vec<SimNode>,
}

pub async fn fixture(tc: &TestCentral) -> Fixture {
    let a = tc.admin_token.clone();
    for (lb, name, lat, lon) in [
        ("princeton", "Princeton University", 40.35, -74.66),
        ("mit", "MIT", 42.36, -71.09),
    ] {
        tc.api(
            reqwest::Method::POST,
            "/sites",
            &a,
            Some(json!({"login_base": lb, "name": name, "max_slices": 5, "latitude": lat, "longitude": lon})),
        )
        .await;
    }
    for (email, role, site) in [
        ("pi@princeton.test", "pi", "princeton"),
        ("tech@princeton.test", "tech", "princeton"),
        ("user@princeton.test", "user", "princeton"),
        ("pi@mit.test", "pi", "mit"),
    ] {
        tc.api(
            reqwest::Method::POST,
            "/persons",
            &a,
            Some(json!({"email": email, "first_name": "Test", "last_name": role, "password": PASSWORD,
                        "roles": [role], "sites": [site]})),
        )
        .await;
    }
    let mut nodes = Vec::new();
    for (host, site) in [
        ("node1.princeton.test", "princeton"),
        ("node2.princeton.test", "princeton"),
        ("node1.mit.test", "mit"),
    ] {
        let r = tc
            .api(
                reqwest::Method::POST,
                "/nodes",
                &a,
                Some(json!({"hostname": host, "site": site, "cpu_cores": 4, "mem_mb": 4096, "disk_gb": 50})),
            )
            .await;
        nodes.push(SimNode {
            hostname: host.into(),
            key: r["node_key"].as_str().expect("node key").to_string(),
            base: tc.base.clone(),
            seq: 0,
            usage_seq: 0,
            http: reqwest::Client::new(),
        });
    }
    Fixture { nodes }
}

/// Acts as a node manager over the real node protocol: reads its desired slivers and reports
/// their states, health and usage, as `slicelab node` does.
pub struct SimNode {
    pub hostname: String,
    pub key: String,
    base: String,
    seq: i64,
    usage_seq: i64,
    http: reqwest::Client,
}

impl SimNode {
    /// The desired slivers now: (slice name, run).
    pub async fn desired(&self) -> Vec<(String, bool)> {
        let r: Value = self
            .http
            .get(format!("{}/api/v1/node/slivers?wait=0", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("desired slivers")
            .json()
            .await
            .expect("desired json");
        r["slivers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        (
                            s["slice_name"].as_str().unwrap_or_default().to_string(),
                            s["run"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One reconcile step: every desired sliver is reported `running` if it should run, else
    /// `stopped`; returns what was reported.
    pub async fn reconcile(&mut self) -> Vec<(String, bool)> {
        let desired = self.desired().await;
        self.seq += 1;
        let slivers: Vec<Value> = desired
            .iter()
            .map(|(name, run)| {
                json!({"slice_name": name, "state": if *run { "running" } else { "stopped" },
                       "message": if *run { "" } else { "stopped: desired run=false" }})
            })
            .collect();
        let r = self
            .http
            .post(format!("{}/api/v1/node/report", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"seq": self.seq, "slivers": slivers, "health": {
                "load1": 0.4 + desired.len() as f64 * 0.3, "mem_total_mb": 4096, "mem_used_mb": 1200,
                "disk_total_mb": 51200, "disk_used_mb": 9000, "uptime_s": 3600, "version": "sim"}}))
            .send()
            .await
            .expect("report");
        assert!(r.status().is_success(), "report: {}", r.status());
        desired
    }

    /// Reports `n` usage samples a minute apart, ending now, for each running slice and the node.
    pub async fn report_usage(&mut self, slices: &[String], n: i64) {
        let now = slicelab_central::now();
        let mut samples = Vec::new();
        for i in 0..n {
            let t = now - (n - 1 - i) * 60;
            let busy = 20.0 + (i % 5) as f64 * 6.0;
            for s in slices {
                samples.push(json!({"slice": s, "time": t, "interval_s": 60, "cpu_s": busy,
                    "mem_bytes": 100_000_000u64, "disk_bytes": 1_000_000u64,
                    "tx_bytes": 3_000_000 + i as u64 * 200_000, "rx_bytes": 1_000_000u64, "tx_pkts": 3000, "rx_pkts": 1000}));
            }
            samples.push(json!({"slice": null, "time": t, "interval_s": 60, "cpu_s": busy * 1.5,
                "mem_bytes": 1_200_000_000u64, "disk_bytes": 9_000_000_000u64,
                "tx_bytes": 5_000_000u64, "rx_bytes": 2_000_000u64, "tx_pkts": 5000, "rx_pkts": 2000}));
        }
        self.usage_seq += 1;
        let r = self
            .http
            .post(format!("{}/api/v1/node/usage", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"seq": self.usage_seq, "samples": samples}))
            .send()
            .await
            .expect("usage");
        let status = r.status();
        assert!(
            status.is_success(),
            "usage: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }
}

/// A browser-like client: keeps cookies, does not follow redirects (tests look at them).
pub struct Web {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Web {
    pub fn new(base: &str) -> Web {
        Web {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        answer(r).await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        answer(r).await
    }

    /// Logs in through the form; panics unless it works.
    pub async fn login(&self, email: &str, password: &str) {
        let page = self.get("/login").await;
        let token = hidden(&page.body, "login_token").expect("login token");
        let a = self
            .post(
                "/login",
                &[
                    ("login_token", &token),
                    ("email", email),
                    ("password", password),
                    ("next", "/my"),
                ],
            )
            .await;
        assert_eq!(a.status, 303, "login as {email}: {}", a.body);
    }

    /// The CSRF token of this session, read from a page's forms.
    pub async fn csrf(&self) -> String {
        let page = self.get("/my").await;
        hidden(&page.body, "csrf").expect("csrf field on /my")
    }
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Answer {
        status,
        location,
        body: r.text().await.unwrap_or_default(),
    }
}

/// The value of the first hidden input named `name`.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let needle = format!(r#"name="{name}" value=""#);
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_string())
}
