//! Imports: the whole intent replaced and everything rendered in one commit.

use std::borrow::Cow;

use super::*;

impl Engine {
    /// Replaces the whole intent with `files` and renders everything: the first commit of a
    /// repository, or a re-render after people changed the platform by hand. Journaled like
    /// an action, so a push can import again on a newer remote head.
    pub fn import(
        &self,
        meta: &ActionMeta,
        files: &compiler::IntentFiles,
        subject: &str,
    ) -> Result<Outcome, ApplyError> {
        let output = self.compile_import(files)?;
        self.import_from(meta, subject, |_, _| {
            Ok((Cow::Borrowed(files), Cow::Borrowed(&output)))
        })
    }

    /// [`Engine::import`] of the files `files_at` makes from the repository and the head,
    /// with the commit lock held (so nothing else commits between the read and the commit),
    /// compiled: a change to one intent file that renders everything.
    pub(super) fn import_from<'f>(
        &self,
        meta: &ActionMeta,
        subject: &str,
        files_at: impl Fn(
            &Repository,
            Option<Oid>,
        ) -> Result<
            (Cow<'f, compiler::IntentFiles>, Cow<'f, compiler::Output>),
            ApplyError,
        >,
    ) -> Result<Outcome, ApplyError> {
        let repo = self.gitops.repo()?;
        let _guard = lock(&self.commit_lock);
        for _ in 0..MAX_ATTEMPTS {
            let head = self.gitops.head(&repo)?;
            if let Some(done) = self.already_applied(&repo, head, meta)? {
                return Ok(done);
            }
            let (files, output) = files_at(&repo, head)?;
            let files = &files;
            let mut objects = NewObjects::default();
            let Some(tree) = self.import_tree(&repo, head, files, &output, &mut objects)? else {
                return Ok(Outcome::Unchanged);
            };
            // Crash tests (`failpoints` feature): blobs and trees are made (in memory).
            crate::gitops::failpoint!("import-tree-written");
            let id = self.write_import(&repo, head, tree, meta, files, subject, objects)?;
            let reflog = format!("hexabase: {}", crate::gitops::sanitize_line(subject, 200));
            match self
                .gitops
                .move_ref(&repo, &self.gitops.branch_ref(), head, id, &reflog)
            {
                Ok(()) => {
                    self.record_rendered(
                        &self.gitops.reader(&repo, Vec::new()),
                        tree,
                        &rendered_folders(&output),
                    );
                    self.requests
                        .note(head, id, &meta.request_id, meta.digest.as_deref());
                    return Ok(Outcome::Committed {
                        commit: id.to_string(),
                        drift: Vec::new(),
                    });
                }
                Err(GitOpsError::Moved { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApplyError::Contention(MAX_ATTEMPTS))
    }

    /// [`Engine::import`] as a commit on `parent` without moving any branch, journaled: the
    /// push side imports again on the remote's head with it (see [`crate::service::push`]).
    pub fn import_on(
        &self,
        repo: &Repository,
        parent: Option<Oid>,
        meta: &ActionMeta,
        files: &compiler::IntentFiles,
        subject: &str,
    ) -> Result<Outcome, ApplyError> {
        let output = self.compile_import(files)?;
        let mut objects = NewObjects::default();
        let Some(tree) = self.import_tree(repo, parent, files, &output, &mut objects)? else {
            return Ok(Outcome::Unchanged);
        };
        let id = self.write_import(repo, parent, tree, meta, files, subject, objects)?;
        Ok(Outcome::Committed {
            commit: id.to_string(),
            drift: Vec::new(),
        })
    }

    /// Compiles a whole intent; its problems are [`ApplyError::Invalid`].
    pub(super) fn compile_import(
        &self,
        files: &compiler::IntentFiles,
    ) -> Result<compiler::Output, ApplyError> {
        let (intent, problems) = compiler::intent::load(files);
        let mut output = self
            .compiler
            .compile(&intent, &compiler::Options::default())?;
        output.diagnostics.extend(problems);
        if output.has_errors() {
            return Err(ApplyError::Invalid(output.diagnostics));
        }
        Ok(output)
    }

    /// The tree of `head` with its intent replaced by `files` and rendered as `output`, its
    /// new objects made into `objects`; `None` when that is `head`'s tree already.
    fn import_tree(
        &self,
        repo: &Repository,
        head: Option<Oid>,
        files: &compiler::IntentFiles,
        output: &compiler::Output,
        objects: &mut NewObjects,
    ) -> Result<Option<Oid>, ApplyError> {
        let reader = self.gitops.reader(repo, Vec::new());
        let base = head.map(|h| history::tree_of(repo, h)).transpose()?;
        let mut edits = BTreeMap::new();
        let mut existing = BTreeSet::new();
        if let Some(tree) = base {
            reader.files_under(tree, "", &mut existing)?;
        }
        for path in &existing {
            let stale =
                path.starts_with("intent/") && !files.contains_key(&path["intent/".len()..]);
            if stale || (output.owns(path) && !output.files.contains_key(path)) {
                edits.insert(path.clone(), Edit::Remove);
            }
        }
        for (path, text) in files {
            edits.insert(
                format!("intent/{path}"),
                Edit::Write(text.clone().into_bytes()),
            );
        }
        for (path, text) in &output.files {
            edits.insert(path.clone(), Edit::Write(text.clone().into_bytes()));
        }
        let tree = build_tree(&reader, base, &edits, objects)?;
        Ok(Some(tree).filter(|&tree| base != Some(tree)))
    }

    /// Makes the commit object of an import, packs it with `objects` and journals it; no
    /// branch moves.
    #[allow(clippy::too_many_arguments)]
    fn write_import(
        &self,
        repo: &Repository,
        parent: Option<Oid>,
        tree: Oid,
        meta: &ActionMeta,
        files: &compiler::IntentFiles,
        subject: &str,
        mut objects: NewObjects,
    ) -> Result<Oid, ApplyError> {
        let message = CommitMessage {
            subject: subject.to_owned(),
            body: None,
            trailers: Trailers {
                actor: format!("{} <{}>", meta.actor.name, meta.actor.email),
                actor_id: meta.actor_id.clone(),
                action: "import".to_owned(),
                org: None,
                workspace: None,
                request: meta.request_id.clone(),
                digest: meta.digest.clone(),
                compiler: compiler::VERSION.to_owned(),
            },
        };
        let id = self.gitops.commit_object(
            parent,
            tree,
            &meta.actor,
            &self.bot,
            &message.render(),
            &mut objects,
        )?;
        self.gitops.write_pack(repo, &objects)?;
        crate::service::journal::record_import(repo, id, meta, files, subject)?;
        Ok(id)
    }
}
