//! Remotes: fetching and pushing one branch over `file://`, Git's smart HTTP protocol and
//! SSH, with credentials from configuration (never from command lines), and committing in
//! two steps so that the push journal can be written between them.
//!
//! libgit2 reports a push whose reference the server refused as a success; here every
//! reference's status is collected and a refusal is [`RemoteError::Rejected`], like a
//! non-fast-forward push libgit2 refuses itself.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};

use git2::{
    CertificateCheckStatus, Cred, CredentialType, ErrorCode, FetchOptions, Oid, PushOptions,
    RemoteCallbacks, Repository,
};

/// How to authenticate to a remote.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Credentials {
    /// No authentication (`file://`, or a server that asks for none).
    #[default]
    None,
    /// SSH with a private key; the server's host key must be in `known_hosts`.
    Ssh {
        /// The user, when the URL names none (`git` otherwise).
        #[serde(default)]
        username: Option<String>,
        /// The private key file (OpenSSH format, without a passphrase).
        private_key: PathBuf,
        /// The known_hosts file the server's host key is checked against.
        known_hosts: PathBuf,
    },
    /// HTTP(S) Basic authentication, the password read from a file each time it is needed.
    Http {
        /// The user name.
        username: String,
        /// The file holding the password (a trailing newline is ignored).
        password_file: PathBuf,
    },
}

/// A remote and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RemoteConfig {
    /// The name for remote-tracking references (`refs/remotes/<name>/<branch>`).
    pub name: String,
    /// `file:///…`, `http(s)://…`, `ssh://user@host:port/…` or `user@host:path`.
    pub url: String,
    /// How to authenticate.
    #[serde(default)]
    pub credentials: Credentials,
}

/// What was being done when a remote failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Fetching.
    Fetch,
    /// Pushing.
    Push,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fetch => "fetch from",
            Self::Push => "push to",
        })
    }
}

/// Why a fetch or push failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The remote refused to update a reference (someone else pushed first, or a hook said
    /// no). Fetch, re-apply and push again.
    #[error("the remote refused the update of {refname}: {reason}")]
    Rejected {
        /// The remote reference.
        refname: String,
        /// The remote's reason.
        reason: String,
    },
    /// The remote could not be reached or the transfer failed.
    #[error("failed to {operation} {url}")]
    Transport {
        /// Fetch or push.
        operation: Operation,
        /// The remote URL.
        url: String,
        /// What failed.
        #[source]
        source: git2::Error,
    },
    /// The remote did not accept our credentials.
    #[error("{url} refused our credentials")]
    Authentication {
        /// The remote URL.
        url: String,
        /// What failed.
        #[source]
        source: git2::Error,
    },
    /// The SSH server's host key is unknown or does not match known_hosts.
    #[error("the host key of {host} is not trusted: {reason}")]
    HostKey {
        /// The host as known_hosts names it (`[host]:port` off port 22).
        host: String,
        /// What was wrong.
        reason: String,
    },
    /// A credential file (key, known_hosts, password) could not be read.
    #[error("failed to read {path}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A local Git operation failed.
    #[error("local git operation failed")]
    Git(#[source] git2::Error),
}

/// A remote for one repository: fetches and pushes one branch at a time.
#[derive(Debug, Clone)]
pub struct Remote {
    config: RemoteConfig,
}

/// What the callbacks of one operation saw, to turn libgit2's codes into [`RemoteError`].
#[derive(Default)]
struct Seen {
    /// Credential requests so far; a second one means the first was refused.
    credential_requests: usize,
    /// The credentials were refused.
    refused: bool,
    /// A credential file could not be read.
    unreadable: Option<(PathBuf, io::Error)>,
    /// The host key problem.
    host_key: Option<(String, String)>,
    /// References the server refused, with its reasons.
    rejected: Vec<(String, String)>,
}

