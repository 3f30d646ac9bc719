//! The composition root as a library, so tests can start the real server
//! in-process exactly as `main` does.

pub mod config;
pub mod secrets;
pub mod telemetry;
pub mod wiring;
