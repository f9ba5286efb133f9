//! A typed client of central's REST API (`/api/v1`). One `Client` per central URL and credential.

#![forbid(unsafe_code)]

mod connect;
mod images;
pub mod peer;

pub use connect::{fingerprint_of, presented_ca, split_urls, Endpoint, Trust};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{de::DeserializeOwned, Serialize};
use slicelab_model::defaults::{DefaultSet, DefaultTag, Defaults};
use slicelab_model::objects::{
    ApiToken, BootState, ErrorBody, Event, JoinRequest, JoinToken, JoinTokenCreate, Key, KeyCreate,
    LoginRequest, LoginResponse, NameList, NewApiToken, Node, NodeCreate, NodeUpdate, NodeWithKey,
    Page, Person, PersonCreate, PersonUpdate, Role, Site, SiteCreate, SiteUpdate, Slice,
    SliceCreate, SliceRenew, SliceTag, SliceTagSet, SliceUpdate, TokenCreate,
};
use slicelab_model::sliver::{ReportAck, Sliver};
use slicelab_model::{DesiredSlivers, NodeReport, TagName, UsageBatch};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    /// Central answered with an error body.
    #[error("{status}: {message}")]
    Api {
        status: u16,
        error: String,
        message: String,
    },
    /// Central could not be reached, or the connection broke (`detail`: the whole chain of
    /// causes, e.g. why its certificate was refused).
    #[error("cannot reach central at {url}: {detail}")]
    Transport {
        url: String,
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    /// `http://` to an address that is not loopback, not explicitly allowed.
    #[error(
        "refusing plain HTTP to {url}: keys, passwords and tokens would cross the network in \
         clear; use https:// (or allow plain HTTP explicitly: --allow-plain-http)"
    )]
    PlainHttp { url: String },
    /// The client's own settings are unusable (a bad CA file or fingerprint, no URL).
    #[error("{0}")]
    Config(String),
    #[error("unexpected answer from central: {0}")]
    Decode(String),
    /// Central sheds load (503): try again after `retry_after` seconds.
    #[error("central is busy ({message}); retry in {retry_after}s")]
    Busy { retry_after: u64, message: String },
    /// A local file (a blob to upload) could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Busy { .. } => Some(503),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A `Transport` error for `url`, its message naming every cause down to the root.
