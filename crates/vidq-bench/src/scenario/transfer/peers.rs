//! The plain clients scenario (f) measures beside the worker, all `curl`: a download to
//! /dev/null, one streamed PutObject and a multipart upload of a local file. The
//! S3 requests are signed here (SigV4 with `UNSIGNED-PAYLOAD`, as the AWS CLI does over TLS),
//! since curl's own `--aws-sigv4` cannot sign a body read from a pipe.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::process::Command;
use tokio::task::JoinSet;

use crate::procs::S3;

const REGION: &str = "us-east-1";
const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

/// Bytes and seconds of one `curl` download of `url` to /dev/null.
pub(crate) async fn curl_to_devnull(url: &str) -> anyhow::Result<(f64, f64)> {
    let out = Command::new("curl")
        .args(["-sS", "-f", "-o", "/dev/null"])
        .args(["-w", "%{size_download} %{time_total}"])
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .context("running curl")?;
    anyhow::ensure!(out.status.success(), "curl failed: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .filter_map(|v| v.parse::<f64>().ok());
    match (it.next(), it.next()) {
        (Some(bytes), Some(secs)) => Ok((bytes, secs)),
        _ => anyhow::bail!("unexpected curl output {text:?}"),
    }
}

/// A multipart upload of `file` (`len` bytes) by curl: `part_size` parts, `in_flight` curls at
/// once, each fed its part on stdin. Returns (seconds for CreateMultipartUpload and the parts,
/// seconds for CompleteMultipartUpload).
pub(crate) async fn curl_multipart(
    s3: &S3,
    bucket: &str,
    key: &str,
    file: &std::path::Path,
    len: u64,
    part_size: u64,
    in_flight: usize,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let created = request(s3, "POST", bucket, key, "uploads=")
        .output()
        .await?;
    check(&created, "CreateMultipartUpload")?;
    let text = String::from_utf8_lossy(&created.stdout);
    let upload_id: Arc<str> = between(&text, "<UploadId>", "</UploadId>")
        .context("no UploadId in CreateMultipartUpload's answer")?
        .into();

    let parts = len.div_ceil(part_size);
    let mut running = JoinSet::new();
    let mut etags = vec![String::new(); parts as usize];
    for number in 1..=parts {
        if running.len() >= in_flight
            && let Some(done) = running.join_next().await
        {
            let (n, etag): (u64, String) = done??;
            etags[n as usize - 1] = etag;
        }
        let offset = (number - 1) * part_size;
        let this_len = part_size.min(len - offset);
        let query = format!("partNumber={number}&uploadId={upload_id}");
        let mut curl = upload(s3, "PUT", bucket, key, &query, this_len)
            .args(["-w", "%header{etag}"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("running curl (UploadPart)")?;
        let mut stdin = curl.stdin.take().context("curl's stdin")?;
        let path = file.to_path_buf();
        running.spawn(async move {
            let mut source = tokio::fs::File::open(&path).await?;
            source.seek(std::io::SeekFrom::Start(offset)).await?;
            tokio::io::copy(&mut source.take(this_len), &mut stdin).await?;
            drop(stdin);
            let out = curl.wait_with_output().await?;
            check(&out, "UploadPart")?;
            Ok::<_, anyhow::Error>((number, String::from_utf8_lossy(&out.stdout).into_owned()))
        });
    }
    while let Some(done) = running.join_next().await {
        let (n, etag) = done??;
        etags[n as usize - 1] = etag;
    }
    let parts_done = started.elapsed().as_secs_f64();

    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            etag.trim()
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let completing = Instant::now();
    let completed = request(s3, "POST", bucket, key, &format!("uploadId={upload_id}"))
        .args(["--data-binary", &xml])
        .output()
        .await?;
    check(&completed, "CompleteMultipartUpload")?;
    Ok((parts_done, completing.elapsed().as_secs_f64()))
}

/// Seconds for one streamed PutObject of `file` (`len` bytes) by curl: the store's fastest
/// plain upload.
pub(crate) async fn curl_put_file(
    s3: &S3,
    bucket: &str,
    key: &str,
    file: &std::path::Path,
    len: u64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut cmd = request(s3, "PUT", bucket, key, "");
    cmd.arg("-T")
        .arg(file)
        .args(["-H", "Expect:", "-H", &format!("Content-Length: {len}")]);
    let out = cmd.output().await.context("running curl (PUT)")?;
    check(&out, "PUT")?;
    Ok(started.elapsed().as_secs_f64())
}

/// CreateBucket `bucket` (moto keeps its buckets in memory; s3s-fs's are folders).
pub(crate) async fn create_bucket(s3: &S3, bucket: &str) -> anyhow::Result<()> {
    let out = request(s3, "PUT", bucket, "", "")
        .output()
        .await
        .context("running curl (CreateBucket)")?;
    check(&out, "CreateBucket")
}

/// DeleteObject `key` (the scenario's objects are large; moto keeps them in memory).
pub(crate) async fn delete_object(s3: &S3, bucket: &str, key: &str) -> anyhow::Result<()> {
    let out = request(s3, "DELETE", bucket, key, "")
        .output()
        .await
        .context("running curl (DeleteObject)")?;
    check(&out, "DeleteObject")
}

/// curl uploading `len` bytes from stdin, with a Content-Length (no chunked encoding, which
/// S3 refuses for an unsigned body).
fn upload(s3: &S3, method: &str, bucket: &str, key: &str, query: &str, len: u64) -> Command {
    let mut cmd = request(s3, method, bucket, key, query);
    cmd.args(["-T", "-", "-H", "Transfer-Encoding:", "-H", "Expect:"])
        .args(["-H", &format!("Content-Length: {len}")]);
    cmd
}

/// curl with a SigV4 `Authorization` for `method /bucket/key?query` on `s3`.
fn request(s3: &S3, method: &str, bucket: &str, key: &str, query: &str) -> Command {
    let host = s3
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let path = format!("/{bucket}/{key}");
    let amz_date = amz_date(SystemTime::now());
    let authorization = authorization(s3, method, host, &path, query, &amz_date);
    let url = if query.is_empty() {
        format!("{}{path}", s3.endpoint)
    } else {
        format!("{}{path}?{query}", s3.endpoint)
    };
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", method])
        .args(["-H", &format!("Authorization: {authorization}")])
        .args(["-H", &format!("x-amz-date: {amz_date}")])
        .args(["-H", &format!("x-amz-content-sha256: {UNSIGNED}")])
        .arg(url)
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn check(out: &std::process::Output, what: &str) -> anyhow::Result<()> {
    let body = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success() && !body.contains("<Error>"),
        "curl {what} failed ({}): {body} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}

/// `20260102T030405Z`.
fn amz_date(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace(['-', ':'], "")
}

/// The SigV4 `Authorization` header of a request whose path and query need no escaping (the
/// scenario's bucket, keys and upload ids are made of `[A-Za-z0-9./-]`), signing `host`,
/// `x-amz-content-sha256` (`UNSIGNED-PAYLOAD`) and `x-amz-date`.
fn authorization(
    s3: &S3,
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    amz_date: &str,
) -> String {
    let date = &amz_date[..8];
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    let canonical = format!(
        "{method}\n{path}\n{}\nhost:{host}\nx-amz-content-sha256:{UNSIGNED}\nx-amz-date:{amz_date}\n\n\
         host;x-amz-content-sha256;x-amz-date\n{UNSIGNED}",
        pairs.join("&")
    );
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{}", s3.secret_key).into_bytes();
    for part in [date, REGION, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}",
        s3.access_key,
        hex::encode(hmac(&key, to_sign.as_bytes()))
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Downloads `url` into `file` (the multipart peer's source); returns how long it took.
pub(crate) async fn curl_to_file(url: &str, file: &std::path::Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "-f", "-o"])
        .arg(file)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .context("running curl")?;
    anyhow::ensure!(out.status.success(), "curl failed: {}", out.status);
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_are_compact_utc() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        assert_eq!(amz_date(at), "20260102T030405Z");
    }

    #[test]
    fn upload_ids_are_read_from_the_xml() {
        let xml = "<X><UploadId>abc-1</UploadId></X>";
        assert_eq!(between(xml, "<UploadId>", "</UploadId>"), Some("abc-1"));
        assert_eq!(between(xml, "<Nope>", "</Nope>"), None);
    }
}
