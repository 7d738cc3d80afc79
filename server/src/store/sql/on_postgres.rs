//! The store conformance suite on PostgreSQL (see `testing.rs`).

const BACKEND: super::testing::Backend = super::testing::Backend::Postgres;

#[path = "tests.rs"]
mod tests;

#[path = "stream_tests.rs"]
mod stream_tests;
