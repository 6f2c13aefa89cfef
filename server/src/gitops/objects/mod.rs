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

mod reader;

pub use reader::{DiffFn, Reader};

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
