//! The multi-region harness itself: regions come up with the documented
//! delays, and UDP crosses between them.

mod common;

use std::time::{Duration, Instant};

use common::netns::Regions;

/// (min, avg) RTT in ms of `ping -c 3 -i 0.2` from `region` to `to`.
fn ping(r: &Regions, region: u8, to: std::net::IpAddr) -> (f64, f64) {
    let out = r
        .command(region, "ping")
        .args(["-c", "3", "-i", "0.2", "-q", &to.to_string()])
        .output()
        .expect("run ping (scripts/install-test-deps.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ping {to} from r{region}: {text}");
    // rtt min/avg/max/mdev = 20.6/21.0/22.4/0.5 ms
    let stats = text
        .lines()
        .find_map(|l| l.split(" = ").nth(1).filter(|_| l.starts_with("rtt")))
        .unwrap_or_else(|| panic!("no rtt line: {text}"));
    let v: Vec<f64> = stats
        .split(['/', ' '])
        .filter_map(|s| s.parse().ok())
        .collect();
    (v[0], v[1])
}

#[test]
fn regions_have_delays_and_carry_udp() {
    // CI runs as root; a machine that cannot build namespaces must say so
    // loudly rather than pass without testing anything.
    if let Some(why) = Regions::unsupported() {
        panic!("network namespaces unavailable: {why}");
    }
    let r = Regions::up(&Regions::unique_prefix("nt"));

    let (min12, avg12) = ping(&r, 1, r.addr(2, 1));
    let (_, avg13) = ping(&r, 1, r.addr(3, 4));
    eprintln!("r1->r2 min {min12} avg {avg12} ms, r1->r3 avg {avg13} ms");
    assert!(min12 >= 20.0, "r1->r2 RTT {min12} ms below 2 x 10 ms");
    assert!(
        avg12 < avg13,
        "r1->r2 {avg12} ms not below r1->r3 {avg13} ms"
    );

    let a = r.udp_socket(1, 2, 0);
    let b = r.udp_socket(2, 3, 0);
    b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let sent = Instant::now();
    a.send_to(b"across the wan", b.local_addr().unwrap())
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = b.recv_from(&mut buf).expect("datagram from r1 within 2 s");
    let took = sent.elapsed();
    assert_eq!(&buf[..n], b"across the wan");
    assert_eq!(from, a.local_addr().unwrap());
    assert!(took >= Duration::from_millis(10), "one way took {took:?}");
}