pub(crate) fn transport(url: &str, source: reqwest::Error) -> ClientError {
    let mut detail = source.to_string();
    let mut cause = std::error::Error::source(&source);
    while let Some(c) = cause {
        let text = c.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        cause = c.source();
    }
    ClientError::Transport {
        url: url.to_string(),
        detail,
        source,
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    /// Central's URLs (replicas); requests go to `bases[current]` and move on when it fails.
    bases: Arc<[String]>,
    current: Arc<AtomicUsize>,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// `base` is central's URL, e.g. `http://127.0.0.1:8080`; `token` a session token, API token
    /// or node key (all are sent as `Authorization: Bearer`).
    ///
    /// No checks: for tests and loopback. Front ends use [`Client::connect`], which refuses
    /// plain HTTP across a network and verifies central's certificate as configured.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let endpoint = Endpoint::new(base).allow_plain_http(true);
        // Only a URL that is not http(s) at all fails here; requests then fail naming it.
        Self::connect(&endpoint, token.clone()).unwrap_or_else(|_| Self {
            bases: vec![base.trim_end_matches('/').to_string()].into(),
            current: Default::default(),
            token,
            http: reqwest::Client::new(),
        })
    }

    /// A client of the central at `endpoint` (several URLs: replicas, tried in turn).
    pub fn connect(endpoint: &Endpoint, token: Option<String>) -> Result<Self> {
        endpoint.check()?;
        let tls = connect::tls_config(&endpoint.trust)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| ClientError::Config(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self {
            bases: endpoint.urls.clone().into(),
            current: Default::default(),
            token,
            http,
        })
    }

    /// The URL requests go to now (the first replica that answered).
    pub fn base(&self) -> &str {
        let i = self.current.load(Ordering::Relaxed) % self.bases.len().max(1);
        self.bases.get(i).map(String::as_str).unwrap_or("")
    }

    /// Every URL this client knows, comma-separated (as given).
    pub fn bases(&self) -> String {
        self.bases.join(",")
    }

    pub fn with_token(&self, token: String) -> Self {
        Self {
            bases: self.bases.clone(),
            current: self.current.clone(),
            token: Some(token),
            http: self.http.clone(),
        }
    }

    /// Sends the request `build` makes for each URL in turn, starting with the current one,
    /// until one answers (any HTTP status). A request that may have reached central and
    /// changed something (not GET/HEAD) moves on only if it could not connect at all: a
    /// write is never sent twice.
    pub(crate) async fn send_failover(
        &self,
        method: &Method,
        path: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::Response, String)> {
        let n = self.bases.len().max(1);
        let start = self.current.load(Ordering::Relaxed);
        let idempotent = matches!(*method, Method::GET | Method::HEAD);
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let Some(base) = self.bases.get(i) else { break };
            let url = format!("{base}/api/v1{path}");
            let mut req = build(self.http.request(method.clone(), &url));
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(resp) => {
                    if k > 0 {
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return Ok((resp, url));
                }
                Err(e) => {
                    // A read that timed out already waited its time: not retried now, but the
                    // next request starts at the next replica (this one may hang).
                    let retry = e.is_connect() || (idempotent && !e.is_timeout());
                    let move_on = retry || (idempotent && e.is_timeout());
                    last = Some(transport(&url, e));
                    if move_on {
                        self.current.store((i + 1) % n, Ordering::Relaxed);
                    }
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Config("no central URL given".into())))
    }

    /// Sends a request to `path` (below `/api/v1`) and decodes the JSON answer.
    pub async fn request<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T> {
        let (resp, url) = self
            .send_failover(&method, path, |req| {
                let req = req.timeout(timeout);
                match body {
                    Some(b) => req.json(b),
                    None => req,
                }
            })
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(error_of(resp, &url).await);
        }
        let bytes = resp.bytes().await.map_err(|e| transport(&url, e))?;
        let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            bytes::Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(format!("{path}: {e}")))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.request::<(), T>(Method::GET, path, None, Duration::from_secs(30))
            .await
    }

    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.request(Method::POST, path, Some(body), Duration::from_secs(30))
            .await
    }

    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.request(Method::PATCH, path, Some(body), Duration::from_secs(30))
            .await
    }

    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.request(Method::PUT, path, Some(body), Duration::from_secs(30))
            .await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.request::<(), T>(Method::DELETE, path, None, Duration::from_secs(30))
            .await
    }

    // --- node-facing endpoints (authenticated with the node key) ---

    /// Long-polls the node's desired slivers: returns at once if the revision differs from
    /// `after`, else when it changes or after about `wait` (then with the same revision).
    pub async fn desired_slivers(
        &self,
        after: Option<&str>,
        wait: Duration,
    ) -> Result<DesiredSlivers> {
        let mut path = format!("/node/slivers?wait={}", wait.as_secs());
        if let Some(a) = after {
            path.push_str("&after=");
            path.push_str(a);
        }
        self.request::<(), DesiredSlivers>(Method::GET, &path, None, wait + Duration::from_secs(15))
            .await
    }

    /// Sends one report batch; central acknowledges the highest `seq` it holds.
    pub async fn report(&self, report: &NodeReport) -> Result<ReportAck> {
        self.post("/node/report", report).await
    }

    /// Sends one batch of usage samples; central acknowledges the highest `seq` it holds (a batch
    /// at or below it is ignored, so resending never counts twice).
    pub async fn send_usage(&self, batch: &UsageBatch) -> Result<ReportAck> {
        self.post("/node/usage", batch).await
    }
}

/// The error an unsuccessful answer means: the API's error body (503: `Busy`, with its
/// `Retry-After`), or the start of whatever else it said.
pub(crate) async fn error_of(resp: reqwest::Response, url: &str) -> ClientError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(source) => return transport(url, source),
    };
    let (error, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(e) => (e.error, e.message),
        Err(_) => (
            "http".into(),
            String::from_utf8_lossy(&bytes).chars().take(500).collect(),
        ),
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return ClientError::Busy {
            retry_after: retry_after.unwrap_or(1),
            message,
        };
    }
    ClientError::Api {
        status: status.as_u16(),
        error,
        message,
    }
}

// --- typed registry methods (the person-facing API) ---

