//! Sharded pub/sub (`SSUBSCRIBE`) that follows the deployment: the server in standalone
//! mode, the current primary in Sentinel mode, the node owning each channel's slot in
//! cluster mode. A lost connection, a server-side unsubscribe (the slot moved, the node was
//! demoted) or a changed topology (checked every few seconds) makes it subscribe again.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, Msg, ProtocolVersion, PushKind,
    Value,
};
use tokio::sync::mpsc;

use crate::client::{Shape, Shared};
use crate::sentinel::show_addr;
use crate::slot::slot;

/// How often a subscriber checks that it still listens where the channels live.
const CHECK_EVERY: Duration = Duration::from_secs(1);
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// What a subscription yields.
#[derive(Debug)]
pub enum Delivery {
    /// Every channel is (again) subscribed: anything published since the previous
    /// `Subscribed` may have been missed, so look at the state once.
    Subscribed,
    /// A message on one of the channels.
    Message(Msg),
}

/// A stream of [`Delivery`]; dropping it ends the subscription.
pub struct Subscription {
    rx: mpsc::Receiver<Delivery>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for Subscription {
    type Item = Delivery;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.rx.poll_recv(cx)
    }
}

pub(crate) fn spawn(shared: Arc<Shared>, channels: Vec<String>) -> Subscription {
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(run(shared, channels, tx));
    Subscription { rx, task }
}

enum Ended {
    /// The subscriber was dropped.
    Closed,
    /// Subscribe again.
    Again(String),
}

async fn run(shared: Arc<Shared>, channels: Vec<String>, tx: mpsc::Sender<Delivery>) {
    let mut pause = FIRST_PAUSE;
    loop {
        let started = Instant::now();
        match session(&shared, &channels, &tx).await {
            Ended::Closed => return,
            Ended::Again(why) => {
                metrics::counter!("vidq_redis_resubscribe_total").increment(1);
                tracing::info!(
                    channels = channels.len(),
                    why,
                    "sharded subscription subscribing again"
                );
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            pause = FIRST_PAUSE;
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Where each channel must be subscribed: node → channels.
async fn targets(
    shared: &Shared,
    channels: &[String],
) -> Result<BTreeMap<String, (ConnectionInfo, Vec<String>)>, String> {
    let mut out: BTreeMap<String, (ConnectionInfo, Vec<String>)> = BTreeMap::new();
    match &shared.shape {
        Shape::Standalone { info } => {
            out.insert(show_addr(info.addr()), (info.clone(), channels.to_vec()));
        }
        Shape::Sentinel(sentinel) => {
            let info = sentinel
                .primary_info()
                .await
                .map_err(|e| format!("resolving the primary: {e}"))?;
            out.insert(show_addr(info.addr()), (info, channels.to_vec()));
        }
        Shape::Cluster { seed } => {
            let owners = slot_owners(shared).await?;
            for channel in channels {
                let s = slot(channel.as_bytes());
                let Some((host, port)) = owners
                    .iter()
                    .find(|(lo, hi, _, _)| *lo <= s && s <= *hi)
                    .map(|(_, _, h, p)| (h.clone(), *p))
                else {
                    return Err(format!("no node serves slot {s}"));
                };
                let addr = match seed.addr() {
                    ConnectionAddr::TcpTls {
                        insecure,
                        tls_params,
                        ..
                    } => ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port,
                        insecure: *insecure,
                        tls_params: tls_params.clone(),
                    },
                    _ => ConnectionAddr::Tcp(host.clone(), port),
                };
                let info = seed.clone().set_addr(addr);
                out.entry(show_addr(info.addr()))
                    .or_insert_with(|| (info, Vec::new()))
                    .1
                    .push(channel.clone());
            }
        }
    }
    Ok(out)
}

type SlotRange = (u16, u16, String, u16);

/// `CLUSTER SLOTS`: each range with its primary's host and port.
async fn slot_owners(shared: &Shared) -> Result<Vec<SlotRange>, String> {
    let mut conn = shared.conn.clone();
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("CLUSTER SLOTS: {e}"))?;
    let mut ranges = Vec::new();
    let Value::Array(items) = reply else {
        return Err("CLUSTER SLOTS: unexpected reply".into());
    };
    for item in items {
        let Value::Array(parts) = item else { continue };
        let (Some(Value::Int(lo)), Some(Value::Int(hi)), Some(Value::Array(node))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        let host = match node.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = node.get(1) else {
            continue;
        };
        ranges.push((*lo as u16, *hi as u16, host, *port as u16));
    }
    Ok(ranges)
}

async fn session(shared: &Shared, channels: &[String], tx: &mpsc::Sender<Delivery>) -> Ended {
    let placed = match targets(shared, channels).await {
        Ok(t) => t,
        Err(why) => return Ended::Again(why),
    };
    let (push_tx, mut push_rx) = mpsc::unbounded_channel();
    let mut conns = Vec::new();
    for (shown, (info, chans)) in &placed {
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.clone().set_redis_settings(resp3);
        let client = match Client::open(info) {
            Ok(c) => c,
            Err(e) => return Ended::Again(format!("{shown}: {e}")),
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_push_sender(push_tx.clone());
        let mut conn = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => c,
            Err(e) => return Ended::Again(format!("connecting to {shown}: {e}")),
        };
        for channel in chans {
            // One channel per command: in a cluster, several must share a slot.
            if let Err(e) = redis::cmd("SSUBSCRIBE")
                .arg(channel)
                .exec_async(&mut conn)
                .await
            {
                return Ended::Again(format!("SSUBSCRIBE on {shown}: {e}"));
            }
        }
        conns.push((shown.clone(), conn));
    }
    if tx.send(Delivery::Subscribed).await.is_err() {
        return Ended::Closed;
    }
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.tick().await;
    loop {
        tokio::select! {
            () = tx.closed() => return Ended::Closed,
            push = push_rx.recv() => {
                let Some(push) = push else {
                    return Ended::Again("the push channel closed".into());
                };
                match push.kind {
                    PushKind::SMessage => {
                        if let Some(msg) = Msg::from_push_info(push)
                            && tx.send(Delivery::Message(msg)).await.is_err()
                        {
                            return Ended::Closed;
                        }
                    }
                    PushKind::Disconnection => return Ended::Again("connection lost".into()),
                    PushKind::SUnsubscribe => {
                        return Ended::Again("the server ended the subscription (slot moved or node demoted)".into());
                    }
                    _ => {}
                }
            }
            _ = check.tick() => {
                for (shown, conn) in &mut conns {
                    if let Err(e) = redis::cmd("PING").exec_async(conn).await {
                        return Ended::Again(format!("PING {shown}: {e}"));
                    }
                }
                match targets(shared, channels).await {
                    Ok(now) => {
                        let same = now.len() == placed.len()
                            && now.iter().all(|(k, (_, c))| placed.get(k).is_some_and(|(_, c0)| c0 == c));
                        if !same {
                            return Ended::Again("the channels' nodes changed".into());
                        }
                    }
                    Err(why) => tracing::debug!(why, "checking where the channels live"),
                }
            }
        }
    }
}
