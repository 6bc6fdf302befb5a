//! `vidq` never prints the Redis password, even when it cannot connect.

use std::process::Stdio;
use std::time::Duration;

#[tokio::test]
async fn connection_error_hides_the_redis_password() {
    for command in ["usage", "serve"] {
        runs_without_the_password(command).await;
    }
}

async fn runs_without_the_password(command: &str) {
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_vidq"))
        .arg(command)
        .current_dir(dir.path())
        .env_remove("VIDQ_CONFIG")
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        .env("VIDQ__REDIS__URL", "redis://:s3cret-pw@127.0.0.1:1/")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("vidq gave up on the unreachable Redis in time")
        .expect("run vidq");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{command}: {stdout}\n{stderr}");
    assert!(
        stderr.contains("connecting to redis://***@127.0.0.1:1/"),
        "{stderr}"
    );
    assert!(!stdout.contains("s3cret-pw"), "{stdout}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
}
