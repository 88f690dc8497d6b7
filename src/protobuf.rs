//! The few pieces of protocol buffers' wire format that TensorBoard's event
//! files and ONNX models need, written by hand: a varint, a field's key,
//! and the field types. A protobuf compiler at build time would be one
//! more tool to install for a handful of fields that have not changed in
//! years.

/// The wire types used here.
#[derive(Clone, Copy)]
enum Wire {
    Varint = 0,
    Fixed64 = 1,
    Bytes = 2,
    Fixed32 = 5,
}

/// A message being encoded: its fields, appended in the order given (the
/// format allows any order; ours is the field numbers', as protoc writes).
#[derive(Debug, Default, Clone)]
pub struct Message {
    bytes: Vec<u8>,
}

impl Message {
    pub fn new() -> Message {
        Message::default()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// `double` (wire type 1: eight bytes, little-endian).
    pub fn double(mut self, field: u32, value: f64) -> Message {
        self.key(field, Wire::Fixed64);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// `float` (wire type 5: four bytes, little-endian).
    pub fn float(mut self, field: u32, value: f32) -> Message {
        self.key(field, Wire::Fixed32);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// `int64`, `int32` (non-negative here), `bool` and enums: a varint.
    pub fn varint(mut self, field: u32, value: u64) -> Message {
        self.key(field, Wire::Varint);
        push_varint(&mut self.bytes, value);
        self
    }

    /// `bytes`, `string` and embedded messages: a length, then the bytes.
    pub fn bytes(mut self, field: u32, value: &[u8]) -> Message {
        self.key(field, Wire::Bytes);
        push_varint(&mut self.bytes, value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }

    pub fn string(self, field: u32, value: &str) -> Message {
        self.bytes(field, value.as_bytes())
    }

    pub fn message(self, field: u32, value: Message) -> Message {
        self.bytes(field, &value.bytes)
    }

    fn key(&mut self, field: u32, wire: Wire) {
        push_varint(&mut self.bytes, (u64::from(field) << 3) | wire as u64);
    }
}

/// Seven bits a byte, the lowest first, the high bit set on all but the
/// last.
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_encoded_as_the_protobuf_encoding_guide_shows() {
        // The guide's examples: field 1 = 150 is 08 96 01; field 2 =
        // "testing" is 12 07 74 65 73 74 69 6e 67; field 3 = {1: 150} is
        // 1a 03 08 96 01.
        assert_eq!(
            Message::new().varint(1, 150).into_bytes(),
            [0x08, 0x96, 0x01]
        );
        assert_eq!(
            Message::new().string(2, "testing").into_bytes(),
            b"\x12\x07testing"
        );
        let inner = Message::new().varint(1, 150);
        assert_eq!(
            Message::new().message(3, inner).into_bytes(),
            [0x1a, 0x03, 0x08, 0x96, 0x01]
        );
    }

    #[test]
    fn fixed_width_fields_are_little_endian_after_their_key() {
        let double = Message::new().double(1, 1.5).into_bytes();
        assert_eq!(double[0], 0x09);
        assert_eq!(double[1..], 1.5f64.to_le_bytes());
        let float = Message::new().float(2, -0.25).into_bytes();
        assert_eq!(float[0], 0x15);
        assert_eq!(float[1..], (-0.25f32).to_le_bytes());
        // A large field number and value take several varint bytes.
        let big = Message::new().varint(16, u64::MAX).into_bytes();
        assert_eq!(big[..2], [0x80, 0x01]);
        assert_eq!(big.len(), 2 + 10);
        assert_eq!(big[11], 0x01);
    }
}
