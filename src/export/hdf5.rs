//! The subset of HDF5 that a Keras `model.weights.h5` needs, written by
//! hand: nested groups of `float32` arrays, nothing else. No libhdf5 at
//! build or run time.
//!
//! Format (HDF5 file format specification 3.0, the "latest" layout that
//! libhdf5 writes with `libver="latest"`):
//!
//! - a **version 2 superblock** at offset 0 (48 bytes: signature, sizes
//!   of offsets and lengths 8, end-of-file and root object addresses,
//!   checksum);
//! - every object a **version 2 object header** (`OHDR`, one chunk, its
//!   size in 4 bytes, a checksum at its end) holding messages;
//! - a group: a *Link Info* and a *Group Info* message (a "new-style",
//!   compact group: its links live in its header, no B-tree, no heap) and
//!   one hard *Link* message per member;
//! - a dataset: *Dataspace* (version 2, simple, no maximum dimensions),
//!   *Datatype* (IEEE little-endian 32-bit float), *Fill Value* (version
//!   3, none defined) and *Data Layout* (version 3, contiguous: the raw
//!   values, row-major, written just before the header).
//!
//! Objects are written children first, so a group's header can hold its
//! members' addresses; the superblock is filled in last. Checksums are
//! Bob Jenkins' lookup3 `hashlittle` with seed 0, as libhdf5's
//! `H5_checksum_lookup3`.
use std::collections::BTreeMap;

use super::Array;

/// A group: members by name (libhdf5 lists compact links by name too);
/// its datasets are borrowed arrays.
#[derive(Debug, Default)]
pub struct Group<'a> {
    members: BTreeMap<String, Member<'a>>,
}

#[derive(Debug)]
enum Member<'a> {
    Group(Group<'a>),
    Dataset(&'a Array),
}

impl<'a> Group<'a> {
    pub fn new() -> Group<'a> {
        Group::default()
    }

    /// The member group `name`, made empty if missing. Panics if `name`
    /// is a dataset (names are the caller's constants).
    pub fn group(&mut self, name: &str) -> &mut Group<'a> {
        let member = self
            .members
            .entry(name.to_owned())
            .or_insert_with(|| Member::Group(Group::new()));
        match member {
            Member::Group(group) => group,
            Member::Dataset(_) => panic!("{name} is a dataset, not a group"),
        }
    }

    /// The group at a `/`-separated path below this one, made as needed.
    pub fn path(&mut self, path: &str) -> &mut Group<'a> {
        path.split('/').fold(self, |group, name| group.group(name))
    }

    pub fn dataset(&mut self, name: &str, array: &'a Array) {
        assert_eq!(
            array.shape.iter().product::<usize>(),
            array.values.len(),
            "{name}: the shape does not hold the values"
        );
        self.members.insert(name.to_owned(), Member::Dataset(array));
    }
}

const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
const SUPERBLOCK_LEN: usize = 48;
const UNDEFINED: u64 = u64::MAX;

/// Object header message types.
const DATASPACE: u8 = 0x01;
const LINK_INFO: u8 = 0x02;
const DATATYPE: u8 = 0x03;
const FILL_VALUE: u8 = 0x05;
const LINK: u8 = 0x06;
const DATA_LAYOUT: u8 = 0x08;
const GROUP_INFO: u8 = 0x0A;
/// A message's flag: its value never changes.
const CONSTANT: u8 = 0x01;

/// The whole file whose root group is `root`.
pub fn file_bytes(root: &Group) -> Vec<u8> {
    let mut out = vec![0u8; SUPERBLOCK_LEN];
    let root_address = write_group(&mut out, root);
    let mut superblock = Vec::with_capacity(SUPERBLOCK_LEN);
    superblock.extend_from_slice(SIGNATURE);
    // Version 2; offsets and lengths of 8 bytes; no consistency flags.
    superblock.extend_from_slice(&[2, 8, 8, 0]);
    superblock.extend_from_slice(&0u64.to_le_bytes()); // base address
    superblock.extend_from_slice(&UNDEFINED.to_le_bytes()); // no extension
    superblock.extend_from_slice(&(out.len() as u64).to_le_bytes()); // end of file
    superblock.extend_from_slice(&root_address.to_le_bytes());
    let checksum = lookup3(&superblock);
    superblock.extend_from_slice(&checksum.to_le_bytes());
    out[..SUPERBLOCK_LEN].copy_from_slice(&superblock);
    out
}

