//! The `.npy` files that `data --export` writes, read back as numpy would.
mod common;

use common::read_npy_i32;
use gru_imdb::data::write_npy_i32;

#[test]
fn npy_export_has_a_valid_header_and_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    let values: Vec<i32> = (0..12).map(|v| v * 1000 - 3).collect();
    write_npy_i32(&x, &[3, 4], &values).unwrap();
    assert_eq!(read_npy_i32(&x), (vec![3, 4], values));

    let y = dir.path().join("y.npy");
    write_npy_i32(&y, &[5], &[0, 1, 1, 0, 1]).unwrap();
    assert_eq!(read_npy_i32(&y), (vec![5], vec![0, 1, 1, 0, 1]));
    let bytes = std::fs::read(&y).unwrap();
    assert!(std::str::from_utf8(&bytes[10..64])
        .unwrap()
        .contains("'shape': (5,)"));

    assert!(
        write_npy_i32(&y, &[2, 2], &[1, 2, 3]).is_err(),
        "shape must match the data"
    );
}
