//! Git objects read and built in memory, off libgit2's object database on an action's way.
//!
//! Each `git_odb_write` first "freshens" the object: it asks every backend whether the object
//! exists (a `stat` of the loose file, a search of every pack index), and on a miss, which a
//! new object always is, rescans `objects/pack`. libgit2's object cache keeps no tree over
//! 4 KB, so the large trees every action walks (the root, `tenants/<cluster>`,
//! `intent/<org>`) were read and inflated again each time. An action writes a few dozen
//! objects and walks a dozen trees: that was most of its CPU time.
//!
//! So the engine parses trees itself and keeps them ([`TreeCache`], only trees that are on
//! disk), builds new trees and blobs as bytes with their ids ([`NewObjects`]: SHA-1 over the
//! loose object header and content, as git does), and hands those bytes straight to the
//! pack writer. libgit2 still reads objects from disk ([`Reader`] falls back to it) and
//! moves references.
//!
//! Formats: a tree is a list of `<octal mode> <name>\0<20-byte id>` entries, sorted by name
//! with a folder's name compared as if it ended in `/` (`Documentation/gitformat-*` in git).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use git2::{ObjectType, Oid, Repository};
use sha1::Digest as _;

use super::GitOpsError;

/// The mode of a regular file.
pub const FILE_MODE: u32 = 0o100_644;
/// The mode of a folder.
pub const TREE_MODE: u32 = 0o040_000;

/// What to do at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Write this file.
    Write(Vec<u8>),
    /// Remove the file or the whole folder at this path.
    Remove,
    /// Put this tree (in the repository, or among the new objects of the same build) at this
    /// path, replacing what is there.
    Tree(Oid),
}

/// One entry of a tree: a name (any bytes but `/` and NUL), a mode and an object id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// The name, as stored (shared: trees built from this one reuse it).
    pub name: Arc<[u8]>,
    /// The mode: [`FILE_MODE`], [`TREE_MODE`], `0o100755`, `0o120000` or `0o160000`.
    pub mode: u32,
    /// The object id.
    pub id: Oid,
}

impl TreeEntry {
    /// True for a folder.
    pub fn is_tree(&self) -> bool {
        self.mode & 0o170_000 == TREE_MODE
    }

    /// True for a file (regular, executable or a symbolic link), not a folder or submodule.
    pub fn is_blob(&self) -> bool {
        matches!(self.mode & 0o170_000, 0o100_000 | 0o120_000)
    }
}

/// A parsed tree: its entries in git's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    entries: Vec<TreeEntry>,
}

/// Git's order of tree entries: by name, a folder's name compared as if it ended in `/`.
pub fn git_order(a: &TreeEntry, b: &TreeEntry) -> std::cmp::Ordering {
    let n = a.name.len().min(b.name.len());
    a.name[..n].cmp(&b.name[..n]).then_with(|| {
        let next = |e: &TreeEntry| {
            e.name
                .get(n)
                .copied()
                .unwrap_or(if e.is_tree() { b'/' } else { 0 })
        };
        next(a).cmp(&next(b))
    })
}

impl Tree {
    /// Parses a tree object's content.
    pub fn parse(id: Oid, data: &[u8]) -> Result<Self, GitOpsError> {
        let corrupt = || GitOpsError::Corrupt {
            id: id.to_string(),
            reason: "not a valid tree",
        };
        let mut entries = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let space = rest.iter().position(|&b| b == b' ').ok_or_else(corrupt)?;
            let mode = std::str::from_utf8(&rest[..space])
                .ok()
                .and_then(|m| u32::from_str_radix(m, 8).ok())
                .ok_or_else(corrupt)?;
            rest = &rest[space + 1..];
            let nul = rest.iter().position(|&b| b == 0).ok_or_else(corrupt)?;
            let name: Arc<[u8]> = Arc::from(&rest[..nul]);
            rest = &rest[nul + 1..];
            let raw = rest.get(..20).ok_or_else(corrupt)?;
            let id = Oid::from_bytes(raw).map_err(|_| corrupt())?;
            rest = &rest[20..];
            if name.is_empty() {
                return Err(corrupt());
            }
            entries.push(TreeEntry { name, mode, id });
        }
        Ok(Self { entries })
    }

    /// The entries, in git's order.
    pub fn entries(&self) -> &[TreeEntry] {
        &self.entries
    }

    /// The entry named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&TreeEntry> {
        self.entries.iter().find(|e| &*e.name == name)
    }

    /// The tree object's content.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 40);
        for e in &self.entries {
            // Git writes folder modes without a leading zero (`40000`).
            out.extend_from_slice(format!("{:o} ", e.mode).as_bytes());
            out.extend_from_slice(&e.name);
            out.push(0);
            out.extend_from_slice(e.id.as_bytes());
        }
        out
    }
}

