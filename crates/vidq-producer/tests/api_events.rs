//! `GET /v1/jobs/{id}/events` fed by one pub/sub subscription per replica: `id:` lines,
//! `Last-Event-ID` resume, and the cap of open streams per token.

mod support;

use std::time::Duration;

use futures::StreamExt as _;
use redis::AsyncCommands as _;
use support::{READ_TOKEN, RW_TOKEN, body, error_of, settings};
use vidq_core::{JobId, JobState, Patch};
use vidq_producer::{Api, Producer};

/// One server-sent event: its `id:` and `data:` as JSON.
#[derive(Debug)]
struct Frame {
    id: String,
    data: serde_json::Value,
}

/// Reads frames off one open stream.
struct Events {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Events {
    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), `None` once the stream ended.
    async fn next(&mut self) -> Option<Frame> {
        let read = async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    let mut id = None;
                    let mut data = None;
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = Some(v.trim().to_owned());
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data = Some(serde_json::from_str(v.trim()).unwrap());
                        }
                    }
                    if let (Some(id), Some(data)) = (id, data) {
                        return Some(Frame { id, data });
                    }
                    continue;
                }
                match self.body.next().await {
                    Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                    _ => return None,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("an event or the end of the stream within 20 s")
    }
}

/// Sharded subscribers of `channel` (the feed uses SSUBSCRIBE).
async fn numsub(redis: &mut redis::aio::ConnectionManager, channel: &str) -> u64 {
    let reply: (String, u64) = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(channel)
        .query_async(redis)
        .await
        .unwrap();
    reply.1
}

#[tokio::test]
async fn many_streams_share_one_subscription_resume_and_are_capped_per_token() {
    let mut s = settings();
    s.api.events_per_token = 3;
    let producer = Producer::connect(&s).await.unwrap();
    let store = producer.store().clone();
    let channel = format!("{}:transitions", store.events_channel());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let client = redis::Client::open(s.redis.url.as_str()).unwrap();
    let api = Api::new(producer, &s.api, None).with_event_feed();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api.serve(listener, async move {
        let _ = stopped.await;
    }));
    let mut redis = redis::aio::ConnectionManager::new(client).await.unwrap();
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while numsub(&mut redis, &channel).await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let created: serde_json::Value = http
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(RW_TOKEN)
        .json(&body(1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id: JobId = created["id"].as_str().unwrap().parse().unwrap();
    let open = |token: &'static str, last: Option<String>| {
        let mut request = http
            .get(format!("{base}/v1/jobs/{id}/events"))
            .bearer_auth(token);
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        request.send()
    };

    // Three streams of one token, one of another: the current state first, with its id.
    let mut streams = Vec::new();
    for token in [RW_TOKEN, RW_TOKEN, RW_TOKEN, READ_TOKEN] {
        let mut events = Events::new(open(token, None).await.unwrap());
        let first = events.next().await.expect("the current state");
        assert_eq!(first.data["state"], "queued");
        assert_eq!(first.id, format!("{}-queued", first.data["at_ms"]));
        streams.push(events);
    }
    let over = open(RW_TOKEN, None).await.unwrap();
    assert_eq!(
        error_of(over).await,
        (429, "too_many_streams".into(), None),
        "a fourth stream of one token"
    );
    assert_eq!(
        numsub(&mut redis, &channel).await,
        1,
        "four streams, one subscriber connection"
    );

    for (from, to) in [
        (JobState::Queued, JobState::Submitting),
        (JobState::Submitting, JobState::Processing),
        (JobState::Processing, JobState::Transferring),
        (JobState::Transferring, JobState::Succeeded),
    ] {
        store
            .transition(&id, &[from], to, Patch::new())
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    for events in &mut streams {
        let mut states = Vec::new();
        ids.clear();
        while let Some(frame) = events.next().await {
            states.push(frame.data["state"].as_str().unwrap().to_owned());
            assert_eq!(frame.data["id"], id.to_string());
            ids.push(frame.id);
        }
        assert_eq!(
            states,
            ["submitting", "processing", "transferring", "succeeded"],
            "every transition, then the end"
        );
    }
    let job = store.get(&id).await.unwrap().unwrap();
    let expected: Vec<String> = job
        .history
        .iter()
        .map(|t| format!("{}-{}", t.at_ms, t.to))
        .collect();
    assert_eq!(
        ids, expected,
        "ids are <at_ms>-<state> of the stored history"
    );

    // A client that saw `submitting` resumes after it; one that saw the end gets nothing.
    let mut resumed = Events::new(open(READ_TOKEN, Some(ids[0].clone())).await.unwrap());
    let mut states = Vec::new();
    while let Some(frame) = resumed.next().await {
        states.push(frame.data["state"].as_str().unwrap().to_owned());
    }
    assert_eq!(states, ["processing", "transferring", "succeeded"]);
    let mut ended = Events::new(open(READ_TOKEN, Some(ids[3].clone())).await.unwrap());
    assert!(
        ended.next().await.is_none(),
        "nothing after the terminal event"
    );

    // Streams that ended gave their slot back.
    let mut again = Events::new(open(RW_TOKEN, None).await.unwrap());
    assert_eq!(again.next().await.unwrap().data["state"], "succeeded");
    assert!(again.next().await.is_none());

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while numsub(&mut redis, &channel).await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed outlived the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _: () = redis.del(store.job_key(&id)).await.unwrap();
}
