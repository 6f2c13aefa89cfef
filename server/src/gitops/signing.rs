//! Signing commits the way `git` does, by the standard tools (`ssh-keygen`, `gpg`).

use super::*;

/// How commits are signed: the way `git` itself does it, by the standard tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// An SSH key (`ssh-keygen -Y sign -n git`).
    Ssh {
        /// The private key file.
        key: PathBuf,
    },
    /// An OpenPGP key in a GnuPG home (`gpg --detach-sign --armor`).
    OpenPgp {
        /// The key id or fingerprint.
        key_id: String,
        /// The GnuPG home; the default one when `None`.
        home: Option<PathBuf>,
    },
}

impl Signing {
    /// An armored detached signature of `content`.
    pub(super) fn sign(&self, content: &[u8]) -> Result<String, GitOpsError> {
        let mut command = match self {
            Self::Ssh { key } => {
                let mut c = std::process::Command::new("ssh-keygen");
                c.args(["-Y", "sign", "-n", "git", "-f"]).arg(key);
                c
            }
            Self::OpenPgp { key_id, home } => {
                let mut c = std::process::Command::new("gpg");
                if let Some(home) = home {
                    c.arg("--homedir").arg(home);
                }
                c.args([
                    "--batch",
                    "--yes",
                    "--detach-sign",
                    "--armor",
                    "--local-user",
                    key_id,
                ]);
                c
            }
        };
        let failed = |reason: String| GitOpsError::Signing { reason };
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run the signing tool: {e}")))?;
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(content)
                .map_err(|e| failed(format!("cannot feed the signing tool: {e}")))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| failed(format!("the signing tool failed: {e}")))?;
        if !output.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ));
        }
        String::from_utf8(output.stdout).map_err(|_| failed("the signature is not text".into()))
    }
}
