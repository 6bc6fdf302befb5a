//! The whole pipeline over TLS to Redis (`rediss://`), on a private TLS-only redis-server.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vidq_core::JobState;
use vidq_producer::{Producer, ProducerSettings};
use vidq_tests::{Sim, TestEnv, Worker, wait_until};

/// A private redis-server listening only on a TLS port, with a fresh self-signed certificate.
struct TlsRedis {
    child: Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn start_tls_redis() -> anyhow::Result<TlsRedis> {
    let dir = std::env::temp_dir().join(vidq_tests::unique("vidq-tls"));
    std::fs::create_dir_all(&dir)?;
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(made.success(), "openssl could not make a certificate");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
        .arg("--tls-cert-file")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key-file")
        .arg(dir.join("key.pem"))
        .arg("--tls-ca-cert-file")
        .arg(dir.join("cert.pem"))
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(TlsRedis {
        child,
        port,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_end_to_end_with_redis_over_tls() -> anyhow::Result<()> {
    let redis = start_tls_redis()?;
    // A self-signed certificate: `#insecure` skips verification (a private CA in production).
    let url = format!("rediss://127.0.0.1:{}/#insecure", redis.port);
    let env = TestEnv::new("tls").await?;
    let mut settings = ProducerSettings::default();
    settings.redis.url = url.clone();
    settings.redis.prefix = env.prefix.clone();
    let producer = wait_until(
        "Redis over TLS to answer",
        Duration::from_secs(20),
        || async { Ok(Producer::connect(&settings).await.ok()) },
    )
    .await?;
    let sim = Sim::start(&[
        "--processing-min",
        "200ms",
        "--processing-max",
        "400ms",
        "--result-size",
        "32KiB",
    ])
    .await?;
    let _worker = Worker::start(
        "tls-w",
        env.worker_env(&sim.base_url, &[("VIDQ__REDIS__URL", &url)]),
    )
    .await?;
    let request = vidq_core::TransformRequest::new("https://videos.example/tls.mp4", 2000)?;
    let id = producer.enqueue(request).await?;
    let job = wait_until(
        "the job to finish over TLS",
        Duration::from_secs(60),
        || async {
            Ok(producer
                .status(&id)
                .await?
                .filter(|j| j.state.is_terminal()))
        },
    )
    .await?;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let output = job.output.expect("output");
    let head = env
        .s3
        .client()
        .head_object()
        .bucket(&output.bucket)
        .key(&output.key)
        .send()
        .await?;
    assert_eq!(head.content_length(), Some(32 * 1024));
    // Nothing reached the plain Redis the other tests share.
    assert!(env.redis_keys().await?.is_empty());
    env.s3
        .client()
        .delete_object()
        .bucket(&output.bucket)
        .key(&output.key)
        .send()
        .await?;
    env.cleanup().await?;
    Ok(())
}
