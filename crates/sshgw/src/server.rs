//! Listening, per-connection handler (authentication, answers to channel requests), shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, Disconnect, MethodKind, MethodSet};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth::{self, Refusal};
use crate::channel::{self, env_allowed, Ctx};
use crate::service::Login;
use crate::{hostkey, GatewayConfig, GatewayError, SliverAccess};

/// How long [`Gateway::shutdown`] waits for connections to say goodbye before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A running gateway. Dropping it without [`Gateway::shutdown`] also stops it (connections are
/// told to close and their processes killed), but without waiting.
pub struct Gateway {
    local_addr: SocketAddr,
    host_key: PublicKey,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// The address actually bound (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The host's public key, e.g. for a `known_hosts` line.
    pub fn host_key(&self) -> &PublicKey {
        &self.host_key
    }

    /// Stops accepting, disconnects every client, kills every session's processes, and waits
    /// (a few seconds at most) for all of that to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Binds `cfg.listen`, loads or creates the host key, and starts serving in the background.
pub async fn start(
    cfg: GatewayConfig,
    access: Arc<dyn SliverAccess>,
) -> Result<Gateway, GatewayError> {
    let key = hostkey::load_or_create(&cfg.host_key_path)?;
    let host_key = key.public_key().clone();
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| GatewayError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| GatewayError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let config = Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-slicelab_sshgw".into()),
        // keyboard-interactive is only offered to tell a client whose keys were all refused why
        // (see `auth_keyboard_interactive`); it never accepts anyone.
        methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::KeyboardInteractive][..]),
        auth_rejection_time: cfg.auth_rejection_time,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        inactivity_timeout: Some(cfg.inactivity_timeout),
        keepalive_interval: Some(Duration::from_secs(60)),
        nodelay: true,
        ..Default::default()
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tracing::info!(%local_addr, "ssh gateway listening");
    let task = tokio::spawn(accept_loop(listener, config, access, shutdown_rx));
    Ok(Gateway {
        local_addr,
        host_key,
        shutdown: shutdown_tx,
        task: Some(task),
    })
}

/// [`start`], then serve until `shutdown` completes, then [`Gateway::shutdown`].
pub async fn serve(
    cfg: GatewayConfig,
    access: Arc<dyn SliverAccess>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    let gw = start(cfg, access).await?;
    shutdown.await;
    gw.shutdown().await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    access: Arc<dyn SliverAccess>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    // `Config::nodelay` is applied by russh's own accept loop only, not by
                    // `run_stream`. Without it, a message that follows an unacknowledged one (the
                    // exit status after the channel's success) waits for the client's delayed
                    // ACK: 40 ms per session on Linux.
                    if let Err(e) = stream.set_nodelay(config.nodelay) {
                        tracing::debug!(%peer, "TCP_NODELAY: {e}");
                    }
                    conns.spawn(connection(config.clone(), stream, peer, access.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("ssh gateway accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let all_done = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, all_done)
        .await
        .is_err()
    {
        conns.shutdown().await;
    }
}

async fn connection(
    config: Arc<russh::server::Config>,
    stream: TcpStream,
    peer: SocketAddr,
    access: Arc<dyn SliverAccess>,
    mut shutdown: watch::Receiver<bool>,
) {
    let handle_slot = Arc::new(OnceLock::new());
    let handler = ConnHandler {
        access,
        peer,
        handle: handle_slot.clone(),
        shutdown: shutdown.clone(),
        refusal: None,
        login: None,
    };
    let mut running = match russh::server::run_stream(config, stream, handler).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%peer, "ssh handshake failed: {e}");
            return;
        }
    };
    let handle = running.handle();
    let _ = handle_slot.set(handle.clone());
    tokio::select! {
        r = &mut running => {
            if let Err(e) = r {
                tracing::debug!(%peer, "ssh connection ended: {e}");
            }
        }
        _ = shutdown.changed() => {
            let _ = handle
                .disconnect(Disconnect::ByApplication, "the node's ssh gateway is shutting down".into(), String::new())
                .await;
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, running).await;
        }
    }
}

