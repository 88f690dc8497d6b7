//! CSV and TSV files (the `csv` crate): a header row or not, the text and
//! label columns by name or 0-based position, every row with the same
//! number of fields, every field valid UTF-8, and no quote left open.
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::{Column, Header, Place, Row, TableOptions};

/// Streams the rows of the delimited file at `path` to `sink`; returns how
/// the columns were chosen when no flag named them and a header did.
pub(super) fn read(
    path: &Path,
    delimiter: u8,
    opts: &TableOptions,
    input: impl Read,
    sink: &mut dyn FnMut(Row) -> Result<()>,
) -> Result<Option<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(LineFeeds::new(input));
    let mut record = csv::ByteRecord::new();
    let mut columns: Option<Columns> = None;
    // Where the last record's reading started: an unclosed quote can only
    // be there or later.
    let mut last = csv::Position::new();
    while read_record(&mut reader, &mut record)? {
        if let Some(position) = record.position() {
            last = position.clone();
        }
        let line = record_line(&mut reader, &record);
        let columns = match &columns {
            Some(c) => c,
            None => {
                let first = columns.insert(Columns::resolve(&record, line, opts)?);
                if opts.header == Header::Present {
                    continue;
                }
                first
            }
        };
        if record.len() != columns.width {
            // An open quote swallows the lines after it: name that first.
            ensure_quotes_closed(path, delimiter, &last)?;
            let few = record.len() < columns.width;
            // Only a quoted field can hold a line break.
            let spans = line_feeds_in(&record) > 0;
            bail!(
                "line {line}: {} fields, {} than the {} of line {}{}",
                record.len(),
                if few { "fewer" } else { "more" },
                columns.width,
                columns.first_line,
                if spans {
                    " (a quote left open above it?)"
                } else {
                    ""
                }
            );
        }
        sink(Row {
            place: Place::Line(line),
            text: utf8(&record[columns.text], "text", line)?,
            label: utf8(&record[columns.label], "label", line)?
                .trim()
                .to_owned(),
        })?;
    }
    ensure_quotes_closed(path, delimiter, &last)?;
    Ok(columns.and_then(|c| c.chosen))
}

/// The next record, or `false` at the end of the file.
fn read_record(reader: &mut csv::Reader<impl Read>, record: &mut csv::ByteRecord) -> Result<bool> {
    // Flexible byte records fail only on reading.
    reader
        .read_byte_record(record)
        .map_err(|e| anyhow!("cannot read it: {e}"))
}

/// The line a record just read starts on. The csv crate's record position
/// is where its reading started, which is the line before when a CRLF or a
/// blank line comes before the record (rust-csv issues 395 and 208); so the
/// line is counted back from where the reading stopped: less the line
/// feeds in the record and the one that ended it, if one did (a CR of a
/// CRLF ends a record, leaving its LF to the next reading).
fn record_line<R: Read>(reader: &mut csv::Reader<LineFeeds<R>>, record: &csv::ByteRecord) -> u64 {
    let end = reader.position().clone();
    let ended_by_line_feed = end.byte() > 0 && reader.get_mut().is_line_feed(end.byte() - 1);
    // Every line feed taken off is one the parser passed, so this is at
    // least 1; saturating all the same, as a line number is not worth a
    // panic.
    end.line()
        .saturating_sub(line_feeds_in(record) + u64::from(ended_by_line_feed))
        .max(1)
}

/// The line feeds in a record's fields (quoted ones keep theirs).
fn line_feeds_in(record: &csv::ByteRecord) -> u64 {
    record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64
}

/// The input of the csv reader, keeping the offsets of its line feeds from
/// the one the parser last asked about on: no more than its buffer and one
/// record's worth.
struct LineFeeds<R> {
    input: R,
    /// The offset of the next byte read.
    offset: u64,
    line_feeds: VecDeque<u64>,
}

impl<R> LineFeeds<R> {
    fn new(input: R) -> Self {
        LineFeeds {
            input,
            offset: 0,
            line_feeds: VecDeque::new(),
        }
    }

    /// Whether the byte at `offset` is a line feed. Offsets asked about
    /// never go back, so the ones before are forgotten.
    fn is_line_feed(&mut self, offset: u64) -> bool {
        while self.line_feeds.front().is_some_and(|&at| at < offset) {
            self.line_feeds.pop_front();
        }
        self.line_feeds.front() == Some(&offset)
    }
}

impl<R: Read> Read for LineFeeds<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        let at = self.offset;
        let found = buf[..n].iter().enumerate().filter(|(_, &b)| b == b'\n');
        self.line_feeds.extend(found.map(|(i, _)| at + i as u64));
        self.offset += n as u64;
        Ok(n)
    }
}

fn utf8(field: &[u8], what: &str, line: u64) -> Result<String> {
    match std::str::from_utf8(field) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => bail!(
            "line {line}: the {what} is not valid UTF-8 (byte {} of the field); save the file as UTF-8",
            e.valid_up_to()
        ),
    }
}

/// The csv crate takes a quote that is never closed as running to the end
/// of the file, so it can only be in the record that starts at `from` or
/// later; those bytes are scanned again with the quoting rule (a quote
/// opens a field only at its start).
fn ensure_quotes_closed(path: &Path, delimiter: u8, from: &csv::Position) -> Result<()> {
    let mut file = File::open(path).context("cannot open it again")?;
    file.seek(SeekFrom::Start(from.byte()))?;
    let mut tail = Vec::new();
    BufReader::new(file).read_to_end(&mut tail)?;
    if let Some(opened) = unclosed_quote(&tail, delimiter) {
        let lines_before = tail[..opened].iter().filter(|&&b| b == b'\n').count() as u64;
        bail!(
            "line {}: this quote is never closed",
            from.line() + lines_before
        );
    }
    Ok(())
}

