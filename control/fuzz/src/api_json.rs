//! `api_json`: the operator API's JSON bodies, as the server decodes
//! requests and the admin CLI decodes replies (`rtpmesh_control::api::wire`).

use std::fmt::Debug;

use rtpmesh_control::api::wire::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Decodes `data` as every body type; what decodes must encode and decode
/// back to the same value.
pub fn check(data: &[u8]) {
    // Request bodies: what an unauthenticated client can reach.
    round_trip::<AddRegion>(data);
    round_trip::<SetDraining>(data);
    round_trip::<AddGateway>(data);
    round_trip::<SetGatewayState>(data);
    round_trip::<RegisterRoute>(data);
    round_trip::<SetLatency>(data);
    // Reply bodies: what the admin CLI reads from a server.
    round_trip::<ErrorReply>(data);
    round_trip::<Health>(data);
    round_trip::<Regions>(data);
    round_trip::<Nodes>(data);
    round_trip::<Gateways>(data);
    round_trip::<Routes>(data);
    round_trip::<LatencyMatrix>(data);
    round_trip::<Explain>(data);
    round_trip::<Removed>(data);
}

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + Debug>(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let text = serde_json::to_vec(&v).expect("a decoded body encodes");
    let again: T = serde_json::from_slice(&text).expect("an encoded body decodes");
    assert_eq!(again, v);
}
