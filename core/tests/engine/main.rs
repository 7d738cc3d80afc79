//! Integration tests of the device engine: real reference server on 127.0.0.1, real sled
//! stores in temp dirs, faults injected for real (server killed and restarted, the client
//! process SIGKILLed). One test binary; one module per concern.

mod common;

mod auth;
mod chat;
mod crash;
mod history;
mod measure;
mod migration;
mod outbox;
mod recovery;
mod shutdown;
mod store_files;
mod sync;
