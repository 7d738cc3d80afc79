//! The store conformance suite on SQLite (see `testing.rs`).

const BACKEND: super::testing::Backend = super::testing::Backend::Sqlite;

#[path = "tests.rs"]
mod tests;

#[path = "stream_tests.rs"]
mod stream_tests;
