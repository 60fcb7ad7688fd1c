//! Ingest: remote-write framing, decoding, validation and the write handler.

pub mod body;
pub mod decode;
pub mod remote_write;