impl Remote {
    /// A remote as configured.
    pub fn new(config: RemoteConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// The remote-tracking reference of `branch`: `refs/remotes/<name>/<branch>`.
    pub fn tracking_ref(&self, branch: &str) -> String {
        format!("refs/remotes/{}/{branch}", self.config.name)
    }

    /// The remote-tracking reference's commit, `None` when there is none.
    pub fn tracking(&self, repo: &Repository, branch: &str) -> Result<Option<Oid>, RemoteError> {
        match repo.refname_to_id(&self.tracking_ref(branch)) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(RemoteError::Git(e)),
        }
    }

    /// Sets the remote-tracking reference of `branch` (removes it for `None`).
    pub fn set_tracking(
        &self,
        repo: &Repository,
        branch: &str,
        commit: Option<Oid>,
    ) -> Result<(), RemoteError> {
        let name = self.tracking_ref(branch);
        match commit {
            Some(id) => {
                repo.reference(&name, id, true, "hexabase: remote-tracking")
                    .map_err(RemoteError::Git)?;
            }
            None => match repo.find_reference(&name) {
                Ok(mut r) => r.delete().map_err(RemoteError::Git)?,
                Err(e) if e.code() == ErrorCode::NotFound => {}
                Err(e) => return Err(RemoteError::Git(e)),
            },
        }
        Ok(())
    }

    /// Fetches `branch` and points its remote-tracking reference at the remote's head.
    /// Returns that head, `None` when the remote has no such branch.
    pub fn fetch(&self, repo: &Repository, branch: &str) -> Result<Option<Oid>, RemoteError> {
        let remote_ref = format!("refs/heads/{branch}");
        let refspec = format!("+{remote_ref}:{}", self.tracking_ref(branch));
        let seen = RefCell::new(Seen::default());
        let head = {
            let mut remote = repo
                .remote_anonymous(&self.config.url)
                .map_err(RemoteError::Git)?;
            let mut options = FetchOptions::new();
            options.remote_callbacks(self.callbacks(&seen));
            options.download_tags(git2::AutotagOption::None);
            remote
                .fetch(&[refspec.as_str()], Some(&mut options), None)
                .map_err(|e| self.error(Operation::Fetch, e, &seen))?;
            let heads = remote
                .list()
                .map_err(|e| self.error(Operation::Fetch, e, &seen))?;
            heads
                .iter()
                .find(|h| h.name() == remote_ref)
                .map(git2::RemoteHead::oid)
        };
        self.set_tracking(repo, branch, head)?;
        Ok(head)
    }

    /// Pushes `commit` to `branch` on the remote, never forcing: the remote branch must be
    /// an ancestor of `commit` (or absent). A refusal is [`RemoteError::Rejected`]. On
    /// success the remote-tracking reference points at `commit`.
    pub fn push(&self, repo: &Repository, commit: Oid, branch: &str) -> Result<(), RemoteError> {
        let remote_ref = format!("refs/heads/{branch}");
        // libgit2 resolves the source side of a push refspec as a revision, so the commit id
        // names exactly what is pushed even if the local branch moves meanwhile.
        let refspec = format!("{commit}:{remote_ref}");
        let seen = RefCell::new(Seen::default());
        {
            let mut remote = repo
                .remote_anonymous(&self.config.url)
                .map_err(RemoteError::Git)?;
            let mut callbacks = self.callbacks(&seen);
            callbacks.push_update_reference(|refname, status| {
                if let Some(reason) = status {
                    seen.borrow_mut()
                        .rejected
                        .push((refname.to_owned(), reason.to_owned()));
                }
                Ok(())
            });
            let mut options = PushOptions::new();
            options.remote_callbacks(callbacks);
            match remote.push(&[refspec.as_str()], Some(&mut options)) {
                Ok(()) => {}
                // libgit2 refuses a push that is not a fast-forward of what the remote
                // advertised before sending anything.
                Err(e) if e.code() == ErrorCode::NotFastForward => {
                    return Err(RemoteError::Rejected {
                        refname: remote_ref,
                        reason: e.message().to_owned(),
                    });
                }
                Err(e) => return Err(self.error(Operation::Push, e, &seen)),
            }
        }
        if let Some((refname, reason)) = seen.borrow_mut().rejected.pop() {
            return Err(RemoteError::Rejected { refname, reason });
        }
        self.set_tracking(repo, branch, Some(commit))
    }

