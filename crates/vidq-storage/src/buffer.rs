//! Part buffers whose memory is accounted for, so the bound can be observed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};

/// Bytes reserved by part buffers of one [`crate::Storage`] (all its uploads together).
#[derive(Debug, Default)]
pub(crate) struct BufferGauge {
    current: AtomicU64,
    peak: AtomicU64,
}

impl BufferGauge {
    pub(crate) fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    fn reserve(self: &Arc<Self>, amount: u64) -> Lease {
        let now = self.current.fetch_add(amount, Ordering::Relaxed) + amount;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Lease {
            gauge: Arc::clone(self),
            amount,
        }
    }
}

/// Returns its bytes to the gauge when dropped.
#[derive(Debug)]
struct Lease {
    gauge: Arc<BufferGauge>,
    amount: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.gauge.current.fetch_sub(self.amount, Ordering::Relaxed);
    }
}

/// A part being filled: its whole capacity is allocated and counted up front.
#[derive(Debug)]
pub(crate) struct PartBuf {
    buf: BytesMut,
    limit: usize,
    lease: Lease,
}

impl PartBuf {
    pub(crate) fn new(gauge: &Arc<BufferGauge>, limit: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(limit),
            limit,
            lease: gauge.reserve(limit as u64),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Room left before the part is full.
    pub(crate) fn room(&self) -> usize {
        self.limit - self.buf.len()
    }

    pub(crate) fn extend(&mut self, data: &[u8]) {
        debug_assert!(data.len() <= self.room());
        self.buf.extend_from_slice(data);
    }

    pub(crate) fn freeze(self) -> Part {
        Part {
            bytes: self.buf.freeze(),
            _lease: self.lease,
        }
    }
}

/// A filled part, still counted until it is dropped (after its upload finished).
#[derive(Debug)]
pub(crate) struct Part {
    pub(crate) bytes: Bytes,
    _lease: Lease,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_counts_capacity_until_the_part_is_dropped() {
        let gauge = Arc::new(BufferGauge::default());
        let mut a = PartBuf::new(&gauge, 100);
        a.extend(&[1; 40]);
        assert_eq!(a.room(), 60);
        let b = PartBuf::new(&gauge, 100);
        assert_eq!(gauge.current(), 200);
        let part = a.freeze();
        assert_eq!(part.bytes.len(), 40);
        drop(b);
        assert_eq!(gauge.current(), 100);
        drop(part);
        assert_eq!(gauge.current(), 0);
        assert_eq!(gauge.peak(), 200);
    }
}
