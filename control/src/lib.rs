//! rtpmesh control plane: the media node, the regional controller and the
//! recorder, with the drivers that bind them to sockets and workers.
//!
//! The ng vocabulary (bencode, requests, replies, SDP) is crate
//! `rtpmesh-ng`; the ng socket loop and client are `rtpmesh-ng-udp`; the
//! per-packet flow core is `rtpmesh-flow` and its workers `rtpmesh-relay`.
//!
//! Sans-IO cores here: [`call`], [`node`], [`region`] (its stores beside
//! it), [`controller`], [`pool`].
//! Drivers: [`plane::WorkerPlane`] (workers, ports, sockets), [`record`] (pcap/WAV
//! recording on its own thread), [`presence`] (a node in the registry),
//! [`daemon`] (a node's and a controller's process), [`api`] (the operator HTTP API).
#![warn(missing_docs)]

pub mod api;
pub mod call;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod error;
pub mod node;
pub mod plane;
pub mod pool;
pub mod presence;
pub mod record;
pub mod region;
#[cfg(test)]
mod testing;
