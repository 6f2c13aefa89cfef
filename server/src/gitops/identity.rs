//! The people and bots commits are made by, as Git records them.

use super::{GitOpsError, sanitize_line};

/// A person or bot, as Git records them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
}

/// Whether Git trims `c` from the ends of a signature's name or email (libgit2's "crud").
fn is_crud(c: char) -> bool {
    c <= ' ' || matches!(c, '.' | ',' | ':' | ';' | '<' | '>' | '"' | '\\' | '\'')
}

impl Identity {
    /// This identity as a Git signature dated now. Any name or email becomes one Git takes
    /// and that keeps the author line whole: control characters and line breaks become
    /// spaces, `<` and `>` are dropped (and whitespace from the email), and a name with
    /// nothing left once Git trims its ends (`'`, `""`, `<>`, `;`) is written as the
    /// email's local part, or `unnamed`. The display form is never read back for identity
    /// (the `Hexabase-Actor-Id` trailer carries the user's id).
    pub fn signature(&self) -> Result<git2::Signature<'static>, GitOpsError> {
        let email: String = sanitize_line(&self.email, 254)
            .chars()
            .filter(|c| !matches!(c, '<' | '>') && !c.is_whitespace())
            .collect();
        let email = match email.trim_matches(is_crud) {
            "" => "unknown@invalid",
            email => email,
        };
        let name = sanitize_line(&self.name, 100).replace(['<', '>'], "");
        let name = match name.trim_matches(is_crud) {
            "" => match email.split('@').next().unwrap_or("").trim_matches(is_crud) {
                "" => "unnamed",
                local => local,
            },
            name => name,
        };
        git2::Signature::now(name, email).map_err(GitOpsError::Git)
    }
}
