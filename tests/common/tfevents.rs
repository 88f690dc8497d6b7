//! A reader of TensorBoard event files written from the format's
//! specification, independently of the program's writer: TFRecord framing
//! with both masked CRC32C checked, and the protobuf fields of `Event`,
//! `Summary` and the hparams plugin's session start decoded by number.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// TFRecord's mask: rotate right by 15, add a constant (as the
/// specification writes it).
#[allow(clippy::manual_rotate)]
pub fn masked(crc: u32) -> u32 {
    ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// The records of an event file; panics on a torn record or a bad CRC.
pub fn records(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut at, mut out) = (0, Vec::new());
    while at < bytes.len() {
        assert!(at + 12 <= bytes.len(), "{}: torn header", path.display());
        let length = &bytes[at..at + 8];
        assert_eq!(
            u32_at(&bytes, at + 8),
            masked(crc32c(length)),
            "{}: length crc",
            path.display()
        );
        let n = u64::from_le_bytes(length.try_into().unwrap()) as usize;
        let data = at + 12;
        assert!(
            data + n + 4 <= bytes.len(),
            "{}: torn record",
            path.display()
        );
        let record = &bytes[data..data + n];
        assert_eq!(
            u32_at(&bytes, data + n),
            masked(crc32c(record)),
            "{}: data crc",
            path.display()
        );
        out.push(record.to_vec());
        at = data + n + 4;
    }
    out
}

/// A protobuf field's payload, by wire type.
#[derive(Debug, Clone)]
pub enum Field {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
    Fixed32([u8; 4]),
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

/// A message's fields in order, as (field number, payload).
pub fn fields(bytes: &[u8]) -> Vec<(u64, Field)> {
    let (mut at, mut out) = (0, Vec::new());
    while at < bytes.len() {
        let key = varint(bytes, &mut at);
        let field = match key & 7 {
            0 => Field::Varint(varint(bytes, &mut at)),
            1 => Field::Fixed64(bytes[at..at + 8].try_into().unwrap()),
            2 => {
                let n = varint(bytes, &mut at) as usize;
                Field::Bytes(bytes[at..at + n].to_vec())
            }
            5 => Field::Fixed32(bytes[at..at + 4].try_into().unwrap()),
            wire => panic!("unexpected wire type {wire}"),
        };
        at += match &field {
            Field::Varint(_) => 0,
            Field::Fixed64(_) => 8,
            Field::Bytes(b) => b.len(),
            Field::Fixed32(_) => 4,
        };
        out.push((key >> 3, field));
    }
    out
}

/// The single field `number` of `bytes`, if any (the last wins, as in
/// protobuf).
fn field(bytes: &[u8], number: u64) -> Option<Field> {
    fields(bytes)
        .into_iter()
        .rev()
        .find(|(n, _)| *n == number)
        .map(|(_, f)| f)
}

fn bytes_of(bytes: &[u8], number: u64) -> Option<Vec<u8>> {
    match field(bytes, number)? {
        Field::Bytes(b) => Some(b),
        other => panic!("field {number} is {other:?}, not bytes"),
    }
}

fn string_of(bytes: &[u8], number: u64) -> Option<String> {
    bytes_of(bytes, number).map(|b| String::from_utf8(b).unwrap())
}

fn double_of(bytes: &[u8], number: u64) -> Option<f64> {
    match field(bytes, number)? {
        Field::Fixed64(b) => Some(f64::from_le_bytes(b)),
        other => panic!("field {number} is {other:?}, not a double"),
    }
}

/// One `Summary.Value`: its tag, `simple_value`, and plugin data.
#[derive(Debug, Clone)]
pub struct SummaryValue {
    pub tag: String,
    pub simple_value: Option<f32>,
    /// `metadata.plugin_data`: (plugin_name, content).
    pub plugin: Option<(String, Vec<u8>)>,
}

/// One `Event`.
#[derive(Debug, Clone)]
pub struct Event {
    pub wall_time: f64,
    pub step: i64,
    pub file_version: Option<String>,
    pub values: Vec<SummaryValue>,
}

pub fn event(bytes: &[u8]) -> Event {
    let step = match field(bytes, 2) {
        Some(Field::Varint(v)) => v as i64,
        None => 0,
        other => panic!("step is {other:?}"),
    };
    let summary = bytes_of(bytes, 5).unwrap_or_default();
    let values = fields(&summary)
        .into_iter()
        .filter(|(n, _)| *n == 1)
        .map(|(_, f)| match f {
            Field::Bytes(value) => summary_value(&value),
            other => panic!("Summary.value is {other:?}"),
        })
        .collect();
    Event {
        wall_time: double_of(bytes, 1).expect("wall_time"),
        step,
        file_version: string_of(bytes, 3),
        values,
    }
}

fn summary_value(bytes: &[u8]) -> SummaryValue {
    let simple_value = match field(bytes, 2) {
        Some(Field::Fixed32(b)) => Some(f32::from_le_bytes(b)),
        None => None,
        other => panic!("simple_value is {other:?}"),
    };
    let plugin = bytes_of(bytes, 9)
        .and_then(|metadata| bytes_of(&metadata, 1))
        .map(|data| {
            let name = string_of(&data, 1).unwrap_or_default();
            (name, bytes_of(&data, 2).unwrap_or_default())
        });
    SummaryValue {
        tag: string_of(bytes, 1).unwrap_or_default(),
        simple_value,
        plugin,
    }
}

/// The events of the file at `path`, whose first must be the file version.
pub fn events(path: &Path) -> Vec<Event> {
    let events: Vec<Event> = records(path).iter().map(|r| event(r)).collect();
    assert_eq!(
        events.first().and_then(|e| e.file_version.as_deref()),
        Some("brain.Event:2"),
        "{}",
        path.display()
    );
    events
}

/// The event files TensorBoard reads in `dir`: names holding `tfevents`,
/// in sorted order.
pub fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .contains("tfevents")
    });
    files.sort();
    files
}

