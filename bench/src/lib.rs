//! rtpmesh-bench: drives RTP through any relay that speaks ng and measures
//! what comes out. See `bench/README.md`.
#![warn(missing_docs)]

pub mod fwd;
pub mod gen;
pub mod ladder;
pub mod latency;
pub mod nscmd;
pub mod nscpu;
pub mod nsreport;
pub mod pcap;
pub mod proc;
pub mod report;
pub mod rtp;
pub mod scale;
pub mod setup;
pub mod soak;
pub mod softirq;
pub mod srtpreport;
pub mod suite;
pub mod tunnel;
