//! Counting what a recording holds.

use std::path::Path;

/// Number of packet records in a classic (little-endian) pcap file.
pub fn pcap_records(path: &Path) -> usize {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.len() >= 24, "{}: short pcap", path.display());
    count_records(&data)
}

/// Number of packet records in the bytes of a classic pcap file (after its
/// 24-byte header).
pub fn count_records(data: &[u8]) -> usize {
    let mut at = 24;
    let mut n = 0;
    while at + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + incl;
        n += 1;
    }
    n
}
