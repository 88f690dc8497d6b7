//! TFRecord framing, the container of an event file: each record is its
//! length (u64, little-endian), a masked CRC32C of those eight bytes, the
//! data, and a masked CRC32C of the data. TensorBoard checks both, so a
//! record is either whole or skipped.

/// The CRC as TFRecord stores it: rotated and offset, because a CRC of
/// data that itself holds CRCs is weak (TensorFlow's `crc32c::Mask`).
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends one record holding `data` to `out`.
pub fn push_record(out: &mut Vec<u8>, data: &[u8]) {
    let length = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // The mask as TensorFlow's crc32c.h writes it.
    #[allow(clippy::manual_rotate)]
    fn the_crc_is_crc32c_masked_as_tfrecord_masks_it() {
        // The check value of CRC-32C (Castagnoli).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let crc: u32 = 0xe306_9283;
        let masked = ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), masked);
    }

    #[test]
    fn a_record_is_length_crc_data_crc() {
        let mut out = Vec::new();
        push_record(&mut out, b"abc");
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(out[..8], 3u64.to_le_bytes());
        assert_eq!(out[8..12], masked_crc32c(&3u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&out[12..15], b"abc");
        assert_eq!(out[15..], masked_crc32c(b"abc").to_le_bytes());
    }
}
