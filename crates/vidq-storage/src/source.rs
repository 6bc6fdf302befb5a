//! Reads the caller's stream into parts, hashing and counting every byte once.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2_state::{Digest, Sha256};

use crate::buffer::PartBuf;
use crate::error::{BoxError, Error, Result};

/// Pulls chunks from the source, keeps the unread rest of the last chunk, and checks the
/// announced length as bytes arrive (so an over-long source is stopped early). Bytes are
/// hashed as they go into a part, so after each [`Reader::fill`] the hasher stands exactly
/// at the part's end (what a resumed upload starts from).
pub(crate) struct Reader<S> {
    stream: S,
    pending: Bytes,
    finished: bool,
    hasher: Sha256,
    received: u64,
    expected: Option<u64>,
}

impl<S, E> Reader<S>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    pub(crate) fn new(stream: S, expected: Option<u64>) -> Self {
        Self::resuming(stream, expected, Sha256::new(), 0)
    }

    /// A reader of the rest of a body whose first `offset` bytes went through `hasher`
    /// already; `expected` is the whole body's length.
    pub(crate) fn resuming(stream: S, expected: Option<u64>, hasher: Sha256, offset: u64) -> Self {
        Self {
            stream,
            pending: Bytes::new(),
            finished: false,
            hasher,
            received: offset,
            expected,
        }
    }

    /// The hasher's state after every byte handed out so far (a part's end, after `fill`).
    pub(crate) fn hash_state(&self) -> String {
        crate::resume::save_state(&self.hasher)
    }

    /// Fills `part` until it is full or the source ends.
    pub(crate) async fn fill(&mut self, part: &mut PartBuf) -> Result<()> {
        while part.room() > 0 {
            if !self.refill().await? {
                return Ok(());
            }
            let take = part.room().min(self.pending.len());
            let piece = self.pending.split_to(take);
            self.hasher.update(&piece);
            part.extend(&piece);
        }
        Ok(())
    }

    /// True when the source has no byte left.
    pub(crate) async fn at_end(&mut self) -> Result<bool> {
        Ok(!self.refill().await?)
    }

    /// Total length and hex sha256, once the source is exhausted and its length checked.
    pub(crate) fn finish(self) -> Result<(u64, String)> {
        debug_assert!(self.finished && self.pending.is_empty());
        Ok((self.received, hex::encode(self.hasher.finalize())))
    }

    /// Makes `pending` non-empty; false when the source is exhausted.
    async fn refill(&mut self) -> Result<bool> {
        while self.pending.is_empty() {
            if self.finished {
                return Ok(false);
            }
            match self.stream.next().await {
                None => {
                    self.finished = true;
                    if let Some(expected) = self.expected
                        && expected != self.received
                    {
                        return Err(Error::LengthMismatch {
                            expected,
                            got: self.received,
                        });
                    }
                }
                Some(Err(err)) => return Err(Error::Source(err.into())),
                Some(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    if let Some(expected) = self.expected
                        && self.received > expected
                    {
                        return Err(Error::LengthMismatch {
                            expected,
                            got: self.received,
                        });
                    }
                    self.pending = chunk;
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::stream;

    use super::*;
    use crate::buffer::BufferGauge;

    fn chunks(sizes: &[usize]) -> Vec<std::result::Result<Bytes, std::io::Error>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, n)| Ok(Bytes::from(vec![i as u8; *n])))
            .collect()
    }

    #[tokio::test]
    async fn rechunks_into_full_parts_and_hashes_everything() {
        let gauge = Arc::new(BufferGauge::default());
        let items = chunks(&[3, 10, 1, 4]);
        let all: Vec<u8> = items
            .iter()
            .flat_map(|c| c.as_ref().unwrap().to_vec())
            .collect();
        let mut reader = Reader::new(stream::iter(items), Some(18));
        let mut sizes = Vec::new();
        let mut joined = Vec::new();
        while !reader.at_end().await.unwrap() {
            let mut part = PartBuf::new(&gauge, 7);
            reader.fill(&mut part).await.unwrap();
            sizes.push(part.len());
            joined.extend_from_slice(&part.freeze().bytes);
        }
        assert_eq!(sizes, vec![7, 7, 4]);
        assert_eq!(joined, all);
        let (len, sha) = reader.finish().unwrap();
        assert_eq!(len, 18);
        assert_eq!(sha, hex::encode(Sha256::digest(&all)));
    }

    #[tokio::test]
    async fn too_long_a_source_is_stopped_as_soon_as_it_overruns() {
        let gauge = Arc::new(BufferGauge::default());
        let mut reader = Reader::new(stream::iter(chunks(&[5, 5, 5])), Some(7));
        let mut part = PartBuf::new(&gauge, 100);
        match reader.fill(&mut part).await {
            Err(Error::LengthMismatch {
                expected: 7,
                got: 10,
            }) => {}
            other => panic!("expected LengthMismatch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn too_short_a_source_fails_at_its_end() {
        let gauge = Arc::new(BufferGauge::default());
        let mut reader = Reader::new(stream::iter(chunks(&[5])), Some(7));
        let mut part = PartBuf::new(&gauge, 100);
        match reader.fill(&mut part).await {
            Err(Error::LengthMismatch {
                expected: 7,
                got: 5,
            }) => {}
            other => panic!("expected LengthMismatch, got {other:?}"),
        }
    }
}
