//! Integration tests of the reference server: the real server on 127.0.0.1:0 with a temp SQLite
//! database, driven by a real HTTP client. One test binary, one module per concern.

mod support;

mod auth;
mod binary;
mod errors;
mod guards;
mod history;
mod instances;
mod lifecycle;
mod openapi;
mod pressure;
mod rooms;
mod send;
mod sync;
mod v2_stream;
mod v2_sync;
mod v2_writes;
