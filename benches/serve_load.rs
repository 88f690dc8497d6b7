//! Load generator for `gru-imdb serve`: simulated callers, each on its own
//! kept-alive HTTP/1.1 connection, send TF Serving predict requests back to
//! back; reports requests/s, reviews/s and p50/p99 latency at each
//! concurrency and reviews per request.
//!
//! ```text
//! gru-imdb serve RUN --port 8501 &
//! cargo bench --bench serve_load -- --url http://127.0.0.1:8501/v1/models/RUN:predict \
//!     --texts reviews.txt [--seconds 5] [--concurrency 1,16,256] [--reviews 1,32]
//! ```
//!
//! `--texts` holds one review per line. The client runs on one thread, so
//! that on a small machine it takes as little as it can from the server.
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What to measure, from the command line.
struct Plan {
    url: hyper::Uri,
    texts: Vec<String>,
    duration: Duration,
    concurrency: Vec<usize>,
    reviews: Vec<usize>,
}

/// One caller's record.
#[derive(Default)]
struct Record {
    latencies: Vec<Duration>,
    errors: usize,
}

fn main() {
    let plan = match parse_args() {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            eprintln!("serve_load: give --url and --texts to measure a running `gru-imdb serve` (see benches/serve_load.rs); skipping");
            return;
        }
        Err(err) => {
            eprintln!("serve_load: {err}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!("reviews/request  concurrency  requests/s  reviews/s  p50 ms  p99 ms  errors");
    for &reviews in &plan.reviews {
        let bodies = bodies(&plan.texts, reviews);
        // Warm-up: the connections, the server's first batches.
        runtime.block_on(measure(&plan, &bodies, 4, Duration::from_millis(500)));
        for &concurrency in &plan.concurrency {
            let (records, elapsed) =
                runtime.block_on(measure(&plan, &bodies, concurrency, plan.duration));
            report(reviews, concurrency, &records, elapsed);
        }
    }
}

fn parse_args() -> Result<Option<Plan>, String> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let (Some(url), Some(texts)) = (value("--url"), value("--texts")) else {
        return Ok(None);
    };
    let list = |flag: &str, default: &str| -> Result<Vec<usize>, String> {
        value(flag)
            .unwrap_or_else(|| default.to_owned())
            .split(',')
            .map(|n| n.parse().map_err(|_| format!("{flag}: not a count list")))
            .collect()
    };
    let texts: Vec<String> = std::fs::read_to_string(&texts)
        .map_err(|e| format!("cannot read --texts {texts}: {e}"))?
        .lines()
        .map(String::from)
        .collect();
    if texts.is_empty() {
        return Err("--texts holds no reviews".to_owned());
    }
    Ok(Some(Plan {
        url: url.parse().map_err(|e| format!("--url {url}: {e}"))?,
        texts,
        duration: Duration::from_secs_f64(value("--seconds").map_or(Ok(5.0), |s| {
            s.parse().map_err(|_| "--seconds: not a number")
        })?),
        concurrency: list("--concurrency", "1,16,256")?,
        reviews: list("--reviews", "1,32")?,
    }))
}

/// Request bodies of `reviews` reviews each, taken in turn from `texts`.
fn bodies(texts: &[String], reviews: usize) -> Vec<Bytes> {
    let count = (texts.len() / reviews).clamp(1, 256);
    (0..count)
        .map(|b| {
            let instances: Vec<&String> = (0..reviews)
                .map(|i| &texts[(b * reviews + i) % texts.len()])
                .collect();
            Bytes::from(serde_json::json!({ "instances": instances }).to_string())
        })
        .collect()
}

/// `concurrency` callers for `duration`: their records, and the time taken.
async fn measure(
    plan: &Plan,
    bodies: &[Bytes],
    concurrency: usize,
    duration: Duration,
) -> (Vec<Record>, Duration) {
    let started = Instant::now();
    let until = started + duration;
    let callers: Vec<_> = (0..concurrency)
        .map(|caller| {
            let (url, bodies) = (plan.url.clone(), bodies.to_vec());
            tokio::spawn(caller_loop(url, bodies, caller, until))
        })
        .collect();
    let mut records = Vec::new();
    for caller in callers {
        records.push(caller.await.unwrap_or_default());
    }
    (records, started.elapsed())
}

/// One caller: a connection, and requests back to back until `until`.
async fn caller_loop(url: hyper::Uri, bodies: Vec<Bytes>, caller: usize, until: Instant) -> Record {
    let mut record = Record::default();
    let address = format!(
        "{}:{}",
        url.host().unwrap_or("127.0.0.1"),
        url.port_u16().unwrap_or(80)
    );
    let Ok(stream) = TcpStream::connect(&address).await else {
        record.errors += 1;
        return record;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, connection)) = http1::handshake(TokioIo::new(stream)).await else {
        record.errors += 1;
        return record;
    };
    tokio::spawn(connection);
    let mut turn = caller;
    while Instant::now() < until {
        let request = Request::post(url.clone())
            .header("content-type", "application/json")
            .header("host", &address)
            .body(Full::new(bodies[turn % bodies.len()].clone()))
            .expect("a request");
        turn += 1;
        let sent = Instant::now();
        match sender.send_request(request).await {
            Ok(response) => {
                let ok = response.status() == StatusCode::OK;
                let body = response.into_body().collect().await;
                match (ok, body) {
                    (true, Ok(_)) => record.latencies.push(sent.elapsed()),
                    _ => record.errors += 1,
                }
            }
            Err(_) => {
                record.errors += 1;
                break;
            }
        }
    }
    record
}

fn report(reviews: usize, concurrency: usize, records: &[Record], elapsed: Duration) {
    let mut latencies: Vec<Duration> = records
        .iter()
        .flat_map(|r| r.latencies.iter().copied())
        .collect();
    latencies.sort();
    let errors: usize = records.iter().map(|r| r.errors).sum();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    let per_second = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{reviews:>15}  {concurrency:>11}  {per_second:>10.1}  {:>9.0}  {:>6.2}  {:>6.2}  {errors:>6}",
        per_second * reviews as f64,
        at(0.50),
        at(0.99)
    );
}
