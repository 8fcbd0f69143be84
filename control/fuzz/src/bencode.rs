//! `bencode`: the strict decoder, and the encoder on what it decoded.

use rtpmesh_ng::bencode::{decode, Value};

/// Decodes `data`; whatever decodes must encode canonically (sorted keys,
/// no duplicates), and the canonical form must decode to the same value
/// and be a fixed point of decode + encode.
pub fn check(data: &[u8]) {
    let Ok(v) = decode(data) else {
        return;
    };
    let canonical = v.encode();
    let again: Value = decode(&canonical).expect("canonical encoding decodes");
    assert_eq!(again, v, "decode(encode(v)) != v");
    assert_eq!(again.encode(), canonical, "encoding is not a fixed point");
    // Decoding drops duplicate keys and nothing else, so the canonical form
    // is never longer than the input.
    assert!(canonical.len() <= data.len(), "encoding grew");
}
