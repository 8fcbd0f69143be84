//! What a media node ([`Config`]) and a controller ([`ControlConfig`]) need
//! to start, with defaults. The TOML file and the flags that fill them in
//! are the binary's (`rtpmesh`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use rtpmesh_relay::backend::BackendKind;

/// One local address media sockets bind to, and the address written into
/// SDP for it (they differ behind 1:1 NAT). rtpengine spells it
/// `LOCAL!ADVERTISED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// Address sockets bind to.
    pub local: IpAddr,
    /// Address advertised in SDP.
    pub advertised: IpAddr,
}

impl std::str::FromStr for Interface {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::Interface(s.to_owned());
        let (local, adv) = match s.split_once('!') {
            Some((l, a)) => (l, Some(a)),
            None => (s, None),
        };
        // rtpengine allows a `name/` prefix; the name is not used here.
        let local = local.rsplit('/').next().unwrap_or(local);
        let local: IpAddr = local.trim_matches(['[', ']']).parse().map_err(|_| bad())?;
        let advertised = match adv {
            Some(a) => a.trim_matches(['[', ']']).parse().map_err(|_| bad())?,
            None => local,
        };
        if local.is_ipv4() != advertised.is_ipv4() {
            return Err(bad());
        }
        Ok(Self { local, advertised })
    }
}

/// Everything a media node needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// ng listener address.
    pub listen_ng: SocketAddr,
    /// Media interfaces: the first IPv4 and first IPv6 one are used.
    pub interfaces: Vec<Interface>,
    /// First port of the media range.
    pub port_min: u16,
    /// Last port of the media range.
    pub port_max: u16,
    /// Worker threads (0: one per core).
    pub workers: usize,
    /// IO backend.
    pub backend: BackendKind,
    /// The kernel fast path for latched streams.
    pub fast_path: FastPathSetting,
    /// Calls with no media for this long are removed.
    pub media_timeout: Duration,
    /// How long `delete` keeps a call by default.
    pub delete_delay: Duration,
    /// Most concurrent calls (0: no limit); past it `offer` answers
    /// `load limit`.
    pub max_sessions: usize,
    /// How long a cookie's reply is kept for retransmissions.
    pub cookie_ttl: Duration,
    /// Address of worker 0's tunnel socket; worker `i` listens on the port
    /// `i` above it. `None`: no tunnels.
    pub tunnel_address: Option<SocketAddr>,
    /// The cluster secret tunnel keys are derived from.
    pub tunnel_secret: Option<String>,
    /// Where local recordings go. `None`: no recording.
    pub recording_dir: Option<PathBuf>,
    /// This node's id in the regional registry.
    pub node_id: Option<String>,
    /// This node's region.
    pub region: Option<String>,
    /// The registry: `redis://HOST:PORT` (or `none`).
    pub registry: Option<String>,
    /// How often the node reports itself to the registry.
    pub heartbeat: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_ng: "127.0.0.1:2223".parse().expect("valid"),
            interfaces: vec!["127.0.0.1".parse().expect("valid")],
            port_min: 30000,
            port_max: 39999,
            workers: 0,
            backend: BackendKind::Auto,
            fast_path: FastPathSetting::Auto,
            media_timeout: Duration::from_secs(60),
            delete_delay: Duration::from_secs(30),
            max_sessions: 0,
            cookie_ttl: Duration::from_secs(30),
            tunnel_address: None,
            tunnel_secret: None,
            recording_dir: None,
            node_id: None,
            region: None,
            registry: None,
            heartbeat: Duration::from_secs(2),
        }
    }
}

/// Whether and how latched streams are forwarded by the kernel
/// (`rtpmesh-fastpath`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FastPathSetting {
    /// The socket path forwards everything.
    Off,
    /// TC where the node can load it (CAP_BPF and CAP_NET_ADMIN, a kernel
    /// with BPF), else off, logged once with the reason.
    #[default]
    Auto,
    /// clsact ingress (TCX links on kernels that have them).
    Tc,
    /// XDP, native where the driver has it, else generic.
    Xdp,
}

impl std::str::FromStr for FastPathSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "auto" => Ok(Self::Auto),
            "tc" => Ok(Self::Tc),
            "xdp" => Ok(Self::Xdp),
            _ => Err(format!(
                "unknown fast path {s:?} (expected auto, off, tc or xdp)"
            )),
        }
    }
}

