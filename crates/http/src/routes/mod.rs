pub mod fallback;
pub mod health;
pub mod ops;
