//! chatsync-tests: the reliability and security harness (issue 9). It proves the promise
//! "nothing lost, nothing sent twice, nobody reads what is not theirs" under faults, load and
//! hostile input, with real parts only: the reference server on loopback, real sled stores, real
//! child processes killed with SIGKILL.
//!
//! Modules:
//! - [`proxy`]: a chaos TCP proxy (delay, drop, cut mid-response, refuse), on command or seeded.
//! - [`soak`]: the convergence soak: clients as child processes, server kills, final checks.
//! - [`hostile`]: a hostile HTTP server that answers the core with broken protocol v1.
//! - [`http`]: a minimal protocol client for the harness itself (tokens, rooms, history).
//! - [`park`]: many parked long-polls woken by one send (the long-poll load check).
//! - [`pg`]: a schema of its own in the test PostgreSQL database (several server instances).
//! - [`torture`]: the crash torture: device lives SIGKILLed at random, opening included, and a
//!   full or read-only disk ([`torture_disk`]); every store checked after every kill.
//!
//! The test binaries are in tests/tests/; the command-line entry points in src/bin/
//! (`chatsync-soak`, its child `chatsync-soak-client`, and `chatsync-park` for the long-poll
//! load). docs/reliability.md says how to run each.

pub mod hostile;
pub mod http;
pub mod park;
pub mod pg;
pub mod proxy;
pub mod soak;
pub mod torture;
pub mod torture_disk;
