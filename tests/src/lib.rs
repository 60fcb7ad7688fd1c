//! Harness for end-to-end tests and benchmarks (filled in by the e2e work).
