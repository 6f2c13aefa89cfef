//! Preparing a change outside the commit lock: the action applied to the head's intent,
//! the affected workspaces compiled, the new tree built, hand edits (drift) found; and a
//! prepared change moved onto a newer head when nothing it read has changed.

use super::*;

impl Engine {
    pub(super) fn prepare(
        &self,
        repo: &Repository,
        action: &Action,
    ) -> Result<Prepared, ApplyError> {
        let head = self.gitops.head(repo)?;
        self.prepare_on(repo, head, action)
    }

    /// Applies `action` as a commit on `parent` without moving any branch: the push side
    /// re-applies pending actions on the remote's head with it (see [`crate::service::push`]). The
    /// commit's action is journaled like any other.
    pub fn apply_on(
        &self,
        repo: &Repository,
        parent: Option<Oid>,
        meta: &ActionMeta,
        action: &Action,
    ) -> Result<Outcome, ApplyError> {
        // One pack per commit: this path is rare, and `repo` is the caller's handle.
        let Prepared {
            mut snapshot,
            workspaces,
            drift,
            tree,
            mut objects,
            ..
        } = self.prepare_on(repo, parent, action)?;
        let Some(new_tree) = tree else {
            return Ok(Outcome::Unchanged);
        };
        crate::gitops::failpoint!("apply-tree-written");
        let text = message(meta, action).render();
        let id = self.gitops.commit_object(
            parent,
            new_tree,
            &meta.actor,
            &self.bot,
            &text,
            &mut objects,
        )?;
        self.gitops.write_pack(repo, &objects)?;
        crate::service::journal::record(repo, id, meta, action)?;
        let reader = self.gitops.reader(repo, Vec::new());
        land(&mut snapshot, &reader, id, new_tree);
        self.gitops.remember(&Arc::new(snapshot));
        self.remember_written(&reader, new_tree, &workspaces);
        Ok(Outcome::Committed {
            commit: id.to_string(),
            drift,
        })
    }

    /// [`Engine::prepare`] against `head` rather than the branch's head.
    pub(super) fn prepare_on(
        &self,
        repo: &Repository,
        head: Option<Oid>,
        action: &Action,
    ) -> Result<Prepared, ApplyError> {
        let t = timing::span("prepare.snapshot");
        let base = self.gitops.snapshot(repo, head)?;
        drop(t);
        self.prepare_from(&self.gitops.reader(repo, Vec::new()), &base, action)
    }

