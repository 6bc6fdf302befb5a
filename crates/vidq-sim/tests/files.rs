//! The signed result URL: bytes, ranges, signatures, expiry.

mod common;

use std::time::Duration;

use common::{quick_config, start, wait_for};
use sha2::{Digest, Sha256};
use vidq_sim::{SimConfig, result_bytes_sha256};

#[tokio::test]
async fn full_body_hashes_to_result_bytes_sha256() {
    let config = quick_config();
    let size = config.result_size;
    let h = start(config).await;
    let (img_uuid, url) = h.finished_url("https://x/in.mp4").await;

    // No Authorization header: the URL is signed.
    let response = h.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["content-length"], size.to_string().as_str());
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len() as u64, size);
    assert_eq!(&body[4..8], b"ftyp");
    let sha = hex::encode(Sha256::digest(&body));
    assert_eq!(sha, result_bytes_sha256(&img_uuid, size));

    let stats = h.sim.stats();
    assert_eq!(stats.downloads, 1);
    assert_eq!(stats.bytes_served, size);
    assert_eq!(stats.jobs[&img_uuid].sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(stats.jobs[&img_uuid].size, size);
}

#[tokio::test]
async fn ranges_answer_206_with_the_right_slice_and_416_when_unsatisfiable() {
    let config = quick_config();
    let size = config.result_size;
    let h = start(config).await;
    let (_, url) = h.finished_url("https://x/in.mp4").await;
    let full = h
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let cases = [
        ("bytes=0-99", 0, 100),
        ("bytes=65530-65545", 65530, 65546), // across a generated block boundary
        ("bytes=100000-", 100_000, size),
        ("bytes=-10", size - 10, size),
        ("bytes=5-99999999", 5, size),
    ];
    for (range, start, end) in cases {
        let response = h
            .http
            .get(&url)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {start}-{}/{size}", end - 1).as_str(),
            "{range}"
        );
        assert_eq!(
            response.headers()["content-length"],
            (end - start).to_string().as_str()
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(body, full[start as usize..end as usize], "{range}");
    }

    let response = h
        .http
        .get(&url)
        .header("range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 416);
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );
    assert_eq!(h.sim.stats().downloads, 1 + cases.len() as u64);
}

#[tokio::test]
async fn every_detail_call_signs_a_fresh_url() {
    let h = start(quick_config()).await;
    let (img_uuid, first) = h.finished_url("https://x/in.mp4").await;
    let second = h.detail(&img_uuid).await["json"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    for url in [&first, &second] {
        let response = h.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
    }
}

#[tokio::test]
async fn tampered_urls_are_403_and_unknown_jobs_404() {
    let h = start(quick_config()).await;
    let (img_uuid, url) = h.finished_url("https://x/in.mp4").await;
    let (path, query) = url.split_once('?').unwrap();
    let mut later = String::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap();
        let v = if k == "expires" {
            (v.parse::<u64>().unwrap() + 3_600_000).to_string()
        } else {
            v.to_owned()
        };
        later.push_str(&format!("{k}={v}&"));
    }
    let forged = [
        format!("{path}?{}", later.trim_end_matches('&')),
        url.replace("sig=", "sig=00"),
        path.to_owned(),
    ];
    for bad in &forged {
        let response = h.http.get(bad).send().await.unwrap();
        assert_eq!(response.status(), 403, "{bad}");
        assert!(!response.text().await.unwrap().is_empty());
    }
    let other = url.replace(&img_uuid, "00000000-0000-4000-8000-000000000000");
    assert_eq!(h.http.get(&other).send().await.unwrap().status(), 404);

    let stats = h.sim.stats();
    assert_eq!(stats.rejected.forbidden_url, 3);
    assert_eq!(stats.downloads, 0);
}

#[tokio::test]
async fn an_expired_url_is_403() {
    let h = start(SimConfig {
        url_ttl: Duration::from_secs(3),
        ..quick_config()
    })
    .await;
    let (_, url) = h.finished_url("https://x/in.mp4").await;
    assert_eq!(h.http.get(&url).send().await.unwrap().status(), 200);
    wait_for("the URL to expire", Duration::from_secs(10), || async {
        let response = h.http.get(&url).send().await.unwrap();
        (response.status() == 403).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_large_result_streams_with_bounded_memory() {
    let size = 64 * 1024 * 1024 + 3;
    let h = start(SimConfig {
        result_size: size,
        ..quick_config()
    })
    .await;
    let (img_uuid, url) = h.finished_url("https://x/big.mp4").await;
    let mut response = h.http.get(&url).send().await.unwrap();
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        total += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(total, size);
    assert_eq!(
        hex::encode(hasher.finalize()),
        result_bytes_sha256(&img_uuid, size)
    );
}

#[tokio::test]
async fn a_download_rate_holds_each_download_to_it() {
    let size = 512 * 1024;
    let h = start(SimConfig {
        result_size: size,
        download_rate: 2 * 1024 * 1024,
        ..quick_config()
    })
    .await;
    let (img_uuid, url) = h.finished_url("https://x/slow.mp4").await;
    let started = std::time::Instant::now();
    let body = h
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let took = started.elapsed();
    // 512 KiB at 2 MiB/s: the last 64 KiB piece may leave no sooner than 224 ms in.
    assert!(took >= Duration::from_millis(220), "took {took:?}");
    assert_eq!(body.len() as u64, size);
    assert_eq!(
        hex::encode(Sha256::digest(&body)),
        result_bytes_sha256(&img_uuid, size)
    );
}
