//! One module per subcommand family.

pub(crate) mod client;
pub(crate) mod demo;
pub(crate) mod gateway;
pub(crate) mod health;
pub(crate) mod route;
pub(crate) mod security;
pub(crate) mod serve;
pub(crate) mod token;
pub(crate) mod tools;
