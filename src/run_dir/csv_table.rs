//! The run folder's CSV tables (`history.csv`, `steps.csv`): a header, then
//! one record per row, every line ending with a newline.
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `header` and one record per row (`fields` gives a row's cells).
pub fn write_table<R>(
    out: impl Write,
    header: &[&str],
    rows: &[R],
    fields: impl Fn(&R) -> Vec<String>,
) -> csv::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(header)?;
    for row in rows {
        csv.write_record(fields(row))?;
    }
    csv.flush()?;
    Ok(())
}

/// [`write_table`] into a new file at `path` (inside a checkpoint, which
/// is published as a whole).
pub fn write_table_file<R>(
    path: &Path,
    header: &[&str],
    rows: &[R],
    fields: impl Fn(&R) -> Vec<String>,
) -> Result<()> {
    let file = crate::disk::create_file(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    write_table(file, header, rows, fields)
        .with_context(|| format!("cannot write {}", path.display()))
}
