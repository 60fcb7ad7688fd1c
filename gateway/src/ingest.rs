//! Ingest: remote-write decoding and the write handler.

pub mod decode;
