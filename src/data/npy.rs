//! NumPy `.npy` export (format version 1.0), so the arrays can be compared
//! with Keras's `imdb.load_data` + `pad_sequences` in Python.
use std::io::Write;
use std::path::Path;

use anyhow::{ensure, Result};

use crate::atomic::write_atomically;

/// Writes `data` as a little-endian int32 (`<i4`), C-order array of `shape`,
/// atomically.
pub fn write_npy_i32(path: &Path, shape: &[usize], data: &[i32]) -> Result<()> {
    ensure!(
        shape.iter().product::<usize>() == data.len(),
        "shape {shape:?} does not hold {} values",
        data.len()
    );
    let header = header(shape);
    write_atomically(path, |out| {
        out.write_all(&header)?;
        for chunk in data.chunks(1 << 16) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.write_all(&bytes)?;
        }
        Ok(())
    })
}

/// Magic, version 1.0, header length, then the header dict padded with
/// spaces and ended by a newline so the data starts at a multiple of 64.
fn header(shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '<i4', 'fortran_order': False, 'shape': {dims}, }}");
    const PREFIX: usize = 10; // magic (6) + version (2) + header length (2)
    let total = (PREFIX + dict.len() + 1).div_ceil(64) * 64;
    dict.push_str(&" ".repeat(total - PREFIX - dict.len() - 1));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}
