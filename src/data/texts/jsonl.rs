//! JSON Lines: one JSON object per line, the text and label under keys
//! (`text` and `label` unless told otherwise); blank lines are skipped. A
//! key given twice in one object is an error: JSON parsers differ on which
//! one counts.
use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, Read};

use anyhow::{anyhow, bail, Result};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{Column, Place, Row, TableOptions};

/// Streams the rows of a JSON Lines file to `sink`.
pub(super) fn read(
    opts: &TableOptions,
    input: impl Read,
    sink: &mut dyn FnMut(Row) -> Result<()>,
) -> Result<()> {
    let text_key = key(opts.text_column.as_ref(), "text", "--text-column")?;
    let label_key = key(opts.label_column.as_ref(), "label", "--label-column")?;
    let mut input = std::io::BufReader::with_capacity(1 << 16, input);
    let mut bytes = Vec::new();
    let mut line = 0u64;
    loop {
        bytes.clear();
        if input
            .read_until(b'\n', &mut bytes)
            .map_err(|e| anyhow!("cannot read it: {e}"))?
            == 0
        {
            return Ok(());
        }
        line += 1;
        let at = |problem: String| anyhow!("line {line}: {problem}");
        let json = std::str::from_utf8(&bytes).map_err(|e| {
            at(format!(
                "not valid UTF-8 (byte {} of the line); save the file as UTF-8",
                e.valid_up_to()
            ))
        })?;
        if json.trim().is_empty() {
            continue;
        }
        let (text, label) = text_and_label(json, text_key, label_key).map_err(at)?;
        sink(Row {
            place: Place::Line(line),
            text,
            label,
        })?;
    }
}

/// The text and label of one line, or what is wrong with it.
fn text_and_label(json: &str, text_key: &str, label_key: &str) -> Result<(String, String), String> {
    let Entries(entries) =
        serde_json::from_str(json).map_err(|e| format!("not a JSON object: {e}"))?;
    let mut keys = HashSet::new();
    if let Some((twice, _)) = entries.iter().find(|(key, _)| !keys.insert(key)) {
        return Err(format!(
            "the key '{twice}' is given twice in one object (which one is meant?)"
        ));
    }
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let text = match get(text_key) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "'{text_key}' is {}, not a string",
                json_kind(other)
            ))
        }
        None => {
            return Err(format!(
                "no key '{text_key}' (give another with --text-column)"
            ))
        }
    };
    // A missing or null label is left empty, for the caller to refuse like
    // an empty one.
    let label = match get(label_key) {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => {
            return Err(format!(
                "'{label_key}' is {}; a label is a string or an integer",
                json_kind(other)
            ))
        }
    };
    Ok((text, label))
}

/// A JSON object's entries in the line's order, a key given twice kept
/// twice (serde_json's `Map` would keep the last one, silently).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Entries;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(Entries(entries))
    }
}

/// The key of a column: JSON objects have no positions.
fn key<'a>(column: Option<&'a Column>, default: &'a str, flag: &str) -> Result<&'a str> {
    match column {
        None => Ok(default),
        Some(Column::Name(name)) => Ok(name),
        Some(Column::Position(i)) => {
            bail!("{flag} {i}: JSON Lines rows are objects, so name the key instead of a position")
        }
    }
}

/// What a JSON value is, in words, for messages about the wrong kind.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
