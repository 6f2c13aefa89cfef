//! Who acts: a signed-in [`Caller`] and how they proved it. Front doors (the API's
//! extractor in `http::auth`, the console, webhooks) make one; use cases take it.

use crate::store::User;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session; the hash of its cookie.
    Session {
        /// The stored hash of the session cookie.
        token_hash: String,
    },
    /// An API token.
    Token,
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user.
    pub user: User,
    /// How they signed in.
    pub via: Via,
}