/// Percent-encodes one path segment or query value (everything but RFC 3986 unreserved).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string built from optional parameters; absent ones are left out.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(&'static str, String)>);

impl Query {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn opt(mut self, key: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(v) = value {
            self.0.push((key, v.to_string()));
        }
        self
    }

    /// `""` or `?k=v&...`, values percent-encoded.
    pub fn to_query_string(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        format!("?{}", parts.join("&"))
    }
}

/// Which page of a listing to fetch; `None` leaves central's default (limit 100, offset 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paging {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl Paging {
    fn apply(self, q: Query) -> Query {
        q.opt("limit", self.limit).opt("offset", self.offset)
    }
}

#[derive(Debug, Clone, Default)]
pub struct SiteFilter {
    pub login_base: Option<String>,
    pub paging: Paging,
}

#[derive(Debug, Clone, Default)]
pub struct PersonFilter {
    /// Site `login_base` or id.
    pub site: Option<String>,
    pub role: Option<Role>,
    pub email: Option<String>,
    pub paging: Paging,
}

#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    pub site: Option<String>,
    pub boot_state: Option<BootState>,
    pub region: Option<String>,
    pub paging: Paging,
}

#[derive(Debug, Clone, Default)]
pub struct SliceFilter {
    pub site: Option<String>,
    /// Email or id of a member.
    pub person: Option<String>,
    /// Hostname or id of a node the slice is on.
    pub node: Option<String>,
    pub paging: Paging,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub object_type: Option<String>,
    pub object: Option<String>,
    pub actor: Option<String>,
    /// Unix seconds.
    pub since: Option<i64>,
    pub paging: Paging,
}

impl Client {
    // auth and tokens

    /// Logs in with email and password; the answer's token is what later requests send.
    pub async fn login(&self, email: &str, password: &str) -> Result<LoginResponse> {
        let body = LoginRequest {
            email: email.to_string(),
            password: password.to_string(),
        };
        self.post("/auth/login", &body).await
    }

    /// Revokes the token this client sends.
    pub async fn logout(&self) -> Result<()> {
        self.post("/auth/logout", &serde_json::json!({})).await
    }

    pub async fn whoami(&self) -> Result<Person> {
        self.get("/auth/whoami").await
    }

    pub async fn tokens(&self) -> Result<Vec<ApiToken>> {
        self.get("/tokens").await
    }

    pub async fn create_token(&self, body: &TokenCreate) -> Result<NewApiToken> {
        self.post("/tokens", body).await
    }

    pub async fn delete_token(&self, id: i64) -> Result<()> {
        self.delete(&format!("/tokens/{id}")).await
    }

    // sites

    pub async fn sites(&self, f: &SiteFilter) -> Result<Page<Site>> {
        let q = f
            .paging
            .apply(Query::new().opt("login_base", f.login_base.as_ref()));
        self.get(&format!("/sites{}", q.to_query_string())).await
    }

    pub async fn site(&self, site: &str) -> Result<Site> {
        self.get(&format!("/sites/{}", encode(site))).await
    }

    pub async fn create_site(&self, body: &SiteCreate) -> Result<Site> {
        self.post("/sites", body).await
    }

    pub async fn update_site(&self, site: &str, body: &SiteUpdate) -> Result<Site> {
        self.patch(&format!("/sites/{}", encode(site)), body).await
    }

    pub async fn delete_site(&self, site: &str) -> Result<()> {
        self.delete(&format!("/sites/{}", encode(site))).await
    }

    // persons and keys

    pub async fn persons(&self, f: &PersonFilter) -> Result<Page<Person>> {
        let q = Query::new()
            .opt("site", f.site.as_ref())
            .opt("role", f.role.map(Role::as_str))
            .opt("email", f.email.as_ref());
        let q = f.paging.apply(q);
        self.get(&format!("/persons{}", q.to_query_string())).await
    }

    pub async fn person(&self, person: &str) -> Result<Person> {
        self.get(&format!("/persons/{}", encode(person))).await
    }

    pub async fn create_person(&self, body: &PersonCreate) -> Result<Person> {
        self.post("/persons", body).await
    }

    pub async fn update_person(&self, person: &str, body: &PersonUpdate) -> Result<Person> {
        self.patch(&format!("/persons/{}", encode(person)), body)
            .await
    }

