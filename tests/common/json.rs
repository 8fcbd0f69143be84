//! Reading nested values out of ng replies (bencode dicts and lists).

use rtpmesh_ng::bencode::Value;

/// Looks up a nested value by a path of dict keys.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// An integer at `path`.
pub fn int_at(v: &Value, path: &[&str]) -> i64 {
    at(v, path)
        .and_then(Value::as_int)
        .unwrap_or_else(|| panic!("no integer at {path:?} in {v:?}"))
}

/// The string at `path`, or "" when there is none.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The list at `path`, or an empty one when there is none.
pub fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).and_then(Value::as_list).unwrap_or_default()
}

/// The streams (RTP, then RTCP) of the first media of a `query` reply's
/// leg `leg` (a value of its `tags` dict).
pub fn first_media_streams(leg: &Value) -> &[Value] {
    let medias = at(leg, &["medias"])
        .and_then(Value::as_list)
        .unwrap_or_else(|| panic!("no medias in {leg:?}"));
    at(&medias[0], &["streams"])
        .and_then(Value::as_list)
        .expect("streams")
}
