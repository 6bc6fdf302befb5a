//! A Redis that stops answering for 3 s (CLIENT PAUSE) loses nothing and stops no worker.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::prelude::*;
use common::{queue, stop_signal, wait_until};
use vidq_queue::{Depth, RedisQueue};

/// A private redis-server on a free port, killed on drop.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let url = format!("redis://127.0.0.1:{port}");
        let this = Self { child, url };
        wait_until(Duration::from_secs(10), "private redis up", || {
            let url = this.url.clone();
            async move {
                match redis::Client::open(url)
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                {
                    Ok(mut c) => redis::cmd("PING")
                        .query_async::<String>(&mut c)
                        .await
                        .is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        this
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn work(n: u32, seen: Data<Arc<Mutex<HashMap<u32, u32>>>>) -> Result<(), BoxDynError> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    *seen.lock().unwrap().entry(n).or_default() += 1;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pause_for_3s_loses_nothing_and_no_worker_exits() {
    let redis = PrivateRedis::start().await;
    let q: RedisQueue<u32> = queue(&redis.url, "pause", |c| c).await;
    q.enqueue_batch(&(0..2000).collect::<Vec<_>>())
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(HashMap::<u32, u32>::new()));
    let (stop, signal) = stop_signal();
    let worker = WorkerBuilder::new("pause")
        .backend(q.clone())
        .data(seen.clone())
        .concurrency(10)
        .build(work);
    let run = tokio::spawn(worker.run_until(signal));
    wait_until(Duration::from_secs(20), "some progress", || {
        let n = seen.lock().unwrap().len();
        async move { n >= 200 }
    })
    .await;
    let mut admin = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .query_async(&mut admin)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(60),
        "all tasks done after the pause",
        || {
            let (q, n) = (q.clone(), seen.lock().unwrap().len());
            async move { n == 2000 && q.depth().await.unwrap() == Depth::default() }
        },
    )
    .await;
    assert!(!run.is_finished(), "the worker must survive the pause");
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen.values().all(|&c| c == 1), "a task ran twice");
}
