#!/usr/bin/env python3
"""Writes pcmu-1s.pcap: one second of G.711 u-law RTP (50 packets of 20 ms,
payload type 0) in an Ethernet/IPv4/UDP capture, for sipp's
play_pcap_audio action. sipp takes only the RTP payload and timing from the
capture (it rewrites addresses and ports), so the addresses here are
placeholders. Debian's sip-tester ships g711a.pcap, but that is ~7 s of
PCMA; a short PCMU capture keeps the interop test's calls short and matches
the PCMU-only SDP its scenarios offer.

Usage: python3 gen_pcmu_pcap.py [OUT]   (stdlib only; deterministic output)
"""
import math
import struct
import sys

PACKETS = 50
SAMPLES = 160  # 20 ms at 8 kHz
SSRC = 0x1234ABCD


def linear_to_ulaw(sample: int) -> int:
    """G.711 u-law encoding of a 16-bit linear sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(seq: int) -> bytes:
    # A 440 Hz tone, so a capture of the relayed stream is audibly "real".
    payload = bytes(
        linear_to_ulaw(int(8000 * math.sin(2 * math.pi * 440 * (seq * SAMPLES + i) / 8000)))
        for i in range(SAMPLES)
    )
    marker = 0x80 if seq == 0 else 0
    pt = 0  # PCMU
    rtp = struct.pack("!BBHII", 0x80, marker | pt, seq, seq * SAMPLES, SSRC) + payload
    udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
    return eth + ip + udp


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "pcmu-1s.pcap"
    with open(out, "wb") as f:
        # pcap global header: magic, v2.4, UTC, accuracy, snaplen, Ethernet.
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for seq in range(PACKETS):
            data = frame(seq)
            usec = seq * 20_000
            f.write(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(data), len(data)))
            f.write(data)


if __name__ == "__main__":
    main()
