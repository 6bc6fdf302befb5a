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
    tokio::spawn(
        Api::new(producer, &settings.api, None).serve(listener, async move {
            let _ = stopped.await;
        }),
    );
    let client = redis::Client::open(settings.redis.url.as_str()).unwrap();
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
