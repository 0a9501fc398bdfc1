use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
    SharedString,
};

use super::*;

/// A recorder that keeps values in memory, keyed by `name{label=value,...}`.
#[derive(Debug, Default)]
pub(crate) struct TestRecorder {
    values: Mutex<HashMap<String, Arc<Cell>>>,
}

/// One metric: counter/gauge value as f64 bits, histogram sample count.
#[derive(Debug, Default)]
pub(crate) struct Cell {
    value: Mutex<f64>,
    samples: AtomicU64,
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        *self.value.lock().unwrap() += value as f64;
    }
    fn absolute(&self, value: u64) {
        *self.value.lock().unwrap() = value as f64;
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        *self.value.lock().unwrap() += value;
    }
    fn decrement(&self, value: f64) {
        *self.value.lock().unwrap() -= value;
    }
    fn set(&self, value: f64) {
        *self.value.lock().unwrap() = value;
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        *self.value.lock().unwrap() += value;
        self.samples.fetch_add(1, Ordering::SeqCst);
    }
}

impl TestRecorder {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let id = if labels.is_empty() {
            key.name().to_owned()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        self.values.lock().unwrap().entry(id).or_default().clone()
    }

    /// The value of a counter or gauge (0 if never touched).
    pub(crate) fn value(&self, id: &str) -> f64 {
        self.values
            .lock()
            .unwrap()
            .get(id)
            .map_or(0.0, |c| *c.value.lock().unwrap())
    }

    /// Number of samples of a histogram.
    pub(crate) fn samples(&self, id: &str) -> u64 {
        self.values
            .lock()
            .unwrap()
            .get(id)
            .map_or(0, |c| c.samples.load(Ordering::SeqCst))
    }
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<metrics::Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<metrics::Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<metrics::Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

#[test]
fn upgraded_connection_guard_counts_while_alive() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        describe();
        let a = UpgradedConnectionGuard::new();
        let b = UpgradedConnectionGuard::default();
        assert_eq!(recorder.value(UPGRADED_CONNECTIONS), 2.0);
        drop(a);
        assert_eq!(recorder.value(UPGRADED_CONNECTIONS), 1.0);
        drop(b);
        assert_eq!(recorder.value(UPGRADED_CONNECTIONS), 0.0);
    });
}

#[test]
fn request_counter_and_histogram_are_labelled() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        record_request(200, "get", Duration::from_millis(250));
        record_request(200, "get", Duration::from_millis(250));
        record_request(403, "create", Duration::from_millis(1));
        token_cache_hit();
        token_cache_miss();
        token_cache_miss();
    });
    assert_eq!(
        recorder.value("tether_agent_proxy_requests_total{code=200,verb=get}"),
        2.0
    );
    assert_eq!(
        recorder.value("tether_agent_proxy_requests_total{code=403,verb=create}"),
        1.0
    );
    assert_eq!(
        recorder.samples("tether_agent_proxy_request_duration_seconds{verb=get}"),
        2
    );
    assert_eq!(
        recorder.value("tether_agent_proxy_request_duration_seconds{verb=get}"),
        0.5
    );
    assert_eq!(recorder.value(TOKEN_CACHE_HITS_TOTAL), 1.0);
    assert_eq!(recorder.value(TOKEN_CACHE_MISSES_TOTAL), 2.0);
}
