//! The console's sign-in, sessions, scopes and CSRF against a real `Api` (the console mounted
//! at `/console`) and the test Redis, each test under its own key prefix.

use std::time::Duration;

use redis::AsyncCommands as _;
use secrecy::SecretString;
use tokio::sync::oneshot;
use vidq_core::{JobId, JobState, JobStore};
use vidq_producer::{Api, ApiToken, Producer, ProducerSettings, Scope};

const READ_TOKEN: &str = "console-read-token-0123456789";
const WRITE_TOKEN: &str = "console-write-token-0123456789";
const OTHER_TOKEN: &str = "console-other-token-0123456789";
const ADMIN_TOKEN: &str = "console-admin-token-0123456789";
const TENANT: &str = "tenant-a";

struct App {
    base: String,
    http: reqwest::Client,
    store: JobStore,
    prefix: String,
    redis: redis::aio::ConnectionManager,
    /// The served API (its tokens can be replaced, as SIGHUP does).
    api: Api,
    producer: Producer,
    tokens: Vec<ApiToken>,
    _stop: oneshot::Sender<()>,
}

async fn spawn() -> App {
    let mut settings = ProducerSettings::default();
    settings.redis.url =
        std::env::var("VIDQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    settings.redis.prefix = format!("vidq-test-console-{}", uuid::Uuid::new_v4().simple());
    let token = |name: &str, token: &str, scopes: Vec<Scope>| ApiToken {
        name: name.into(),
        token: SecretString::from(token.to_owned()),
        sha256: None,
        scopes,
    };
    settings.api.tokens = vec![
        token(TENANT, READ_TOKEN, vec![Scope::Read]),
        token(TENANT, WRITE_TOKEN, vec![Scope::Read, Scope::Write]),
        token("tenant-b", OTHER_TOKEN, vec![Scope::Read, Scope::Write]),
        token("ops", ADMIN_TOKEN, vec![Scope::Admin]),
    ];
    let producer = Producer::connect(&settings)
        .await
        .expect("connect to the test Redis");
    let store = producer.store().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let client = redis::Client::open(settings.redis.url.as_str()).unwrap();
    // The replica's one subscription to transitions feeds the live pages, as in `vidq serve`.
    let api = Api::new(producer.clone(), &settings.api, None).with_event_feed();
    tokio::spawn(api.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    App {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        store,
        prefix: settings.redis.prefix,
        redis: redis::aio::ConnectionManager::new(client).await.unwrap(),
        api,
        producer,
        tokens: settings.api.tokens.clone(),
        _stop: stop,
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

impl App {
    async fn post(&self, path: &str, cookie: Option<&str>, body: String) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }

    /// Signs in with `token`; returns the `Cookie` header to send and the `Set-Cookie` seen.
    async fn sign_in(&self, token: &str) -> (String, String) {
        let response = self
            .post("/console/login", None, form(&[("token", token)]))
            .await;
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/console");
        let set = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        let pair = set.split(';').next().unwrap().to_owned();
        (pair, set)
    }

    /// The CSRF token of the session's forms (read from a page, as the browser does).
    async fn csrf(&self, cookie: &str) -> String {
        let html = self
            .get("/console/jobs", cookie)
            .await
            .text()
            .await
            .unwrap();
        let at = html
            .find(r#"name="csrf" value=""#)
            .expect("a form with a CSRF token")
            + 19;
        html[at..at + 64].to_owned()
    }

    async fn create(&self, token: &str, metadata: serde_json::Value) -> JobId {
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(token)
            .json(&serde_json::json!({
                // A new URL each time: equal requests would reuse one job.
                "reference_video_url": format!("https://videos.example.com/{}.mp4", uuid::Uuid::new_v4()),
                "model": 2000,
                "metadata": metadata,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    async fn state(&self, id: &JobId) -> JobState {
        self.store.get(id).await.unwrap().unwrap().state
    }

    async fn session_keys(&self) -> Vec<String> {
        let mut redis = self.redis.clone();
        redis
            .keys(format!("{}:console:session:*", self.prefix))
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_keeps_no_token() {
    let app = spawn().await;
    let (cookie, set) = app.sign_in(READ_TOKEN).await;
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/console"), "{set}");
    assert!(
        !set.contains("Secure"),
        "plain http without a proxy saying https: {set}"
    );
    assert!(!set.contains(READ_TOKEN));
    let keys = app.session_keys().await;
    assert_eq!(keys.len(), 1);
    assert!(
        !keys[0].contains(cookie.split('=').nth(1).unwrap()),
        "the key is the id's digest"
    );
    let mut redis = app.redis.clone();
    let stored: String = redis.get(&keys[0]).await.unwrap();
    assert!(!stored.contains(READ_TOKEN), "{stored}");
    assert!(stored.contains(TENANT));
    let ttl: i64 = redis.ttl(&keys[0]).await.unwrap();
    assert!(ttl > 7 * 3600 && ttl <= 8 * 3600, "{ttl}");

    let overview = app.get("/console", &cookie).await;
    assert_eq!(overview.status(), 200);
    assert_eq!(overview.headers()["cache-control"], "no-store");
    assert_eq!(overview.headers()["x-frame-options"], "DENY");
    let csp = overview.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let html = overview.text().await.unwrap();
    assert!(html.contains(r#"<b id="who">tenant-a</b> (read)"#));
    assert!(
        html.contains(r#"<span class="n" id="unfinished">0</span>"#),
        "{html}"
    );

    // Behind a proxy that terminated TLS the cookie is Secure.
    let response = app
        .http
        .post(format!("{}/console/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(form(&[("token", READ_TOKEN)]))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    // Signing out ends the session in Redis.
    let csrf = app.csrf(&cookie).await;
    let out = app
        .post("/console/logout", Some(&cookie), form(&[("csrf", &csrf)]))
        .await;
    assert_eq!(out.status(), 303);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = app.get("/console", &cookie).await;
    assert_eq!(after.status(), 303);
    assert_eq!(after.headers()["location"], "/console/login");
    assert_eq!(
        app.session_keys().await.len(),
        1,
        "only the https sign-in's is left"
    );
}

#[tokio::test]
async fn a_bad_token_gets_no_session() {
    let app = spawn().await;
    let response = app
        .post(
            "/console/login",
            None,
            form(&[("token", "console-read-token-012345678")]),
        )
        .await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("set-cookie").is_none());
    let empty = app
        .post("/console/login", None, form(&[("token", "")]))
        .await;
    assert_eq!(empty.status(), 400);
    assert!(
        empty
            .text()
            .await
            .unwrap()
            .contains("token: enter an API token")
    );
    assert!(app.session_keys().await.is_empty());
    // Pages without a session go to the sign-in form; a forged cookie is no session.
    let page = app
        .get("/console/jobs", "vidq_console=".to_owned().as_str())
        .await;
    assert_eq!(page.status(), 303);
    let forged = app
        .get(
            "/console/jobs",
            &format!("vidq_console={}", "ab".repeat(32)),
        )
        .await;
    assert_eq!(forged.status(), 303);
}

#[tokio::test]
async fn a_read_session_sees_no_buttons_and_its_forged_actions_are_refused() {
    let app = spawn().await;
    let id = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    let (cookie, _) = app.sign_in(READ_TOKEN).await;
    let html = app
        .get(&format!("/console/jobs/{id}"), &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"id="job-state" class="state s-queued">queued"#),
        "{html}"
    );
    assert!(!html.contains("data-action=\"Cancel\""), "{html}");
    let list = app
        .get("/console/jobs", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains(&id.to_string()));
    assert!(!list.contains("Cancel selected"));
    // Its CSRF token is the one of its sign-out form; even with it, no write action.
    let csrf = app.csrf(&cookie).await;
    let cancel = app
        .post(
            &format!("/console/jobs/{id}/cancel"),
            Some(&cookie),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(cancel.status(), 403);
    assert!(
        cancel
            .text()
            .await
            .unwrap()
            .contains("needs the write scope")
    );
    let bulk = app
        .post(
            "/console/jobs:bulk",
            Some(&cookie),
            form(&[
                ("csrf", &csrf),
                ("action", "cancel"),
                ("id", &id.to_string()),
            ]),
        )
        .await;
    assert_eq!(bulk.status(), 403);
    assert_eq!(app.state(&id).await, JobState::Queued);
    // Dead tasks are an admin's.
    assert_eq!(app.get("/console/dead", &cookie).await.status(), 403);
    let retry_all = app
        .post(
            "/console/dead/submit/retry-all",
            Some(&cookie),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(retry_all.status(), 403);
}

#[tokio::test]
async fn actions_need_the_sessions_csrf_token() {
    let app = spawn().await;
    let id = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    let (cookie, _) = app.sign_in(WRITE_TOKEN).await;
    let path = format!("/console/jobs/{id}/cancel");
    // No session at all, no token, a wrong token, another session's token: 403, nothing done.
    let csrf = app.csrf(&cookie).await;
    assert_eq!(
        app.post(&path, None, form(&[("csrf", &csrf)]))
            .await
            .status(),
        403
    );
    assert_eq!(
        app.post(&path, Some(&cookie), String::new()).await.status(),
        403
    );
    let wrong = app
        .post(&path, Some(&cookie), form(&[("csrf", &"0".repeat(64))]))
        .await;
    assert_eq!(wrong.status(), 403);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("CSRF token missing or wrong")
    );
    let (other_cookie, _) = app.sign_in(WRITE_TOKEN).await;
    let other_csrf = app.csrf(&other_cookie).await;
    assert_ne!(other_csrf, csrf);
    assert_eq!(
        app.post(&path, Some(&cookie), form(&[("csrf", &other_csrf)]))
            .await
            .status(),
        403
    );
    assert_eq!(app.state(&id).await, JobState::Queued);
    // The page shows the button; the form's own token cancels.
    let html = app
        .get(&format!("/console/jobs/{id}"), &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!(r#"action="/console/jobs/{id}/cancel""#)));
    let done = app
        .post(&path, Some(&cookie), form(&[("csrf", &csrf)]))
        .await;
    assert_eq!(done.status(), 303);
    assert_eq!(app.state(&id).await, JobState::Canceled);
}

#[tokio::test]
async fn a_session_sees_only_its_tenants_jobs_and_data_is_escaped() {
    let app = spawn().await;
    let own = app
        .create(
            WRITE_TOKEN,
            serde_json::json!({"note": "<script>alert(1)</script>"}),
        )
        .await;
    let other = app.create(OTHER_TOKEN, serde_json::json!({})).await;
    let (cookie, _) = app.sign_in(WRITE_TOKEN).await;
    let list = app
        .get("/console/jobs", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains(&own.to_string()));
    assert!(!list.contains(&other.to_string()));
    assert!(list.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!list.contains("<script>"));
    assert_eq!(
        app.get(&format!("/console/jobs/{other}"), &cookie)
            .await
            .status(),
        404
    );
    // Searching another tenant's job id finds nothing; acting on it is 404 and changes nothing.
    let search = app.get(&format!("/console/jobs?q={other}"), &cookie).await;
    assert_eq!(search.status(), 404);
    let csrf = app.csrf(&cookie).await;
    let cancel = app
        .post(
            &format!("/console/jobs/{other}/cancel"),
            Some(&cookie),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(cancel.status(), 404);
    assert_eq!(app.state(&other).await, JobState::Queued);
    // Its own job by id, and by the idempotency key it was created with.
    let found = app.get(&format!("/console/jobs?q={own}"), &cookie).await;
    assert_eq!(found.status(), 303);
    assert_eq!(
        found.headers()["location"],
        format!("/console/jobs/{own}").as_str()
    );
    // An admin sees both, and the queues.
    let (admin, _) = app.sign_in(ADMIN_TOKEN).await;
    let all = app.get("/console/jobs", &admin).await.text().await.unwrap();
    assert!(all.contains(&own.to_string()) && all.contains(&other.to_string()));
    let overview = app.get("/console", &admin).await.text().await.unwrap();
    // Both jobs are queued: two in the jobs-per-state table, two submit tasks due.
    let queued = r#"<tr data-state="queued"><td><a href="/console/jobs?state=queued">queued</a></td><td class="n">2</td></tr>"#;
    assert!(overview.contains(queued), "{overview}");
    assert!(
        overview.contains(r#"<tr data-queue="submit"><td>submit</td><td class="n">2</td>"#),
        "{overview}"
    );
    assert_eq!(app.get("/console/dead", &admin).await.status(), 200);
}

#[tokio::test]
async fn search_finds_a_job_by_its_idempotency_key() {
    let app = spawn().await;
    let response = app
        .http
        .post(format!("{}/v1/jobs", app.base))
        .bearer_auth(WRITE_TOKEN)
        .header("idempotency-key", "order-42")
        .json(&serde_json::json!({
            "reference_video_url": "https://videos.example.com/k.mp4",
            "model": 2000,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    let (cookie, _) = app.sign_in(READ_TOKEN).await;
    let found = app.get("/console/jobs?q=order-42", &cookie).await;
    assert_eq!(found.status(), 303);
    assert_eq!(
        found.headers()["location"],
        format!("/console/jobs/{id}").as_str()
    );
    // Another tenant's same key is another key.
    let (other, _) = app.sign_in(OTHER_TOKEN).await;
    assert_eq!(
        app.get("/console/jobs?q=order-42", &other).await.status(),
        404
    );
}

#[tokio::test]
async fn the_list_filters_by_metadata_and_creation_time() {
    let app = spawn().await;
    let created = |id: JobId| {
        let store = app.store.clone();
        async move { store.get(&id).await.unwrap().unwrap().created_at }
    };
    let red = app
        .create(WRITE_TOKEN, serde_json::json!({"color": "red"}))
        .await;
    // Blue is created in a later second than red, by Redis's clock (whole-second filters).
    let red_second = created(red).await / 1000;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.store.redis_now_ms().await.unwrap() / 1000 <= red_second {
        assert!(
            std::time::Instant::now() < deadline,
            "Redis's clock did not move on"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let blue = app
        .create(WRITE_TOKEN, serde_json::json!({"color": "blue"}))
        .await;
    let (red_at, blue_at) = (created(red).await, created(blue).await);
    let (cookie, _) = app.sign_in(READ_TOKEN).await;
    let list = |query: String| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            let response = app.get(&format!("/console/jobs?{query}"), &cookie).await;
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, html) = list("meta=color%3Dred".into()).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&red.to_string()) && !html.contains(&blue.to_string()),
        "{html}"
    );
    // A time range in whole seconds (UTC): until the second before one, since the second after.
    let second = |ms: u64| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms))
            .to_string()
    };
    let (_, until) = list(format!("until={}", second(red_at))).await;
    assert!(until.contains(&red.to_string()) && !until.contains(&blue.to_string()));
    let (_, since) = list(format!("since={}", second(blue_at))).await;
    assert!(since.contains(&blue.to_string()) && !since.contains(&red.to_string()));
    let (_, both) = list(format!("since={}", second(red_at))).await;
    assert!(both.contains(&red.to_string()) && both.contains(&blue.to_string()));
    let (_, none) = list(format!("until={}", second(red_at.saturating_sub(1000)))).await;
    assert!(!none.contains(&red.to_string()) && !none.contains(&blue.to_string()));
    // Bad filters are 400 naming the field.
    let (status, html) = list("meta=color".into()).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("meta: &quot;color&quot; is not key=value"),
        "{html}"
    );
    let (status, html) = list("since=yesterday".into()).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("since: &quot;yesterday&quot; is not a UTC time"),
        "{html}"
    );
    let (status, html) = list("state=done".into()).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("state: &quot;done&quot; is not a job state"),
        "{html}"
    );
}

#[tokio::test]
async fn a_write_session_cancels_selected_jobs_and_each_is_reported() {
    let app = spawn().await;
    let first = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    let second = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    let foreign = app.create(OTHER_TOKEN, serde_json::json!({})).await;
    let (cookie, _) = app.sign_in(WRITE_TOKEN).await;
    let csrf = app.csrf(&cookie).await;
    let (a, b, c) = (first.to_string(), second.to_string(), foreign.to_string());
    let response = app
        .post(
            "/console/jobs:bulk",
            Some(&cookie),
            form(&[
                ("csrf", &csrf),
                ("action", "cancel"),
                ("id", &a),
                ("id", &b),
                ("id", &c),
            ]),
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains(&format!(r#"<li class="ok">job {a} canceled</li>"#)),
        "{html}"
    );
    assert!(html.contains(&format!(r#"<li class="ok">job {b} canceled</li>"#)));
    assert!(html.contains(&format!(r#"<li class="error">no job {c}</li>"#)));
    assert_eq!(app.state(&first).await, JobState::Canceled);
    assert_eq!(app.state(&second).await, JobState::Canceled);
    assert_eq!(app.state(&foreign).await, JobState::Queued);
    // A failed job is retried: back to queued for another submission.
    let failed = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    app.store
        .transition(
            &failed,
            &[JobState::Queued],
            JobState::Failed,
            vidq_core::Patch::new().error("bucket missing"),
        )
        .await
        .unwrap();
    let page = app.get(&format!("/console/jobs/{failed}"), &cookie).await;
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<p class="error" id="job-error">bucket missing</p>"#));
    assert!(html.contains(&format!(r#"action="/console/jobs/{failed}/retry""#)));
    let retried = app
        .post(
            &format!("/console/jobs/{failed}/retry"),
            Some(&cookie),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(retried.status(), 303);
    assert_eq!(app.state(&failed).await, JobState::Queued);
    // Retrying a job that did not fail says so.
    let retry = app
        .post(
            &format!("/console/jobs/{a}/retry"),
            Some(&cookie),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(retry.status(), 409);
}

/// Puts `n` tasks in the dead set of queue `name` under the app's prefix: one delivery at most,
/// a 100 ms lease, claimed and never settled, so the claim after the lease buries them.
async fn bury(app: &App, name: &str, n: u32) {
    let mut config = vidq_queue::QueueConfig::new(name)
        .with_prefix(app.prefix.clone())
        .with_lease(Duration::from_millis(100));
    config.renew_every = Duration::from_millis(50);
    config.max_deliveries = 1;
    let url =
        std::env::var("VIDQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let q: vidq_queue::RedisQueue<u32> =
        vidq_queue::RedisQueue::connect(&url, config).await.unwrap();
    let before = q.depth().await.unwrap().dead;
    q.enqueue_batch(&(0..n).collect::<Vec<_>>()).await.unwrap();
    let _ = q.claim(1000).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let _ = q.claim(1000).await.unwrap();
        if q.depth().await.unwrap().dead == before + u64::from(n) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} tasks of {name} dead"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The dead count the dead page shows for `queue`.
async fn dead_shown(app: &App, cookie: &str, queue: &str) -> String {
    let html = app.get("/console/dead", cookie).await.text().await.unwrap();
    let marker = format!(
        r#"<section id="{queue}" data-queue="{queue}"><h2>{queue} <span class="n" data-dead=""#
    );
    let at = html.find(&marker).expect("the queue's section") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn an_admin_purges_one_queues_dead_tasks_after_a_confirmation_and_a_reader_cannot() {
    let app = spawn().await;
    bury(&app, "submit", 3).await;
    bury(&app, "notify", 2).await;
    let (admin, _) = app.sign_in(ADMIN_TOKEN).await;
    assert_eq!(dead_shown(&app, &admin, "submit").await, "3");
    let dead = app.get("/console/dead", &admin).await.text().await.unwrap();
    assert!(
        dead.contains(
            r#"id="purge-submit" href="/console/dead/submit/purge">Purge all (delete, no retry)"#
        ),
        "{dead}"
    );
    // The confirmation step says how many go, and changes nothing.
    let confirm = app.get("/console/dead/submit/purge", &admin).await;
    assert_eq!(confirm.status(), 200);
    let confirm = confirm.text().await.unwrap();
    assert!(
        confirm.contains(r#"data-action="Delete 3 dead tasks of submit""#),
        "{confirm}"
    );
    assert_eq!(dead_shown(&app, &admin, "submit").await, "3");

    // A read session's forged purge, with its own CSRF token: 403, nothing deleted.
    let (reader, _) = app.sign_in(READ_TOKEN).await;
    let reader_csrf = app.csrf(&reader).await;
    assert_eq!(
        app.get("/console/dead/submit/purge", &reader)
            .await
            .status(),
        403
    );
    let forged = app
        .post(
            "/console/dead/submit/purge",
            Some(&reader),
            form(&[("csrf", &reader_csrf)]),
        )
        .await;
    assert_eq!(forged.status(), 403);
    // The admin's session without its CSRF token: 403 too.
    let no_csrf = app
        .post("/console/dead/submit/purge", Some(&admin), form(&[]))
        .await;
    assert_eq!(no_csrf.status(), 403);
    assert_eq!(dead_shown(&app, &admin, "submit").await, "3");

    let csrf = app.csrf(&admin).await;
    let purged = app
        .post(
            "/console/dead/submit/purge",
            Some(&admin),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(purged.status(), 303);
    assert_eq!(purged.headers()["location"], "/console/dead");
    assert_eq!(dead_shown(&app, &admin, "submit").await, "0");
    assert_eq!(dead_shown(&app, &admin, "notify").await, "2");
    let unknown = app
        .post(
            "/console/dead/nosuch/purge",
            Some(&admin),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn the_workers_page_lists_live_workers_for_an_admin_only() {
    let app = spawn().await;
    let registry = vidq_core::workers::WorkerRegistry::new(app.redis.clone(), &app.prefix);
    let mut info = vidq_core::workers::WorkerInfo::for_this_process(vec![
        vidq_core::workers::QueueLoad {
            queue: "submit".into(),
            concurrency: 8,
            running: 3,
        },
        vidq_core::workers::QueueLoad {
            queue: "poll".into(),
            concurrency: 16,
            running: 0,
        },
    ]);
    info.host = "<render-01>".into();
    registry
        .beat(&mut info, Duration::from_secs(60))
        .await
        .unwrap();
    let (admin, _) = app.sign_in(ADMIN_TOKEN).await;
    let page = app.get("/console/workers", &admin).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<a href="/console/workers">Workers</a>"#));
    assert!(
        html.contains(r#"<span class="n" id="live">1</span>"#),
        "{html}"
    );
    let pid = std::process::id();
    assert!(
        html.contains(&format!(
            r#"<tr data-worker="{}" data-pid="{pid}"><td>&lt;render-01&gt;</td><td class="n">{pid}</td><td>{}</td>"#,
            info.id, info.version
        )),
        "{html}"
    );
    assert!(
        html.contains(r#"<span data-queue="submit">submit 3/8</span>, <span data-queue="poll">poll 0/16</span>"#),
        "{html}"
    );
    let seen = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(info.last_seen_ms),
    )
    .to_string();
    assert!(html.contains(&format!("<td>{seen}</td></tr>")), "{html}");

    // Gone from the registry, gone from the page.
    assert!(registry.remove(&info.id).await.unwrap());
    let html = app
        .get("/console/workers", &admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"<span class="n" id="live">0</span>"#),
        "{html}"
    );
    assert!(html.contains(r#"id="no-workers""#));

    let (reader, _) = app.sign_in(WRITE_TOKEN).await;
    assert_eq!(app.get("/console/workers", &reader).await.status(), 403);
    let jobs = app
        .get("/console/jobs", &reader)
        .await
        .text()
        .await
        .unwrap();
    assert!(!jobs.contains("/console/workers"));
}

#[tokio::test]
async fn an_admin_pauses_and_resumes_a_queue_from_the_overview_and_a_writer_cannot() {
    let app = spawn().await;
    app.create(WRITE_TOKEN, serde_json::json!({})).await;
    let (admin, _) = app.sign_in(ADMIN_TOKEN).await;
    let overview = app.get("/console", &admin).await.text().await.unwrap();
    assert!(
        overview.contains(r#"<span data-paused="false">running</span> <form method="post" action="/console/queues/submit/pause""#),
        "{overview}"
    );
    let (writer, _) = app.sign_in(WRITE_TOKEN).await;
    let writer_csrf = app.csrf(&writer).await;
    let forged = app
        .post(
            "/console/queues/submit/pause",
            Some(&writer),
            form(&[("csrf", &writer_csrf)]),
        )
        .await;
    assert_eq!(forged.status(), 403);
    let no_csrf = app
        .post("/console/queues/submit/pause", Some(&admin), form(&[]))
        .await;
    assert_eq!(no_csrf.status(), 403);
    let submit = vidq_queue::RedisQueue::<serde_json::Value>::connect(
        &std::env::var("VIDQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        vidq_queue::QueueConfig::new("submit").with_prefix(app.prefix.clone()),
    )
    .await
    .unwrap();
    assert!(!submit.is_paused().await.unwrap());

    let csrf = app.csrf(&admin).await;
    let paused = app
        .post(
            "/console/queues/submit/pause",
            Some(&admin),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(paused.status(), 303);
    assert_eq!(paused.headers()["location"], "/console");
    assert!(submit.is_paused().await.unwrap());
    assert!(submit.claim(10).await.unwrap().is_empty());
    let overview = app.get("/console", &admin).await.text().await.unwrap();
    assert!(
        overview.contains(r#"<tr data-queue="submit"><td>submit</td><td class="n">1</td>"#),
        "its depth still counts: {overview}"
    );
    assert!(
        overview.contains(r#"data-paused="true">paused</span> <form method="post" action="/console/queues/submit/resume""#),
        "{overview}"
    );
    assert!(overview.contains(r#"<span data-paused="false">running</span> <form method="post" action="/console/queues/poll/pause""#));

    let resumed = app
        .post(
            "/console/queues/submit/resume",
            Some(&admin),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(resumed.status(), 303);
    assert!(!submit.is_paused().await.unwrap());
    assert_eq!(submit.claim(10).await.unwrap().len(), 1);
}

/// Reads the SSE stream until `until` matches the text read so far (or the deadline passes).
async fn read_events(
    response: &mut reqwest::Response,
    deadline: Duration,
    until: impl Fn(&str) -> bool,
) -> String {
    let mut text = String::new();
    let end = tokio::time::Instant::now() + deadline;
    while !until(&text) {
        match tokio::time::timeout_at(end, response.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    text
}

#[tokio::test]
async fn live_events_carry_the_tenants_own_transitions_only() {
    let app = spawn().await;
    let mine = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    let theirs = app.create(OTHER_TOKEN, serde_json::json!({})).await;
    let (cookie, _) = app.sign_in(READ_TOKEN).await;
    let mut events = app.get("/console/events", &cookie).await;
    assert_eq!(events.status(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // Give the stream its subscription, then move the other tenant's job first, then ours.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in [&theirs, &mine] {
        app.store
            .transition(
                id,
                &[JobState::Queued],
                JobState::Canceled,
                vidq_core::Patch::new(),
            )
            .await
            .unwrap();
    }
    let mine_s = mine.to_string();
    let text = read_events(&mut events, Duration::from_secs(20), |t| {
        t.contains(&mine_s)
    })
    .await;
    assert!(text.contains("event: job"), "{text}");
    assert!(
        text.contains(&mine_s) && text.contains(r#""state":"canceled""#),
        "{text}"
    );
    assert!(
        !text.contains(&theirs.to_string()),
        "another tenant's job leaked: {text}"
    );
    // An admin's stream carries every tenant's.
    let (admin, _) = app.sign_in(ADMIN_TOKEN).await;
    let mut all = app.get("/console/events", &admin).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = app.create(OTHER_TOKEN, serde_json::json!({})).await;
    app.store
        .transition(
            &other,
            &[JobState::Queued],
            JobState::Canceled,
            vidq_core::Patch::new(),
        )
        .await
        .unwrap();
    let other_s = other.to_string();
    let text = read_events(&mut all, Duration::from_secs(20), |t| t.contains(&other_s)).await;
    assert!(text.contains(&other_s), "{text}");
    // Without a session there is no stream.
    assert_eq!(
        app.get("/console/events", "vidq_console=x").await.status(),
        403
    );
}

#[tokio::test]
async fn live_pages_carry_the_script_and_their_swappable_parts() {
    let app = spawn().await;
    let id = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    let (cookie, _) = app.sign_in(WRITE_TOKEN).await;
    for (path, live, part) in [
        ("/console".to_owned(), "all".to_owned(), "overview"),
        ("/console/jobs".to_owned(), "all".to_owned(), "jobs"),
        (format!("/console/jobs/{id}"), id.to_string(), "job"),
    ] {
        let html = app.get(&path, &cookie).await.text().await.unwrap();
        assert!(
            html.contains(r#"<script src="/console/console.js" defer>"#),
            "{path}"
        );
        assert!(
            html.contains(&format!(r#"<main data-live="{live}">"#)),
            "{path}: {html}"
        );
        assert!(
            html.contains(&format!(r#"data-live-part="{part}""#)),
            "{path}"
        );
    }
    let js = app.get("/console/console.js", &cookie).await;
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(js.text().await.unwrap().contains("/console/events"));
}

#[tokio::test]
async fn a_session_ends_when_its_token_is_removed() {
    let app = spawn().await;
    let (cookie, _) = app.sign_in(WRITE_TOKEN).await;
    let (admin, _) = app.sign_in(ADMIN_TOKEN).await;
    assert_eq!(app.get("/console/jobs", &cookie).await.status(), 200);
    let mut events = app.get("/console/events", &cookie).await;
    // The write token is removed (what SIGHUP does after the tokens file changed).
    let kept: Vec<ApiToken> = app
        .tokens
        .iter()
        .filter(|t| secrecy::ExposeSecret::expose_secret(&t.token) != WRITE_TOKEN)
        .cloned()
        .collect();
    assert_eq!(app.api.replace_tokens(&kept), 3);
    let page = app.get("/console/jobs", &cookie).await;
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/console/login");
    assert!(
        page.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let csrf = "0".repeat(64);
    let action = app
        .post("/console/logout", Some(&cookie), form(&[("csrf", &csrf)]))
        .await;
    assert_eq!(action.status(), 403);
    // Its open live stream says so and ends; the admin's session goes on.
    let text = read_events(&mut events, Duration::from_secs(15), |t| {
        t.contains("signed-out")
    })
    .await;
    assert!(text.contains("event: signed-out"), "{text}");
    assert_eq!(app.get("/console/jobs", &admin).await.status(), 200);
    // Signing in again with the removed token fails.
    let again = app
        .post("/console/login", None, form(&[("token", WRITE_TOKEN)]))
        .await;
    assert_eq!(again.status(), 401);
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_client_address() {
    let app = spawn().await;
    // The default burst is 10 from one address (the test's 127.0.0.1), then 10 a minute.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = app
            .post("/console/login", None, form(&[("token", "wrong-token")]))
            .await;
        statuses.push((r.status().as_u16(), r.headers().get("retry-after").cloned()));
    }
    assert!(
        statuses[..10].iter().all(|(s, _)| *s == 401),
        "{statuses:?}"
    );
    let (status, retry_after) = &statuses[11];
    assert_eq!(*status, 429, "{statuses:?}");
    let secs: u64 = retry_after
        .as_ref()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=7).contains(&secs), "{secs}");
    // A right token is limited too: the limit is on attempts, not failures.
    let r = app
        .post("/console/login", None, form(&[("token", ADMIN_TOKEN)]))
        .await;
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn the_overview_charts_jobs_finished_per_minute_and_shows_upstream_figures() {
    let app = spawn().await;
    let a = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    let b = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    let c = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    for (id, to) in [
        (&a, JobState::Failed),
        (&b, JobState::Expired),
        (&c, JobState::Canceled),
    ] {
        app.store
            .transition(
                id,
                &[JobState::Queued],
                to,
                vidq_core::Patch::new().error("x"),
            )
            .await
            .unwrap();
    }
    let minutes = app.store.finished_per_minute(60).await.unwrap();
    assert_eq!(minutes.len(), 60);
    let last = minutes.last().unwrap();
    assert_eq!((last.succeeded, last.failed, last.canceled), (0, 2, 1));
    // The counter expires by itself (about 2 hours).
    let mut redis = app.redis.clone();
    let ttl: i64 = redis
        .pttl(format!(
            "{}:{{jobs}}:stats:minute:{}",
            app.prefix, last.minute
        ))
        .await
        .unwrap();
    assert!((7_000_000..=7_200_000).contains(&ttl), "{ttl}");
    // What the workers keep: a balance, today's submissions and uncertain ones, the budget.
    let now: (u64, u64) = redis::cmd("TIME").query_async(&mut redis).await.unwrap();
    let day = (now.0 / 86_400).to_string();
    let _: () = redis
        .hset_multiple(
            format!("{}:{{limits}}:today", app.prefix),
            &[
                ("day", day.as_str()),
                ("submissions", "7"),
                ("uncertain", "2"),
            ],
        )
        .await
        .unwrap();
    let _: () = redis
        .set(format!("{}:{{limits}}:budget", app.prefix), 500)
        .await
        .unwrap();
    let _: () = redis
        .set(
            format!("{}:{{limits}}:credits", app.prefix),
            format!(r#"{{"count":1234.5,"at_ms":{}}}"#, now.0 * 1000),
        )
        .await
        .unwrap();
    let (admin, _) = app.sign_in(ADMIN_TOKEN).await;
    let html = app.get("/console", &admin).await.text().await.unwrap();
    assert!(html.contains(r#"<svg id="chart""#), "{html}");
    assert!(
        html.contains(r#"data-succeeded="0" data-failed="2" data-minutes="60""#),
        "{html}"
    );
    assert_eq!(html.matches(r#"<rect class="bad""#).count(), 1, "{html}");
    assert!(
        html.contains(r#"<span class="n" id="credits">1234.5</span>"#),
        "{html}"
    );
    assert!(html.contains(r#"<span class="n" id="submissions-today">7</span> of <span id="daily-budget">500</span>"#), "{html}");
    assert!(
        html.contains(r#"<span class="n" id="uncertain">2</span>"#),
        "{html}"
    );
    assert!(html.contains(r#"id="workers-alive">0<"#), "{html}");
    // A tenant's overview has none of the shared figures.
    let (reader, _) = app.sign_in(READ_TOKEN).await;
    let html = app.get("/console", &reader).await.text().await.unwrap();
    assert!(
        !html.contains("id=\"chart\"") && !html.contains("id=\"credits\""),
        "{html}"
    );
}

#[tokio::test]
async fn search_finds_a_job_by_img_uuid_through_its_index() {
    let app = spawn().await;
    let id = app.create(WRITE_TOKEN, serde_json::json!({})).await;
    let img = uuid::Uuid::new_v4().to_string();
    app.store
        .transition(
            &id,
            &[JobState::Queued],
            JobState::Submitting,
            vidq_core::Patch::new(),
        )
        .await
        .unwrap();
    app.store
        .transition(
            &id,
            &[JobState::Submitting],
            JobState::Processing,
            vidq_core::Patch::new().img_uuid(img.clone()),
        )
        .await
        .unwrap();
    assert_eq!(app.store.job_by_img_uuid(&img).await.unwrap(), Some(id));
    let key = format!("{}:{{jobs}}:img:{img}", app.prefix);
    let mut redis = app.redis.clone();
    let ttl: i64 = redis.pttl(&key).await.unwrap();
    assert_eq!(ttl, -1, "an unfinished job's index entry does not expire");
    let (cookie, _) = app.sign_in(READ_TOKEN).await;
    let found = app.get(&format!("/console/jobs?q={img}"), &cookie).await;
    assert_eq!(found.status(), 303);
    assert_eq!(
        found.headers()["location"],
        format!("/console/jobs/{id}").as_str()
    );
    // Another tenant does not find it.
    let (other, _) = app.sign_in(OTHER_TOKEN).await;
    assert_eq!(
        app.get(&format!("/console/jobs?q={img}"), &other)
            .await
            .status(),
        404
    );
    // Once the job ends, the entry expires with the record.
    app.store
        .transition(
            &id,
            &[JobState::Processing],
            JobState::Failed,
            vidq_core::Patch::new().error("x"),
        )
        .await
        .unwrap();
    let job_ttl: i64 = redis.pttl(app.store.job_key(&id)).await.unwrap();
    let ttl: i64 = redis.pttl(&key).await.unwrap();
    assert!(
        ttl > 0 && (job_ttl - ttl).abs() < 5_000,
        "{ttl} vs {job_ttl}"
    );
}

#[tokio::test]
async fn the_job_page_lists_webhook_deliveries_and_sends_the_webhook_again() {
    let app = spawn().await;
    let response = app
        .http
        .post(format!("{}/v1/jobs", app.base))
        .bearer_auth(WRITE_TOKEN)
        .json(&serde_json::json!({
            "reference_video_url": "https://videos.example.com/hook.mp4",
            "model": 2000,
            "callback_url": "https://hooks.example.com/done",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let id: JobId = body["id"].as_str().unwrap().parse().unwrap();
    let (cookie, _) = app.sign_in(WRITE_TOKEN).await;
    let csrf = app.csrf(&cookie).await;
    // Not finished: nothing to send again.
    let early = app
        .post(
            &format!("/console/jobs/{id}/webhook"),
            Some(&cookie),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(early.status(), 409);
    app.store
        .transition(
            &id,
            &[JobState::Queued],
            JobState::Failed,
            vidq_core::Patch::new().error("x"),
        )
        .await
        .unwrap();
    for (attempt, status, error, outcome) in [
        (
            1,
            Some(503),
            Some("hooks.example.com answered HTTP 503 Service Unavailable"),
            "retry",
        ),
        (2, Some(200), None, "delivered"),
    ] {
        app.store
            .record_delivery(
                &id,
                &vidq_core::WebhookDelivery {
                    at_ms: 1_764_000_000_000 + attempt * 1000,
                    attempt: attempt as u32,
                    status,
                    error: error.map(str::to_owned),
                    outcome: outcome.to_owned(),
                },
            )
            .await
            .unwrap();
    }
    let html = app
        .get(&format!("/console/jobs/{id}"), &cookie)
        .await
        .text()
        .await
        .unwrap();
    let table = &html[html.find(r#"<table id="deliveries">"#).expect("deliveries")..];
    let delivered = table.find(r#"data-outcome="delivered""#).unwrap();
    let retried = table.find(r#"data-outcome="retry""#).unwrap();
    assert!(delivered < retried, "newest first: {table}");
    assert!(table.contains("<td class=\"n\">503</td>") && table.contains("answered HTTP 503"));
    assert!(html.contains("Send the webhook again"), "{html}");
    // The list expires with the job's record.
    let mut redis = app.redis.clone();
    let ttl: i64 = redis
        .pttl(format!("{}:{{jobs}}:job:{id}:deliveries", app.prefix))
        .await
        .unwrap();
    assert!(ttl > 0, "{ttl}");
    // Without the CSRF token: refused, nothing queued.
    let notify = vidq_core::TaskKind::Notify;
    let before = app.producer.depth(notify).await.unwrap();
    let forged = app
        .post(
            &format!("/console/jobs/{id}/webhook"),
            Some(&cookie),
            String::new(),
        )
        .await;
    assert_eq!(forged.status(), 403);
    // A reader may not.
    let (reader, _) = app.sign_in(READ_TOKEN).await;
    let reader_csrf = app.csrf(&reader).await;
    let refused = app
        .post(
            &format!("/console/jobs/{id}/webhook"),
            Some(&reader),
            form(&[("csrf", &reader_csrf)]),
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(app.producer.depth(notify).await.unwrap(), before);
    let sent = app
        .post(
            &format!("/console/jobs/{id}/webhook"),
            Some(&cookie),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(sent.status(), 303);
    assert_eq!(
        sent.headers()["location"],
        format!("/console/jobs/{id}?resent=1").as_str()
    );
    let after = app.producer.depth(notify).await.unwrap();
    assert_eq!(
        after.due + after.scheduled,
        before.due + before.scheduled + 1,
        "{before:?} {after:?}"
    );
}
