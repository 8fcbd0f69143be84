//! The io_uring backend (being written; until then it reports itself
//! unsupported and `auto` falls back to epoll).

use std::io;
use std::net::UdpSocket;
use std::os::fd::RawFd;

use super::{Backend, PacketSink};
use crate::flow::Slot;

/// The io_uring backend.
pub struct Uring;

impl Uring {
    /// Creates the ring.
    pub fn new(_wake_fd: RawFd) -> io::Result<Self> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring backend not built yet",
        ))
    }
}

impl Backend for Uring {
    fn add_socket(&mut self, _slot: Slot, _socket: UdpSocket) -> io::Result<()> {
        unreachable!()
    }
    fn remove_socket(&mut self, _slot: Slot) {}
    fn poll(&mut self, _sink: &mut dyn PacketSink) -> io::Result<()> {
        unreachable!()
    }
    fn name(&self) -> &'static str {
        "io_uring"
    }
}