    /// Computes `action`'s change against the intent and tree of `base`, read through
    /// `reader`.
    pub(super) fn prepare_from(
        &self,
        reader: &Reader<'_>,
        base: &Snapshot,
        action: &Action,
    ) -> Result<Prepared, ApplyError> {
        let head = base.commit;
        let t = timing::span("prepare.action");
        let change = action.apply(&base.intent)?;
        if change.files.is_empty() {
            return Ok(Prepared {
                parent: head,
                snapshot: base.clone(),
                files: BTreeMap::new(),
                edits: BTreeMap::new(),
                workspaces: BTreeSet::new(),
                drift: Vec::new(),
                rendered: Vec::new(),
                tree: None,
                objects: NewObjects::default(),
            });
        }
        let snapshot = changed(base, &change.files);
        // A broken file in what this action renders would silently drop it: refuse instead.
        let blocking: Vec<Diagnostic> = snapshot
            .problems
            .iter()
            .filter(|(path, _)| {
                path.as_str() == "platform.yaml"
                    || change.files.contains_key(*path)
                    || change.workspaces.iter().any(|(o, w)| {
                        path.starts_with(&format!("{o}/{w}/"))
                            || **path == format!("{o}/organization.yaml")
                    })
            })
            .flat_map(|(_, d)| d.iter().cloned())
            .collect();
        if !blocking.is_empty() {
            return Err(ApplyError::Invalid(blocking));
        }
        drop(t);
        let t = timing::span("prepare.compile");
        let output = self
            .compiler
            .compile_workspaces(&snapshot.intent, &change.workspaces)?;
        if output.has_errors() {
            return Err(ApplyError::Invalid(output.diagnostics));
        }
        drop(t);
        let t = timing::span("prepare.edits");
        let rendered = rendered_folders(&output);
        let mut edits = BTreeMap::new();
        for (path, text) in &change.files {
            let edit = text
                .as_ref()
                .map_or(Edit::Remove, |t| Edit::Write(t.clone().into_bytes()));
            edits.insert(format!("intent/{path}"), edit);
        }
        let clusters: Vec<String> = snapshot
            .intent
            .platform
            .as_ref()
            .map(|p| p.spec.clusters.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        // Each affected workspace's folder is replaced as a whole, on every cluster where it
        // is (it may have moved). A removal of a folder that is not there would still walk
        // (and copy) the large trees above it.
        let base_tree = base.tree;
        for (org, ws) in &change.workspaces {
            for cluster in &clusters {
                let folder = format!("tenants/{cluster}/{org}/{ws}");
                if let Some(tree) = base_tree
                    && reader.entry(tree, &folder)?.is_some()
                {
                    edits.insert(folder, Edit::Remove);
                }
            }
        }
        for (path, text) in output.files {
            edits.insert(path, Edit::Write(text.into_bytes()));
        }
        // Shared files the output speaks for but no longer renders are stale.
        if let Some(tree) = base_tree {
            let orgs: BTreeSet<&String> = change.workspaces.iter().map(|(o, _)| o).collect();
            let mut existing = BTreeSet::new();
            for cluster in &clusters {
                for org in &orgs {
                    for path in [
                        format!("tenants/{cluster}/{org}.yaml"),
                        format!("tenants/{cluster}/{org}/kustomization.yaml"),
                    ] {
                        reader.files_under(tree, &path, &mut existing)?;
                    }
                }
            }
            for path in existing {
                if output_owns(&edits, &path) {
                    continue;
                }
                edits.insert(path, Edit::Remove);
            }
        }
        drop(t);
        let t = timing::span("prepare.drift");
        let drift = self.drift(reader, base, &change.workspaces, &clusters)?;
        drop(t);
        let t = timing::span("prepare.tree");
        let mut objects = NewObjects::default();
        let tree = build_tree(reader, base_tree, &edits, &mut objects)?;
        drop(t);
        Ok(Prepared {
            parent: head,
            snapshot,
            files: change.files,
            edits,
            workspaces: change.workspaces,
            drift,
            rendered,
            tree: (Some(tree) != base.tree).then_some(tree),
            objects,
        })
    }

    /// The root tree of `prepared` (computed on its parent) on `head` instead, where
    /// [`Engine::reusable`] says it holds: the folders of its workspaces (intent and
    /// renders, which no commit in between touched) are put in place whole, and its other
    /// edits are applied again; only the folders above them are written anew. `None` when it
    /// changes nothing.
    pub(super) fn rebased_tree(
        &self,
        reader: &Reader<'_>,
        head: &Snapshot,
        prepared: &Prepared,
        written: &mut NewObjects,
    ) -> Result<Option<Oid>, ApplyError> {
        let Some(tree) = prepared.tree else {
            return Ok(None);
        };
        let mut folders: BTreeSet<String> = BTreeSet::new();
        for (org, ws) in &prepared.workspaces {
            folders.insert(format!("intent/{org}/{ws}"));
            // The workspace's rendered folder, on every cluster where it was or is now.
            for path in prepared.edits.keys() {
                let parts: Vec<&str> = path.splitn(5, '/').collect();
                if let ["tenants", cluster, o, w, ..] = parts.as_slice()
                    && o == org
                    && w == ws
                {
                    folders.insert(format!("tenants/{cluster}/{org}/{ws}"));
                }
            }
        }
        let within = |path: &str| {
            folders.iter().any(|f| {
                path.strip_prefix(f.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
        };
        let mut edits: BTreeMap<String, Edit> = prepared
            .edits
            .iter()
            .filter(|(path, _)| !within(path))
            .map(|(path, edit)| (path.clone(), edit.clone()))
            .collect();
        for folder in &folders {
            match reader.entry(tree, folder)? {
                Some(entry) => {
                    edits.insert(folder.clone(), Edit::Tree(entry.id));
                }
                None => {
                    if let Some(head_tree) = head.tree
                        && reader.entry(head_tree, folder)?.is_some()
                    {
                        edits.insert(folder.clone(), Edit::Remove);
                    }
                }
            }
        }
        let root = build_tree(reader, head.tree, &edits, written)?;
        Ok((Some(root) != head.tree).then_some(root))
    }

    /// Rendered files of `workspaces` in `base` that differ from what `base`'s intent
    /// renders: edits made by hand, which the new render overwrites.
    pub(super) fn drift(
        &self,
        reader: &Reader<'_>,
        base: &Snapshot,
        workspaces: &BTreeSet<(String, String)>,
        clusters: &[String],
    ) -> Result<Vec<String>, ApplyError> {
        let Some(tree) = base.tree else {
            return Ok(Vec::new());
        };
        let mut candidates = Vec::new();
        {
            let written = self
                .written
                .lock()
                .expect("the written map is never poisoned");
            for (org, ws) in workspaces {
                for cluster in clusters {
                    let root = format!("tenants/{cluster}/{org}/{ws}");
                    let Some(entry) = reader.entry(tree, &root)? else {
                        continue;
                    };
                    if written.get(&root) != Some(&entry.id) {
                        candidates.push((org, ws, root, entry.id));
                    }
                }
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // A folder known to be the render of the very inputs `base` has for its workspace
        // is what `base` renders (same intent, same bytes): no need to compile it again.
        let names = candidates
            .iter()
            .map(|(o, w, _, _)| ((*o).clone(), (*w).clone()))
            .collect();
        let fingerprints = self.compiler.fingerprints(&base.intent, &names);
        let mut suspects = BTreeSet::new();
        let mut roots = Vec::new();
        {
            let mut rendered = lock(&self.rendered);
            let rendered = rendered.get_or_insert_with(|| self.load_rendered());
            for (org, ws, root, id) in candidates {
                let key = (org.clone(), ws.clone());
                if fingerprints
                    .get(&key)
                    .is_none_or(|f| rendered.get(&id) != Some(f))
                {
                    suspects.insert(key);
                    roots.push(root);
                }
            }
        }
        if suspects.is_empty() {
            return Ok(Vec::new());
        }
        let _t = timing::span("prepare.drift.compile_and_compare");
        let expected = self.compiler.compile_workspaces(&base.intent, &suspects)?;
        if expected.has_errors() {
            return Ok(Vec::new());
        }
        let mut drift = Vec::new();
        for root in &roots {
            // Compared by blob id: what was expected, hashed, against what is there, so no
            // file needs reading.
            let existing = reader.file_ids_under(tree, root)?;
            let prefix = format!("{root}/");
            for (path, id) in &existing {
                let expected_id = expected
                    .files
                    .get(path)
                    .map(|text| blob_id(text.as_bytes()));
                if expected_id != Some(*id) {
                    drift.push(path.clone());
                }
            }
            drift.extend(
                expected
                    .files
                    .keys()
                    .filter(|p| p.starts_with(&prefix) && !existing.contains_key(*p))
                    .cloned(),
            );
        }
        drift.sort();
        drift.dedup();
        Ok(drift)
    }
}

impl Prepared {
    /// This change on `head` instead of its parent, when [`Engine::reusable`] says it holds
    /// there: the same edits, and the action's intent files applied to `head`'s intent.
    pub(super) fn rebase(self, head: &Snapshot) -> Self {
        Self {
            parent: head.commit,
            snapshot: changed(head, &self.files),
            ..self
        }
    }
}

/// `base`'s intent with `files` (relative to `intent/`; `None` deletes) written, on `base`'s
/// tree (the commit and intent tree are not known yet).
fn changed(base: &Snapshot, files: &BTreeMap<String, Option<String>>) -> Snapshot {
    let mut snapshot = Snapshot {
        commit: None,
        tree: base.tree,
        intent_tree: None,
        intent: base.intent.clone(),
        problems: base.problems.clone(),
    };
    for (path, text) in files {
        let problems = snapshot.intent.set_file(path, text.as_deref());
        if problems.is_empty() {
            snapshot.problems.remove(path);
        } else {
            snapshot.problems.insert(path.clone(), problems);
        }
    }
    snapshot
}
