//! The relay under test, selectable: an rtpmesh node (the default) or
//! Debian's rtpengine 10.5 (`RTPMESH_WEBRTC_RELAY=rtpengine`), whose
//! observable behaviour is the contract. Running a test against rtpengine
//! checks the test itself: a test that rtpengine fails tests nothing
//! about rtpmesh.

use std::net::SocketAddr;
use std::time::Duration;

use super::process::{Process, Spec};
use super::{free_port, port_block, wait_for_ping, Ng, Node};

/// Which relay `RTPMESH_WEBRTC_RELAY` names (`rtpmesh`, the default, or
/// `rtpengine`).
pub fn chosen() -> &'static str {
    match std::env::var("RTPMESH_WEBRTC_RELAY").as_deref() {
        Err(_) | Ok("" | "rtpmesh") => "rtpmesh",
        Ok("rtpengine") => "rtpengine",
        Ok(other) => panic!("RTPMESH_WEBRTC_RELAY={other}: expected rtpmesh or rtpengine"),
    }
}

/// A running relay.
pub enum Relay {
    /// An rtpmesh node.
    Rtpmesh(Node),
    /// rtpengine, with its ng address.
    Rtpengine(Process, SocketAddr),
}

impl Relay {
    /// Starts the relay [`chosen`] names; `backend` is the rtpmesh node's
    /// (rtpengine has one).
    pub fn start(backend: &str) -> Self {
        match chosen() {
            "rtpengine" => Self::rtpengine(),
            _ => Self::Rtpmesh(Node::start(backend)),
        }
    }

    /// rtpengine on loopback with a port range of its own, userspace
    /// forwarding, no config file (the packaged one opens fixed ports).
    pub fn rtpengine() -> Self {
        let ports = port_block(100);
        let ng: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut p = Spec::new("rtpengine", "rtpengine")
            .args(["--config-file=none", "--foreground", "--table=-1"])
            .args(["--interface=127.0.0.1", "--num-threads=2", "--log-stderr"])
            .arg(format!("--listen-ng={ng}"))
            .arg(format!("--port-min={}", ports.0))
            .arg(format!("--port-max={}", ports.1))
            .hint("(apt-get install rtpengine-daemon)")
            .grace(Duration::from_secs(5))
            .start();
        wait_for_ping(&mut p, ng);
        Self::Rtpengine(p, ng)
    }

    /// Its name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rtpmesh(_) => "rtpmesh",
            Self::Rtpengine(..) => "rtpengine",
        }
    }

    /// An ng client for it.
    pub fn client(&self) -> Ng {
        match self {
            Self::Rtpmesh(n) => n.client(),
            Self::Rtpengine(_, ng) => Ng::new(*ng),
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        match self {
            Self::Rtpmesh(n) => n.log_text(),
            Self::Rtpengine(p, _) => p.log_text(),
        }
    }
}
