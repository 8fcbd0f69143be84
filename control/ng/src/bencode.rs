//! Bencode codec for the ng control protocol, sans-IO.
//!
//! The decoder is deliberately stricter than rtpengine's (see `NG-NOTES.md`):
//! it rejects trailing bytes, truncated containers, non-canonical integers and
//! nesting deeper than [`MAX_DEPTH`]. Kamailio never sends any of those, and
//! refusing them keeps a hostile datagram from costing us more than one pass.
//! It stays lenient where rtpengine is: dictionary keys need not be sorted.

use std::collections::BTreeMap;

/// A bencoded dictionary. A `BTreeMap` keeps keys in byte order, which is
/// exactly the order bencode requires on output.
pub type Dict = BTreeMap<Vec<u8>, Value>;

/// Deepest container nesting [`decode`] accepts; the ng protocol needs about 4.
pub const MAX_DEPTH: usize = 32;

/// One bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `i<decimal>e`
    Int(i64),
    /// `<len>:<bytes>`; not necessarily UTF-8.
    Bytes(Vec<u8>),
    /// `l<values>e`
    List(Vec<Self>),
    /// `d<key value pairs>e`
    Dict(Dict),
}

/// Why [`decode`] rejected its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a value (a truncated datagram, usually).
    #[error("unexpected end of input at byte {offset}")]
    UnexpectedEnd {
        /// Where more input was needed (always the input length).
        offset: usize,
    },
    /// An `i…e` integer is empty, `-0`, has a leading zero, a non-digit, or overflows `i64`.
    #[error("invalid integer at byte {offset}")]
    InvalidInteger {
        /// Offset of the `i`.
        offset: usize,
    },
    /// A string length prefix has a leading zero, a non-digit before `:`, or overflows.
    #[error("invalid string length at byte {offset}")]
    InvalidLength {
        /// Offset of the first length digit.
        offset: usize,
    },
    /// Bytes remain after the single top-level value.
    #[error("trailing data at byte {offset}")]
    TrailingData {
        /// Offset of the first byte after the value.
        offset: usize,
    },
    /// Containers are nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {max} at byte {offset}", max = MAX_DEPTH)]
    TooDeep {
        /// Offset of the container that went one level too deep.
        offset: usize,
    },
    /// A byte that cannot start a value here (dictionary keys must be strings).
    #[error("unexpected byte {byte:#04x} at byte {offset}")]
    UnexpectedByte {
        /// The offending byte.
        byte: u8,
        /// Its offset.
        offset: usize,
    },
}

/// Decodes exactly one value spanning the whole of `input`.
///
/// Duplicate dictionary keys: the **first** occurrence wins. That is what
/// rtpengine 10.5 does (observed: `d7:command4:ping7:command5:querye` is
/// answered with `pong`), and matching it matters more than the usual
/// last-wins convention.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    let v = d.value(0)?;
    if d.pos != input.len() {
        return Err(DecodeError::TrailingData { offset: d.pos });
    }
    Ok(v)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEnd {
                offset: self.input.len(),
            })
    }

    // `depth` counts the containers already open around this value; recursion
    // is bounded by MAX_DEPTH so the stack cannot be exhausted by input.
    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let start = self.pos;
        match self.peek()? {
            b'i' => self.int().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' | b'd' if depth >= MAX_DEPTH => Err(DecodeError::TooDeep { offset: start }),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut map = Dict::new();
                loop {
                    match self.peek()? {
                        b'e' => break,
                        b'0'..=b'9' => {}
                        byte => {
                            return Err(DecodeError::UnexpectedByte {
                                byte,
                                offset: self.pos,
                            })
                        }
                    }
                    let key = self.bytes()?;
                    let val = self.value(depth + 1)?;
                    map.entry(key).or_insert(val);
                }
                self.pos += 1;
                Ok(Value::Dict(map))
            }
            byte => Err(DecodeError::UnexpectedByte {
                byte,
                offset: start,
            }),
        }
    }

    fn int(&mut self) -> Result<i64, DecodeError> {
        let offset = self.pos;
        let bad = DecodeError::InvalidInteger { offset };
        self.pos += 1; // 'i'
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        // Accumulate towards the sign so that i64::MIN parses without overflow.
        let mut n: i64 = 0;
        loop {
            match self.peek()? {
                b'e' => break,
                c @ b'0'..=b'9' => {
                    let d = i64::from(c - b'0');
                    n = n
                        .checked_mul(10)
                        .and_then(|n| {
                            if negative {
                                n.checked_sub(d)
                            } else {
                                n.checked_add(d)
                            }
                        })
                        .ok_or_else(|| bad.clone())?;
                    self.pos += 1;
                }
                _ => return Err(bad),
            }
        }
        let digits = &self.input[digits_start..self.pos];
        let canonical = match digits {
            [] => false,
            [b'0'] => !negative,
            [b'0', ..] => false,
            _ => true,
        };
        if !canonical {
            return Err(bad);
        }
        self.pos += 1; // 'e'
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let offset = self.pos;
        let bad = DecodeError::InvalidLength { offset };
        let mut len: usize = 0;
        loop {
            match self.peek()? {
                b':' => break,
                c @ b'0'..=b'9' => {
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(c - b'0')))
                        .ok_or_else(|| bad.clone())?;
                    self.pos += 1;
                }
                _ => return Err(bad),
            }
        }
        if self.pos - offset > 1 && self.input[offset] == b'0' {
            return Err(bad);
        }
        self.pos += 1; // ':'
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.input.len())
            .ok_or(DecodeError::UnexpectedEnd {
                offset: self.input.len(),
            })?;
        let out = self.input[self.pos..end].to_vec();
        self.pos = end;
        Ok(out)
    }
}

impl Value {
    /// Encodes into a fresh buffer (canonical form: dictionary keys sorted).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out`, so a reply can follow its cookie without a copy.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        fn bytes(b: &[u8], out: &mut Vec<u8>) {
            out.extend_from_slice(b.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(b);
        }
        match self {
            Self::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Self::Bytes(b) => bytes(b, out),
            Self::List(items) => {
                out.push(b'l');
                for v in items {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Self::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The string, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The raw bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The integer, if this is an integer (strings are not parsed).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[Self]> {
        match self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }

    /// The map, if this is a dictionary.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Self::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Looks `key` up (exact bytes) if this is a dictionary.
    pub fn get(&self, key: &str) -> Option<&Self> {
        self.as_dict()?.get(key.as_bytes())
    }
}

/// Builds a dictionary value from `(key, value)` pairs; later duplicates replace earlier ones.
pub fn dict<'a>(items: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Dict(
        items
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Bytes(s.into_bytes())
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Self::Bytes(b.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

/// Saturates at `i64::MAX`: bencode integers are signed 64-bit on every peer we talk to.
impl From<u64> for Value {
    fn from(i: u64) -> Self {
        Self::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Self::Int(i.into())
    }
}

impl From<u16> for Value {
    fn from(i: u16) -> Self {
        Self::Int(i.into())
    }
}

/// Saturates at `i64::MAX`, like the `u64` conversion.
impl From<usize> for Value {
    fn from(i: usize) -> Self {
        Self::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}

impl From<Vec<Self>> for Value {
    fn from(l: Vec<Self>) -> Self {
        Self::List(l)
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Self::Dict(d)
    }
}

#[cfg(test)]
mod tests;
