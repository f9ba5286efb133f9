//! central: the authority (PlanetLab Central). Serves the REST API of the registry, the node
//! protocol (desired slivers by long-poll, reports) and `/metrics`, over a `slicelab_store::Store`.
//!
//! - `ops`: every write, once (policy → validation → store transaction with its event →
//!   wake-ups), called by the JSON API (`api`) and by the web forms (`slicelab_web`);
//! - `queries`: the reads both front ends use;
//! - `api`: the JSON API's handlers: authenticate, parse, call `ops`/`queries`, answer;
//! - `blobs`: image blobs as files (upload hashed on the way, download with `Range`);
//! - `state`: `AppState`, which front ends only pass around; the store stays inside central;
//! - `jobs`, `leader`, `wakeups`, `limits`: background upkeep, and what lets several replicas
//!   share one PostgreSQL (the jobs run on the leader only; wake-ups and lookup allowances reach
//!   every replica).

#![forbid(unsafe_code)]

pub(crate) mod api;
pub(crate) mod auth;
pub(crate) mod batch;
pub mod blobs;
pub(crate) mod broker;
pub(crate) mod desired;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod jobs;
pub(crate) mod leader;
pub(crate) mod limits;
pub(crate) mod metrics;
pub(crate) mod nodekeys;
pub mod ops;
pub mod peering;
pub mod queries;
pub(crate) mod secure;
pub mod state;
pub mod tls;
pub(crate) mod wakeups;

pub use auth::new_secret;
pub use blobs::BlobConfig;
pub use tls::{Tls, TlsSource};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use slicelab_model::{PersonCreate, Role};
use slicelab_store::{Store, StoreError};
use thiserror::Error;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://PATH` (created on first start) or `postgres://...`.
    pub db_url: String,
    pub listen: SocketAddr,
    /// Email of the admin created on first start.
    pub admin_email: String,
    /// Password of that admin; generated (and returned once) when `None`.
    pub admin_password: Option<String>,
    /// Serve HTTPS with this certificate; `None`: plain HTTP (loopback tests, or behind a
    /// TLS-terminating proxy).
    pub tls: Option<TlsSource>,
}

#[derive(Debug, Error)]
pub enum CentralError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the first admin: {0}")]
    Bootstrap(String),
    #[error(transparent)]
    Blobs(#[from] blobs::BlobError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Seconds since the Unix epoch: the registry's clock.
pub use slicelab_model::time::now;

/// Largest request body accepted (an initscript is at most 64 KiB; reports may list many slivers).
const BODY_LIMIT: usize = 4 << 20;

/// The whole HTTP application over `state`; `extra` adds routes of other layers (the web UI).
pub(crate) fn app(state: AppState, extra: Router<AppState>, https: bool) -> Router {
    let router = Router::new()
        .nest("/api/v1", api::router())
        .nest("/peer/v1", peering::router())
        .merge(extra)
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_page))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    if https {
        router.layer(axum::middleware::map_response(secure::harden))
    } else {
        router
    }
}

async fn metrics_page(State(st): State<AppState>) -> impl IntoResponse {
    let counts = st.store.counts().await.unwrap_or_default();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(&counts),
    )
}

/// Creates the first admin if the registry has no person yet; returns a generated password.
async fn bootstrap(store: &Store, cfg: &Config) -> Result<Option<String>, CentralError> {
    if store.count_persons().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match &cfg.admin_password {
        Some(p) => (p.clone(), false),
        None => (
            auth::new_secret("").chars().take(20).collect::<String>(),
            true,
        ),
    };
    let c = PersonCreate {
        email: cfg.admin_email.clone(),
        first_name: "Platform".into(),
        last_name: "Admin".into(),
        password: Some(password.clone()),
        roles: vec![Role::Admin],
        sites: vec![],
    };
    c.validate()
        .map_err(|e| CentralError::Bootstrap(e.to_string()))?;
    let hash = auth::hash_password(password.clone())
        .await
        .map_err(|e| CentralError::Bootstrap(e.to_string()))?;
    match store
        .create_person("system", now(), &c, Some(hash), &[])
        .await
    {
        Ok(_) => Ok(generated.then_some(password)),
        // Another replica starting on the same database created it first.
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A central that is serving.
pub struct Running {
    pub addr: SocketAddr,
    /// The TLS it serves (its CA's fingerprint, when its own), or `None`: plain HTTP.
    pub tls: Option<Tls>,
    /// Set on the first start only, when no password was configured: the admin's password.
    pub generated_admin_password: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), std::io::Error>>,
    store: Arc<Store>,
}

impl Running {
    /// The URL clients reach it at on `addr` (`https://` when serving TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops serving, lets in-flight requests finish, and closes the database.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
        self.store.close().await;
    }

    /// Serves until SIGINT or SIGTERM, then shuts down cleanly.
    pub async fn wait_for_signal(self) -> Result<(), CentralError> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        self.shutdown().await;
        Ok(())
    }
}

/// Opens the store (migrating it), creates the first admin if needed, and starts serving.
pub async fn start(cfg: Config) -> Result<Running, CentralError> {
    start_with_routes(cfg, Router::new()).await
}

/// Like [`start`], also serving `extra` routes (e.g. the web interface) over the same state.
pub async fn start_with_routes(
    cfg: Config,
    extra: Router<AppState>,
) -> Result<Running, CentralError> {
    start_with(cfg, BlobConfig::default(), extra).await
}

/// Like [`start_with_routes`], with image blobs where and as `blobs` says (the default: beside a
/// SQLite database, 8 GiB at most, 16 downloads at once).
pub async fn start_with(
    cfg: Config,
    blobs: BlobConfig,
    extra: Router<AppState>,
) -> Result<Running, CentralError> {
    start_federated(cfg, blobs, extra, peering::Federation::default()).await
}

/// Like [`start_with`], as authority `federation.authority` among peers (`crate::peering`).
pub async fn start_federated(
    cfg: Config,
    blobs: BlobConfig,
    extra: Router<AppState>,
    federation: peering::Federation,
) -> Result<Running, CentralError> {
    let store = Arc::new(Store::open(&cfg.db_url).await?);
    let blobs = Arc::new(blobs::BlobStore::open(&blobs, &cfg.db_url)?);
    let generated_admin_password = bootstrap(&store, &cfg).await?;
    let tls = cfg.tls.as_ref().map(tls::load).transpose()?;
    let mut state = AppState::new(store.clone(), blobs.clone());
    state.federation = Arc::new(federation);
    let listener = std::net::TcpListener::bind(cfg.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| CentralError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let waker = state.clone();
    let upkeep = jobs::Upkeep::start(&state);
    let app = app(state, extra, tls.is_some());
    // The peer address feeds the public lookup's per-client rate limit.
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        let _ = stop_rx.await;
        waker.stop_waiters();
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let server_tls = tls.as_ref().map(|t| t.server.clone());
    let task = tokio::spawn(async move {
        let r = match server_tls {
            Some(config) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
                axum_server::from_tcp_rustls(listener, config)
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => {
                axum_server::from_tcp(listener)
                    .handle(handle)
                    .serve(service)
                    .await
            }
        };
        // Releases the leader lock at once, so another replica takes the jobs over.
        upkeep.stop().await;
        r
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, db = %redact(&cfg.db_url), blobs = %blobs.dir().display(), "central serving");
    Ok(Running {
        addr,
        tls,
        generated_admin_password,
        stop: Some(stop_tx),
        task,
        store,
    })
}

/// The database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
