//! The routes: TF Serving's `/v1/models/<name>[:predict|/metadata]`, the
//! page, `/healthz` and `/metrics`; anything else is a JSON 404 or 405.
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::api;
use super::batcher::{Batcher, ModelFacts};
use super::errors::ApiError;
use super::log::{log_request, Answered, RequestLog};
use super::metrics::Metrics;
use crate::settings::{Access, ServeLimits};

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub batcher: Batcher,
    pub facts: Arc<ModelFacts>,
    pub metrics: Arc<Metrics>,
    pub model_name: Arc<str>,
    pub limits: ServeLimits,
    pub page: Arc<str>,
    pub log_texts: bool,
}

/// The whole service: the API behind `access`, every request logged.
pub fn router(app: App, access: Access) -> Router {
    let log = RequestLog {
        metrics: app.metrics.clone(),
    };
    let api = Router::new()
        .route("/v1/models/{target}", only(get(status).post(predict)))
        .route("/v1/models/{name}/metadata", only(get(metadata)))
        .route("/metrics", only(get(metrics)))
        .layer(middleware::from_fn_with_state(
            access,
            super::access::require_key,
        ));
    Router::new()
        .route("/", only(get(page)))
        .route("/healthz", only(get(healthz)))
        .merge(api)
        .fallback(no_route)
        .with_state(app)
        .layer(middleware::from_fn_with_state(log, log_request))
}

/// A route's methods, and a JSON 405 for the others.
fn only(methods: MethodRouter<App>) -> MethodRouter<App> {
    methods.fallback(|method: Method| async move {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed here"),
        )
    })
}

async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {method} {}", uri.path()),
    )
}

/// What `/v1/models/<target>` asks for.
enum Verb {
    Status,
    Predict,
}

/// The verb of `target` (`<name>` or `<name>:predict`), if it names this
/// server's model (404 otherwise).
fn verb_of(app: &App, target: &str) -> Result<Verb, ApiError> {
    let (name, verb) = match target.rsplit_once(':') {
        Some((name, "predict")) => (name, Verb::Predict),
        Some((_, other)) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no method ':{other}': this server answers ':predict'"),
            ))
        }
        None => (target, Verb::Status),
    };
    check_name(app, name)?;
    Ok(verb)
}

fn check_name(app: &App, name: &str) -> Result<(), ApiError> {
    if name == &*app.model_name {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no model '{name}': this server serves '{}'", app.model_name),
    ))
}

async fn status(State(app): State<App>, Path(target): Path<String>) -> Response {
    match verb_of(&app, &target) {
        Ok(Verb::Status) => json(api::status().to_string()),
        Ok(Verb::Predict) => {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "use POST for ':predict'").into_response()
        }
        Err(err) => err.into_response(),
    }
}

async fn metadata(State(app): State<App>, Path(name): Path<String>) -> Response {
    match check_name(&app, &name) {
        Ok(()) => json(api::metadata(&name, &app.facts).to_string()),
        Err(err) => err.into_response(),
    }
}

async fn predict(State(app): State<App>, Path(target): Path<String>, request: Request) -> Response {
    match answer(&app, &target, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn answer(app: &App, target: &str, request: Request) -> Result<Response, ApiError> {
    if let Verb::Status = verb_of(app, target)? {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET for a model's status, or POST to '<name>:predict'",
        ));
    }
    api::check_content_type(request.headers())?;
    check_declared_length(request.headers(), &app.limits)?;
    let body = read_body(request.into_body(), &app.limits).await?;
    let texts = api::instances(&body, &app.limits)?;
    let answered = Answered {
        instances: texts.len(),
        texts: app.log_texts.then(|| texts.clone()),
    };
    // Tokenized here, on the request's thread, beside the model's work.
    let rows = app.facts.encoder.rows(&texts);
    let probabilities = app.batcher.predict(rows, texts.len()).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model's worker has stopped",
        )
    })?;
    let mut response = json(api::predictions(&probabilities, &app.facts));
    response.extensions_mut().insert(answered);
    Ok(response)
}

/// Refuses at once a body declared larger than the limit (413), before a
/// byte of it is read.
fn check_declared_length(headers: &HeaderMap, limits: &ServeLimits) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limits.max_body_bytes as u64 => Err(too_large(limits)),
        _ => Ok(()),
    }
}

fn too_large(limits: &ServeLimits) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {} bytes", limits.max_body_bytes),
    )
}

/// The whole body, within the size limit (413) and the read timeout (408).
async fn read_body(body: Body, limits: &ServeLimits) -> Result<Bytes, ApiError> {
    let limited = Limited::new(body, limits.max_body_bytes);
    match tokio::time::timeout(limits.read_timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limits)),
        Ok(Err(err)) => Err(ApiError::bad_request(format!(
            "cannot read the body: {err}"
        ))),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} ms",
                limits.read_timeout.as_millis()
            ),
        )),
    }
}

async fn page(State(app): State<App>) -> Html<String> {
    Html(app.page.to_string())
}

/// `ok` while the model's thread runs; 503 once it has stopped, so that
/// whatever watches the server restarts it.
async fn healthz(State(app): State<App>) -> Response {
    match app.batcher.is_alive() {
        true => json(r#"{"status":"ok"}"#.to_owned()),
        false => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model's thread has stopped; restart the server",
        )
        .into_response(),
    }
}

/// A JSON body, already written.
fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}
