//! Chat: sessions, participants and (later in this module) messages and AI
//! replies. The access rule lives here, in one place: a caller who does not
//! participate in a session gets `NotFound` for everything about it.

pub mod sessions;

pub use sessions::{NewSession, SessionPatch, SessionView};
