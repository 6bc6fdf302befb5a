//! Bearer tokens, scopes and the per-token rate limit.

mod support;

use std::time::Duration;
use support::{READ_TOKEN, RW_TOKEN, WRITE_TOKEN, body, error_of, settings, spawn_app, spawn_with};

use vidq_core::JobId;

#[tokio::test]
async fn tokens_and_scopes_are_checked_and_refusals_write_nothing() {
    let app = spawn_app().await;
    let anonymous = app
        .http
        .post(app.url("/v1/jobs"))
        .json(&body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_of(anonymous).await.1, "unauthorized");

    let wrong = app
        .post_job("test-token-read-write-012345678", &body(1))
        .await;
    assert_eq!(error_of(wrong).await.0, 401);
    let basic = app
        .http
        .get(app.url("/v1/jobs"))
        .header("authorization", format!("Basic {RW_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(basic).await.0, 401);

    let reader_writes = app.post_job(READ_TOKEN, &body(1)).await;
    assert_eq!(
        error_of(reader_writes).await,
        (403, "forbidden".into(), None)
    );
    let writer_reads = app.get("/v1/jobs", WRITE_TOKEN).await;
    assert_eq!(error_of(writer_reads).await.0, 403);
    let reader_cancels = app
        .http
        .delete(app.url(&format!("/v1/jobs/{}", JobId::new())))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(reader_cancels).await.0, 403);
    assert!(
        app.keys().await.is_empty(),
        "nothing written for refused requests"
    );

    // Each scope does what it allows.
    let created = app.post_job(WRITE_TOKEN, &body(1)).await;
    assert_eq!(created.status(), 202);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(app.get(&location, READ_TOKEN).await.status(), 200);
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            app.http.get(app.url(open)).send().await.unwrap().status(),
            200,
            "{open}"
        );
    }
}

#[tokio::test]
async fn each_token_is_rate_limited_on_its_own() {
    let mut s = settings();
    s.api.rate_per_second = 0.2; // one request every 5 s once the burst is spent
    s.api.rate_burst = 3;
    let app = spawn_with(s, None).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/jobs", RW_TOKEN).await.status(), 200);
    }
    let limited = app.get("/v1/jobs", RW_TOKEN).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(error_of(limited).await, (429, "rate_limited".into(), None));
    assert_eq!(
        app.get("/v1/jobs", READ_TOKEN).await.status(),
        200,
        "another token is not limited"
    );
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"status="429"} 1"#), "{metrics}");
}

/// Hex SHA-256 of a token, as an operator would store it (`printf %s "$T" | sha256sum`).
fn sha256_hex(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// One HTTP/1.1 request on a kept-alive connection; the status code of its answer.
async fn status_on(
    conn: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    token: &str,
) -> std::io::Result<u16> {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
    let request =
        format!("GET /v1/jobs HTTP/1.1\r\nhost: vidq\r\nauthorization: Bearer {token}\r\n\r\n");
    conn.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    Ok(status)
}

#[tokio::test]
async fn tokens_from_digests_env_and_a_file_reload_on_sighup() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    const ENV_TOKEN: &str = "env-token-from-digest-0123456789";
    const KEPT: &str = "file-token-kept-0123456789";
    const REMOVED: &str = "file-token-removed-0123456789";
    const ADDED: &str = "file-token-added-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let write_tokens = |entries: &[(&str, &str)]| {
        let mut text = String::new();
        for (name, token) in entries {
            text.push_str(&format!(
                "[[tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n",
                sha256_hex(token)
            ));
        }
        std::fs::write(&tokens, text).unwrap();
    };
    write_tokens(&[("kept", KEPT), ("removed", REMOVED)]);
    let config = dir.path().join("vidq.toml");
    let prefix = format!("vidq-test-sighup-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(
        &config,
        format!(
            "[redis]\nurl = \"{}\"\nprefix = \"{prefix}\"\n[api]\nlisten = \"127.0.0.1:0\"\ntokens_file = \"{}\"\n",
            support::redis_url(),
            tokens.display()
        ),
    )
    .unwrap();
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_vidq"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("VIDQ_CONFIG")
        .env("VIDQ__LOG__FILTER", "info")
        .env("VIDQ__API__TOKENS__0__NAME", "from-env")
        .env("VIDQ__API__TOKENS__0__SHA256", sha256_hex(ENV_TOKEN))
        .env("VIDQ__API__TOKENS__0__SCOPES", "read,write")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(serve.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut line))
        .await
        .expect("vidq serve said where it listens in time")
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut conn = BufReader::new(stream);

    assert_eq!(status_on(&mut conn, ENV_TOKEN).await.unwrap(), 200);
    assert_eq!(status_on(&mut conn, KEPT).await.unwrap(), 200);
    assert_eq!(status_on(&mut conn, REMOVED).await.unwrap(), 200);
    assert_eq!(status_on(&mut conn, ADDED).await.unwrap(), 401);

    write_tokens(&[("kept", KEPT), ("added", ADDED)]);
    let pid = serve.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    // The reload is asynchronous to the signal: wait for the new token, on the same connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while status_on(&mut conn, ADDED).await.unwrap() != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the added token never worked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_on(&mut conn, REMOVED).await.unwrap(), 401);
    assert_eq!(status_on(&mut conn, KEPT).await.unwrap(), 200);
    assert_eq!(status_on(&mut conn, ENV_TOKEN).await.unwrap(), 200);

    // A file that does not load keeps the previous set.
    std::fs::write(
        &tokens,
        "[[tokens]]\nname = \"broken\"\nsha256 = \"not hex\"\n",
    )
    .unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut stderr = BufReader::new(serve.stderr.take().unwrap());
    let mut log = String::new();
    let refused = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).await.unwrap() == 0 {
                break false;
            }
            log.push_str(&line);
            if line.contains("API tokens not reloaded") {
                break true;
            }
        }
    })
    .await
    .expect("the refused reload was logged in time");
    assert!(refused, "{log}");
    assert_eq!(status_on(&mut conn, ADDED).await.unwrap(), 200);
    assert!(log.contains("API tokens reloaded"), "{log}");
    for secret in [ENV_TOKEN, KEPT, REMOVED, ADDED] {
        assert!(!log.contains(secret), "a token reached the log: {log}");
        assert!(
            !log.contains(&sha256_hex(secret)),
            "a digest reached the log: {log}"
        );
    }
    serve.kill().await.unwrap();
}