/// Everything a controller needs to start.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// ng listener.
    pub listen_ng: SocketAddr,
    /// Default caller region (see `ControllerConfig::region`).
    pub region: Option<String>,
    /// `redis://HOST:PORT`; `None` for the embedded store.
    pub registry: Option<String>,
    /// Regions, nodes, gateways and latencies to publish at start.
    pub seed: Option<PathBuf>,
    /// HTTP API listener.
    pub http: Option<SocketAddr>,
    /// Token the HTTP API requires.
    pub token: Option<String>,
    /// Request threads.
    pub threads: usize,
    /// How long one try to reach a node waits (two tries are made).
    pub node_timeout: Duration,
    /// With the embedded store: how often configured nodes are checked.
    pub health_interval: Duration,
    /// How long a cookie's reply is kept for retransmissions.
    pub cookie_ttl: Duration,
    /// How often calls that ended on their nodes are looked for.
    pub sweep_every: Duration,
    /// Calls younger than this are not swept (their answer may be pending).
    pub sweep_grace: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            listen_ng: "127.0.0.1:2222".parse().expect("valid"),
            region: None,
            registry: None,
            seed: None,
            http: None,
            token: None,
            threads: 8,
            node_timeout: Duration::from_millis(400),
            health_interval: Duration::from_secs(2),
            cookie_ttl: Duration::from_secs(30),
            sweep_every: Duration::from_secs(30),
            sweep_grace: Duration::from_secs(60),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid config {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What the TOML parser said.
        reason: String,
    },
    /// An interface is not `ADDR` or `ADDR!ADVERTISED` of one family.
    #[error("invalid interface {0:?}: expected ADDRESS or ADDRESS!ADVERTISED-ADDRESS of the same family")]
    Interface(String),
    /// The port range holds no even/odd pair.
    #[error("invalid port range {0}-{1}: need min < max with at least one even/odd pair")]
    PortRange(u16, u16),
    /// Unknown backend name.
    #[error("{0}")]
    Backend(String),
    /// Unknown fast path setting.
    #[error("{0}")]
    FastPath(String),
    /// No interface configured.
    #[error("no media interface configured")]
    NoInterface,
    /// Tunnels without a secret would accept anybody's packets.
    #[error("tunnel-address needs a non-empty tunnel-secret")]
    TunnelSecret,
    /// A node in a registry needs a name, a region and addresses others
    /// can reach.
    #[error("registry needs node-id, region, and a specific (not wildcard) listen-ng and tunnel-address")]
    Registration,
}

impl Config {
    /// Checks what can be checked before binding anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interfaces.is_empty() {
            return Err(ConfigError::NoInterface);
        }
        crate::pool::PortPool::new(self.port_min, self.port_max)
            .map_err(|_| ConfigError::PortRange(self.port_min, self.port_max))?;
        if self.tunnel_address.is_some() && self.tunnel_secret.as_deref().unwrap_or("").is_empty() {
            return Err(ConfigError::TunnelSecret);
        }
        if self.registry.is_some() && (self.node_id.is_none() || self.region.is_none()) {
            return Err(ConfigError::Registration);
        }
        // Other nodes and controllers reach this node at these addresses.
        if self.registry.is_some()
            && (self.listen_ng.ip().is_unspecified()
                || self.tunnel_address.is_some_and(|t| t.ip().is_unspecified()))
        {
            return Err(ConfigError::Registration);
        }
        Ok(())
    }

    /// The interface for an address family.
    pub fn interface(&self, ipv6: bool) -> Option<Interface> {
        self.interfaces
            .iter()
            .copied()
            .find(|i| i.local.is_ipv6() == ipv6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interfaces() {
        let i: Interface = "10.0.0.1!203.0.113.7".parse().unwrap();
        assert_eq!(i.local, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(i.advertised, "203.0.113.7".parse::<IpAddr>().unwrap());
        let i: Interface = "pub/::1".parse().unwrap();
        assert!(i.local.is_ipv6());
        assert!("10.0.0.1!::1".parse::<Interface>().is_err());
        assert!("nonsense".parse::<Interface>().is_err());
    }

    #[test]
    fn an_empty_port_range_is_refused() {
        let c = Config {
            port_min: 5000,
            port_max: 5000,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::PortRange(5000, 5000)));
    }
}
