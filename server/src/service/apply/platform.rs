//! Platform changes: `intent/platform.yaml` replaced, the rest of the intent kept as the
//! head has it, and everything rendered again, in one commit.

use std::borrow::Cow;

use super::*;

/// The platform file, relative to `intent/`.
const PLATFORM_FILE: &str = "platform.yaml";

impl Engine {
    /// Replaces `intent/platform.yaml` with `text` on the branch head and renders the whole
    /// intent; the compiler's problems are [`ApplyError::Invalid`] and nothing is committed.
    /// Journaled as an import of the resulting intent (see [`crate::service::push`]).
    pub fn set_platform(
        &self,
        meta: &ActionMeta,
        text: &str,
        subject: &str,
    ) -> Result<Outcome, ApplyError> {
        self.import_from(meta, subject, |repo, head| {
            let mut files = self.intent_files(repo, head)?;
            files.insert(PLATFORM_FILE.to_owned(), text.to_owned());
            let output = self.compile_import(&files)?;
            Ok((Cow::Owned(files), Cow::Owned(output)))
        })
    }

    /// Every file under `intent/` at `head` (relative to it), as text.
    fn intent_files(
        &self,
        repo: &Repository,
        head: Option<Oid>,
    ) -> Result<compiler::IntentFiles, ApplyError> {
        let mut files = compiler::IntentFiles::new();
        let Some(head) = head else {
            return Ok(files);
        };
        let tree = history::tree_of(repo, head)?;
        let reader = self.gitops.reader(repo, Vec::new());
        for (path, id) in reader.file_ids_under(tree, "intent")? {
            let Some(rel) = path.strip_prefix("intent/") else {
                continue;
            };
            let text = String::from_utf8_lossy(&reader.blob(id)?).into_owned();
            files.insert(rel.to_owned(), text);
        }
        Ok(files)
    }
}
