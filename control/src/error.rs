//! Why a node or a controller could not start.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::region::store::StoreError;

/// A node or controller that could not start (it serves nothing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The ng listener could not be bound.
    #[error("cannot bind ng listener {addr}: {source}")]
    BindNg {
        /// The configured ng address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The media workers could not start.
    #[error("cannot start workers: {0}")]
    Workers(#[source] io::Error),
    /// The seed file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadSeed {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The seed file is not valid TOML of the seed's shape.
    #[error("invalid seed file {path}: {source}")]
    Seed {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        source: toml::de::Error,
    },
    /// The registry could not be reached within the start-up grace.
    #[error("cannot reach registry {url}: {source}")]
    Registry {
        /// The registry URL.
        url: String,
        /// The last store error.
        source: StoreError,
    },
    /// The operator HTTP API could not start.
    #[error("cannot start the HTTP API on {addr}: {source}")]
    Api {
        /// The configured API address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The store refused the node's registration or subscription.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A socket option or a thread could not be set up.
    #[error(transparent)]
    Io(#[from] io::Error),
}
