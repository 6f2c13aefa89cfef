//! Use cases: applying actions as commits.

pub mod action;
pub mod apply;
pub mod audit;
pub mod push;
pub mod requests;
