#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets from the project's test vectors.

    python3 control/fuzz/seeds.py        (from anywhere; rewrites corpus/*/seed-*)

SDP bodies are the string literals of control/ng/src/sdp/tests.rs and
control/ng/src/ng/tests.rs (LF and CRLF); bencode seeds are the byte-string
literals of the bencode and ng tests plus the ng requests built here, which
follow Kamailio's; RTP/RTCP packets are those the flow and rtp tests build;
API bodies are API.md's examples; STUN requests are RFC 5769's and
Chromium-style ones built here. Files are named by content hash, so
rerunning is idempotent and libFuzzer's own additions are kept apart.
"""

import hashlib
import hmac
import re
import struct
import zlib
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent.parent
CORPUS = FUZZ / "corpus"


def write(target, seeds):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed-*"):
        old.unlink()
    for s in dict.fromkeys(seeds):
        (d / ("seed-" + hashlib.sha1(s).hexdigest()[:16])).write_bytes(s)
    print(f"{target}: {len(set(seeds))} seeds")


def rust_strings(path, prefix):
    """Plain (non-raw) Rust string literals in `path` starting with `prefix`."""
    text = (ROOT / path).read_text()
    out = []
    for m in re.finditer(r'(?<![A-Za-z0-9_])(b?)"((?:[^"\\]|\\.)*)"', text, re.S):
        body = m.group(2)
        # A backslash-newline continues the line and eats leading spaces.
        body = re.sub(r"\\\n\s*", "", body)
        raw = body.encode()
        raw = re.sub(
            rb"\\(x[0-9a-fA-F]{2}|.)",
            lambda e: unescape(e.group(1)),
            raw,
        )
        if raw.startswith(prefix):
            out.append(raw)
    return out


def unescape(esc):
    simple = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"0": b"\0", b"\\": b"\\", b'"': b'"', b"'": b"'"}
    if esc.startswith(b"x"):
        return bytes([int(esc[1:], 16)])
    return simple.get(esc, b"\\" + esc)


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"


def sdps():
    found = rust_strings("control/ng/src/sdp/tests.rs", b"v=0")
    found += rust_strings("control/ng/src/ng/tests.rs", b"v=0")
    return found + [s.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for s in found]


def ng_requests(sdp_seeds):
    offer_sdp = sdp_seeds[0].decode()
    base = {"call-id": "a84b4c76e66710@pc33.atlanta.example.com", "from-tag": "1928301774"}
    offer = dict(base, command="offer", sdp=offer_sdp,
                 flags=["trust-address"], replace=["origin", "session-connection"],
                 ICE="remove", **{"rtcp-mux": ["demux"], "transport-protocol": "RTP/AVP"})
    answer = dict(base, command="answer", sdp=offer_sdp, **{"to-tag": "a6c85cf"})
    bodies = [
        {"command": "ping"},
        offer,
        answer,
        dict(base, command="delete", **{"delete-delay": 0}),
        dict(base, command="delete", **{"to-tag": "a6c85cf", "delete delay": "30"}),
        dict(base, command="query"),
        {"command": "list", "limit": 32},
        {"command": "statistics"},
        dict(base, command="start recording"),
        dict(base, command="stop recording"),
        dict(base, command="block media"),
        dict(base, command="unblock media"),
        dict(offer, tunnel={"side": "caller", "address": "10.0.0.2:7000"}),
        dict(offer, **{"direction": ["internal", "external"], "address family": "IP6"}),
    ]
    out = []
    for i, b in enumerate(bodies):
        out.append(b"%d_%d " % (4242 + i, i) + bencode(b))
    return out


def rtp(seq, first=0x80, pt=0, payload=b"\xd5" * 160, extra=b""):
    return bytes([first, pt]) + struct.pack(">HII", seq, 160 * seq, 7) + extra + payload


def packets():
    csrc_ext_pad = rtp(1, first=0x80 | 0x20 | 0x10 | 2, pt=0x80 | 96,
                       extra=struct.pack(">II", 1, 2) + b"\xbe\xde\x00\x01" + b"\x10\xaa\x00\x00",
                       payload=b"abc\x00\x00\x03")
    rr = bytes([0x80, 201, 0, 1, 0, 0, 0, 7])
    sr = bytes([0x80, 200, 0, 6]) + struct.pack(">IIIIII", 7, 1, 2, 3, 4, 5)
    sdes = bytes([0x81, 202, 0, 2]) + struct.pack(">I", 7) + b"\x01\x01x\x00"
    padded_rr = bytes([0xa0, 201, 0, 2, 0, 0, 0, 7, 0, 0, 0, 4])
    return [rtp(1), rtp(2, pt=8), rtp(3, pt=0x80 | 101, payload=b"\x01\x0a\x00\xa0"),
            csrc_ext_pad, rtp(4, payload=b""), rr, sr, sr + sdes, padded_rr,
            b"\x80", b"\x40\x00" + bytes(30), bytes(12)]


def tunnel_seeds(pkts):
    # tunnel_open reads: flow u32, seq u64, kind byte, flip position (2),
    # one spare, then the payload (also read as replay-window moves).
    out = []
    for i, p in enumerate(pkts[:6]):
        out.append(struct.pack(">IQBHB", 100 + i, 1_700_000_000_000_000 + i, i & 1, i * 77, 0) + p)
    # A real sealed datagram for a fixed key, as a tunnel sends it.
    key = b"rtpmesh fuzz key, 32 bytes long!"
    head = b"RM\x01\x00" + struct.pack(">IQ", 100, 1)
    tag = hmac.new(key, head + pkts[0], "sha256").digest()[:16]
    out.append(head + tag + pkts[0])
    out.append(struct.pack(">IQBHB", 1, 1, 0, 0, 0) + struct.pack(">16h", *range(-8, 8)))
    return out


def api_bodies():
    text = (ROOT / "control/API.md").read_text()
    found = [m.encode() for m in re.findall(r"-d '([^']*)'", text)]
    return found + [
        b'{"name":"eu-west"}', b'{"state":"up"}', b'{"state":"down"}',
        b'{"gateway":"gw-a","expires_s":1}', b'{"status":"ok"}',
        b'{"error":"missing or wrong bearer token"}', b'{"removed":"eu-1"}',
        b'{"regions":[{"name":"eu-west","nodes":1,"gateways":2}]}',
        b'{"name": ', b'{"name": 5}', b'{"nmae": "x"}',
    ]


def stun_attr(t, v):
    return struct.pack(">HH", t, len(v)) + v + bytes(-len(v) % 4)


def stun_request(attrs, pwd, txid=b"\x5a" * 12):
    """A Binding request with `attrs`, MESSAGE-INTEGRITY keyed with `pwd` and FINGERPRINT."""
    body = b"".join(attrs)
    head = struct.pack(">HHI", 1, len(body) + 24, 0x2112A442) + txid
    body += stun_attr(8, hmac.new(pwd, head + body, "sha1").digest())
    head = struct.pack(">HHI", 1, len(body) + 8, 0x2112A442) + txid
    crc = (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
    body += stun_attr(0x8028, struct.pack(">I", crc))
    return struct.pack(">HHI", 1, len(body), 0x2112A442) + txid + body


def stun_seeds():
    # The stun target's first byte: even, the datagram as received; odd, the
    # attributes of a request it signs itself (relay/ice and control/fuzz/src/stun.rs).
    pwd = b"rtpmesh-fuzz-password-26ch"
    chromium = [stun_attr(0xC057, b"\x00\x01\x00\x0a"), stun_attr(0x802A, b"\x11" * 8),
                stun_attr(0x0025, b""), stun_attr(0x0024, b"\x6e\x7f\x1e\xff")]
    rfc5769 = bytes.fromhex(
        "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e2074657374"
        "20636c69656e74002400046e0001ff80290008932ff9b151263b36000600096576"
        "746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571"
        "a280280004e57a3bcf")
    user = stun_attr(6, b"ufrg:peer")
    return [
        b"\x00" + rfc5769,
        b"\x00" + stun_request([user] + chromium, pwd),
        b"\x00" + stun_request([user, stun_attr(3, bytes(4))], pwd),
        b"\x00" + stun_request([user], b"wrong"),
        b"\x01" + b"".join(chromium),
        b"\x01" + stun_attr(3, bytes(4)) + stun_attr(0x7FFF, b"x"),
        b"\x01",
    ]


def main():
    sdp_seeds = sdps()
    requests = ng_requests(sdp_seeds)
    pkts = packets()
    write("sdp", sdp_seeds)
    write("ng_request", requests)
    write("bencode", rust_strings("control/ng/src/bencode/tests.rs", b"")
          + rust_strings("control/ng/src/ng/tests.rs", b"d")
          + [r.split(b" ", 1)[1] for r in requests])
    write("rtp_views", pkts)
    write("tunnel_open", tunnel_seeds(pkts))
    write("flow_step", pkts + tunnel_seeds(pkts))
    write("api_json", api_bodies())
    write("stun", stun_seeds())


if __name__ == "__main__":
    main()