    /// The callbacks for one operation: credentials, the host key check, and what they saw.
    fn callbacks<'a>(&'a self, seen: &'a RefCell<Seen>) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(move |_url, username_from_url, allowed| {
            let mut seen = seen.borrow_mut();
            seen.credential_requests += 1;
            if seen.credential_requests > 1 && !allowed.contains(CredentialType::USERNAME) {
                seen.refused = true;
                return Err(git2::Error::from_str("the credentials were refused"));
            }
            match &self.config.credentials {
                Credentials::None => {
                    seen.refused = true;
                    Err(git2::Error::from_str(
                        "the remote asks for credentials and none are configured",
                    ))
                }
                Credentials::Ssh {
                    username,
                    private_key,
                    ..
                } => {
                    let user = username_from_url.or(username.as_deref()).unwrap_or("git");
                    if allowed.contains(CredentialType::USERNAME) {
                        // Asked for the user name only; the key comes in the next request.
                        seen.credential_requests -= 1;
                        return Cred::username(user);
                    }
                    if !allowed.contains(CredentialType::SSH_KEY) {
                        seen.refused = true;
                        return Err(git2::Error::from_str("the server takes no SSH key"));
                    }
                    if let Err(e) = std::fs::metadata(private_key) {
                        seen.unreadable = Some((private_key.clone(), e));
                        return Err(git2::Error::from_str("the private key cannot be read"));
                    }
                    Cred::ssh_key(user, None, private_key, None)
                }
                Credentials::Http {
                    username,
                    password_file,
                } => {
                    if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                        seen.refused = true;
                        return Err(git2::Error::from_str("the server takes no password"));
                    }
                    match read_password(password_file) {
                        Ok(password) => Cred::userpass_plaintext(username, &password),
                        Err(e) => {
                            seen.unreadable = Some((password_file.clone(), e));
                            Err(git2::Error::from_str("the password file cannot be read"))
                        }
                    }
                }
            }
        });
        callbacks.certificate_check(move |cert, host| {
            let Some(hostkey) = cert.as_hostkey() else {
                // TLS: libgit2's own verification decides.
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let name = known_hosts_name(host, ssh_port(&self.config.url));
            let verdict = match &self.config.credentials {
                Credentials::Ssh { known_hosts, .. } => {
                    match std::fs::read_to_string(known_hosts) {
                        Ok(text) => check_host_key(&text, &name, hostkey.hostkey()),
                        Err(e) => {
                            seen.borrow_mut().unreadable = Some((known_hosts.clone(), e));
                            return Err(git2::Error::from_str("known_hosts cannot be read"));
                        }
                    }
                }
                _ => Err("no known_hosts file is configured".to_owned()),
            };
            match verdict {
                Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                Err(reason) => {
                    let message = format!("host key of {name}: {reason}");
                    seen.borrow_mut().host_key = Some((name, reason));
                    Err(git2::Error::from_str(&message))
                }
            }
        });
        callbacks
    }

    /// The most telling error for a failed operation.
    fn error(&self, operation: Operation, e: git2::Error, seen: &RefCell<Seen>) -> RemoteError {
        let mut seen = seen.borrow_mut();
        let url = self.config.url.clone();
        if let Some((path, source)) = seen.unreadable.take() {
            return RemoteError::Credentials { path, source };
        }
        if let Some((host, reason)) = seen.host_key.take() {
            return RemoteError::HostKey { host, reason };
        }
        if seen.refused || e.code() == ErrorCode::Auth {
            return RemoteError::Authentication { url, source: e };
        }
        RemoteError::Transport {
            operation,
            url,
            source: e,
        }
    }
}

