//! Kiln's HTTP door (`kiln serve`): the engine's typed operations and event stream for a
//! browser, on loopback, behind a per-launch token and Host/Origin checks (see `guard`).
//!
//! - `GET /api/{op}?input=<json>` runs a query; `POST /api/{op}` with a JSON body runs a
//!   mutation. Queries never change state; a mutation is refused on GET and a query on POST.
//! - `GET /api/events` is a server-sent event stream of engine events.
//! - Everything else is the web UI.
//!
//! Errors cross as the engine's `{code, message, details}` with a matching HTTP status.

pub mod assets;
pub mod guard;
mod routes;

use std::net::{IpAddr, SocketAddr};

pub use assets::UiSource;
pub use guard::Guard;
use kiln_engine::Engine;
use tokio::net::TcpListener;

/// How to open the door.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Bind a non-loopback address (the token and Host checks still apply).
    pub allow_remote: bool,
    /// Extra `host:port` names to answer to (a reverse proxy's name).
    pub extra_hosts: Vec<String>,
    pub ui: UiSource,
    /// A fixed token (tests); a fresh random one otherwise.
    pub token: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8790)),
            allow_remote: false,
            extra_hosts: Vec::new(),
            ui: UiSource::Embedded,
            token: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0} is not a loopback address; pass --allow-remote to serve other machines")]
    NotLoopback(IpAddr),
    #[error("binding {0} answers on every address: name the host:port browsers will use with --allow-host")]
    NeedHost(IpAddr),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// A bound, not yet running, server.
pub struct Door {
    listener: TcpListener,
    guard: Guard,
    ui: UiSource,
    addr: SocketAddr,
}

impl Door {
    pub async fn bind(options: ServeOptions) -> Result<Self, ServeError> {
        if !options.addr.ip().is_loopback() && !options.allow_remote {
            return Err(ServeError::NotLoopback(options.addr.ip()));
        }
        if options.addr.ip().is_unspecified() && options.extra_hosts.is_empty() {
            return Err(ServeError::NeedHost(options.addr.ip()));
        }
        let listener = TcpListener::bind(options.addr).await.map_err(|e| ServeError::Bind(options.addr, e))?;
        let addr = listener.local_addr().map_err(|e| ServeError::Bind(options.addr, e))?;
        // The first name is the one printed in the address to open.
        let mut hosts = options.extra_hosts;
        if !addr.ip().is_unspecified() {
            let own = match addr.ip() {
                IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
                IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
            };
            hosts.insert(0, own);
        }
        if addr.ip().is_loopback() {
            hosts.push(format!("localhost:{}", addr.port()));
        }
        let token = options.token.unwrap_or_else(guard::new_token);
        Ok(Self { listener, guard: Guard::new(token, hosts), ui: options.ui, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn token(&self) -> &str {
        self.guard.token()
    }

    /// The address to open, with the token in the fragment (never sent to a server or logged).
    pub fn url(&self) -> String {
        format!("http://{}/#token={}", self.guard.hosts()[0], self.guard.token())
    }

    /// Serves until `shutdown` resolves. Open event streams end then too, and requests still
    /// running get five seconds to finish.
    pub async fn run(
        self,
        engine: Engine,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if !self.ui.is_built() {
            tracing::warn!("the web UI is not built: run `npm run build` (the API still answers)");
        }
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let app = routes::router(engine, self.guard, self.ui, stopped.clone());
        let signal = async move {
            shutdown.await;
            let _ = stopping.send(true);
        };
        let server = axum::serve(self.listener, app).with_graceful_shutdown(signal);
        let mut stopped = stopped;
        tokio::select! {
            result = std::future::IntoFuture::into_future(server) => result,
            _ = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            } => Ok(()),
        }
    }
}
