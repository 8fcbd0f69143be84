//! A small ng client: what the CLI, the demo and the tests use to talk to a
//! node, exactly as a SIP proxy would.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rtpmesh_ng::bencode::{self, Value};

/// A request that got no usable reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Socket trouble.
    #[error("ng socket: {0}")]
    Io(#[from] io::Error),
    /// No reply after every retransmission.
    #[error("no reply from {0} (is a node running there?)")]
    Timeout(SocketAddr),
    /// The reply was not `COOKIE SP bencode`.
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// An ng client bound to an ephemeral local port.
pub struct NgClient {
    socket: UdpSocket,
    server: SocketAddr,
    nonce: u32,
    tries: u32,
}

impl NgClient {
    /// A client for the node at `server`.
    pub fn new(server: SocketAddr) -> io::Result<Self> {
        let local: SocketAddr = if server.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .expect("valid");
        let socket = UdpSocket::bind(local)?;
        socket.set_read_timeout(Some(Duration::from_millis(1000)))?;
        Ok(Self {
            socket,
            server,
            nonce: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
            tries: 3,
        })
    }

    /// A client on an already bound socket (one opened in another network
    /// namespace, for instance).
    pub fn from_socket(socket: UdpSocket, server: SocketAddr) -> io::Result<Self> {
        socket.set_read_timeout(Some(Duration::from_millis(1000)))?;
        Ok(Self {
            socket,
            server,
            nonce: std::process::id(),
            tries: 3,
        })
    }

    /// Sets how long one try waits and how many tries are made (Kamailio:
    /// 1 s, 5 tries).
    pub fn with_retries(mut self, wait: Duration, tries: u32) -> io::Result<Self> {
        self.socket.set_read_timeout(Some(wait))?;
        self.tries = tries.max(1);
        Ok(self)
    }

    /// Sends `body` under a fresh cookie and returns the decoded reply.
    pub fn request(&mut self, body: &Value) -> Result<Value, ClientError> {
        // Unique across clients of this process and across processes: a node
        // answers a reused cookie with its cached reply.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cookie = format!("{}_{}_{seq}", std::process::id(), self.nonce);
        self.request_with_cookie(&cookie, body)
    }

    /// Sends `body` under `cookie` (retransmitting the same datagram on
    /// timeout, as Kamailio does) and returns the decoded reply.
    pub fn request_with_cookie(
        &mut self,
        cookie: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let mut d = cookie.as_bytes().to_vec();
        d.push(b' ');
        body.encode_into(&mut d);
        let reply = self.exchange(&d, Some(cookie.as_bytes()))?;
        let (_, rest) = split(&reply)?;
        bencode::decode(rest).map_err(|e| ClientError::Malformed(e.to_string()))
    }

    /// Sends a raw datagram and returns the raw reply.
    pub fn raw(&mut self, datagram: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.exchange(datagram, None)
    }

    /// Sends `datagram` (again on each timeout) and returns the first reply
    /// from the server that carries `cookie`. Late replies to earlier
    /// requests are skipped: a slow node must not shift every later reply
    /// by one.
    fn exchange(&mut self, datagram: &[u8], cookie: Option<&[u8]>) -> Result<Vec<u8>, ClientError> {
        let mut buf = vec![0u8; 65536];
        for _ in 0..self.tries {
            self.socket.send_to(datagram, self.server)?;
            loop {
                match self.socket.recv_from(&mut buf) {
                    Ok((n, from)) if from == self.server => {
                        let reply = &buf[..n];
                        let ours = match cookie {
                            Some(c) => split(reply).is_ok_and(|(rc, _)| rc == c),
                            None => true,
                        };
                        if ours {
                            return Ok(reply.to_vec());
                        }
                    }
                    Ok(_) => continue,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Err(ClientError::Timeout(self.server))
    }

    /// Sends a raw datagram and waits at most the read timeout for a reply,
    /// once: for checking that something gets no answer.
    pub fn raw_once(&mut self, datagram: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        let mut buf = vec![0u8; 65536];
        self.socket.send_to(datagram, self.server)?;
        match self.socket.recv_from(&mut buf) {
            Ok((n, _)) => Ok(Some(buf[..n].to_vec())),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn split(reply: &[u8]) -> Result<(&[u8], &[u8]), ClientError> {
    let sp = reply
        .iter()
        .position(|&b| b == b' ')
        .ok_or_else(|| ClientError::Malformed("no cookie".into()))?;
    Ok((&reply[..sp], &reply[sp + 1..]))
}
