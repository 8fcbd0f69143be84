//! File names from a hostile Call-ID and tag.

/// Longest sanitized call id or tag; a longer one keeps a prefix plus a
/// hash of the whole, so two long ids sharing a prefix still differ.
const MAX_PART: usize = 64;
/// Bytes of the prefix kept when shortening (prefix + `_` + 8 hex digits).
const KEPT_PREFIX: usize = MAX_PART - 9;

/// `<call-id>-<tag>-<stream>` with the call id and tag made safe for a file
/// name: only `[A-Za-z0-9._-]` survive, every other character becomes `_`,
/// a leading `.` becomes `_` (no hidden files), an empty part becomes `_`,
/// and each part is at most 64 bytes. The result never contains a path
/// separator, so joined to a directory it stays inside it.
pub fn file_stem(call_id: &str, tag: &str, stream: usize) -> String {
    format!("{}-{}-{stream}", sanitize(call_id), sanitize(tag))
}

fn sanitize(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.len() > MAX_PART {
        // Only ASCII is left, so any byte index is a char boundary.
        out.truncate(KEPT_PREFIX);
        out.push_str(&format!("_{:08x}", fnv1a(raw.as_bytes())));
    }
    out
}

/// FNV-1a, 32 bits: stable across runs and builds, unlike `DefaultHasher`.
fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_safe_characters() {
        assert_eq!(file_stem("abc.DEF_12-3", "tag", 0), "abc.DEF_12-3-tag-0");
    }

    #[test]
    fn replaces_separators_and_dots() {
        assert_eq!(
            file_stem("../../etc/passwd", "a/b", 2),
            "_._.._etc_passwd-a_b-2"
        );
        assert_eq!(file_stem("..", "", 1), "_.-_-1");
        assert_eq!(file_stem("é\0\\x", "t", 0), "___x-t-0");
    }

    #[test]
    fn bounds_length_and_keeps_long_ids_apart() {
        let a = "x".repeat(500) + "a";
        let b = "x".repeat(500) + "b";
        let (sa, sb) = (sanitize(&a), sanitize(&b));
        assert_eq!(sa.len(), MAX_PART);
        assert_ne!(sa, sb);
    }
}
