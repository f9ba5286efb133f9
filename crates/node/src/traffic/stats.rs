//! Measurements (pure): percentiles, RFC 3550 interarrival jitter, and the receiver's tally of
//! a UDP run from (sequence, send time, arrival time) triples.

use slicelab_model::traffic::Percentiles;

/// p50/p90/p99 of `samples` (nearest rank), `None` when empty. Sorts in place.
pub fn percentiles(samples: &mut [f64]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| {
        let rank = (p * samples.len() as f64).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    Some(Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
    })
}

/// Most delay-variation samples kept (a long fast run keeps every Nth).
const MAX_SAMPLES: usize = 200_000;

/// The receiver's running tally of a UDP run. Times are nanoseconds: `sent` on the sender's
/// clock, `arrived` on the receiver's; only differences of transit times are used, so the two
/// clocks need not agree (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Default)]
pub struct UdpTally {
    pub packets: u64,
    pub bytes: u64,
    /// Bytes after the first packet (the first one opens the receive interval).
    bytes_after_first: u64,
    first_arrival: Option<u64>,
    last_arrival: u64,
    last_transit: Option<i128>,
    highest_seq: Option<u64>,
    pub out_of_order: u64,
    /// RFC 3550 J, nanoseconds.
    jitter: f64,
    /// |D(i-1, i)| in milliseconds.
    variation_ms: Vec<f64>,
    seen: u64,
}

impl UdpTally {
    /// Counts one datagram of `len` payload bytes.
    pub fn add(&mut self, seq: u64, len: usize, sent: u64, arrived: u64) {
        self.packets += 1;
        self.bytes += len as u64;
        match self.first_arrival {
            None => self.first_arrival = Some(arrived),
            Some(_) => self.bytes_after_first += len as u64,
        }
        self.last_arrival = arrived;
        match self.highest_seq {
            Some(h) if seq < h => self.out_of_order += 1,
            _ => self.highest_seq = Some(seq),
        }
        let transit = i128::from(arrived) - i128::from(sent);
        if let Some(prev) = self.last_transit {
            let d = (transit - prev).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
            self.seen += 1;
            // Every sample up to the cap, then every k-th, k growing with the run: a bounded,
            // evenly spread subset of a long fast run.
            let stride = self.seen / MAX_SAMPLES as u64 + 1;
            if self.seen.is_multiple_of(stride) && self.variation_ms.len() < 2 * MAX_SAMPLES {
                self.variation_ms.push(d / 1e6);
            }
        }
        self.last_transit = Some(transit);
    }

    /// Seconds from the first arrival to the last.
    pub fn seconds(&self) -> f64 {
        self.first_arrival
            .map(|f| self.last_arrival.saturating_sub(f) as f64 / 1e9)
            .unwrap_or(0.0)
    }

    /// Received payload over the receive interval, bit/s: the bytes after the first packet over
    /// the time from the first arrival to the last (n−1 gaps carry n−1 packets).
    pub fn throughput(&self) -> f64 {
        let s = self.seconds();
        if s <= 0.0 {
            return 0.0;
        }
        self.bytes_after_first as f64 * 8.0 / s
    }

    pub fn jitter_percentiles(&mut self) -> Option<Percentiles> {
        percentiles(&mut self.variation_ms)
    }

    /// RFC 3550 interarrival jitter, milliseconds (`None` before two packets).
    pub fn rfc3550_ms(&self) -> Option<f64> {
        (self.seen > 0).then(|| self.jitter / 1e6)
    }
}

/// Bytes over seconds, bit/s (0 for an empty interval).
pub fn bits_per_second(bytes: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        0.0
    } else {
        bytes as f64 * 8.0 / seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = percentiles(&mut v).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (50.0, 90.0, 99.0));
        assert_eq!(percentiles(&mut []), None);
        let p = percentiles(&mut [3.0]).unwrap();
        assert_eq!((p.p50, p.p99), (3.0, 3.0));
    }

    #[test]
    fn steady_stream_has_no_jitter_and_exact_throughput() {
        let mut t = UdpTally::default();
        // 1000 packets of 1250 bytes every 1 ms (10 Mbit/s), constant 5 ms transit, offset clocks.
        for i in 0..1000u64 {
            let sent = 7_000_000_000 + i * 1_000_000;
            t.add(i, 1250, sent, sent - 6_995_000_000);
        }
        assert_eq!((t.packets, t.bytes, t.out_of_order), (1000, 1_250_000, 0));
        assert!((t.throughput() - 10_000_000.0).abs() < 1.0);
        assert_eq!(t.rfc3550_ms(), Some(0.0));
        assert_eq!(t.jitter_percentiles().unwrap().p99, 0.0);
    }

    #[test]
    fn jitter_follows_rfc3550_and_reordering_is_counted() {
        let mut t = UdpTally::default();
        // Transit alternates 1 ms / 3 ms: |D| = 2 ms every time; J → 2 ms.
        for i in 0..400u64 {
            let sent = i * 10_000_000;
            let transit = if i % 2 == 0 { 1_000_000 } else { 3_000_000 };
            t.add(i, 100, sent, sent + transit);
        }
        let j = t.rfc3550_ms().unwrap();
        assert!((j - 2.0).abs() < 0.01, "J = {j}");
        assert_eq!(t.jitter_percentiles().unwrap().p50, 2.0);
        t.add(5, 100, 50_000_000, 5_000_000_000);
        assert_eq!(t.out_of_order, 1);
    }

    #[test]
    fn bit_rates() {
        assert_eq!(bits_per_second(1_000, 1.0), 8_000.0);
        assert_eq!(bits_per_second(1_000, 0.0), 0.0);
    }
}
