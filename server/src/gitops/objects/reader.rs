//! Reading objects (new ones not on disk yet, then the tree cache, then the repository), and
//! what the engine does through a reader: walking, diffing and building trees.

use super::*;

/// What [`Reader::diff`] calls for each changed file: its path, its entry before and after.
pub type DiffFn<'a> =
    dyn FnMut(&str, Option<&TreeEntry>, Option<&TreeEntry>) -> Result<(), GitOpsError> + 'a;

/// Reads objects: first from new objects not on disk yet (`layers`), then trees from the
/// cache, then from the repository.
pub struct Reader<'a> {
    repo: &'a Repository,
    cache: &'a TreeCache,
    layers: Vec<&'a NewObjects>,
}

impl<'a> Reader<'a> {
    /// A reader of `repo` through `cache`, seeing `layers` too.
    pub fn new(repo: &'a Repository, cache: &'a TreeCache, layers: Vec<&'a NewObjects>) -> Self {
        Self {
            repo,
            cache,
            layers,
        }
    }

    /// The repository read.
    pub fn repo(&self) -> &'a Repository {
        self.repo
    }

    /// The tree `id`.
    pub fn tree(&self, id: Oid) -> Result<Arc<Tree>, GitOpsError> {
        for layer in &self.layers {
            if let Some(tree) = layer.trees.get(&id) {
                return Ok(Arc::clone(tree));
            }
        }
        if let Some(tree) = self.cache.get(id) {
            return Ok(tree);
        }
        let odb = self.repo.odb().map_err(GitOpsError::Git)?;
        let object = odb.read(id).map_err(GitOpsError::Git)?;
        if object.kind() != ObjectType::Tree {
            return Err(GitOpsError::Corrupt {
                id: id.to_string(),
                reason: "expected a tree",
            });
        }
        let tree = Arc::new(Tree::parse(id, object.data())?);
        self.cache.insert(id, Arc::clone(&tree));
        Ok(tree)
    }

    /// The content of blob `id`.
    pub fn blob(&self, id: Oid) -> Result<Vec<u8>, GitOpsError> {
        for layer in &self.layers {
            if let Some(data) = layer.get(id) {
                return Ok(data.to_vec());
            }
        }
        let odb = self.repo.odb().map_err(GitOpsError::Git)?;
        let object = odb.read(id).map_err(GitOpsError::Git)?;
        Ok(object.data().to_vec())
    }

    /// The entry at `path` (`a/b/c`) below the tree `root`; `None` when there is none.
    pub fn entry(&self, root: Oid, path: &str) -> Result<Option<TreeEntry>, GitOpsError> {
        let mut tree = self.tree(root)?;
        let mut parts = path.split('/').peekable();
        while let Some(name) = parts.next() {
            let Some(entry) = tree.get(name.as_bytes()).cloned() else {
                return Ok(None);
            };
            if parts.peek().is_none() {
                return Ok(Some(entry));
            }
            if !entry.is_tree() {
                return Ok(None);
            }
            tree = self.tree(entry.id)?;
        }
        Ok(None)
    }

    /// Adds the paths of the files at or below `prefix` (everything when empty) in the tree
    /// `root` to `out`. Names that are not UTF-8 are skipped.
    pub fn files_under(
        &self,
        root: Oid,
        prefix: &str,
        out: &mut BTreeSet<String>,
    ) -> Result<(), GitOpsError> {
        self.visit_files(root, prefix, &mut |path, _| {
            out.insert(path);
        })
    }

    /// The files at or below `prefix` in the tree `root`, with their blob ids.
    pub fn file_ids_under(
        &self,
        root: Oid,
        prefix: &str,
    ) -> Result<BTreeMap<String, Oid>, GitOpsError> {
        let mut out = BTreeMap::new();
        self.visit_files(root, prefix, &mut |path, id| {
            out.insert(path, id);
        })?;
        Ok(out)
    }

    fn visit_files(
        &self,
        root: Oid,
        prefix: &str,
        f: &mut dyn FnMut(String, Oid),
    ) -> Result<(), GitOpsError> {
        if prefix.is_empty() {
            return self.walk(root, "", f);
        }
        match self.entry(root, prefix)? {
            Some(e) if e.is_tree() => self.walk(e.id, prefix, f),
            Some(e) if e.is_blob() => {
                f(prefix.to_owned(), e.id);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn walk(
        &self,
        id: Oid,
        prefix: &str,
        f: &mut dyn FnMut(String, Oid),
    ) -> Result<(), GitOpsError> {
        let tree = self.tree(id)?;
        for entry in tree.entries() {
            let Ok(name) = std::str::from_utf8(&entry.name) else {
                continue;
            };
            let path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if entry.is_tree() {
                self.walk(entry.id, &path, f)?;
            } else if entry.is_blob() {
                f(path, entry.id);
            }
        }
        Ok(())
    }

    /// Calls `f` for every file that differs between the trees `old` and `new` (either may
    /// be absent): its path, and its entry before and after (`None` where there is none; a
    /// file that became a folder, or the reverse, is a deletion and additions). Equal
    /// folders are skipped by id, so the cost follows the size of the change, not of the
    /// trees.
    pub fn diff(
        &self,
        old: Option<Oid>,
        new: Option<Oid>,
        f: &mut DiffFn<'_>,
    ) -> Result<(), GitOpsError> {
        self.diff_at(old, new, &mut String::new(), f)
    }

    fn diff_at(
        &self,
        old: Option<Oid>,
        new: Option<Oid>,
        path: &mut String,
        f: &mut DiffFn<'_>,
    ) -> Result<(), GitOpsError> {
        let (olds, news) = (
            old.map(|t| self.tree(t)).transpose()?,
            new.map(|t| self.tree(t)).transpose()?,
        );
        let (olds, news) = (
            olds.as_ref().map_or(&[][..], |t| t.entries()),
            news.as_ref().map_or(&[][..], |t| t.entries()),
        );
        let (mut olds, mut news) = (olds.iter().peekable(), news.iter().peekable());
        loop {
            let (a, b) = match (olds.peek(), news.peek()) {
                (None, None) => return Ok(()),
                (Some(a), None) => (Some(*a), None),
                (None, Some(b)) => (None, Some(*b)),
                (Some(a), Some(b)) => match git_order(a, b) {
                    std::cmp::Ordering::Less => (Some(*a), None),
                    std::cmp::Ordering::Greater => (None, Some(*b)),
                    std::cmp::Ordering::Equal => (Some(*a), Some(*b)),
                },
            };
            if a.is_some() {
                olds.next();
            }
            if b.is_some() {
                news.next();
            }
            if let (Some(a), Some(b)) = (a, b)
                && a.id == b.id
                && a.mode == b.mode
            {
                continue;
            }
            let Some(name) = a.or(b).map(|e| &e.name) else {
                continue;
            };
            let len = path.len();
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(&String::from_utf8_lossy(name));
            // In git's order a file and a folder of the same name are two entries, never a
            // pair: a file that became a folder is a deletion and additions.
            let tree = |e: Option<&TreeEntry>| e.filter(|e| e.is_tree()).map(|e| e.id);
            if a.is_some_and(TreeEntry::is_tree) || b.is_some_and(TreeEntry::is_tree) {
                self.diff_at(tree(a), tree(b), path, f)?;
            } else {
                f(path, a, b)?;
            }
            path.truncate(len);
        }
    }

    /// The tree `edits` (path from the root to edit) make of the tree `base`; `None` when
    /// nothing is left. A removal and writes below the same folder mean "replace the
    /// folder"; folders left empty disappear. New objects go to `out`; a file or folder that
    /// is written again exactly as it was (also within a replaced folder) is not.
    pub fn build(
        &self,
        base: Option<Oid>,
        edits: &BTreeMap<String, Edit>,
        out: &mut NewObjects,
    ) -> Result<Option<Oid>, GitOpsError> {
        // Sorted by components, not by text, so that everything under one folder is
        // contiguous ("a/b" and "a/b/c" around "a/b-c" in text order).
        let mut split: Vec<(Vec<&str>, &Edit)> = edits
            .iter()
            .map(|(p, e)| (p.split('/').collect(), e))
            .collect();
        split.sort_by(|a, b| a.0.cmp(&b.0));
        let refs: Vec<(&[&str], &Edit)> = split.iter().map(|(p, e)| (p.as_slice(), *e)).collect();
        let base = base.map(|id| Ok((id, self.tree(id)?))).transpose()?;
        self.build_level(base.as_ref().map(|(id, t)| (*id, &**t)), None, &refs, out)
    }

    /// One folder of [`Reader::build`]. `old` is what stood here before a removal of the
    /// whole folder (which `base` then is not): its objects are on disk already.
    fn build_level(
        &self,
        base: Option<(Oid, &Tree)>,
        old: Option<(Oid, &Tree)>,
        edits: &[(&[&str], &Edit)],
        out: &mut NewObjects,
    ) -> Result<Option<Oid>, GitOpsError> {
        let mut entries: Vec<TreeEntry> = base.map(|(_, t)| t.entries.clone()).unwrap_or_default();
        let mut changed = false;
        let mut i = 0;
        while i < edits.len() {
            let name = edits[i].0[0];
            let mut j = i;
            while j < edits.len() && edits[j].0[0] == name {
                j += 1;
            }
            let group = &edits[i..j];
            i = j;
            let own = || group.iter().filter(|(p, _)| p.len() == 1).map(|(_, e)| *e);
            let below: Vec<(&[&str], &Edit)> = group
                .iter()
                .filter(|(p, _)| p.len() > 1)
                .map(|(p, e)| (&p[1..], *e))
                .collect();
            let at = entries.iter().position(|e| &*e.name == name.as_bytes());
            let existing = at.map(|k| entries[k].clone());
            let removed = own().any(|e| matches!(e, Edit::Remove));
            let set = |entries: &mut Vec<TreeEntry>, mode: u32, id: Oid| {
                let entry = TreeEntry {
                    name: existing
                        .as_ref()
                        .map_or_else(|| Arc::from(name.as_bytes()), |e| Arc::clone(&e.name)),
                    mode,
                    id,
                };
                match at {
                    Some(k) => entries[k] = entry,
                    None => entries.push(entry),
                }
            };
            if let Some(Edit::Tree(id)) = own().find(|e| matches!(e, Edit::Tree(_))) {
                if existing
                    .as_ref()
                    .is_none_or(|e| !e.is_tree() || e.id != *id)
                {
                    set(&mut entries, TREE_MODE, *id);
                    changed = true;
                }
                continue;
            }
            if let Some(Edit::Write(bytes)) = own().find(|e| matches!(e, Edit::Write(_))) {
                let id = object_id(ObjectType::Blob, bytes);
                if existing.as_ref().is_none_or(|e| !e.is_blob() || e.id != id) {
                    let stored = old
                        .and_then(|(_, o)| o.get(name.as_bytes()))
                        .is_some_and(|e| e.is_blob() && e.id == id);
                    if !stored {
                        out.add_blob(bytes);
                    }
                    set(&mut entries, FILE_MODE, id);
                    changed = true;
                }
                continue;
            }
            if below.is_empty() {
                if removed && let Some(k) = at {
                    entries.remove(k);
                    changed = true;
                }
                continue;
            }
            let (sub_base, sub_old) = match &existing {
                Some(e) if e.is_tree() => {
                    let tree = Some((e.id, self.tree(e.id)?));
                    if removed { (None, tree) } else { (tree, None) }
                }
                // Below a replaced folder: what stood here before it was replaced.
                _ => match old.and_then(|(_, o)| o.get(name.as_bytes())) {
                    Some(e) if e.is_tree() => (None, Some((e.id, self.tree(e.id)?))),
                    _ => (None, None),
                },
            };
            let sub_base = sub_base.as_ref().map(|(id, t)| (*id, &**t));
            let sub_old = sub_old.as_ref().map(|(id, t)| (*id, &**t));
            match self.build_level(sub_base, sub_old, &below, out)? {
                Some(id) => {
                    if existing.as_ref().is_none_or(|e| !e.is_tree() || e.id != id) {
                        set(&mut entries, TREE_MODE, id);
                        changed = true;
                    }
                }
                None => {
                    if let Some(k) = at {
                        entries.remove(k);
                        changed = true;
                    }
                }
            }
        }
        if entries.is_empty() {
            return Ok(None);
        }
        if let Some((id, _)) = base
            && !changed
        {
            return Ok(Some(id));
        }
        entries.sort_by(git_order);
        let tree = Tree { entries };
        let data = tree.encode();
        let id = object_id(ObjectType::Tree, &data);
        if old.map(|(id, _)| id) != Some(id) && base.map(|(id, _)| id) != Some(id) {
            out.add_tree(tree);
        }
        Ok(Some(id))
    }
}