/// The offset of a quote that opens a field and is never closed.
fn unclosed_quote(bytes: &[u8], delimiter: u8) -> Option<usize> {
    let mut at_field_start = true;
    let mut opened: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match opened {
            Some(_) if b == b'"' && bytes.get(i + 1) == Some(&b'"') => i += 1,
            Some(_) if b == b'"' => opened = None,
            Some(_) => {}
            None if b == b'"' && at_field_start => opened = Some(i),
            None => {}
        }
        at_field_start = opened.is_none() && (b == delimiter || b == b'\n');
        i += 1;
    }
    opened
}

/// Where the text and label are in every row.
struct Columns {
    text: usize,
    label: usize,
    width: usize,
    first_line: u64,
    /// How they were chosen, when neither flags nor `text` and `label`
    /// headers said.
    chosen: Option<String>,
}

/// Header names that make a column the label (any case) when no flag says
/// which column is: a two-column file is read the right way round whatever
/// its order (`label,review` as well as `review,label`).
const LABEL_NAMES: [&str; 6] = [
    "label",
    "labels",
    "class",
    "category",
    "sentiment",
    "target",
];

impl Columns {
    /// From the first record, on `first_line`: the header (if there is one)
    /// or the first row.
    fn resolve(first: &csv::ByteRecord, first_line: u64, opts: &TableOptions) -> Result<Columns> {
        let width = first.len();
        let names: Vec<String> = match opts.header {
            Header::Present => (0..width)
                .map(|i| utf8(&first[i], "header", first_line).map(|n| n.trim().to_owned()))
                .collect::<Result<_>>()?,
            Header::Absent => Vec::new(),
        };
        let find = |column: &Column, flag: &str| -> Result<usize> {
            match column {
                Column::Position(i) if *i < width => Ok(*i),
                Column::Position(i) => {
                    bail!("{flag} {i}: line {first_line} has {width} columns, counted from 0")
                }
                Column::Name(name) if names.is_empty() => bail!(
                    "{flag} '{name}' is a column name, but the file has no header row: give its 0-based position"
                ),
                Column::Name(name) => names.iter().position(|n| n == name).with_context(|| {
                    format!("{flag}: no column '{name}' in the header (its columns: {})", names.join(", "))
                }),
            }
        };
        let named = |default: &str| names.iter().position(|n| n == default);
        let (text, label) = match (&opts.text_column, &opts.label_column) {
            (Some(t), Some(l)) => (find(t, "--text-column")?, find(l, "--label-column")?),
            (Some(t), None) => {
                let t = find(t, "--text-column")?;
                (t, named("label").or(other_of_two(width, t)).context(
                    "no column 'label' and not two columns: say which with --label-column",
                )?)
            }
            (None, Some(l)) => {
                let l = find(l, "--label-column")?;
                (named("text").or(other_of_two(width, l)).context(
                    "no column 'text' and not two columns: say which with --text-column",
                )?, l)
            }
            (None, None) => match (named("text"), named("label")) {
                (Some(t), Some(l)) => (t, l),
                _ if width == 2 => {
                    let l = label_by_name(&names).unwrap_or(1);
                    (1 - l, l)
                }
                _ => bail!(
                    "{width} columns and no 'text' and 'label' among them: say which with --text-column and --label-column"
                ),
            },
        };
        if text == label {
            bail!("the text and the label are the same column ({text})");
        }
        // Told only when the header does not say it in so many words.
        let by_flags = opts.text_column.is_some() || opts.label_column.is_some();
        let said = named("text") == Some(text) && named("label") == Some(label);
        let chosen = (!by_flags && !said && !names.is_empty()).then(|| {
            format!(
                "texts from column '{}' and labels from column '{}' (--text-column and \
                 --label-column choose others)",
                names[text], names[label]
            )
        });
        Ok(Columns {
            text,
            label,
            width,
            first_line,
            chosen,
        })
    }
}

/// The one column of two whose header is a label's name, if exactly one is.
fn label_by_name(names: &[String]) -> Option<usize> {
    let is_label = |n: &String| LABEL_NAMES.iter().any(|l| n.eq_ignore_ascii_case(l));
    match names.iter().map(is_label).collect::<Vec<_>>()[..] {
        [true, false] => Some(0),
        [false, true] => Some(1),
        _ => None,
    }
}

/// In a file of two columns, the one that is not `taken`.
fn other_of_two(width: usize, taken: usize) -> Option<usize> {
    (width == 2).then_some(1 - taken.min(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_two_columns_the_one_named_like_a_label_holds_the_labels() {
        let names = |a: &str, b: &str| [a.to_owned(), b.to_owned()];
        assert_eq!(label_by_name(&names("label", "review")), Some(0));
        assert_eq!(label_by_name(&names("review", "Sentiment")), Some(1));
        assert_eq!(label_by_name(&names("CATEGORY", "text")), Some(0));
        assert_eq!(label_by_name(&names("a", "b")), None);
        assert_eq!(label_by_name(&names("class", "target")), None);
    }

    #[test]
    fn a_quote_is_unclosed_only_when_it_opens_a_field() {
        assert_eq!(unclosed_quote(b"a,\"b", b','), Some(2));
        assert_eq!(unclosed_quote(b"a,\"b\"\"c\"\n", b','), None);
        assert_eq!(unclosed_quote(b"a,b\"c\n", b','), None);
        assert_eq!(unclosed_quote(b"\"a\nb\",1\n", b','), None);
        assert_eq!(unclosed_quote(b"x,1\n\"a\nb,1\n", b','), Some(4));
    }
}
