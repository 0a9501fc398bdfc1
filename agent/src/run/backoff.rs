//! Jittered exponential backoff for reconnecting to the hub: the ceiling doubles from
//! [`BASE`] up to [`MAX`], and each delay is drawn uniformly from [ceiling/2, ceiling].

use std::time::Duration;

/// First ceiling.
pub const BASE: Duration = Duration::from_millis(500);
/// Largest ceiling.
pub const MAX: Duration = Duration::from_secs(30);

/// Backoff state: how many failures in a row.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BASE, MAX)
    }
}

impl Backoff {
    /// Backoff from `base` up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
        }
    }

    /// The delay before the next attempt; `jitter` in `[0, 1]` picks within the window.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Back to the first delay (after a successful connection).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A uniform random number in `[0, 1]` from the OS.
pub fn random_jitter() -> f64 {
    use ring::rand::SecureRandom as _;

    let mut bytes = [0u8; 4];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_bounds_and_resets() {
        let mut b = Backoff::default();
        let lows: Vec<_> = (0..10).map(|_| b.next_delay(0.0)).collect();
        assert_eq!(lows[0], Duration::from_millis(250));
        assert_eq!(lows[1], Duration::from_millis(500));
        assert_eq!(lows[2], Duration::from_millis(1000));
        assert!(lows.iter().all(|d| *d <= MAX));
        assert_eq!(*lows.last().unwrap(), MAX / 2);
        assert_eq!(b.next_delay(1.0), MAX);
        for _ in 0..100 {
            let d = b.next_delay(random_jitter());
            assert!(d >= MAX / 2 && d <= MAX, "{d:?}");
        }
        b.reset();
        assert_eq!(b.next_delay(1.0), BASE);
        assert!(b.next_delay(7.0) <= BASE * 2, "jitter is clamped");
    }
}
