//! Pacing (pure): when each packet or write of a run is due, by pattern, so the sender averages
//! the asked-for rate. The schedule is absolute (due times from the start, not gaps from the
//! last send), so a late wake-up is caught up by sending at once and the average holds.

use std::time::Duration;

use slicelab_model::traffic::Pattern;

/// Length of each half of the on-off pattern.
pub const ON_OFF_PERIOD: Duration = Duration::from_secs(1);

/// A small, seedable PRNG (splitmix64): enough for exponential gaps, no dependency.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

/// The due times of a run's sends.
#[derive(Debug, Clone)]
pub struct Schedule {
    pattern: Pattern,
    /// Mean gap between sends at the asked-for rate, seconds.
    gap: f64,
    /// Due time of the next send, seconds since the start (for on-off: of "on" time only).
    next: f64,
    rng: SplitMix,
}

impl Schedule {
    /// Sends of `size` bytes at `rate` bits/s.
    pub fn new(pattern: Pattern, rate: u64, size: u32, seed: u64) -> Self {
        let gap = f64::from(size) * 8.0 / rate.max(1) as f64;
        Schedule {
            pattern,
            gap,
            next: 0.0,
            rng: SplitMix::new(seed),
        }
    }

    /// When the next send is due, from the start of the run; advances the schedule.
    pub fn next_due(&mut self) -> Duration {
        let due = self.next;
        let step = match self.pattern {
            Pattern::Constant => self.gap,
            Pattern::Poisson => -self.gap * self.rng.unit().ln(),
            // Twice the rate while on; every second of "on" time is followed by one off.
            Pattern::OnOff => self.gap / 2.0,
        };
        self.next += step;
        let due = Duration::from_secs_f64(due);
        match self.pattern {
            // Each full second of "on" time is followed by a silent one (whole nanoseconds,
            // so a due time is never rounded into a silent second).
            Pattern::OnOff => {
                let period = ON_OFF_PERIOD.as_nanos();
                let cycles = due.as_nanos() / period;
                due + Duration::from_nanos(u64::try_from(cycles * period).unwrap_or(u64::MAX))
            }
            _ => due,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends due within the first `secs` seconds.
    fn count_within(mut s: Schedule, secs: f64) -> usize {
        let mut n = 0;
        while s.next_due().as_secs_f64() < secs {
            n += 1;
        }
        n
    }

    #[test]
    fn every_pattern_averages_the_rate() {
        // 20 Mbit/s of 1250-byte packets: 2000 per second.
        for p in [Pattern::Constant, Pattern::Poisson, Pattern::OnOff] {
            let n = count_within(Schedule::new(p, 20_000_000, 1250, 7), 10.0);
            let err = (n as f64 - 20_000.0).abs() / 20_000.0;
            assert!(err < 0.02, "{p:?}: {n} sends in 10 s");
        }
    }

    #[test]
    fn constant_gaps_are_fixed_and_on_off_is_silent_half_the_time() {
        let mut s = Schedule::new(Pattern::Constant, 8_000, 1000, 1);
        let d: Vec<f64> = (0..3).map(|_| s.next_due().as_secs_f64()).collect();
        assert_eq!(d, vec![0.0, 1.0, 2.0]);
        let mut s = Schedule::new(Pattern::OnOff, 8_000_000, 1000, 1);
        let dues: Vec<f64> = (0..4000).map(|_| s.next_due().as_secs_f64()).collect();
        let off: Vec<&f64> = dues.iter().filter(|t| (*t % 2.0) >= 1.0).collect();
        assert!(off.is_empty(), "sends in off seconds: {off:?}");
        // 2000 per "on" second at twice the rate.
        assert_eq!(dues.iter().filter(|t| **t < 1.0).count(), 2000);
    }

    #[test]
    fn poisson_gaps_vary_around_the_mean() {
        let mut s = Schedule::new(Pattern::Poisson, 8_000, 1000, 42);
        let mut prev = s.next_due().as_secs_f64();
        let gaps: Vec<f64> = (0..10_000)
            .map(|_| {
                let t = s.next_due().as_secs_f64();
                let g = t - prev;
                prev = t;
                g
            })
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 1.0).abs() < 0.05, "mean gap {mean}");
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(
            (var.sqrt() - 1.0).abs() < 0.1,
            "an exponential's sd is its mean"
        );
    }
}
