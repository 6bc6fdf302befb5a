//! One streamed PutObject of a body whose length is known (`storage.single_put_max`): nothing
//! buffered, no parts, no assembly by the store; hashed and counted as it passes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::config::StalledStreamProtectionConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body::{Body, Frame, SizeHint};
use sha2_state::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::error::{BoxError, Error, Result};
use crate::storage::Storage;
use crate::upload::Uploaded;

/// Chunks handed to the request and not yet sent, at most.
const AHEAD: usize = 4;
/// How long the streamed body may send nothing before the request is cut. The SDK's default
/// (5 s) is made for bodies in memory; this one goes at the download's pace, and the download
/// already gives up after 60 s without a byte. Measured: moto stopped reading a 1 GiB body
/// for more than 5 s, which failed the upload under the default.
const STALL_GRACE: Duration = Duration::from_secs(60);

fn stalled_upload_protection() -> StalledStreamProtectionConfig {
    StalledStreamProtectionConfig::enabled()
        .grace_period(STALL_GRACE)
        .build()
}

/// The request body: what the forwarding loop sends through the channel.
struct ChannelBody {
    chunks: mpsc::Receiver<std::result::Result<Bytes, BoxError>>,
    len: u64,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        self.chunks
            .poll_recv(cx)
            .map(|next| next.map(|chunk| chunk.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

impl Storage {
    /// PutObject of `stream`, exactly `len` bytes, sent as it arrives (unsigned: its SHA-256
    /// is known only at its end). A source that fails or runs longer or shorter than `len`
    /// cuts the request, so no object is written.
    pub(crate) async fn put_streamed<S, E>(
        &self,
        key: &str,
        content_type: &str,
        stream: S,
        len: u64,
    ) -> Result<Uploaded>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        let (tx, rx) = mpsc::channel(AHEAD);
        let body = ByteStream::from_body_1_x(ChannelBody { chunks: rx, len });
        let request = self
            .client
            .put_object()
            .bucket(&*self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(len).unwrap_or(i64::MAX))
            .body(body)
            .customize()
            .disable_payload_signing()
            .config_override(
                aws_sdk_s3::config::Builder::default()
                    .stalled_stream_protection(stalled_upload_protection()),
            )
            .send();
        let forward = async move {
            let mut stream = std::pin::pin!(stream);
            let mut hasher = Sha256::new();
            let mut got = 0u64;
            loop {
                match stream.next().await {
                    Some(Ok(chunk)) => {
                        got += chunk.len() as u64;
                        if got > len {
                            let _ = tx.send(Err("the source ran past its length".into())).await;
                            return Err(Error::LengthMismatch { expected: len, got });
                        }
                        hasher.update(&chunk);
                        if tx.send(Ok(chunk)).await.is_err() {
                            return Ok(None); // the request ended: its error says why
                        }
                    }
                    Some(Err(err)) => {
                        let _ = tx.send(Err("the source failed".into())).await;
                        return Err(Error::Source(err.into()));
                    }
                    None if got != len => {
                        let _ = tx.send(Err("the source ended early".into())).await;
                        return Err(Error::LengthMismatch { expected: len, got });
                    }
                    None => return Ok(Some(hex::encode(hasher.finalize()))),
                }
            }
        };
        let (forwarded, sent) = tokio::join!(forward, request);
        let sha256 = forwarded?;
        let out = sent.map_err(|err| Error::from_sdk("PutObject", &self.bucket, err))?;
        let sha256 = sha256.ok_or_else(|| Error::S3 {
            op: "PutObject",
            status: None,
            code: None,
            message: "the store ended the request before the body was sent".to_owned(),
        })?;
        let etag = if self.checksum_metadata {
            self.set_checksum_metadata(key, content_type, &sha256)
                .await?
        } else {
            out.e_tag
        };
        tracing::debug!(key, bytes = len, "streamed single-part upload complete");
        Ok(Uploaded {
            bucket: self.bucket.to_string(),
            key: key.to_owned(),
            bytes: len,
            sha256,
            etag,
            parts: 1,
        })
    }
}