/// The id git gives an object of `kind` with `data`: the SHA-1 of `<kind> <size>\0<data>`.
pub fn object_id(kind: ObjectType, data: &[u8]) -> Oid {
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("{} {}\0", kind.str(), data.len()).as_bytes());
    hasher.update(data);
    Oid::from_bytes(&hasher.finalize()).expect("a SHA-1 is 20 bytes")
}

/// The id git gives a blob of `data` ([`object_id`] of a blob).
pub fn blob_id(data: &[u8]) -> Oid {
    object_id(ObjectType::Blob, data)
}

/// Objects made in memory and not on disk yet, in the order they were made (a commit after
/// its trees), with the trees also parsed, to be read back before they are packed.
#[derive(Debug, Default)]
pub struct NewObjects {
    list: Vec<(Oid, ObjectType, Arc<[u8]>)>,
    index: HashMap<Oid, usize>,
    trees: HashMap<Oid, Arc<Tree>>,
}

impl NewObjects {
    /// Adds a blob; its id.
    pub fn add_blob(&mut self, data: &[u8]) -> Oid {
        let id = object_id(ObjectType::Blob, data);
        self.push(id, ObjectType::Blob, data);
        id
    }

    /// Adds a commit object's content (see [`commit_content`]); its id.
    pub fn add_commit(&mut self, data: &[u8]) -> Oid {
        let id = object_id(ObjectType::Commit, data);
        self.push(id, ObjectType::Commit, data);
        id
    }

    /// Adds a tree; its id.
    pub fn add_tree(&mut self, tree: Tree) -> Oid {
        let data = tree.encode();
        let id = object_id(ObjectType::Tree, &data);
        self.push(id, ObjectType::Tree, &data);
        self.trees.entry(id).or_insert_with(|| Arc::new(tree));
        id
    }

    fn push(&mut self, id: Oid, kind: ObjectType, data: &[u8]) {
        if !self.index.contains_key(&id) {
            self.index.insert(id, self.list.len());
            self.list.push((id, kind, Arc::from(data)));
        }
    }

    /// Adds every object of `other` (repeats are kept once).
    pub fn extend(&mut self, other: &NewObjects) {
        for (id, kind, data) in &other.list {
            if !self.index.contains_key(id) {
                self.index.insert(*id, self.list.len());
                self.list.push((*id, *kind, Arc::clone(data)));
            }
        }
        for (id, tree) in &other.trees {
            self.trees.entry(*id).or_insert_with(|| Arc::clone(tree));
        }
    }

    /// The objects, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (Oid, ObjectType, &[u8])> {
        self.list
            .iter()
            .map(|(id, kind, data)| (*id, *kind, &**data))
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The content of object `id`, when it is one of these.
    pub fn get(&self, id: Oid) -> Option<&[u8]> {
        self.index.get(&id).map(|&i| &*self.list[i].2)
    }

    /// Writes every object into `repo`'s object database (loose objects, fsynced when the
    /// repository asks for it): for the rare paths that commit without a pack.
    pub fn write_loose(&self, repo: &Repository) -> Result<(), GitOpsError> {
        let odb = repo.odb().map_err(GitOpsError::Git)?;
        for (id, kind, data) in self.iter() {
            let written = odb.write(kind, data).map_err(GitOpsError::Git)?;
            debug_assert_eq!(written, id, "our object ids are git's");
        }
        Ok(())
    }
}

