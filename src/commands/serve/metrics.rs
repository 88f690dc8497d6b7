//! `GET /metrics` in Prometheus's text format: requests by route and
//! status, errors, a latency histogram, forward-pass batch sizes, and
//! reviews (a counter, and a rate over the last ten seconds).
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
/// Upper bounds of the batch-size histogram's buckets, in reviews.
const BATCH_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// The window of the reviews/s gauge.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Counts in buckets of `bounds` (cumulative when rendered), with their sum.
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// The sum of observations, in millionths.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        let bucket = self.bounds.partition_point(|&b| b < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut total = 0;
        for (i, count) in self.counts.iter().enumerate() {
            total += count.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(bound) => bound.to_string(),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {total}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

pub struct Metrics {
    /// By (route, status).
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Histogram,
    batch_sizes: Histogram,
    reviews: AtomicU64,
    /// (when, reviews) of the forward passes of the last `RATE_WINDOW`.
    recent: Mutex<VecDeque<(Instant, usize)>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Mutex::default(),
            latency: Histogram::new(LATENCY_BOUNDS),
            batch_sizes: Histogram::new(BATCH_BOUNDS),
            reviews: AtomicU64::new(0),
            recent: Mutex::default(),
        }
    }
}

impl Metrics {
    /// One answered request.
    pub fn request_done(&self, route: &'static str, status: u16, latency: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route, status)).or_default() += 1;
        drop(requests);
        self.latency.observe(latency.as_secs_f64());
    }

    /// One forward pass over `reviews` reviews.
    pub fn batch_done(&self, reviews: usize) {
        self.batch_sizes.observe(reviews as f64);
        self.reviews.fetch_add(reviews as u64, Ordering::Relaxed);
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.push_back((now, reviews));
        while recent
            .front()
            .is_some_and(|(at, _)| now - *at > RATE_WINDOW)
        {
            recent.pop_front();
        }
    }

    /// Reviews per second over the last ten seconds.
    fn review_rate(&self) -> f64 {
        let now = Instant::now();
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let reviews: usize = recent
            .iter()
            .filter(|(at, _)| now - *at <= RATE_WINDOW)
            .map(|(_, n)| n)
            .sum();
        reviews as f64 / RATE_WINDOW.as_secs_f64()
    }

    /// The whole page, in Prometheus's text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_requests(&mut out);
        self.latency.render(
            "gru_imdb_request_duration_seconds",
            "Time from a request's headers to its answer.",
            &mut out,
        );
        self.batch_sizes.render(
            "gru_imdb_batch_size_reviews",
            "Reviews in each forward pass.",
            &mut out,
        );
        let reviews = self.reviews.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP gru_imdb_reviews_total Reviews predicted.\n# TYPE gru_imdb_reviews_total counter\ngru_imdb_reviews_total {reviews}"
        );
        let _ = writeln!(
            out,
            "# HELP gru_imdb_reviews_per_second Reviews predicted per second over the last 10 s.\n# TYPE gru_imdb_reviews_per_second gauge\ngru_imdb_reviews_per_second {}",
            self.review_rate()
        );
        out
    }

    fn render_requests(&self, out: &mut String) {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP gru_imdb_requests_total Requests answered, by route and status.\n# TYPE gru_imdb_requests_total counter");
        for ((route, status), count) in requests.iter() {
            let _ = writeln!(
                out,
                "gru_imdb_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        let errors: u64 = requests
            .iter()
            .filter(|((_, status), _)| *status >= 400)
            .map(|(_, count)| count)
            .sum();
        let _ = writeln!(out, "# HELP gru_imdb_request_errors_total Requests answered with a 4xx or 5xx status.\n# TYPE gru_imdb_request_errors_total counter\ngru_imdb_request_errors_total {errors}");
    }
}
