//! Reading intent trees from disk and writing rendered trees to disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use compiler::{IntentFiles, Output};

/// The intent files under a folder, and the symbolic links found there.
#[derive(Debug, Default)]
pub struct IntentTree {
    /// Intent files by `/`-separated relative path.
    pub files: IntentFiles,
    /// Relative paths of symbolic links (to files or folders); never followed.
    pub links: Vec<String>,
}

/// Reads every file under `dir`, keyed by `/`-separated relative path, and lists the symbolic
/// links instead of following them (the compiler refuses them: [`compiler::Intent::set_link`]).
pub fn read_intent_tree(dir: &Path) -> Result<IntentTree> {
    let mut tree = IntentTree::default();
    if !dir.is_dir() {
        anyhow::bail!("intent folder {} does not exist", dir.display());
    }
    let mut links = Vec::new();
    walk_with_links(
        dir,
        dir,
        &mut |rel, path| {
            if is_intent_file(&rel) {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                tree.files.insert(rel, text);
            }
            Ok(())
        },
        &mut |rel| links.push(rel),
    )?;
    tree.links = links;
    Ok(tree)
}

/// Reads every file under `dir` into [`IntentFiles`]; a symbolic link is an error naming it.
pub fn read_intent(dir: &Path) -> Result<IntentFiles> {
    let tree = read_intent_tree(dir)?;
    if !tree.links.is_empty() {
        let names: Vec<String> = tree
            .links
            .iter()
            .map(|l| compiler::diagnostic::printable(l).into_owned())
            .collect();
        anyhow::bail!(
            "symbolic links in {}: {}; intent files and folders must be regular files and \
             folders (links are not followed)",
            dir.display(),
            names.join(", ")
        );
    }
    Ok(tree.files)
}

fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(String, &Path) -> Result<()>) -> Result<()> {
    walk_with_links(root, dir, f, &mut |_| {})
}

fn walk_with_links(
    root: &Path,
    dir: &Path,
    f: &mut dyn FnMut(String, &Path) -> Result<()>,
    link: &mut dyn FnMut(String),
) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let file_type = entry
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if file_type.is_dir() {
            if entry.file_name() == ".git" {
                continue;
            }
            walk_with_links(root, &path, f, link)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("walked paths are under the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            if file_type.is_file() {
                f(rel, &path)?;
            } else if file_type.is_symlink() {
                link(rel);
            }
        }
    }
    Ok(())
}

/// How a rendered output differs from what is on disk.
#[derive(Debug, Default)]
pub struct Changes {
    /// Files to create or overwrite, with their new text.
    pub write: BTreeMap<String, String>,
    /// Generated files that are stale and must go.
    pub delete: Vec<String>,
    /// Old text of files in `write` that exist today, and of files in `delete`.
    pub old: BTreeMap<String, String>,
}

impl Changes {
    /// True when the tree already matches.
    pub fn is_empty(&self) -> bool {
        self.write.is_empty() && self.delete.is_empty()
    }
}

/// Compares `output` with the tree at `root`.
pub fn changes(output: &Output, root: &Path) -> Result<Changes> {
    let mut existing = BTreeMap::new();
    if root.is_dir() {
        walk(root, root, &mut |rel, path| {
            if output.files.contains_key(&rel) {
                let old = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                existing.insert(rel, old);
            } else if output.owns(&rel) {
                existing.insert(rel, std::fs::read_to_string(path).unwrap_or_default());
            }
            Ok(())
        })?;
    }
    Ok(changes_from(output, &existing))
}

/// Compares `output` with files already read (path → text), which must hold at least the
/// generated ones: what [`changes`] does for a folder, for a Git revision.
pub fn changes_from(output: &Output, existing: &BTreeMap<String, String>) -> Changes {
    let mut changes = Changes::default();
    for (rel, text) in &output.files {
        match existing.get(rel) {
            Some(old) if old == text => {}
            Some(old) => {
                changes.old.insert(rel.clone(), old.clone());
                changes.write.insert(rel.clone(), text.clone());
            }
            None => {
                changes.write.insert(rel.clone(), text.clone());
            }
        }
    }
    for (rel, old) in existing {
        if output.owns(rel) && !output.files.contains_key(rel) {
            changes.old.insert(rel.clone(), old.clone());
            changes.delete.push(rel.clone());
        }
    }
    changes
}

/// Whether a path under `intent/` is an intent file: [`read_intent`] reads the same ones.
pub fn is_intent_file(rel: &str) -> bool {
    rel.ends_with(".yaml") || rel.ends_with(".yml")
}

/// Applies `changes` under `root`: writes through a temporary file and a rename, so a reader
/// never sees half a file, then removes stale files and the folders they leave empty.
pub fn apply(changes: &Changes, root: &Path) -> Result<()> {
    for (rel, text) in &changes.write {
        let path = root.join(rel);
        let dir = path.parent().expect("a file path has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = tmp_path(&path);
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("renaming onto {}", path.display()))?;
    }
    for rel in &changes.delete {
        let path = root.join(rel);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == root || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .expect("a file path has a name")
        .to_os_string();
    name.push(".hb-tmp");
    path.with_file_name(name)
}
