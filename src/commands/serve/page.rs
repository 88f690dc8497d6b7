//! `GET /`: one self-contained page (inline CSS and script, nothing
//! fetched from elsewhere) with a text box and the answer as a bar.
//! `/?text=...` fills the box and asks at once (for links and screenshots).

const PAGE: &str = include_str!("page.html");

/// The page for the model `name` (a JSON string in the script, with `<`
/// escaped so that no name can close the script).
pub fn page_for(name: &str) -> String {
    let quoted = serde_json::Value::from(name)
        .to_string()
        .replace('<', "\\u003c");
    PAGE.replace("\"__MODEL_NAME__\"", &quoted)
}
