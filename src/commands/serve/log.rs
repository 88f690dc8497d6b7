//! The request log: one line per request on stderr (method, path, status,
//! latency, reviews), and the request metrics. Review texts appear only
//! with `--log-texts`; the query string never does (the page's `?text=`).
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::metrics::Metrics;

/// What a predict handler leaves on its answer for the log.
#[derive(Clone)]
pub struct Answered {
    pub instances: usize,
    /// The texts, with `--log-texts` only.
    pub texts: Option<Vec<String>>,
}

#[derive(Clone)]
pub struct RequestLog {
    pub metrics: Arc<Metrics>,
}

pub async fn log_request(State(log): State<RequestLog>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    log.metrics.request_done(route_of(&path), status, elapsed);
    let ms = elapsed.as_secs_f64() * 1e3;
    match response.extensions().get::<Answered>() {
        Some(answered) => {
            eprintln!(
                "{method} {path} {status} {ms:.1}ms {} instances",
                answered.instances
            );
            for text in answered.texts.iter().flatten() {
                eprintln!("  text: {}", serde_json::Value::from(text.as_str()));
            }
        }
        None => eprintln!("{method} {path} {status} {ms:.1}ms"),
    }
    response
}

/// The route's name for the metrics: few, whatever the paths callers try.
fn route_of(path: &str) -> &'static str {
    match path {
        "/" => "page",
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        p if p.starts_with("/v1/models/") && p.ends_with(":predict") => "predict",
        p if p.starts_with("/v1/models/") && p.ends_with("/metadata") => "metadata",
        p if p.starts_with("/v1/models/") => "status",
        _ => "other",
    }
}
