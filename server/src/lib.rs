//! The Hexabase server crate: the control plane (`hb serve`), the commit engine, and the `hb`
//! command.
//!
//! It does the IO the compiler must not: Git, SQL, HTTP, files. The compiler stays pure.

pub mod cli;
pub mod client;
pub mod connections;
pub mod console;
pub mod errors;
pub mod gitops;
pub mod http;
pub mod metrics;
pub mod serve;
pub mod service;
pub mod settings;
pub mod store;
pub mod timing;
pub mod tree;

/// The server's version, as the API reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Git commit `hb` was built from (`server/build.rs`), or `unknown`.
pub const COMMIT: &str = env!("HB_BUILT_FROM_COMMIT");
