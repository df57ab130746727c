//! One module per subcommand family.

pub(crate) mod client;
pub(crate) mod demo;
pub(crate) mod gateway;
pub(crate) mod health;
pub(crate) mod route;
pub(crate) mod serve;
pub(crate) mod tools;