/// Writes the members, then the group's header; returns its address.
fn write_group(out: &mut Vec<u8>, group: &Group) -> u64 {
    let links: Vec<(&str, u64)> = group
        .members
        .iter()
        .map(|(name, member)| {
            let address = match member {
                Member::Group(inner) => write_group(out, inner),
                Member::Dataset(dataset) => write_dataset(out, dataset),
            };
            (name.as_str(), address)
        })
        .collect();
    let mut header = ObjectHeader::default();
    // Version 0, no flags; no fractal heap and no name index (compact).
    let mut link_info = vec![0, 0];
    link_info.extend_from_slice(&UNDEFINED.to_le_bytes());
    link_info.extend_from_slice(&UNDEFINED.to_le_bytes());
    header.message(LINK_INFO, 0, &link_info);
    header.message(GROUP_INFO, 0, &[0, 0]);
    for (name, address) in links {
        header.message(LINK, 0, &link_message(name, address));
    }
    header.write(out)
}

/// A hard link: version 1, flags 0 (a one-byte name length, no creation
/// order, the default link type and character set), the name, the address.
fn link_message(name: &str, address: u64) -> Vec<u8> {
    let length = u8::try_from(name.len()).expect("member names are short");
    let mut message = vec![1, 0, length];
    message.extend_from_slice(name.as_bytes());
    message.extend_from_slice(&address.to_le_bytes());
    message
}

/// Writes the values, then the dataset's header; returns its address.
fn write_dataset(out: &mut Vec<u8>, dataset: &Array) -> u64 {
    let data_address = out.len() as u64;
    for value in &dataset.values {
        out.extend_from_slice(&value.to_le_bytes());
    }
    let data_len = (dataset.values.len() * 4) as u64;

    let mut header = ObjectHeader::default();
    header.message(DATASPACE, 0, &dataspace_message(&dataset.shape));
    header.message(DATATYPE, CONSTANT, &FLOAT32_DATATYPE);
    // Version 3; allocated early, written if set, no value defined.
    header.message(FILL_VALUE, CONSTANT, &[3, 0x09]);
    let mut layout = vec![3, 1]; // version 3, contiguous
    layout.extend_from_slice(&data_address.to_le_bytes());
    layout.extend_from_slice(&data_len.to_le_bytes());
    header.message(DATA_LAYOUT, 0, &layout);
    header.write(out)
}

/// Version 2, simple, no maximum dimensions, then each dimension's size.
fn dataspace_message(shape: &[usize]) -> Vec<u8> {
    let rank = u8::try_from(shape.len()).expect("a rank below 256");
    let mut message = vec![2, rank, 0, 1];
    for &size in shape {
        message.extend_from_slice(&(size as u64).to_le_bytes());
    }
    message
}

/// Class 1 (floating point), version 1; little-endian, mantissa with an
/// implied leading bit (bits 4-5 = 2), the sign at bit 31; 4 bytes; bit
/// offset 0, precision 32; exponent at bit 23, 8 bits; mantissa at bit 0,
/// 23 bits; exponent bias 127: IEEE 754 binary32.
const FLOAT32_DATATYPE: [u8; 20] = [
    0x11, 0x20, 31, 0, // class and version, bit fields
    4, 0, 0, 0, // size
    0, 0, 32, 0, // bit offset, precision
    23, 8, 0, 23, // exponent location and size, mantissa location and size
    127, 0, 0, 0, // exponent bias
];

