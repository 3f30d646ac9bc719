pub mod auth;
pub mod fallback;
pub mod health;
pub mod messages;
pub mod ops;
pub mod sessions;
pub mod users;
pub mod web_client;
