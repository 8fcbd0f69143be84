use super::*;

fn s(x: &str) -> Value {
    x.into()
}

#[test]
fn decodes_scalars() {
    assert_eq!(decode(b"i42e"), Ok(Value::Int(42)));
    assert_eq!(decode(b"i0e"), Ok(Value::Int(0)));
    assert_eq!(decode(b"i-7e"), Ok(Value::Int(-7)));
    assert_eq!(decode(b"i9223372036854775807e"), Ok(Value::Int(i64::MAX)));
    assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
    assert_eq!(decode(b"4:spam"), Ok(s("spam")));
    assert_eq!(decode(b"0:"), Ok(s("")));
}

#[test]
fn decodes_containers_and_unsorted_keys() {
    let v = decode(b"d3:zzzl1:ai1ee3:aaad1:xi0eee").unwrap();
    assert_eq!(v.get("zzz").unwrap().as_list().unwrap().len(), 2);
    assert_eq!(v.get("aaa").unwrap().get("x").unwrap().as_int(), Some(0));
    // Re-encoding sorts the keys.
    assert_eq!(v.encode(), b"d3:aaad1:xi0ee3:zzzl1:ai1eee");
}

#[test]
fn duplicate_keys_first_wins_like_rtpengine() {
    let v = decode(b"d7:command4:ping7:command5:querye").unwrap();
    assert_eq!(v.get("command").unwrap().as_str(), Some("ping"));
}

#[test]
fn round_trips() {
    let v = dict([
        ("result", s("ok")),
        ("n", Value::from(-12i64)),
        ("big", Value::from(u64::MAX)),
        (
            "list",
            Value::from(vec![s("a"), Value::from(3u16), dict([])]),
        ),
        ("raw", Value::from(&b"\x00\xff "[..])),
    ]);
    let bytes = v.encode();
    assert_eq!(decode(&bytes), Ok(v.clone()));
    assert_eq!(v.get("big").unwrap().as_int(), Some(i64::MAX));
    assert_eq!(v.get("raw").unwrap().as_str(), None);
    assert_eq!(v.get("missing"), None);
    assert_eq!(s("x").get("x"), None);
}

#[test]
fn accessors_reject_other_types() {
    let i = Value::Int(1);
    assert_eq!(i.as_str(), None);
    assert_eq!(i.as_bytes(), None);
    assert_eq!(i.as_list(), None);
    assert_eq!(i.as_dict(), None);
    assert_eq!(s("1").as_int(), None);
    assert_eq!(Value::from(String::from("é")).as_str(), Some("é"));
    assert_eq!(Value::from(7usize), Value::from(7u32));
    assert_eq!(Value::from(Dict::new()), dict([]));
}

#[test]
fn rejects_bad_integers() {
    for (input, offset) in [
        (&b"i-0e"[..], 0),
        (b"i03e", 0),
        (b"iee", 0),
        (b"i-e", 0),
        (b"i1x2e", 0),
        (b"i9223372036854775808e", 0),
        (b"li00ee", 1),
    ] {
        assert_eq!(
            decode(input),
            Err(DecodeError::InvalidInteger { offset }),
            "{input:?}"
        );
    }
}

#[test]
fn rejects_bad_lengths() {
    assert_eq!(
        decode(b"01:a"),
        Err(DecodeError::InvalidLength { offset: 0 })
    );
    assert_eq!(
        decode(b"1x:a"),
        Err(DecodeError::InvalidLength { offset: 0 })
    );
    assert_eq!(
        decode(b"99999999999999999999999:a"),
        Err(DecodeError::InvalidLength { offset: 0 })
    );
    assert_eq!(
        decode(b"5:ab"),
        Err(DecodeError::UnexpectedEnd { offset: 4 })
    );
}

#[test]
fn rejects_truncation_trailing_and_junk() {
    assert_eq!(decode(b""), Err(DecodeError::UnexpectedEnd { offset: 0 }));
    assert_eq!(
        decode(b"d7:command4:ping"),
        Err(DecodeError::UnexpectedEnd { offset: 16 })
    );
    assert_eq!(decode(b"i5"), Err(DecodeError::UnexpectedEnd { offset: 2 }));
    assert_eq!(
        decode(b"d7:command4:pingexx"),
        Err(DecodeError::TrailingData { offset: 17 })
    );
    assert_eq!(
        decode(b"xyz"),
        Err(DecodeError::UnexpectedByte {
            byte: b'x',
            offset: 0
        })
    );
    assert_eq!(
        decode(b"di5ei6ee"),
        Err(DecodeError::UnexpectedByte {
            byte: b'i',
            offset: 1
        })
    );
    assert_eq!(decode(b"le"), Ok(Value::List(vec![])));
}

#[test]
fn depth_limit() {
    let ok = format!("{}{}", "l".repeat(MAX_DEPTH), "e".repeat(MAX_DEPTH));
    assert!(decode(ok.as_bytes()).is_ok());
    let deep = format!("{}{}", "l".repeat(MAX_DEPTH + 1), "e".repeat(MAX_DEPTH + 1));
    assert_eq!(
        decode(deep.as_bytes()),
        Err(DecodeError::TooDeep { offset: MAX_DEPTH })
    );
    // A huge nesting must fail fast, not overflow the stack.
    let huge = "d1:x".repeat(100_000);
    assert!(matches!(
        decode(huge.as_bytes()),
        Err(DecodeError::TooDeep { .. })
    ));
}

#[test]
fn errors_display_offsets() {
    assert_eq!(
        DecodeError::TrailingData { offset: 3 }.to_string(),
        "trailing data at byte 3"
    );
    assert_eq!(
        DecodeError::UnexpectedByte {
            byte: b'x',
            offset: 0
        }
        .to_string(),
        "unexpected byte 0x78 at byte 0"
    );
}

/// Fuzz-ish: random and truncated inputs must never panic, and whatever
/// decodes must re-encode to something that decodes to the same value.
#[test]
fn never_panics_on_garbage() {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        // Knuth's MMIX LCG; the high bits are the good ones.
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    const ALPHABET: &[u8] = b"ilde0123456789:-ax ";
    let seed = b"d7:command5:offer5:flagsl14:trust-addresse7:replacel6:origine3:numi-12ee";
    for round in 0..20_000 {
        let input: Vec<u8> = if round % 2 == 0 {
            let len = next() % 40;
            (0..len)
                .map(|_| ALPHABET[next() % ALPHABET.len()])
                .collect()
        } else {
            // Mutate a valid message: truncate and flip a byte or two.
            let mut v = seed[..next() % (seed.len() + 1)].to_vec();
            for _ in 0..next() % 3 {
                if !v.is_empty() {
                    let i = next() % v.len();
                    v[i] = (next() % 256) as u8;
                }
            }
            v
        };
        if let Ok(v) = decode(&input) {
            assert_eq!(decode(&v.encode()), Ok(v));
        }
    }
}
