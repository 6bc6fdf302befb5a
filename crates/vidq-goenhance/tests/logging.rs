//! What the client writes to the log: one event per call, never the key nor a URL signature.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use support::{KEY, client, fast, request, sim, wait_terminal};
use tracing_subscriber::fmt::MakeWriter;

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn each_call_logs_endpoint_outcome_latency_and_no_secret() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // The test runtime is single-threaded: the default subscriber sees every event.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = sim(fast()).await;
    let client = client(&server);
    let submitted = client.generate(&request()).await.unwrap();
    let detail = wait_terminal(&client, &submitted.img_uuid, Duration::from_secs(10)).await;
    let signed = detail.video_url.expect("video URL");
    let err = client.detail("no-such-job").await.unwrap_err();
    server.shutdown().await;

    let log = captured.text();
    let ours: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("vidq_goenhance"))
        .collect();
    let calls: Vec<&&str> = ours
        .iter()
        .filter(|l| l.contains("goenhance call"))
        .collect();
    assert!(
        calls
            .iter()
            .any(|l| l.contains("goenhance.endpoint=\"generate\"")
                && l.contains("goenhance.outcome=\"ok\"")
                && l.contains("latency_ms="))
    );
    assert!(
        calls
            .iter()
            .any(|l| l.contains("goenhance.endpoint=\"detail\"")
                && l.contains(&format!("goenhance.outcome=\"{}\"", err.kind())))
    );
    let path = signed.split('?').next().unwrap_or_default();
    assert!(
        ours.iter().any(|l| l.contains(path)),
        "{path} not in:\n{log}"
    );
    let query = signed.split('?').nth(1).expect("signed URL has a query");
    assert!(
        ours.iter().all(|l| !l.contains(query)),
        "signature leaked:\n{log}"
    );
    assert!(!log.contains(KEY), "key leaked:\n{log}");
}
