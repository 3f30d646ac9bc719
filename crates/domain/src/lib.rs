//! Spec Gen's core types: entities, identifiers and the validating newtypes
//! that make every input rule of the wire contract impossible to bypass.
//!
//! This crate performs no I/O and knows no framework; everything it offers is
//! a plain value that the ports, the application layer and the adapters share.

pub mod cursor;
pub mod ids;
pub mod model;
pub mod time_util;
pub mod validation;

pub use cursor::Cursor;
pub use ids::{FamilyId, MessageId, RefreshTokenId, SessionId, UserId};
pub use model::*;
pub use validation::*;
