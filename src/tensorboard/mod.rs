//! TensorBoard's event files, written without TensorFlow: the scalars
//! Keras's `TensorBoard` callback logs and the settings as the hparams
//! plugin's session, so that `tensorboard --logdir runs` shows our runs
//! as it shows Keras's.
//!
//! An event file is a sequence of TFRecord records (`record`), each one
//! serialised `Event` (`event`), encoded by hand (`crate::protobuf`). [`EventFile`]
//! builds one whole file in memory: the run folder writes it atomically,
//! so a reader never sees a torn record.
mod event;
mod record;

use std::collections::BTreeMap;

use serde_json::Value;

/// A whole event file's bytes, its first record the file version.
#[derive(Debug, Clone)]
pub struct EventFile {
    bytes: Vec<u8>,
}

impl EventFile {
    /// A file whose first event, at `wall_time` (seconds since the Unix
    /// epoch), says which format it is.
    pub fn new(wall_time: f64) -> EventFile {
        let mut bytes = Vec::new();
        record::push_record(&mut bytes, &event::file_version(wall_time));
        EventFile { bytes }
    }

    /// One point of the curve `tag`.
    pub fn scalar(&mut self, tag: &str, step: i64, wall_time: f64, value: f32) {
        let event = event::scalar(wall_time, step, tag, value);
        record::push_record(&mut self.bytes, &event);
    }

    /// The run's settings, by dotted name, for the HParams dashboard.
    pub fn hparams(
        &mut self,
        wall_time: f64,
        start_time_secs: f64,
        hparams: &BTreeMap<String, Value>,
    ) {
        let event = event::session_start(wall_time, start_time_secs, hparams);
        record::push_record(&mut self.bytes, &event);
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}
