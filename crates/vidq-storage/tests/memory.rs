//! Memory stays bounded whatever the body size. Its own test binary, so the process-wide
//! peak RSS (VmHWM) is this upload's alone.

mod support;

use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use support::{MIB, TestS3};

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_upload_buffers_at_most_parts_in_flight_plus_one_parts() {
    let s3 = TestS3::start();
    let part_size = 5 * MIB;
    let parts_in_flight = 2;
    let storage = s3.storage(part_size, parts_in_flight).await;
    let key = storage.object_key("job-memory");

    // 200 MiB + a tail, generated on the fly from one shared 1 MiB block (no copy per chunk),
    // so whatever memory grows is the uploader's.
    let block = Bytes::from(support::pattern(MIB, 11));
    let total = 200 * MIB + 4321;
    let chunk_count = total.div_ceil(MIB);
    let body = futures::stream::iter(0..chunk_count).map(move |i| {
        let len = (total - i * MIB).min(MIB);
        Ok::<_, std::io::Error>(block.slice(..len))
    });
    let mut expected = Sha256::new();
    for i in 0..chunk_count {
        let len = (total - i * MIB).min(MIB);
        expected.update(&support::pattern(MIB, 11)[..len]);
    }
    let expected = hex::encode(expected.finalize());

    let hwm_before = vm_hwm_kib();
    let started = Instant::now();
    let up = storage
        .upload_stream(&key, "video/mp4", body, Some(total as u64))
        .await
        .expect("upload");
    let elapsed = started.elapsed();
    let hwm_after = vm_hwm_kib();

    let bound = ((parts_in_flight + 1) * part_size) as u64;
    println!(
        "uploaded {} MiB in {} parts in {:.2?} ({:.0} MiB/s); buffered peak {} MiB (bound {} MiB); VmHWM {:?} KiB -> {:?} KiB",
        total / MIB,
        up.parts,
        elapsed,
        total as f64 / MIB as f64 / elapsed.as_secs_f64(),
        storage.buffered_peak() / MIB as u64,
        bound / MIB as u64,
        hwm_before,
        hwm_after,
    );
    assert_eq!(up.parts, 41);
    assert_eq!(up.bytes, total as u64);
    assert_eq!(up.sha256, expected);
    assert!(
        storage.buffered_peak() <= bound,
        "peak {} > bound {bound}",
        storage.buffered_peak()
    );
    assert!(
        storage.buffered_peak() > part_size as u64,
        "parts did overlap: peak {}",
        storage.buffered_peak()
    );
    assert_eq!(storage.buffered_bytes(), 0);
    if let (Some(before), Some(after)) = (hwm_before, hwm_after) {
        let grown_mib = after.saturating_sub(before) / 1024;
        assert!(
            grown_mib < 64,
            "peak RSS grew {grown_mib} MiB for a 200 MiB body"
        );
    }

    // What the server holds is what was sent: stream it back and hash it.
    let out = s3
        .raw_client()
        .get_object()
        .bucket(storage.bucket())
        .key(&key)
        .send()
        .await
        .expect("get");
    let mut stored = Sha256::new();
    let mut body = out.body;
    let mut len = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("read");
        len += chunk.len();
        stored.update(&chunk);
    }
    assert_eq!(len, total);
    assert_eq!(hex::encode(stored.finalize()), expected);
}
