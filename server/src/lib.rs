//! The Hexabase server crate: the `hb` command, and (to come) the control plane.
//!
//! It does the IO the compiler must not: reading intent trees and writing rendered ones.

pub mod cli;
pub mod gitops;
pub mod service;
pub mod timing;
pub mod tree;
