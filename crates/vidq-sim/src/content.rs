//! The bytes of a result video: deterministic per `(img_uuid, size)`, generated block by block
//! as they are served, so a GiB-sized result never sits in memory.
//!
//! Block `b` (64 KiB) is four interleaved xorshift64* streams seeded from `(img_uuid, b)`, so
//! any range is produced without generating what comes before it. Four independent lanes,
//! rather than one chain, let the CPU run them side by side: about four times the rate of a
//! single chain, so the simulator costs a downloader little CPU. The first 48 bytes are overlaid with an
//! `ftyp` box and an `mdat` box header, so the file at least starts like an MP4.

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

/// Bytes per generated block.
pub(crate) const BLOCK: u64 = 64 * 1024;
/// Independent generator streams per block, interleaved word by word.
const LANES: usize = 4;

/// Hex sha256 of the full body the result URL of `img_uuid` serves when results are `size`
/// bytes long.
pub fn result_bytes_sha256(img_uuid: &str, size: u64) -> String {
    let content = Content::new(img_uuid, size);
    let mut hasher = Sha256::new();
    let mut offset = 0;
    while offset < size {
        let end = next_piece(offset, size);
        hasher.update(content.chunk(offset, end));
        offset = end;
    }
    hex::encode(hasher.finalize())
}

/// The generator for one result file.
#[derive(Clone, Debug)]
pub(crate) struct Content {
    key: u64,
    size: u64,
}

impl Content {
    pub(crate) fn new(img_uuid: &str, size: u64) -> Self {
        let digest = Sha256::new()
            .chain_update(b"vidq-sim content\0")
            .chain_update(img_uuid.as_bytes())
            .finalize();
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest[..8]);
        Self {
            key: u64::from_le_bytes(key),
            size,
        }
    }

    #[cfg(test)]
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Bytes `start..end`, which must lie inside one block and inside the file.
    pub(crate) fn chunk(&self, start: u64, end: u64) -> Bytes {
        debug_assert!(start < end && end <= self.size);
        let block = start / BLOCK;
        debug_assert!((end - 1) / BLOCK == block);
        let block_start = block * BLOCK;
        let block_len = (self.size - block_start).min(BLOCK) as usize;
        let mut buf = BytesMut::zeroed(block_len);
        self.fill_block(block, &mut buf);
        let lo = (start - block_start) as usize;
        let hi = (end - block_start) as usize;
        buf.freeze().slice(lo..hi)
    }

    fn fill_block(&self, block: u64, buf: &mut [u8]) {
        let seed = self.key ^ splitmix64(block);
        let mut lanes: [u64; LANES] = std::array::from_fn(|i| splitmix64(seed ^ i as u64) | 1);
        let mut groups = buf.chunks_exact_mut(8 * LANES);
        for group in &mut groups {
            for (word, state) in group.chunks_exact_mut(8).zip(lanes.iter_mut()) {
                word.copy_from_slice(&next(state).to_le_bytes());
            }
        }
        for (word, state) in groups.into_remainder().chunks_mut(8).zip(lanes.iter_mut()) {
            let bytes = next(state).to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        if block == 0 {
            let header = mp4_header(self.size);
            let n = header.len().min(buf.len());
            buf[..n].copy_from_slice(&header[..n]);
        }
    }
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `ftyp` (32 bytes) then an `mdat` header in its 64-bit size form (16 bytes).
fn mp4_header(size: u64) -> [u8; 48] {
    let mut h = [0u8; 48];
    h[..4].copy_from_slice(&32u32.to_be_bytes());
    h[4..8].copy_from_slice(b"ftyp");
    h[8..12].copy_from_slice(b"isom");
    h[12..16].copy_from_slice(&0x200u32.to_be_bytes());
    h[16..32].copy_from_slice(b"isomiso2avc1mp41");
    h[32..36].copy_from_slice(&1u32.to_be_bytes());
    h[36..40].copy_from_slice(b"mdat");
    h[40..48].copy_from_slice(&size.saturating_sub(32).to_be_bytes());
    h
}

/// Splits `start..end` at block boundaries: the pieces a response body streams.
pub(crate) fn next_piece(start: u64, end: u64) -> u64 {
    (start - start % BLOCK + BLOCK).min(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(content: &Content) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < content.size() {
            let end = next_piece(at, content.size());
            out.extend_from_slice(&content.chunk(at, end));
            at = end;
        }
        out
    }

    #[test]
    fn any_range_matches_the_whole_file() {
        let content = Content::new("abc", 3 * BLOCK + 13);
        let all = whole(&content);
        assert_eq!(all.len() as u64, 3 * BLOCK + 13);
        for (start, end) in [
            (0, 1),
            (5, 100),
            (BLOCK - 3, BLOCK + 2),
            (3 * BLOCK, 3 * BLOCK + 13),
        ] {
            let mut got = Vec::new();
            let mut at = start;
            while at < end {
                let stop = next_piece(at, end);
                got.extend_from_slice(&content.chunk(at, stop));
                at = stop;
            }
            assert_eq!(
                got,
                all[start as usize..end as usize],
                "range {start}..{end}"
            );
        }
    }

    #[test]
    fn bytes_depend_on_the_job_and_start_like_an_mp4() {
        let a = whole(&Content::new("job-a", 4096));
        let b = whole(&Content::new("job-b", 4096));
        assert_ne!(a, b);
        assert_eq!(&a[4..8], b"ftyp");
        assert_eq!(&a[36..40], b"mdat");
        assert_eq!(a, whole(&Content::new("job-a", 4096)));
    }

    #[test]
    fn sha256_is_of_the_served_bytes() {
        let content = Content::new("job-c", 2 * BLOCK + 5);
        let expected = hex::encode(Sha256::digest(whole(&content)));
        assert_eq!(result_bytes_sha256("job-c", 2 * BLOCK + 5), expected);
    }
}