    pub async fn delete_person(&self, person: &str) -> Result<()> {
        self.delete(&format!("/persons/{}", encode(person))).await
    }

    pub async fn keys(&self, person: &str) -> Result<Vec<Key>> {
        self.get(&format!("/persons/{}/keys", encode(person))).await
    }

    pub async fn add_key(&self, person: &str, body: &KeyCreate) -> Result<Key> {
        self.post(&format!("/persons/{}/keys", encode(person)), body)
            .await
    }

    pub async fn delete_key(&self, id: i64) -> Result<()> {
        self.delete(&format!("/keys/{id}")).await
    }

    // nodes

    pub async fn nodes(&self, f: &NodeFilter) -> Result<Page<Node>> {
        let q = Query::new()
            .opt("site", f.site.as_ref())
            .opt("boot_state", f.boot_state.map(BootState::as_str))
            .opt("region", f.region.as_ref());
        let q = f.paging.apply(q);
        self.get(&format!("/nodes{}", q.to_query_string())).await
    }

    pub async fn node(&self, node: &str) -> Result<Node> {
        self.get(&format!("/nodes/{}", encode(node))).await
    }

    /// Adds a node; the answer holds its node key, shown this once.
    pub async fn create_node(&self, body: &NodeCreate) -> Result<NodeWithKey> {
        self.post("/nodes", body).await
    }

    pub async fn update_node(&self, node: &str, body: &NodeUpdate) -> Result<Node> {
        self.patch(&format!("/nodes/{}", encode(node)), body).await
    }

    pub async fn delete_node(&self, node: &str) -> Result<()> {
        self.delete(&format!("/nodes/{}", encode(node))).await
    }

    /// Issues a new node key; the old one stops working.
    /// A single-use join token for `node`, valid `ttl_secs` (central's default: a day).
    pub async fn join_token(&self, node: &str, ttl_secs: Option<i64>) -> Result<JoinToken> {
        self.post(
            &format!("/nodes/{}/join-token", encode(node)),
            &JoinTokenCreate { ttl_secs },
        )
        .await
    }

    /// Exchanges a join token for the node's key (no credential needed: the token is one).
    pub async fn join(&self, token: &str) -> Result<NodeWithKey> {
        self.post(
            "/node/join",
            &JoinRequest {
                token: token.to_string(),
            },
        )
        .await
    }

