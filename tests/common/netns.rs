//! Three regions in network namespaces with real one-way delays between
//! them (`scripts/netns-regions.sh`), for multi-region tests: relay nodes,
//! gateways and clients get distinct addresses per region, and packets
//! between regions take 10 (r1-r2), 30 (r1-r3) or 40 ms (r2-r3) each way.
//!
//! Needs root and `ip netns`; [`Regions::unsupported`] says why not, so a
//! test can skip with a reason instead of failing on a plain machine.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::process::Spec;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The regions of one test; torn down (`down`) on drop.
pub struct Regions {
    prefix: String,
    x: u8,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/netns-regions.sh")
}

impl Regions {
    /// Why regions cannot be built here (not root, no `ip netns`), or
    /// `None` when they can.
    pub fn unsupported() -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("network namespaces need root".into());
        }
        match Command::new("ip").args(["netns", "list"]).output() {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "`ip netns` fails: {}",
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => Some(format!("no `ip` command: {e}")),
        }
    }

    /// A prefix no other test of any running binary uses.
    pub fn unique_prefix(name: &str) -> String {
        format!(
            "{name}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// Brings the regions up under `prefix`; the second octet of their
    /// addresses is derived from it. Panics with the script's stderr on
    /// failure.
    pub fn up(prefix: &str) -> Self {
        // FNV-1a into 20..=249: stable, and unlikely to match another run's.
        let h = prefix.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        Self::up_with(prefix, 20 + (h % 230) as u8)
    }

    /// Brings the regions up with addresses `10.<x>.<region>.<host>`.
    pub fn up_with(prefix: &str, x: u8) -> Self {
        let out = Command::new("bash")
            .arg(script())
            .args(["up", prefix, &x.to_string()])
            .output()
            .expect("run netns-regions.sh");
        // Built from here on, so a failed `up` is cleaned up by drop.
        let regions = Self {
            prefix: prefix.to_owned(),
            x,
        };
        assert!(
            out.status.success(),
            "netns-regions.sh up {prefix} {x} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        regions
    }

    /// The prefix of the namespaces' names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace of `region` (1..=3).
    pub fn namespace(&self, region: u8) -> String {
        assert!((1..=3).contains(&region), "no region {region}");
        format!("{}-r{region}", self.prefix)
    }

    /// Address `host` (1..=9; 1 is the primary) of `region` (1..=3).
    pub fn addr(&self, region: u8, host: u8) -> IpAddr {
        assert!((1..=3).contains(&region), "no region {region}");
        assert!((1..=9).contains(&host), "no host {host}");
        IpAddr::V4(Ipv4Addr::new(10, self.x, region, host))
    }

    /// `program` to be run inside `region`'s namespace (`ip netns exec`).
    pub fn command(&self, region: u8, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.namespace(region), program]);
        c
    }

    /// A [`Spec`] for `program`, called `name`, to be run inside `region`'s
    /// namespace. `ip netns exec` execs the program, so the process's pid
    /// is the program's and signals reach it.
    pub fn spec(&self, region: u8, name: &str, program: &str) -> Spec {
        Spec::new(name, "ip").args(["netns", "exec", &self.namespace(region), program])
    }

    /// Runs `f` on a thread that has joined `region`'s network namespace:
    /// sockets it creates live there for good, whichever thread uses them
    /// later.
    pub fn run_in<T: Send>(&self, region: u8, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.namespace(region));
        let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a valid namespace fd; setns changes only this
                // thread, which ends with the scope.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in namespace")
        })
    }

    /// A UDP socket in `region` bound to `addr(region, host)` and `port`
    /// (0: any).
    pub fn udp_socket(&self, region: u8, host: u8, port: u16) -> UdpSocket {
        let at = SocketAddr::new(self.addr(region, host), port);
        self.run_in(region, || UdpSocket::bind(at))
            .unwrap_or_else(|e| panic!("bind {at} in region {region}: {e}"))
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        match Command::new("bash")
            .arg(script())
            .args(["down", &self.prefix])
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "netns-regions.sh down {} failed: {}",
                self.prefix,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("netns-regions.sh down {}: {e}", self.prefix),
        }
    }
}