/// Trees read from disk, parsed, the most recently used kept: two generations, the young one
/// filled until it holds 2,048 trees, when it becomes the old one (and the old one
/// is dropped); a tree found in the old generation moves to the young one. Only trees that
/// are on disk go in, so dropping any is only a read later.
#[derive(Debug, Default)]
pub struct TreeCache {
    /// The young generation and the old one.
    generations: Mutex<(Generation, Generation)>,
}

type Generation = HashMap<Oid, Arc<Tree>>;

/// How many trees the young generation of a [`TreeCache`] holds at most.
const TREES_KEPT: usize = 2048;

impl TreeCache {
    fn get(&self, id: Oid) -> Option<Arc<Tree>> {
        let mut guard = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let (young, old) = &mut *guard;
        if let Some(tree) = young.get(&id) {
            return Some(Arc::clone(tree));
        }
        let tree = old.remove(&id)?;
        Self::keep(young, old, id, Arc::clone(&tree));
        Some(tree)
    }

    /// Keeps `tree`, which is on disk.
    pub fn insert(&self, id: Oid, tree: Arc<Tree>) {
        let mut guard = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let (young, old) = &mut *guard;
        Self::keep(young, old, id, tree);
    }

    /// Keeps the trees of `objects` that the tree `root` is made of: they are on disk now
    /// (packed), and the next change starts from them. Trees of `objects` that `root` does
    /// not reach (of commits between, in a batch of several) are not kept.
    pub fn insert_reachable(&self, objects: &NewObjects, root: Oid) {
        let mut guard = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let (young, old) = &mut *guard;
        let mut todo = vec![root];
        while let Some(id) = todo.pop() {
            let Some(tree) = objects.trees.get(&id) else {
                continue;
            };
            todo.extend(tree.entries.iter().filter(|e| e.is_tree()).map(|e| e.id));
            Self::keep(young, old, id, Arc::clone(tree));
        }
    }

    fn keep(young: &mut Generation, old: &mut Generation, id: Oid, tree: Arc<Tree>) {
        young.insert(id, tree);
        if young.len() >= TREES_KEPT {
            *old = std::mem::take(young);
        }
    }
}

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

/// The content of a commit object, as libgit2 and git write it: `tree`, `parent`, `author`
/// and `committer` headers, a blank line, the message; with `signature`, a `gpgsig` header
/// after the committer, each of its lines after the first indented by a space.
pub fn commit_content(
    tree: Oid,
    parent: Option<Oid>,
    author: &git2::Signature<'_>,
    committer: &git2::Signature<'_>,
    message: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + message.len());
    out.extend_from_slice(format!("tree {tree}\n").as_bytes());
    if let Some(parent) = parent {
        out.extend_from_slice(format!("parent {parent}\n").as_bytes());
    }
    signature_line(&mut out, "author ", author);
    signature_line(&mut out, "committer ", committer);
    out.push(b'\n');
    out.extend_from_slice(message.as_bytes());
    out
}

/// `content` (from [`commit_content`]) with the `gpgsig` header carrying `signature`, placed
/// and indented as libgit2's `git_commit_create_with_signature` does.
pub fn signed_commit_content(content: &[u8], signature: &str) -> Vec<u8> {
    let end = content
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(content.len(), |at| at + 1);
    let mut out = Vec::with_capacity(content.len() + signature.len() + 64);
    out.extend_from_slice(&content[..end]);
    out.extend_from_slice(b"gpgsig ");
    out.extend_from_slice(signature.replace('\n', "\n ").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&content[end..]);
    out
}