    pub async fn rekey_node(&self, node: &str) -> Result<NodeWithKey> {
        self.post(
            &format!("/nodes/{}/key", encode(node)),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn node_slivers(&self, node: &str) -> Result<Vec<Sliver>> {
        self.get(&format!("/nodes/{}/slivers", encode(node))).await
    }

    // slices

    pub async fn slices(&self, f: &SliceFilter) -> Result<Page<Slice>> {
        let q = Query::new()
            .opt("site", f.site.as_ref())
            .opt("person", f.person.as_ref())
            .opt("node", f.node.as_ref());
        let q = f.paging.apply(q);
        self.get(&format!("/slices{}", q.to_query_string())).await
    }

    pub async fn slice(&self, slice: &str) -> Result<Slice> {
        self.get(&format!("/slices/{}", encode(slice))).await
    }

    pub async fn create_slice(&self, body: &SliceCreate) -> Result<Slice> {
        self.post("/slices", body).await
    }

    pub async fn update_slice(&self, slice: &str, body: &SliceUpdate) -> Result<Slice> {
        self.patch(&format!("/slices/{}", encode(slice)), body)
            .await
    }

    pub async fn delete_slice(&self, slice: &str) -> Result<()> {
        self.delete(&format!("/slices/{}", encode(slice))).await
    }

    pub async fn renew_slice(&self, slice: &str, body: &SliceRenew) -> Result<Slice> {
        self.post(&format!("/slices/{}/renew", encode(slice)), body)
            .await
    }

    /// Asks central to allow a capture of the slice's sliver on a node; the answer says how to
    /// reach the node.
    pub async fn create_capture(
        &self,
        slice: &str,
        body: &slicelab_model::capture::CaptureCreate,
    ) -> Result<slicelab_model::capture::CaptureTicket> {
        self.post(&format!("/slices/{}/captures", encode(slice)), body)
            .await
    }

    pub async fn add_slice_nodes(&self, slice: &str, nodes: &[String]) -> Result<Slice> {
        let body = NameList {
            names: nodes.to_vec(),
        };
        self.post(&format!("/slices/{}/nodes", encode(slice)), &body)
            .await
    }

    /// A usage series; `scope` is `slice=NAME`, `node=HOST`, `site=BASE` or empty (platform).
    pub async fn usage(
        &self,
        scope: &str,
        from: i64,
        to: i64,
        step: Option<i64>,
    ) -> Result<slicelab_model::UsageSeries> {
        let mut path = format!("/usage?from={from}&to={to}");
        if let Some((k, v)) = scope.split_once('=') {
            path.push_str(&format!("&{k}={}", encode(v)));
        }
        if let Some(s) = step {
            path.push_str(&format!("&step={s}"));
        }
        self.get(&path).await
    }

    pub async fn usage_top(
        &self,
        by: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<slicelab_model::UsageTotal>> {
        self.get(&format!("/usage/top?by={}&from={from}&to={to}", encode(by)))
            .await
    }

    pub async fn flows(
        &self,
        slice: Option<&str>,
        node: Option<&str>,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<slicelab_model::Flow>> {
        let mut path = format!("/flows?from={from}&to={to}&limit={limit}");
        if let Some(s) = slice {
            path.push_str(&format!("&slice={}", encode(s)));
        }
        if let Some(n) = node {
            path.push_str(&format!("&node={}", encode(n)));
        }
        self.get(&path).await
    }

    /// The public "who sent this?" lookup.
    pub async fn lookup(
        &self,
        node: &str,
        remote: &str,
        port: Option<u16>,
        from: i64,
        to: i64,
    ) -> Result<slicelab_model::LookupResult> {
        let mut path = format!(
            "/lookup?node={}&remote={}&from={from}&to={to}",
            encode(node),
            encode(remote)
        );
        if let Some(p) = port {
            path.push_str(&format!("&port={p}"));
        }
        self.get(&path).await
    }

    pub async fn peers(&self) -> Result<Vec<slicelab_model::peer::Peer>> {
        self.get("/peers").await
    }

    pub async fn peer(&self, name: &str) -> Result<slicelab_model::peer::Peer> {
        self.get(&format!("/peers/{}", encode(name))).await
    }

    pub async fn create_peer(
        &self,
        body: &slicelab_model::peer::PeerCreate,
    ) -> Result<slicelab_model::peer::Peer> {
        self.post("/peers", body).await
    }

    pub async fn update_peer(
        &self,
        name: &str,
        body: &slicelab_model::peer::PeerUpdate,
    ) -> Result<slicelab_model::peer::Peer> {
        self.patch(&format!("/peers/{}", encode(name)), body).await
    }

    pub async fn suspend_peer(
        &self,
        name: &str,
        reason: &str,
    ) -> Result<slicelab_model::peer::Peer> {
        let body = slicelab_model::peer::PeerSuspend {
            reason: reason.to_string(),
        };
        self.post(&format!("/peers/{}/suspend", encode(name)), &body)
            .await
    }

    pub async fn resume_peer(&self, name: &str) -> Result<slicelab_model::peer::Peer> {
        self.post(
            &format!("/peers/{}/resume", encode(name)),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn delete_peer(&self, name: &str) -> Result<()> {
        self.delete(&format!("/peers/{}", encode(name))).await
    }

    pub async fn create_lease(
        &self,
        body: &slicelab_model::LeaseCreate,
    ) -> Result<slicelab_model::Lease> {
        self.post("/leases", body).await
    }

    pub async fn leases(
        &self,
        node: Option<&str>,
        slice: Option<&str>,
    ) -> Result<Vec<slicelab_model::Lease>> {
        let mut q = Vec::new();
        if let Some(n) = node {
            q.push(format!("node={}", encode(n)));
        }
        if let Some(s) = slice {
            q.push(format!("slice={}", encode(s)));
        }
        let path = if q.is_empty() {
            "/leases".to_string()
        } else {
            format!("/leases?{}", q.join("&"))
        };
        self.get(&path).await
    }

    pub async fn delete_lease(&self, id: i64) -> Result<()> {
        self.delete(&format!("/leases/{id}")).await
    }

    /// Lets the broker choose nodes: `spec` is the text form, e.g. `count=3, distinct=site`.
    pub async fn select_slice_nodes(
        &self,
        slice: &str,
        spec: &str,
    ) -> Result<slicelab_placement::SelectResult> {
        let body = slicelab_placement::SelectRequest {
            select: slicelab_placement::SelectSpec::Text(spec.to_string()),
        };
        self.post(&format!("/slices/{}/nodes/select", encode(slice)), &body)
            .await
    }

    pub async fn remove_slice_node(&self, slice: &str, node: &str) -> Result<Slice> {
        self.delete(&format!("/slices/{}/nodes/{}", encode(slice), encode(node)))
            .await
    }

    pub async fn add_slice_persons(&self, slice: &str, persons: &[String]) -> Result<Slice> {
        let body = NameList {
            names: persons.to_vec(),
        };
        self.post(&format!("/slices/{}/persons", encode(slice)), &body)
            .await
    }

    pub async fn remove_slice_person(&self, slice: &str, person: &str) -> Result<Slice> {
        self.delete(&format!(
            "/slices/{}/persons/{}",
            encode(slice),
            encode(person)
        ))
        .await
    }

    pub async fn slice_slivers(&self, slice: &str) -> Result<Vec<Sliver>> {
        self.get(&format!("/slices/{}/slivers", encode(slice)))
            .await
    }

    pub async fn slice_tags(&self, slice: &str) -> Result<Vec<SliceTag>> {
        self.get(&format!("/slices/{}/tags", encode(slice))).await
    }

    pub async fn set_slice_tag(
        &self,
        slice: &str,
        tag: TagName,
        body: &SliceTagSet,
    ) -> Result<SliceTag> {
        self.put(
            &format!("/slices/{}/tags/{}", encode(slice), tag.as_str()),
            body,
        )
        .await
    }

    /// Deletes the slice-wide tag, or with `node` the tag of that node only.
    pub async fn delete_slice_tag(
        &self,
        slice: &str,
        tag: TagName,
        node: Option<&str>,
    ) -> Result<()> {
        let q = Query::new().opt("node", node);
        self.delete(&format!(
            "/slices/{}/tags/{}{}",
            encode(slice),
            tag.as_str(),
            q.to_query_string()
        ))
        .await
    }

    // defaults

    /// The default allocation: platform defaults and every node's overrides.
    pub async fn defaults(&self) -> Result<Defaults> {
        self.get("/defaults").await
    }

    /// Sets a platform default, or with `node` that node's override.
    pub async fn set_default(
        &self,
        tag: TagName,
        node: Option<&str>,
        value: &str,
    ) -> Result<DefaultTag> {
        let body = DefaultSet {
            value: value.to_string(),
        };
        self.put(&default_path(tag, node), &body).await
    }

    /// Removes a platform default, or with `node` that node's override.
    pub async fn delete_default(&self, tag: TagName, node: Option<&str>) -> Result<()> {
        self.delete(&default_path(tag, node)).await
    }

    // events

    pub async fn events(&self, f: &EventFilter) -> Result<Page<Event>> {
        let q = Query::new()
            .opt("object_type", f.object_type.as_ref())
            .opt("object", f.object.as_ref())
            .opt("actor", f.actor.as_ref())
            .opt("since", f.since);
        let q = f.paging.apply(q);
        self.get(&format!("/events{}", q.to_query_string())).await
    }
}

fn default_path(tag: TagName, node: Option<&str>) -> String {
    match node {
        Some(n) => format!("/nodes/{}/defaults/{}", encode(n), tag.as_str()),
        None => format!("/defaults/{}", tag.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_segments_and_queries() {
        assert_eq!(encode("alice@example.org"), "alice%40example.org");
        assert_eq!(encode("node-1.example.org"), "node-1.example.org");
        assert_eq!(encode("a b/c&d"), "a%20b%2Fc%26d");
        let q = Query::new()
            .opt("site", Some("princeton"))
            .opt("role", None::<&str>)
            .opt("limit", Some(5));
        assert_eq!(q.to_query_string(), "?site=princeton&limit=5");
        assert_eq!(Query::new().to_query_string(), "");
    }

    #[test]
    fn paging_adds_limit_and_offset() {
        let p = Paging {
            limit: Some(10),
            offset: Some(20),
        };
        assert_eq!(
            p.apply(Query::new()).to_query_string(),
            "?limit=10&offset=20"
        );
    }
}
