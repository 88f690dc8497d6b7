//! TF Serving's REST bodies: `{"instances": [...]}` in, `{"predictions":
//! [...]}` out, and the model's status and metadata as TF Serving words
//! them.
use axum::http::{header, HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use super::batcher::ModelFacts;
use super::errors::ApiError;
use crate::commands::predict::labelled;
use crate::data::texts::json_kind;
use crate::settings::ServeLimits;

/// One review's answer: `predict --json`'s probability and label, and with
/// more than two classes every class's probability.
#[derive(Debug, Serialize)]
pub struct Prediction<'a> {
    pub probability: f64,
    pub label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f64>>,
}

/// Refuses a body that is not declared JSON (415).
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = declared.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    let got = match declared {
        "" => "none".to_owned(),
        other => format!("'{other}'"),
    };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("the body must be sent as Content-Type: application/json, got {got}"),
    ))
}

/// The review texts of a `{"instances": ["text", ...]}` body, within
/// `limits` (400 naming the problem otherwise).
pub fn instances(body: &[u8], limits: &ServeLimits) -> Result<Vec<String>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let Some(Value::Array(items)) = value.get("instances") else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object {\"instances\": [\"review text\", ...]}",
        ));
    };
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "\"instances\" is empty: give at least one review text",
        ));
    }
    if items.len() > limits.max_instances {
        return Err(ApiError::bad_request(format!(
            "\"instances\" holds {} reviews; at most {} may come in one request",
            items.len(),
            limits.max_instances
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| text_of(i, item, limits.max_text_bytes))
        .collect()
}

fn text_of(index: usize, item: &Value, max_bytes: usize) -> Result<String, ApiError> {
    let Value::String(text) = item else {
        return Err(ApiError::bad_request(format!(
            "instances[{index}] is {}, not a string: each instance is one review's text",
            json_kind(item)
        )));
    };
    if text.len() > max_bytes {
        return Err(ApiError::bad_request(format!(
            "instances[{index}] is {} bytes long; a review may have at most {max_bytes}",
            text.len()
        )));
    }
    Ok(text.clone())
}

/// `{"predictions": [...]}` for the class probabilities of each review.
pub fn predictions(probabilities: &[Vec<f64>], facts: &ModelFacts) -> String {
    let predictions: Vec<Prediction> = probabilities
        .iter()
        .map(|p| {
            let (probability, label) = labelled(p, &facts.class_names);
            Prediction {
                probability,
                label,
                probabilities: (p.len() > 2).then(|| p.clone()),
            }
        })
        .collect();
    json!({ "predictions": predictions }).to_string()
}

/// `GET /v1/models/<name>`: one version, available.
pub fn status() -> Value {
    json!({
        "model_version_status": [{
            "version": "1",
            "state": "AVAILABLE",
            "status": { "error_code": "OK", "error_message": "" }
        }]
    })
}

/// `GET /v1/models/<name>/metadata`: the model spec, and what a caller
/// needs to know of the model (its classes, input length, vocabulary and
/// the run's config).
pub fn metadata(name: &str, facts: &ModelFacts) -> Value {
    json!({
        "model_spec": { "name": name, "signature_name": "", "version": "1" },
        "metadata": {
            "classes": facts.class_names,
            "maxlen": facts.encoder.maxlen(),
            "vocabulary_size": facts.vocabulary_size,
            "weights": facts.weights,
            "config": facts.config,
        }
    })
}