/// Every scalar point under `RUN/logs/{train,validation}`, in the order
/// TensorBoard reads them: (folder, tag) -> [(step, value)].
pub type Scalars = BTreeMap<(String, String), Vec<(i64, f32)>>;

pub fn scalars(run: &Path) -> Scalars {
    let mut out = Scalars::new();
    for folder in ["train", "validation"] {
        for file in event_files(&run.join("logs").join(folder)) {
            for event in events(&file) {
                for value in event.values {
                    let point = (event.step, value.simple_value.expect("a scalar"));
                    out.entry((folder.to_owned(), value.tag))
                        .or_default()
                        .push(point);
                }
            }
        }
    }
    out
}

/// A setting as `google.protobuf.Value` holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// The hparams plugin's session start in `RUN/logs`: its settings and
/// start time. Panics unless there is exactly one.
pub fn session_start(run: &Path) -> (BTreeMap<String, Setting>, f64) {
    let mut found = Vec::new();
    for file in event_files(&run.join("logs")) {
        for event in events(&file) {
            for value in event.values {
                if let Some((plugin, content)) = value.plugin {
                    assert_eq!(plugin, "hparams");
                    assert_eq!(value.tag, "_hparams_/session_start_info");
                    found.push(content);
                }
            }
        }
    }
    assert_eq!(found.len(), 1, "one session start in {}", run.display());
    let content = &found[0];
    // HParamsPluginData { version = 1: 0, session_start_info = 3 }.
    assert!(matches!(field(content, 1), None | Some(Field::Varint(0))));
    let start = bytes_of(content, 3).expect("session_start_info");
    let mut settings = BTreeMap::new();
    for (number, entry) in fields(&start) {
        let Field::Bytes(entry) = entry else { continue };
        if number != 1 {
            continue;
        }
        let key = string_of(&entry, 1).unwrap();
        let value = bytes_of(&entry, 2).unwrap_or_default();
        let setting = match fields(&value).last().cloned() {
            Some((2, Field::Fixed64(b))) => Setting::Number(f64::from_le_bytes(b)),
            Some((3, Field::Bytes(s))) => Setting::Text(String::from_utf8(s).unwrap()),
            Some((4, Field::Varint(b))) => Setting::Bool(b != 0),
            other => panic!("{key}: unexpected Value {other:?}"),
        };
        settings.insert(key, setting);
    }
    (settings, double_of(&start, 5).expect("start_time_secs"))
}

/// A CSV file of the run as (header, rows of cells).
fn table(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect::<Vec<_>>());
    let header = lines.next().expect("a header");
    (header, lines.collect())
}

/// `row`'s cell under `column`, parsed.
fn cell<T: std::str::FromStr>(header: &[String], row: &[String], column: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let at = header
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no {column}"));
    row[at].parse().unwrap()
}

/// The points the event files must hold, from `history.csv` and
/// `steps.csv` (values rounded to f32 from the CSVs' exact f64): the
/// epoch's figures at the epoch's index, the running figures at the
/// global step `epoch * steps_per_epoch + step`. The learning rate, which
/// neither CSV has, is left out.
pub fn expected_scalars(run: &Path) -> Scalars {
    let mut out = Scalars::new();
    let mut push = |folder: &str, tag: &str, step: i64, value: f64| {
        let key = (folder.to_owned(), tag.to_owned());
        out.entry(key).or_default().push((step, value as f32));
    };
    let (header, rows) = table(&run.join("steps.csv"));
    for row in &rows {
        let number = |column| cell::<i64>(&header, row, column);
        let global = number("epoch") * number("steps_per_epoch") + number("step");
        for (tag, column) in [("batch_loss", "loss"), ("batch_accuracy", "accuracy")] {
            push("train", tag, global, cell(&header, row, column));
        }
    }
    let (header, rows) = table(&run.join("history.csv"));
    let epoch_columns = [
        ("train", "epoch_loss", "loss"),
        ("train", "epoch_accuracy", "accuracy"),
        ("validation", "epoch_loss", "val_loss"),
        ("validation", "epoch_accuracy", "val_accuracy"),
    ];
    for row in &rows {
        let epoch: i64 = cell(&header, row, "epoch");
        for (folder, tag, column) in epoch_columns {
            push(folder, tag, epoch, cell(&header, row, column));
        }
    }
    out
}

/// The scalars bit for bit (f32 `==` would take -0 for 0 and miss NaN).
pub fn bits(scalars: &Scalars) -> BTreeMap<(String, String), Vec<(i64, u32)>> {
    scalars
        .iter()
        .map(|(key, points)| {
            (
                key.clone(),
                points.iter().map(|(s, v)| (*s, v.to_bits())).collect(),
            )
        })
        .collect()
}

/// The run's event points with the learning rate apart: (the points the
/// CSVs have, the learning rate by epoch).
pub fn split_learning_rate(run: &Path) -> (Scalars, Vec<(i64, f32)>) {
    let mut all = scalars(run);
    let rate = all
        .remove(&("train".to_owned(), "epoch_learning_rate".to_owned()))
        .unwrap_or_default();
    (all, rate)
}
