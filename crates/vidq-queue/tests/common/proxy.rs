//! A TCP proxy between a client and Redis that can lose one reply: the request goes through
//! and runs, then the client's connection is closed before the answer reaches it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct LossyProxy {
    pub addr: SocketAddr,
    arm: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl LossyProxy {
    /// A proxy on a free loopback port to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let arm = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicBool::new(false));
        let (a, d) = (arm.clone(), dropped.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(pump(client, server, a.clone(), d.clone()));
            }
        });
        Self {
            addr,
            arm,
            dropped,
            accept,
        }
    }

    /// `redis://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Lose the reply to the next request sent through the proxy.
    pub fn lose_next_reply(&self) {
        self.dropped.store(false, Ordering::SeqCst);
        self.arm.store(true, Ordering::SeqCst);
    }

    /// Whether a reply was lost since the last `lose_next_reply`.
    pub fn lost_one(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pump(
    client: TcpStream,
    server: TcpStream,
    arm: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let losing = Arc::new(AtomicBool::new(false));
    let l = losing.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if arm.swap(false, Ordering::SeqCst) {
                l.store(true, Ordering::SeqCst);
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if losing.load(Ordering::SeqCst) {
            // The request ran; its answer never arrives: close the client's side.
            dropped.store(true, Ordering::SeqCst);
            break;
        }
        if cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    up.abort();
    let _ = cw.shutdown().await;
}
