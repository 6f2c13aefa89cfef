//! Use cases: applying actions as commits.

pub mod action;
pub mod apply;
