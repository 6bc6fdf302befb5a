//! [`SimServer`]: binds, routes and serves the simulator until shut down.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::get;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::api::{self, DETAIL_PATH, GENERATE_PATH, MODELLIST_PATH, TOKENS_PATH};
use crate::config::{Faults, SimConfig};
use crate::envelope::{self, code};
use crate::front::{self, DropConnection};
use crate::state::Sim;
use crate::stats::Stats;
use crate::{control, files};

/// How long shutdown waits for in-flight answers (downloads included) before cutting them.
const GRACE: Duration = Duration::from_secs(5);

/// A running simulator. Dropping it stops the server too; [`SimServer::shutdown`] also waits
/// for it to finish.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    sim: Arc<Sim>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl SimServer {
    /// Binds `config.listen` and starts serving in the background.
    pub async fn start(config: SimConfig) -> io::Result<SimServer> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let sim = Arc::new(Sim::new(config, addr)?);
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, router(sim.clone()), stop.clone()));
        tracing::info!(%addr, "simulator listening");
        Ok(SimServer {
            addr,
            sim,
            stop,
            task: Some(task),
        })
    }

    /// The bound address (the real port when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<ip>:<port>`; a wildcard listen address is reported as `127.0.0.1`.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }

    /// A snapshot of what the simulator saw (the same data as `GET /_sim/stats`). Hashes result
    /// bodies it has not hashed yet, so call it from a blocking-tolerant place for big results.
    pub fn stats(&self) -> Stats {
        self.sim.stats()
    }

    /// Replaces the injected faults; requests arriving from now on see the new ones.
    pub fn set_faults(&self, faults: Faults) {
        self.sim.set_faults(faults);
    }

    /// Stops accepting, lets in-flight answers finish (up to 5 s), and returns once stopped.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "simulator server task failed");
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn router(sim: Arc<Sim>) -> Router {
    let api = Router::new()
        .route(GENERATE_PATH, axum::routing::post(api::generate))
        .route(DETAIL_PATH, get(api::detail))
        .route(TOKENS_PATH, get(api::tokens))
        .route(MODELLIST_PATH, get(api::modellist))
        .layer(from_fn_with_state(sim.clone(), front::auth))
        .layer(from_fn_with_state(sim.clone(), front::faults));
    Router::new()
        .merge(api)
        .route("/files/{file}", get(files::download))
        .route("/_sim/stats", get(control::stats))
        .route(
            "/_sim/faults",
            get(control::get_faults).post(control::set_faults),
        )
        .route("/_sim/health", get(control::health))
        .fallback(not_found)
        .with_state(sim)
}

async fn not_found() -> Response {
    envelope::error(StatusCode::NOT_FOUND, code::NOT_FOUND, "not found")
}

async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, router.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(GRACE, drain).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "cutting connections still open after the grace period"
        );
        connections.shutdown().await;
    }
    tracing::info!("simulator stopped");
}

async fn connection(stream: TcpStream, router: Router, stop: CancellationToken) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let kill = Arc::new(Notify::new());
    let handle = DropConnection(kill.clone());
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        router.clone().oneshot(request)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        // A dropped-connection fault: returning drops `conn` and with it the socket.
        () = kill.notified() => {}
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                () = kill.notified() => {}
            }
        }
    }
}
