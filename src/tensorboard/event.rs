//! The messages of an event file: `Event` (TensorFlow's `event.proto`),
//! its `Summary` of one scalar, and the hparams plugin's session start,
//! which TensorBoard's HParams dashboard reads the run's settings from.
//! Only the fields written are encoded; field numbers are the protos'.
use std::collections::BTreeMap;

use serde_json::Value;

use crate::protobuf::Message;

/// What TensorBoard expects as the first event of a file.
pub const FILE_VERSION: &str = "brain.Event:2";
/// The tag of the hparams plugin's session start.
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
pub const HPARAMS_PLUGIN: &str = "hparams";

/// `Event { wall_time = 1, step = 2, file_version = 3 }`.
pub fn file_version(wall_time: f64) -> Vec<u8> {
    Message::new()
        .double(1, wall_time)
        .string(3, FILE_VERSION)
        .into_bytes()
}

/// `Event { wall_time, step, summary = 5 { value = 1 { tag = 1,
/// simple_value = 2 } } }`: one point of the curve `tag`.
pub fn scalar(wall_time: f64, step: i64, tag: &str, value: f32) -> Vec<u8> {
    let value = Message::new().string(1, tag).float(2, value);
    summary_event(wall_time, step, value)
}

/// The run's settings as the hparams plugin's `session_start_info` at step
/// 0: a value with no data of its own (a null tensor, as the plugin's own
/// writer adds) whose metadata carries the settings.
pub fn session_start(
    wall_time: f64,
    start_time_secs: f64,
    hparams: &BTreeMap<String, Value>,
) -> Vec<u8> {
    let mut start = Message::new();
    for (name, value) in hparams {
        // A map field is a repeated entry { key = 1, value = 2 }.
        let entry = Message::new()
            .string(1, name)
            .message(2, struct_value(value));
        start = start.message(1, entry);
    }
    let start = start.double(5, start_time_secs);
    // HParamsPluginData { version = 1 (0: omitted), session_start_info = 3 }.
    let content = Message::new().message(3, start).into_bytes();
    let plugin_data = Message::new().string(1, HPARAMS_PLUGIN).bytes(2, &content);
    let metadata = Message::new().message(1, plugin_data);
    let value = Message::new()
        .string(1, SESSION_START_TAG)
        .message(8, null_tensor())
        .message(9, metadata);
    summary_event(wall_time, 0, value)
}

fn summary_event(wall_time: f64, step: i64, value: Message) -> Vec<u8> {
    let summary = Message::new().message(1, value);
    Message::new()
        .double(1, wall_time)
        .varint(2, step as u64)
        .message(5, summary)
        .into_bytes()
}

/// `google.protobuf.Value`: numbers as `number_value = 2`, strings as
/// `string_value = 3`, booleans as `bool_value = 4`; a null or a list
/// (no setting is one today) as its JSON text, which the dashboard shows.
fn struct_value(value: &Value) -> Message {
    match value {
        Value::Number(n) => Message::new().double(2, n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Message::new().string(3, s),
        Value::Bool(b) => Message::new().varint(4, u64::from(*b)),
        other => Message::new().string(3, &other.to_string()),
    }
}

/// `TensorProto { dtype = 1: DT_FLOAT, tensor_shape = 2: scalar,
/// float_val = 5: [0] }`: TensorBoard keeps a summary value only with data.
fn null_tensor() -> Message {
    Message::new()
        .varint(1, 1)
        .message(2, Message::new())
        .bytes(5, &0f32.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scalar_event_holds_its_time_step_tag_and_value_in_protobuf_fields() {
        let bytes = scalar(2.0, 300, "epoch_loss", 0.5);
        let mut expected = vec![0x09];
        expected.extend_from_slice(&2.0f64.to_le_bytes());
        expected.extend_from_slice(&[0x10, 0xac, 0x02]); // step 300
                                                         // summary (5) { value (1) { tag (1) "epoch_loss", simple_value (2) } }
        expected.extend_from_slice(&[0x2a, 19, 0x0a, 17, 0x0a, 10]);
        expected.extend_from_slice(b"epoch_loss");
        expected.push(0x15);
        expected.extend_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn settings_are_typed_protobuf_values() {
        let number = struct_value(&serde_json::json!(0.001)).into_bytes();
        assert_eq!(number[0], 0x11);
        assert_eq!(number[1..], 0.001f64.to_le_bytes());
        assert_eq!(
            struct_value(&serde_json::json!("cpu")).into_bytes(),
            b"\x1a\x03cpu"
        );
        assert_eq!(
            struct_value(&serde_json::json!(true)).into_bytes(),
            [0x20, 1]
        );
        assert_eq!(struct_value(&Value::Null).into_bytes(), b"\x1a\x04null");
    }
}
