//! `answer` and `error_response` allocate nothing: counted by a global
//! allocator in this test binary (one test, so no other thread allocates
//! while it counts).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use hmac::{Hmac, Mac};
use sha1::Sha1;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A signed, fingerprinted Binding request; `extra` goes before USERNAME.
fn request(user: &[u8], pwd: &str, extra: &[u8]) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    m.extend([9u8; 12]);
    m.extend(extra);
    m.extend([0x00, 0x06, 0x00, user.len() as u8]);
    m.extend(user);
    m.resize(m.len() + (4 - user.len() % 4) % 4, 0);
    let len = (m.len() - 20 + 24) as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    let mut mac = Hmac::<Sha1>::new_from_slice(pwd.as_bytes()).unwrap();
    mac.update(&m);
    m.extend([0x00, 0x08, 0x00, 0x14]);
    m.extend(mac.finalize().into_bytes());
    let len = (m.len() - 20 + 8) as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    let crc = crc32fast::hash(&m) ^ 0x5354_554e;
    m.extend([0x80, 0x28, 0x00, 0x04]);
    m.extend(crc.to_be_bytes());
    m
}

#[test]
fn answering_and_refusing_allocate_nothing() {
    let good = request(b"ufrag:peer", "password-of-22-chars-x", &[]);
    let forged = request(b"ufrag:peer", "not-the-password", &[]);
    let unknown = request(
        b"ufrag:peer",
        "password-of-22-chars-x",
        &[0, 3, 0, 4, 0, 0, 0, 0],
    );
    let v4: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
    let mut out = [0u8; 256];

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for src in [v4, v6] {
        let a = rtpmesh_ice::answer(
            &good,
            src,
            "ufrag",
            "password-of-22-chars-x",
            Some("peer"),
            &mut out,
        );
        assert!(a.is_ok());
        for req in [&forged, &unknown] {
            let e =
                rtpmesh_ice::answer(req, src, "ufrag", "password-of-22-chars-x", None, &mut out)
                    .unwrap_err();
            let len = rtpmesh_ice::error_response(req, e, "password-of-22-chars-x", &mut out);
            assert!(len.is_some());
        }
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations on the packet path");
}
