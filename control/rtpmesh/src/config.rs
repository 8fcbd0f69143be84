//! The node's TOML file: every key optional, the same names as the flags;
//! flags override it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rtpmesh_control::config::{Config, ConfigError};
use serde::Deserialize;

/// The TOML file's shape: every key optional, same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileConfig {
    /// See [`Config::listen_ng`].
    pub(crate) listen_ng: Option<SocketAddr>,
    /// See [`Config::interfaces`] (strings like `10.0.0.1!203.0.113.1`).
    pub(crate) interface: Option<Vec<String>>,
    /// See [`Config::port_min`].
    pub(crate) port_min: Option<u16>,
    /// See [`Config::port_max`].
    pub(crate) port_max: Option<u16>,
    /// See [`Config::workers`].
    pub(crate) workers: Option<usize>,
    /// `auto`, `uring` or `epoll`.
    pub(crate) backend: Option<String>,
    /// `auto`, `off`, `tc` or `xdp`.
    pub(crate) fast_path: Option<String>,
    /// Seconds; see [`Config::media_timeout`].
    pub(crate) timeout: Option<u64>,
    /// Seconds; see [`Config::delete_delay`].
    pub(crate) delete_delay: Option<u64>,
    /// See [`Config::max_sessions`].
    pub(crate) max_sessions: Option<usize>,
    /// See [`Config::tunnel_address`].
    pub(crate) tunnel_address: Option<SocketAddr>,
    /// See [`Config::tunnel_secret`].
    pub(crate) tunnel_secret: Option<String>,
    /// See [`Config::recording_dir`].
    pub(crate) recording_dir: Option<PathBuf>,
    /// See [`Config::node_id`].
    pub(crate) node_id: Option<String>,
    /// See [`Config::region`].
    pub(crate) region: Option<String>,
    /// See [`Config::registry`].
    pub(crate) registry: Option<String>,
    /// Milliseconds; see [`Config::heartbeat`].
    pub(crate) heartbeat_ms: Option<u64>,
}

/// Applies a TOML file over `config`.
pub(crate) fn apply_file(config: &mut Config, path: &Path) -> Result<(), ConfigError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    let f: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    // A value that parses as TOML but means nothing (an unknown backend)
    // is reported with the file's name too.
    apply(config, f).map_err(|e| ConfigError::Parse {
        path: p,
        reason: e.to_string(),
    })
}

/// Applies the keys that are set.
pub(crate) fn apply(config: &mut Config, f: FileConfig) -> Result<(), ConfigError> {
    if let Some(v) = f.listen_ng {
        config.listen_ng = v;
    }
    if let Some(v) = f.interface {
        config.interfaces = v.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    }
    if let Some(v) = f.port_min {
        config.port_min = v;
    }
    if let Some(v) = f.port_max {
        config.port_max = v;
    }
    if let Some(v) = f.workers {
        config.workers = v;
    }
    if let Some(v) = f.backend {
        config.backend = v.parse().map_err(ConfigError::Backend)?;
    }
    if let Some(v) = f.fast_path {
        config.fast_path = v.parse().map_err(ConfigError::FastPath)?;
    }
    if let Some(v) = f.timeout {
        config.media_timeout = Duration::from_secs(v);
    }
    if let Some(v) = f.delete_delay {
        config.delete_delay = Duration::from_secs(v);
    }
    if let Some(v) = f.max_sessions {
        config.max_sessions = v;
    }
    if let Some(v) = f.tunnel_address {
        config.tunnel_address = Some(v);
    }
    if let Some(v) = f.tunnel_secret {
        config.tunnel_secret = Some(v);
    }
    if let Some(v) = f.recording_dir {
        config.recording_dir = Some(v);
    }
    if let Some(v) = f.node_id {
        config.node_id = Some(v);
    }
    if let Some(v) = f.region {
        config.region = Some(v);
    }
    if let Some(v) = f.registry {
        config.registry = Some(v);
    }
    if let Some(v) = f.heartbeat_ms {
        config.heartbeat = Duration::from_millis(v.max(100));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtpmesh_relay::backend::BackendKind;

    #[test]
    fn file_keys_apply_and_unknown_keys_fail() {
        let mut c = Config::default();
        let f: FileConfig = toml::from_str("port-min = 40000\nport-max = 40100\nbackend = \"epoll\"\ninterface = [\"127.0.0.1\", \"::1\"]").unwrap();
        apply(&mut c, f).unwrap();
        assert_eq!((c.port_min, c.port_max), (40000, 40100));
        assert_eq!(c.backend, BackendKind::Epoll);
        assert!(c.interface(true).is_some());
        assert!(toml::from_str::<FileConfig>("prot-min = 1").is_err());
        let mut c = Config::default();
        assert!(matches!(
            apply(&mut c, toml::from_str("backend = \"kqueue\"").unwrap()),
            Err(ConfigError::Backend(_))
        ));
    }
}
