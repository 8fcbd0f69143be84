//! The controller's [`NodeLink`] in production: ng over UDP.

use std::time::Duration;

use rtpmesh_ng::bencode::Value;
use rtpmesh_ng_udp::client::{ClientError, NgClient};

use super::{LinkError, NodeLink};
use crate::region::NodeInfo;

/// Reaches nodes with ng over UDP: one client per request, two tries.
pub struct UdpLink {
    timeout: Duration,
}

impl UdpLink {
    /// A link whose tries each wait `timeout` for a reply.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl NodeLink for UdpLink {
    fn request(&self, node: &NodeInfo, body: &Value) -> Result<Value, LinkError> {
        let failed = |reason: String| LinkError::Failed {
            node: node.id.clone(),
            reason,
        };
        let mut c = NgClient::new(node.ng)
            .and_then(|c| c.with_retries(self.timeout, 2))
            .map_err(|e| failed(e.to_string()))?;
        c.request(body).map_err(|e| match e {
            ClientError::Timeout(_) => LinkError::Timeout(node.id.clone()),
            e => failed(e.to_string()),
        })
    }
}
