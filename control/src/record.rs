//! STUB: replaced by the recorder branch.
#![allow(missing_docs, unreachable_pub)]
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

pub struct Recorder;
pub struct RecordingSpec {
    pub call_id: String,
    pub tag: String,
    pub stream: usize,
    pub bind: IpAddr,
}
pub struct Recording {
    pub id: u64,
    pub addr: SocketAddr,
}
#[derive(Debug)]
pub struct RecordingFiles;
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct RecordError;
impl Recorder {
    pub fn start(_dir: PathBuf) -> std::io::Result<Self> {
        Ok(Self)
    }
    pub fn open(&self, _s: RecordingSpec) -> Result<Recording, RecordError> {
        Err(RecordError)
    }
    pub fn close(&self, _id: u64) -> Result<RecordingFiles, RecordError> {
        Err(RecordError)
    }
}
