//! The tunnel sockets of the worker plane: one per worker, each handed to
//! its worker under a fixed flow id.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rtpmesh_flow::counters::FlowCounters;
use rtpmesh_flow::flow::FlowId;
use rtpmesh_relay::worker::{Command, WorkerHandle};

use super::workers::bind;

/// A worker's tunnel socket: its flow, address and counters.
pub(super) struct TunnelSocket {
    pub(super) id: FlowId,
    pub(super) addr: SocketAddr,
    pub(super) counters: Arc<FlowCounters>,
}

/// Binds one tunnel socket per worker, worker `i`'s at `base`'s port + `i`,
/// and hands each to its worker under flow id `i + 1`.
pub(super) fn open_tunnels(
    base: SocketAddr,
    secret: Option<&str>,
    workers: &[WorkerHandle],
) -> io::Result<Vec<TunnelSocket>> {
    let secret: Arc<[u8]> = secret.unwrap_or_default().as_bytes().into();
    let mut tunnels = Vec::with_capacity(workers.len());
    for w in workers {
        let offset = u16::try_from(w.index())
            .ok()
            .filter(|i| base.port().checked_add(*i).is_some())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "tunnel port {} + worker {} is past 65535",
                        base.port(),
                        w.index()
                    ),
                )
            })?;
        let addr = SocketAddr::new(base.ip(), base.port() + offset);
        let socket = bind(addr).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot bind tunnel socket {addr}: {e}"))
        })?;
        let id = FlowId(u32::from(offset) + 1);
        let counters = Arc::new(FlowCounters::default());
        w.send(Command::AddTunnel {
            id,
            socket,
            secret: secret.clone(),
            counters: counters.clone(),
        });
        tunnels.push(TunnelSocket { id, addr, counters });
    }
    tracing::info!(first = %base, count = tunnels.len(), "tunnel sockets open");
    Ok(tunnels)
}
