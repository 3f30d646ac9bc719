//! Latency histograms in microseconds, reported as p50/p99/max (or any quantile).

use std::time::Duration;

use hdrhistogram::Histogram;

pub struct Latencies(Histogram<u64>);

impl Latencies {
    #[allow(clippy::expect_used)] // constant bounds that hdrhistogram always accepts
    pub fn new() -> Self {
        // 1 us .. 60 s at 3 significant digits.
        Self(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
        let _ = self.0.record(micros);
    }

    pub fn merge(&mut self, other: &Latencies) {
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at quantile `q` (0.0 ..= 1.0) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }

    pub fn mean_ms(&self) -> f64 {
        self.0.mean() / 1000.0
    }

    pub fn summary(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "n={} min={:.3}ms p50={:.3}ms p99={:.3}ms max={:.3}ms",
            self.0.len(),
            ms(self.0.min()),
            ms(self.0.value_at_quantile(0.50)),
            ms(self.0.value_at_quantile(0.99)),
            ms(self.0.max())
        )
    }
}