/// The URL of remote `name` in the configuration of the repository at `path`
/// (`remote.<name>.url`, as `git remote add` writes it); `None` when it is not set.
pub fn configured_url(path: &Path, name: &str) -> Result<Option<String>, RemoteError> {
    let repo = Repository::open(path).map_err(RemoteError::Git)?;
    let config = repo.config().map_err(RemoteError::Git)?;
    match config.get_string(&format!("remote.{name}.url")) {
        Ok(url) => Ok(Some(url)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(RemoteError::Git(e)),
    }
}

/// Reads a password file; one trailing line break is not part of the password.
fn read_password(path: &Path) -> io::Result<String> {
    let mut text = std::fs::read_to_string(path)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// The SSH port of a URL: `ssh://host:port/…` names it, scp-like `host:path` uses 22.
fn ssh_port(url: &str) -> u16 {
    let Some(rest) = url
        .strip_prefix("ssh://")
        .or_else(|| url.strip_prefix("git+ssh://"))
        .or_else(|| url.strip_prefix("ssh+git://"))
    else {
        return 22;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let port = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split_once("]:").map(|(_, p)| p)
    } else {
        host_port.rsplit_once(':').map(|(_, p)| p)
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(22)
}

/// How known_hosts names a host: `host` on port 22, `[host]:port` elsewhere.
fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Checks the server's raw host key against known_hosts lines for `name`. Plain host
/// patterns (with `*` and `?` and `!` negation) are understood; hashed entries are not.
fn check_host_key(known_hosts: &str, name: &str, key: Option<&[u8]>) -> Result<(), String> {
    let Some(key) = key else {
        return Err("the server sent no host key".to_owned());
    };
    let key = base64(key);
    let mut known = false;
    let mut known_other_key = false;
    for line in known_hosts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let marker = first.strip_prefix('@');
        if marker.is_some() {
            first = fields.next().unwrap_or_default();
        }
        let (Some(_kind), Some(entry_key)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !hosts_match(first, name) {
            continue;
        }
        match marker {
            Some("revoked") if entry_key == key => {
                return Err("the key is marked revoked in known_hosts".to_owned());
            }
            Some(_) => {}
            None if entry_key == key => known = true,
            None => known_other_key = true,
        }
    }
    if known {
        Ok(())
    } else if known_other_key {
        Err("the key differs from the one in known_hosts".to_owned())
    } else {
        Err("the host is not in known_hosts".to_owned())
    }
}

/// Whether a comma-separated known_hosts pattern list matches `name`.
fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob(pattern.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

/// `*` and `?` matching, ASCII case-insensitive, as OpenSSH does for host patterns.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, tail)| t.eq_ignore_ascii_case(c) && glob(rest, tail)),
    }
}

/// Standard base64 with padding, as known_hosts writes keys.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn ports_and_host_names() {
        assert_eq!(ssh_port("ssh://git@127.0.0.1:2222/srv/repo.git"), 2222);
        assert_eq!(ssh_port("ssh://git@example.com/srv/repo.git"), 22);
        assert_eq!(ssh_port("git@example.com:org/repo.git"), 22);
        assert_eq!(ssh_port("ssh://[::1]:2200/x"), 2200);
        assert_eq!(known_hosts_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
        assert_eq!(known_hosts_name("example.com", 22), "example.com");
    }

    #[test]
    fn known_hosts_lines() {
        let key = b"key-bytes";
        let encoded = base64(key);
        let text = format!(
            "# comment\nother.host ssh-ed25519 AAAA\n[127.0.0.1]:2222,*.example ssh-ed25519 {encoded} c\n"
        );
        assert_eq!(check_host_key(&text, "[127.0.0.1]:2222", Some(key)), Ok(()));
        assert_eq!(check_host_key(&text, "a.example", Some(key)), Ok(()));
        assert!(
            check_host_key(&text, "other.host", Some(key))
                .unwrap_err()
                .contains("differs")
        );
        assert!(
            check_host_key(&text, "127.0.0.1", Some(key))
                .unwrap_err()
                .contains("not in known_hosts")
        );
        let revoked = format!("{text}@revoked * ssh-ed25519 {encoded}\n");
        assert!(
            check_host_key(&revoked, "a.example", Some(key))
                .unwrap_err()
                .contains("revoked")
        );
        assert!(!hosts_match("*.example,!bad.example", "bad.example"));
    }
}
