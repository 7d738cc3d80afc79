//! End-to-end tests of the `chatsync` binary against the real reference server on loopback.
//! One test binary (faster to link), one module per concern.

mod chat;
mod chat_model;
mod demo;
mod doctor;
mod exit_codes;
mod progress;
mod support;
mod walkthrough;