fn signature_line(out: &mut Vec<u8>, header: &str, signature: &git2::Signature<'_>) {
    let when = signature.when();
    let offset = when.offset_minutes();
    let sign = if offset < 0 || when.sign() == '-' {
        '-'
    } else {
        '+'
    };
    let offset = offset.unsigned_abs();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(signature.name_bytes());
    out.extend_from_slice(b" <");
    out.extend_from_slice(signature.email_bytes());
    out.extend_from_slice(
        format!(
            "> {} {sign}{:02}{:02}\n",
            when.seconds(),
            offset / 60,
            offset % 60
        )
        .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Repository::init_bare(dir.path()).expect("init");
        (dir, repo)
    }

    fn write(path: &str, text: &str) -> (String, Edit) {
        (path.to_owned(), Edit::Write(text.as_bytes().to_vec()))
    }

    #[test]
    fn trees_built_here_are_the_trees_libgit2_builds() {
        let (_dir, repo) = repo();
        let cache = TreeCache::default();
        let edits: BTreeMap<String, Edit> = [
            write("a/b.yaml", "b\n"),
            write("a-b/c", "c\n"),
            write("a.txt", "a\n"),
            write("a/b/c.yaml", "deep\n"),
            write("z", "z\n"),
            write("a0", "0\n"),
        ]
        .into_iter()
        .collect();
        let mut out = NewObjects::default();
        let ours = Reader::new(&repo, &cache, Vec::new())
            .build(None, &edits, &mut out)
            .expect("build")
            .expect("a tree");
        out.write_loose(&repo).expect("write");
        // The same files through libgit2's index, which sorts and hashes its own way.
        let mut index = git2::Index::new().expect("index");
        for (path, edit) in &edits {
            let Edit::Write(bytes) = edit else { continue };
            let id = repo.blob(bytes).expect("blob");
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: FILE_MODE,
                uid: 0,
                gid: 0,
                file_size: bytes.len() as u32,
                id,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).expect("add");
        }
        let theirs = index.write_tree_to(&repo).expect("tree");
        assert_eq!(ours, theirs);
        // Every object we made is readable through libgit2 as what we made.
        let tree = repo.find_tree(ours).expect("find");
        assert_eq!(tree.len(), 5);
    }

    #[test]
    fn edits_replace_remove_and_keep_what_they_do_not_touch() {
        let (_dir, repo) = repo();
        let cache = TreeCache::default();
        let reader = Reader::new(&repo, &cache, Vec::new());
        let start: BTreeMap<String, Edit> = [
            write("keep/x", "x\n"),
            write("ws/host/a", "a\n"),
            write("ws/host/b", "b\n"),
            write("ws/inside/c", "c\n"),
        ]
        .into_iter()
        .collect();
        let mut out = NewObjects::default();
        let base = reader.build(None, &start, &mut out).expect("build");
        out.write_loose(&repo).expect("write");
        let keep = reader
            .entry(base.expect("tree"), "keep")
            .expect("read")
            .expect("keep");
        // Replace the folder `ws` by one file written as it was and one new file.
        let edits: BTreeMap<String, Edit> = [
            ("ws".to_owned(), Edit::Remove),
            write("ws/host/a", "a\n"),
            write("ws/new", "n\n"),
        ]
        .into_iter()
        .collect();
        let mut out = NewObjects::default();
        let next = reader
            .build(base, &edits, &mut out)
            .expect("build")
            .expect("tree");
        let layered = Reader::new(&repo, &cache, vec![&out]);
        let mut files = BTreeSet::new();
        layered.files_under(next, "", &mut files).expect("walk");
        assert_eq!(
            files.into_iter().collect::<Vec<_>>(),
            ["keep/x", "ws/host/a", "ws/new"]
        );
        assert_eq!(
            layered.entry(next, "keep").expect("read"),
            Some(keep),
            "an untouched folder keeps its id"
        );
        // The blob written again as it was is not a new object; `n` and three trees are.
        let kinds: Vec<ObjectType> = out.iter().map(|(_, k, _)| k).collect();
        assert_eq!(
            kinds,
            [
                ObjectType::Tree,
                ObjectType::Blob,
                ObjectType::Tree,
                ObjectType::Tree
            ]
        );
        // Removing everything leaves nothing; an edit that changes nothing keeps the tree.
        let all: BTreeMap<String, Edit> = [
            ("keep".to_owned(), Edit::Remove),
            ("ws".to_owned(), Edit::Remove),
        ]
        .into_iter()
        .collect();
        let mut scratch = NewObjects::default();
        assert_eq!(
            layered
                .build(Some(next), &all, &mut scratch)
                .expect("build"),
            None
        );
        let same: BTreeMap<String, Edit> = [write("keep/x", "x\n")].into_iter().collect();
        let mut none = NewObjects::default();
        assert_eq!(
            layered.build(Some(next), &same, &mut none).expect("build"),
            Some(next)
        );
        assert!(none.is_empty());
    }

    #[test]
    fn a_diff_names_each_changed_file_once() {
        let (_dir, repo) = repo();
        let cache = TreeCache::default();
        let reader = Reader::new(&repo, &cache, Vec::new());
        let build = |files: &[(&str, &str)]| {
            let edits: BTreeMap<String, Edit> = files.iter().map(|(p, t)| write(p, t)).collect();
            let mut out = NewObjects::default();
            let tree = reader.build(None, &edits, &mut out).expect("build");
            out.write_loose(&repo).expect("write");
            tree
        };
        let old = build(&[
            ("same/a", "a\n"),
            ("dir/kept", "k\n"),
            ("dir/changed", "1\n"),
            ("dir/gone", "g\n"),
            ("became", "a file\n"),
        ]);
        let new = build(&[
            ("same/a", "a\n"),
            ("dir/kept", "k\n"),
            ("dir/changed", "2\n"),
            ("dir/new", "n\n"),
            ("became/inner", "a folder\n"),
        ]);
        let mut seen = Vec::new();
        reader
            .diff(old, new, &mut |path, before, after| {
                seen.push((path.to_owned(), before.is_some(), after.is_some()));
                Ok(())
            })
            .expect("diff");
        seen.sort();
        let expected = [
            ("became", true, false),
            ("became/inner", false, true),
            ("dir/changed", true, true),
            ("dir/gone", true, false),
            ("dir/new", false, true),
        ];
        assert_eq!(
            seen,
            expected.map(|(p, b, a)| (p.to_owned(), b, a)).to_vec()
        );
        // From nothing, every file is new.
        let mut all = 0;
        reader
            .diff(None, new, &mut |_, before, after| {
                assert!(before.is_none() && after.is_some());
                all += 1;
                Ok(())
            })
            .expect("diff");
        assert_eq!(all, 5);
    }

    #[test]
    fn commits_are_the_bytes_libgit2_writes() {
        let (_dir, repo) = repo();
        let cache = TreeCache::default();
        let mut out = NewObjects::default();
        let edits: BTreeMap<String, Edit> = [write("f", "f\n")].into_iter().collect();
        let tree = Reader::new(&repo, &cache, Vec::new())
            .build(None, &edits, &mut out)
            .expect("build")
            .expect("tree");
        out.write_loose(&repo).expect("write");
        let time = git2::Time::new(1_700_000_000, 120);
        let author = git2::Signature::new("Ana  ", "ana@example.com", &time).expect("sig");
        let committer = git2::Signature::new("Bot", "bot@example.invalid", &time).expect("sig");
        let message = "acme/dev: create project web\n\nHexabase-Actor: Ana\n";
        let git_tree = repo.find_tree(tree).expect("tree");
        let first = repo
            .commit(None, &author, &committer, message, &git_tree, &[])
            .expect("commit");
        let content = commit_content(tree, None, &author, &committer, message);
        assert_eq!(object_id(ObjectType::Commit, &content), first);
        let parent = repo.find_commit(first).expect("parent");
        let buffer = repo
            .commit_create_buffer(&author, &committer, message, &git_tree, &[&parent])
            .expect("buffer");
        let content = commit_content(tree, Some(first), &author, &committer, message);
        assert_eq!(&*buffer, content.as_slice());
        let signature =
            "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\nAAAA\n-----END SSH SIGNATURE-----\n";
        let signed = repo
            .commit_signed(
                std::str::from_utf8(&content).expect("text"),
                signature,
                None,
            )
            .expect("signed");
        let ours = signed_commit_content(&content, signature);
        assert_eq!(object_id(ObjectType::Commit, &ours), signed);
    }

    #[test]
    fn corrupt_trees_are_refused() {
        let id = Oid::ZERO_SHA1;
        for data in [
            b"100644 a".as_slice(),
            b"100644 a\0short",
            b"10x644 a\0aaaaaaaaaaaaaaaaaaaa",
            b"100644 \0aaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(Tree::parse(id, data).is_err(), "{data:?}");
        }
    }
}
