//! The real media plane: worker threads, the port pool, socket binding.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Sender;
use rtpmesh_relay::backend::BackendKind;
use rtpmesh_relay::flow::{FlowId, FlowSpec};
use rtpmesh_relay::pool::PortPool;
use rtpmesh_relay::worker::{self, Command, Event, WorkerHandle};
use socket2::{Domain, Protocol, Socket, Type};

use crate::call::{self, Local};
use crate::config::{Config, Interface};
use crate::plane::{MediaPlane, PlaneError};

/// Workers, ports and the sockets waiting to be handed to a worker.
pub struct Plane {
    workers: Vec<WorkerHandle>,
    pool: PortPool,
    v4: Option<Interface>,
    v6: Option<Interface>,
    next_flow: u64,
    pending: HashMap<FlowId, UdpSocket>,
}

impl Plane {
    /// Starts the workers.
    pub fn start(config: &Config, events: Sender<Event>) -> io::Result<Self> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let n = if config.workers == 0 {
            cores
        } else {
            config.workers
        };
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let kind: BackendKind = config.backend;
            workers.push(worker::spawn(i, kind, Some(i % cores), events.clone())?);
        }
        let pool = PortPool::new(config.port_min, config.port_max)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Self {
            workers,
            pool,
            v4: config.interface(false),
            v6: config.interface(true),
            next_flow: 1,
            pending: HashMap::new(),
        })
    }

    /// The backend name the workers use.
    pub fn backend(&self) -> &'static str {
        self.workers.first().map(|w| w.backend()).unwrap_or("none")
    }

    /// Port pairs in use.
    pub fn ports_in_use(&self) -> usize {
        self.pool.in_use()
    }

    /// Stops every worker.
    pub fn stop(&mut self) {
        for w in &mut self.workers {
            w.stop();
        }
    }

    fn socket(&mut self, port: u16) -> call::Socket {
        let flow = FlowId(self.next_flow);
        self.next_flow += 1;
        call::Socket {
            flow,
            port,
            counters: Arc::default(),
            latched: None,
        }
    }
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

impl MediaPlane for Plane {
    fn pick_worker(&mut self) -> usize {
        self.workers
            .iter()
            .min_by_key(|w| w.load().load(Ordering::Relaxed))
            .map(|w| w.index())
            .unwrap_or(0)
    }

    fn open(&mut self, worker: usize, ipv6: bool) -> Result<Local, PlaneError> {
        let iface = if ipv6 { self.v6 } else { self.v4 }
            .ok_or(PlaneError::NoInterface(if ipv6 { 6 } else { 4 }))?;
        // A port taken by another process stays out of the pool (allocated,
        // never released) and the next pair is tried.
        for _ in 0..self.pool.capacity() {
            let port = self.pool.allocate().map_err(|_| PlaneError::Exhausted)?;
            let rtp = bind(SocketAddr::new(iface.local, port));
            let rtcp = rtp
                .as_ref()
                .ok()
                .map(|_| bind(SocketAddr::new(iface.local, port + 1)));
            match (rtp, rtcp) {
                (Ok(rtp), Some(Ok(rtcp))) => {
                    let r = self.socket(port);
                    let c = self.socket(port + 1);
                    self.pending.insert(r.flow, rtp);
                    self.pending.insert(c.flow, rtcp);
                    if let Some(w) = self.workers.get(worker) {
                        w.load().fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(Local {
                        ip: iface.local,
                        advertised: iface.advertised,
                        rtp: r,
                        rtcp: c,
                    });
                }
                (Err(e), _) | (_, Some(Err(e))) => {
                    tracing::warn!(port, error = %e, "cannot bind media port, skipping it");
                }
                (Ok(_), None) => unreachable!("rtcp bound whenever rtp is"),
            }
        }
        Err(PlaneError::Exhausted)
    }

    fn install(&mut self, worker: usize, specs: Vec<FlowSpec>) {
        let Some(w) = self.workers.get(worker) else {
            return;
        };
        let mut adds = Vec::new();
        let mut updates = Vec::new();
        for spec in specs {
            match self.pending.remove(&spec.id) {
                Some(sock) => adds.push((spec, sock)),
                None => updates.push(spec),
            }
        }
        // Adds first: updated flows may route to the new ones.
        if !adds.is_empty() {
            w.send(Command::Add(adds));
        }
        if !updates.is_empty() {
            w.send(Command::Update(updates));
        }
    }

    fn close(&mut self, worker: usize, locals: Vec<Local>) {
        let mut ids = Vec::new();
        for l in &locals {
            for s in [&l.rtp, &l.rtcp] {
                if self.pending.remove(&s.flow).is_none() {
                    ids.push(s.flow);
                }
            }
            self.pool.release(l.rtp.port);
        }
        if let Some(w) = self.workers.get(worker) {
            w.load().fetch_sub(
                locals.len().min(w.load().load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            if !ids.is_empty() {
                w.send(Command::Remove(ids));
            }
        }
    }
}
