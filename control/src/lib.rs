//! rtpmesh control plane: the ng protocol, SDP rewriting, call state, and
//! the drivers that bind them to sockets and workers.
//!
//! Sans-IO cores: [`bencode`], [`ng`], [`sdp`], [`call`], [`node`], [`region`]
//! (with its stores beside it), [`controller`].
//! Drivers: [`media`] (workers, ports, sockets), [`record`] (pcap/WAV
//! recording on its own thread), [`presence`] (a node in the registry),
//! [`server`] (the ng socket loop), [`client`] and [`cli`] (talking to a
//! node), [`api`] (the operator HTTP API) and [`admin`] (the commands that
//! talk to it).
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod bencode;
pub mod call;
pub mod cli;
pub mod client;
pub mod config;
pub mod controller;
pub mod media;
pub mod ng;
pub mod node;
pub mod plane;
pub mod presence;
pub mod record;
pub mod region;
pub mod sdp;
pub mod server;
#[cfg(test)]
mod testing;