/// A version 2 object header being assembled: its messages.
#[derive(Default)]
struct ObjectHeader {
    messages: Vec<u8>,
}

impl ObjectHeader {
    fn message(&mut self, kind: u8, flags: u8, data: &[u8]) {
        let size = u16::try_from(data.len()).expect("a message under 64 KiB");
        self.messages.push(kind);
        self.messages.extend_from_slice(&size.to_le_bytes());
        self.messages.push(flags);
        self.messages.extend_from_slice(data);
    }

    /// `OHDR`, version 2, flags 2 (chunk 0's size in 4 bytes; no times,
    /// no attribute phase change values), the size, the messages, the
    /// checksum. Returns the header's address.
    fn write(self, out: &mut Vec<u8>) -> u64 {
        let address = out.len() as u64;
        let mut header = b"OHDR".to_vec();
        header.extend_from_slice(&[2, 0x02]);
        let size = u32::try_from(self.messages.len()).expect("a header under 4 GiB");
        header.extend_from_slice(&size.to_le_bytes());
        header.extend_from_slice(&self.messages);
        let checksum = lookup3(&header);
        header.extend_from_slice(&checksum.to_le_bytes());
        out.extend_from_slice(&header);
        address
    }
}

/// Bob Jenkins' lookup3 `hashlittle(key, length, 0)`, the checksum of
/// HDF5's metadata.
pub fn lookup3(key: &[u8]) -> u32 {
    let init = 0xdead_beef_u32.wrapping_add(key.len() as u32);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut rest = key;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    if rest.is_empty() {
        return c;
    }
    let mut tail = [0u8; 12];
    tail[..rest.len()].copy_from_slice(rest);
    a = a.wrapping_add(word(&tail[0..4]));
    b = b.wrapping_add(word(&tail[4..8]));
    c = c.wrapping_add(word(&tail[8..12]));
    final_mix(&mut a, &mut b, &mut c);
    c
}

fn word(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("four bytes"))
}

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c) ^ c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c) ^ c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(14));
    *a = (*a ^ *c).wrapping_sub(c.rotate_left(11));
    *b = (*b ^ *a).wrapping_sub(a.rotate_left(25));
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(16));
    *a = (*a ^ *c).wrapping_sub(c.rotate_left(4));
    *b = (*b ^ *a).wrapping_sub(a.rotate_left(14));
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(24));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup3_gives_the_values_of_its_reference_driver() {
        // lookup3.c's driver5: hashlittle("", 0, 0) and the sentence with
        // seed 0 (its 0 seed line).
        assert_eq!(lookup3(b""), 0xdead_beef);
        assert_eq!(lookup3(b"Four score and seven years ago"), 0x1777_0551);
    }

    #[test]
    fn the_superblock_and_every_header_carry_their_checksums() {
        let array = Array {
            shape: vec![2, 3],
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        let mut root = Group::new();
        root.path("layers/dense/vars").dataset("0", &array);
        let bytes = file_bytes(&root);
        assert_eq!(&bytes[..8], SIGNATURE);
        let eof = u64::from_le_bytes(bytes[28..36].try_into().unwrap());
        assert_eq!(eof, bytes.len() as u64);
        assert_eq!(
            lookup3(&bytes[..44]),
            u32::from_le_bytes(bytes[44..48].try_into().unwrap())
        );
        // Four headers (root, layers, dense, vars) and the dataset's.
        let mut headers = 0;
        let mut at = 0;
        while let Some(offset) = find(&bytes[at..], b"OHDR") {
            let start = at + offset;
            let size = u32::from_le_bytes(bytes[start + 6..start + 10].try_into().unwrap());
            let end = start + 10 + size as usize;
            let stored = u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap());
            assert_eq!(lookup3(&bytes[start..end]), stored);
            headers += 1;
            at = end + 4;
        }
        assert_eq!(headers, 5);
        // The values, little-endian, right after the superblock.
        assert_eq!(bytes[48..52], 1.0f32.to_le_bytes());
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }
}
