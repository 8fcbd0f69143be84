//! Test doubles shared by the sans-IO cores' tests.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::pool::PortPool;
use rtpmesh_flow::flow::{FlowId, FlowSpec};

use crate::call::{Local, Socket};
use crate::plane::{MediaPlane, PlaneError};

/// Hands out ports from a pool and records what the node asks for.
pub(crate) struct FakePlane {
    pub(crate) pool: PortPool,
    pub(crate) next: u32,
    pub(crate) opened: usize,
    pub(crate) installed: Vec<FlowSpec>,
    pub(crate) closed: Vec<u16>,
    /// Recordings open: id → (call, tag, stream, source of the copies).
    pub(crate) recordings: HashMap<u64, (String, String, usize, SocketAddr)>,
    /// Address of the (one) tunnel socket.
    pub(crate) tunnel: SocketAddr,
}

impl FakePlane {
    pub(crate) fn new(pairs: u16) -> Self {
        Self::with_tunnel(pairs, "127.0.0.1:7000".parse().unwrap())
    }

    /// A plane whose tunnel sockets have address `tunnel`.
    pub(crate) fn with_tunnel(pairs: u16, tunnel: SocketAddr) -> Self {
        Self {
            pool: PortPool::new(30000, 30000 + pairs * 2 - 1).unwrap(),
            next: 1,
            opened: 0,
            installed: Vec::new(),
            closed: Vec::new(),
            recordings: HashMap::new(),
            tunnel,
        }
    }

    pub(crate) fn spec(&self, id: FlowId) -> &FlowSpec {
        self.installed
            .iter()
            .rev()
            .find(|s| s.id == id)
            .expect("installed")
    }

    fn sock(&mut self, port: u16) -> Socket {
        self.next += 1;
        Socket::new(FlowId(self.next), port)
    }
}

impl MediaPlane for FakePlane {
    fn pick_worker(&mut self) -> usize {
        0
    }

    fn open(&mut self, _worker: usize, ipv6: bool) -> Result<Local, PlaneError> {
        let port = self.pool.allocate().map_err(|_| PlaneError::Exhausted)?;
        self.opened += 1;
        let ip: IpAddr = if ipv6 { "::1" } else { "127.0.0.1" }.parse().unwrap();
        Ok(Local {
            ip,
            advertised: ip,
            rtp: self.sock(port),
            rtcp: self.sock(port + 1),
            socketless: false,
        })
    }

    fn install(&mut self, _worker: usize, specs: Vec<FlowSpec>) {
        self.installed.extend(specs);
    }

    fn close(&mut self, _worker: usize, locals: Vec<Local>) {
        for l in locals.into_iter().filter(|l| !l.socketless) {
            self.pool.release(l.rtp.port);
            self.closed.push(l.rtp.port);
        }
    }

    fn open_socketless(&mut self, _worker: usize) -> Result<Local, PlaneError> {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        Ok(Local {
            ip,
            advertised: ip,
            rtp: self.sock(0),
            rtcp: self.sock(0),
            socketless: true,
        })
    }

    fn reopen(
        &mut self,
        _worker: usize,
        ip: IpAddr,
        advertised: IpAddr,
        port: Option<u16>,
        flows: (FlowId, FlowId),
    ) -> Result<Local, PlaneError> {
        let sock = Socket::new;
        if let Some(p) = port {
            if !self.pool.take(p) {
                return Err(PlaneError::Exhausted);
            }
            self.opened += 1;
        }
        self.next = self.next.max(flows.0 .0.max(flows.1 .0));
        let p = port.unwrap_or(0);
        Ok(Local {
            ip,
            advertised,
            rtp: sock(flows.0, p),
            rtcp: sock(flows.1, if port.is_some() { p + 1 } else { 0 }),
            socketless: port.is_none(),
        })
    }

    fn tunnel(&self, _worker: usize) -> Result<(FlowId, SocketAddr), PlaneError> {
        Ok((FlowId(1), self.tunnel))
    }

    fn record(
        &mut self,
        call_id: &str,
        tag: &str,
        stream: usize,
        source: SocketAddr,
    ) -> Result<(u64, SocketAddr), PlaneError> {
        let id = 100 + self.recordings.len() as u64 + u64::from(self.next);
        self.next += 1;
        self.recordings
            .insert(id, (call_id.to_owned(), tag.to_owned(), stream, source));
        Ok((id, SocketAddr::from(([127, 0, 0, 1], 9000 + id as u16))))
    }

    fn stop_recording(&mut self, id: u64) {
        self.recordings.remove(&id);
    }
}
