//! HTTP routes.

pub mod api;
pub mod health;
pub mod ingress;
pub mod node;