struct ConnHandler {
    access: Arc<dyn SliverAccess>,
    peer: SocketAddr,
    handle: Arc<OnceLock<russh::server::Handle>>,
    shutdown: watch::Receiver<bool>,
    /// Why the last key offered for a slice was refused, told via keyboard-interactive.
    refusal: Option<Refusal>,
    /// Who this connection is, once authenticated.
    login: Option<Login>,
}

impl ConnHandler {
    /// Ends the connection with `why` as the disconnect message (what `ssh` prints).
    fn disconnect(&self, why: &Refusal) {
        if let Some(h) = self.handle.get() {
            let h = h.clone();
            let text = why.to_string();
            // Not awaited here: the session loop that delivers it is waiting for us.
            tokio::spawn(async move {
                let _ = h
                    .disconnect(Disconnect::NoMoreAuthMethodsAvailable, text, String::new())
                    .await;
            });
        }
    }

    fn check(&self, user: &str, key: &PublicKey) -> Result<Login, Refusal> {
        auth::check(self.access.authorized_keys(user), user, key)
    }

    fn reject() -> Auth {
        Auth::Reject {
            proceed_with_methods: None,
            partial_success: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
}

impl russh::server::Handler for ConnHandler {
    type Error = ConnError;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        // OpenSSH starts with "none": the first moment we know the slice.
        if self.access.authorized_keys(user).is_none() {
            let why = auth::unknown_user(user);
            tracing::info!(peer = %self.peer, "ssh login refused: {why}");
            self.disconnect(&why);
        }
        Ok(Self::reject())
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(Self::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.check(user, offer.public_key) {
            Ok(_) => Ok(Auth::Accept),
            Err(why) => {
                tracing::debug!(peer = %self.peer, "key refused: {why}");
                if matches!(why, Refusal::NoSliver { .. } | Refusal::NoAdminContext) {
                    self.disconnect(&why);
                }
                // A client may hold several keys: keep listening; say why only once it gives up.
                self.refusal = Some(why);
                Ok(Self::reject())
            }
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        // Checked again with the signature verified: the keys may have changed since the offer.
        match self.check(user, key.public_key) {
            Ok(login) => {
                tracing::info!(peer = %self.peer, user, person = login.person(), "ssh login");
                self.login = Some(login);
                Ok(Auth::Accept)
            }
            Err(why) => {
                tracing::info!(peer = %self.peer, "ssh login refused: {why}");
                self.refusal = Some(why);
                Ok(Self::reject())
            }
        }
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        // Never accepts: only shows a client whose keys were all refused the reason.
        let why = self
            .refusal
            .clone()
            .unwrap_or(match self.access.authorized_keys(user) {
                None => auth::unknown_user(user),
                Some(_) if user == crate::SITE_ADMIN => Refusal::NotStaff,
                Some(_) => Refusal::KeyNotAuthorized {
                    slice: user.to_string(),
                },
            });
        if response.is_none() {
            tracing::info!(peer = %self.peer, "ssh login refused: {why}");
            return Ok(Auth::Partial {
                name: "".into(),
                instructions: why.to_string().into(),
                prompts: Vec::new().into(),
            });
        }
        self.disconnect(&why);
        Ok(Self::reject())
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(login) = self.login.clone() else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let ctx = Ctx {
            access: self.access.clone(),
            login,
            shutdown: self.shutdown.clone(),
            handle: session.handle(),
        };
        reply.accept().await;
        tokio::spawn(channel::run(channel, ctx));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if env_allowed(variable_name) {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let ok = match &self.login {
            Some(Login::Slice { slice, .. }) if name == "sftp" => self.access.root(slice).is_some(),
            Some(login) => name != "sftp" && self.access.offers(login, name),
            None => false,
        };
        if ok {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }
}
