//! Use cases: applying actions as commits, and the credentials people hold.

pub mod accounts;
pub mod action;
pub mod apply;
pub mod audit;
pub mod authz;
pub mod credentials;
pub mod issuer;
pub mod journal;
pub mod oidc;
pub mod orgs;
pub mod push;
pub mod tenancy;
pub mod throttle;
