//! Read-only Git access for the audit log: the facts of each commit (who, what, when, the
//! `Hexabase-*` trailers, a diff summary and the organizations and workspaces its changed
//! paths belong to). The index and the queries over it live in `service::audit`; this module
//! is the only part of the audit that uses git2.
//!
//! A commit's facts depend on the commit alone (its message, its signatures and the diff
//! against its first parent), never on the branch it was reached from: that is what lets an
//! index built up to one tip be extended to any descendant of that tip.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use git2::{Commit, ErrorCode, Oid, Repository, Sort};

use super::objects::{Reader, TreeCache};
use super::{CommitMessage, GitOpsError, Trailers};

/// Below this many commits, facts are read on one thread; above it, on one thread per core.
const PARALLEL_THRESHOLD: usize = 2_048;
/// At most this many threads read facts.
const MAX_THREADS: usize = 8;

/// An organization, and a workspace in it when the change is inside one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// Organization slug.
    pub org: String,
    /// Workspace slug; `None` for organization-level files.
    pub workspace: Option<String>,
}

/// Everything the audit log records about one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitFacts {
    /// The commit.
    pub id: Oid,
    /// Committer time, seconds since the Unix epoch (what `git log --since` compares).
    pub time: i64,
    /// The committer's UTC offset, in minutes.
    pub offset_minutes: i32,
    /// The author, `Name <email>`.
    pub author: String,
    /// The committer, `Name <email>`.
    pub committer: String,
    /// The first paragraph of the message, on one line.
    pub subject: String,
    /// The `Hexabase-*` trailers; `None` for commits made by people.
    pub trailers: Option<Trailers>,
    /// Files added against the first parent (all files for a root commit).
    pub added: u32,
    /// Files modified (content, mode or type) against the first parent.
    pub modified: u32,
    /// Files deleted against the first parent.
    pub deleted: u32,
    /// The organizations and workspaces the changed paths belong to (see [`scope_of_path`]).
    pub touched: BTreeSet<Scope>,
}

/// The organization and workspace a repository path belongs to, if any:
///
/// - `intent/<org>/<ws>/...` and `tenants/<cluster>/<org>/<ws>/...` belong to that workspace;
/// - `intent/<org>/<file>`, `tenants/<cluster>/<org>/<file>` and `tenants/<cluster>/<org>.yaml`
///   belong to the organization;
/// - everything else (`intent/platform.yaml`, `tenants/<cluster>/kustomization.yaml`,
///   `clusters/`, `infrastructure/`, documentation) belongs to none.
pub fn scope_of_path(path: &str) -> Option<(&str, Option<&str>)> {
    let mut parts = path.split('/');
    let within = match parts.next()? {
        "intent" => parts.collect::<Vec<_>>(),
        "tenants" => {
            parts.next()?;
            let rest: Vec<&str> = parts.collect();
            if let [file] = rest.as_slice() {
                let org = file.strip_suffix(".yaml")?;
                return (!org.is_empty() && org != "kustomization").then_some((org, None));
            }
            rest
        }
        _ => return None,
    };
    match within.as_slice() {
        [org, _file] if !org.is_empty() => Some((org, None)),
        [org, ws, _, ..] if !org.is_empty() && !ws.is_empty() => Some((org, Some(ws))),
        _ => None,
    }
}

/// The Git directory of the repository at `path` and the tip of `branch`, read from the ref
/// files without libgit2, or `None` whenever that is not plainly possible: the caller then asks
/// libgit2 ([`AuditRepo`]). Only the common layouts are read: a bare repository or a work
/// tree's `.git` folder, the branch as a loose ref or in `packed-refs`, SHA-1 ids. Linked work
/// trees (`commondir`), reftable, symbolic refs and anything unexpected give `None`.
///
/// This never needs to be right where libgit2 would disagree, only never wrong when it
/// answers: a loose ref, when present, is the branch; otherwise `packed-refs` is.
pub fn peek_tip(path: &Path, branch: &str) -> Option<(PathBuf, [u8; 20])> {
    let valid_name = !branch.is_empty()
        && !branch.starts_with(['/', '.', '-'])
        && !branch.ends_with(['/', '.'])
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.contains("/.")
        && !branch.ends_with(".lock")
        && branch
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\\~^:?*[@{".contains(&b));
    if !valid_name {
        return None;
    }
    let git_dir = if path.join("HEAD").is_file() && path.join("objects").is_dir() {
        path.to_owned()
    } else {
        let dot_git = path.join(".git");
        dot_git.join("HEAD").is_file().then_some(dot_git)?
    };
    if git_dir.join("commondir").exists() || git_dir.join("reftable").exists() {
        return None;
    }
    let name = format!("refs/heads/{branch}");
    let id = match std::fs::read(git_dir.join(&name)) {
        Ok(text) => parse_hex(text.strip_suffix(b"\n")?)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let packed = std::fs::read(git_dir.join("packed-refs")).ok()?;
            packed
                .split(|b| *b == b'\n')
                .filter(|line| !line.starts_with(b"#") && !line.starts_with(b"^"))
                .find_map(|line| {
                    let (id, refname) = line.split_at_checked(40)?;
                    (refname.strip_prefix(b" ")? == name.as_bytes()).then_some(id)
                })
                .and_then(parse_hex)?
        }
        Err(_) => return None,
    };
    Some((git_dir, id))
}

/// Forty lowercase or uppercase hex digits as 20 bytes.
fn parse_hex(text: &[u8]) -> Option<[u8; 20]> {
    if text.len() != 40 {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; 20];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// One repository and branch, opened read-only for the audit log.
pub struct AuditRepo {
    repo: Repository,
    branch_ref: String,
    /// Parsed trees, shared with the engine's [`super::GitOps`] when it has one.
    trees: Arc<TreeCache>,
}

impl AuditRepo {
    /// Opens the existing repository at `path` (bare or not); never creates one.
    pub fn open(path: &Path, branch: &str) -> Result<Self, GitOpsError> {
        let repo = Repository::open(path).map_err(|source| GitOpsError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            repo,
            branch_ref: format!("refs/heads/{branch}"),
            trees: Arc::default(),
        })
    }

    /// Reads trees through `trees` (the engine's [`super::GitOps::tree_cache`]), where the
    /// trees of the commits it just made are already parsed.
    pub fn with_tree_cache(mut self, trees: Arc<TreeCache>) -> Self {
        self.trees = trees;
        self
    }

    /// The Git directory (`.git/` of a work tree, the repository itself when bare): where
    /// the audit index is kept.
    pub fn git_dir(&self) -> &Path {
        self.repo.path()
    }

    /// The branch tip, `None` while the branch has no commit.
    pub fn tip(&self) -> Result<Option<Oid>, GitOpsError> {
        match self.repo.refname_to_id(&self.branch_ref) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(GitOpsError::Git(e)),
        }
    }

    /// True when `ancestor` is `tip` or one of its ancestors; false when it is not, or is not
    /// in the repository at all (a rewritten history whose old commits were pruned).
    pub fn reaches(&self, tip: Oid, ancestor: Oid) -> Result<bool, GitOpsError> {
        if tip == ancestor {
            return Ok(true);
        }
        match self.repo.find_commit(ancestor) {
            Ok(_) => {}
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(false),
            Err(e) => return Err(GitOpsError::Git(e)),
        }
        self.repo
            .graph_descendant_of(tip, ancestor)
            .map_err(GitOpsError::Git)
    }

    /// The `Hexabase-*` trailers of every commit reachable from `tip` that has them,
    /// parents before children: [`AuditRepo::commits`] without comparing any trees, for a
    /// caller that needs only the actions (a root commit of a large import would otherwise
    /// be compared with the empty tree, file by file).
    pub fn trailers(&self, tip: Oid) -> Result<Vec<Trailers>, GitOpsError> {
        let mut walk = self.repo.revwalk().map_err(GitOpsError::Git)?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
            .map_err(GitOpsError::Git)?;
        walk.push(tip).map_err(GitOpsError::Git)?;
        let mut out = Vec::new();
        for id in walk {
            let commit = self
                .repo
                .find_commit(id.map_err(GitOpsError::Git)?)
                .map_err(GitOpsError::Git)?;
            let message = String::from_utf8_lossy(commit.message_bytes());
            out.extend(CommitMessage::parse_trailers(&message));
        }
        Ok(out)
    }

    /// The `Hexabase-*` trailers of the commits reachable from `tip` but not from `known`,
    /// parents first, when `known` is `tip` or one of its ancestors; `None` when it is not
    /// (a rewritten history). One walk answers both: `known` is an ancestor exactly when it
    /// is `tip` or the parent of a commit of the walk.
    pub fn trailers_since(
        &self,
        tip: Oid,
        known: Oid,
    ) -> Result<Option<Vec<Trailers>>, GitOpsError> {
        if tip == known {
            return Ok(Some(Vec::new()));
        }
        let mut walk = self.repo.revwalk().map_err(GitOpsError::Git)?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
            .map_err(GitOpsError::Git)?;
        walk.push(tip).map_err(GitOpsError::Git)?;
        match walk.hide(known) {
            Ok(()) => {}
            // Not in the repository at all: pruned after a rewrite.
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(GitOpsError::Git(e)),
        }
        let mut out = Vec::new();
        let mut reaches = false;
        for id in walk {
            let commit = self
                .repo
                .find_commit(id.map_err(GitOpsError::Git)?)
                .map_err(GitOpsError::Git)?;
            reaches |= commit.parent_ids().any(|p| p == known);
            let message = String::from_utf8_lossy(commit.message_bytes());
            out.extend(CommitMessage::parse_trailers(&message));
        }
        Ok(reaches.then_some(out))
    }

    /// The organizations and workspaces whose files differ between the commits `from` and
    /// `to`: one comparison of their trees, however many commits lie between (a file changed
    /// and changed back between them is not a difference).
    pub fn changed_scopes(&self, from: Oid, to: Oid) -> Result<BTreeSet<Scope>, GitOpsError> {
        let tree = |id: Oid| {
            self.repo
                .find_commit(id)
                .map(|c| c.tree_id())
                .map_err(GitOpsError::Git)
        };
        let mut summary = Summary::default();
        let reader = Reader::new(&self.repo, &self.trees, Vec::new());
        diff_trees(&reader, Some(tree(from)?), Some(tree(to)?), &mut summary)?;
        Ok(summary.touched)
    }

    /// The facts of every commit reachable from `tip` but not from `known` (all of them when
    /// `known` is `None`), parents before children. Large walks read commits on several
    /// threads, each with its own repository handle.
    pub fn commits(&self, tip: Oid, known: Option<Oid>) -> Result<Vec<CommitFacts>, GitOpsError> {
        let mut walk = self.repo.revwalk().map_err(GitOpsError::Git)?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
            .map_err(GitOpsError::Git)?;
        walk.push(tip).map_err(GitOpsError::Git)?;
        if let Some(known) = known {
            walk.hide(known).map_err(GitOpsError::Git)?;
        }
        let ids: Vec<Oid> = walk.collect::<Result<_, _>>().map_err(GitOpsError::Git)?;
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(MAX_THREADS);
        if ids.len() < PARALLEL_THRESHOLD || threads < 2 {
            return facts_of(&self.repo, &self.trees, &ids);
        }
        let dir: PathBuf = self.repo.path().to_owned();
        let chunk = ids.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = ids
                .chunks(chunk)
                .map(|ids| {
                    let (dir, trees) = (&dir, &self.trees);
                    s.spawn(move || {
                        let repo = Repository::open(dir).map_err(|source| GitOpsError::Open {
                            path: dir.clone(),
                            source,
                        })?;
                        facts_of(&repo, trees, ids)
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(ids.len());
            for handle in handles {
                match handle.join() {
                    Ok(facts) => all.extend(facts?),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Ok(all)
        })
    }
}

fn facts_of(
    repo: &Repository,
    trees: &TreeCache,
    ids: &[Oid],
) -> Result<Vec<CommitFacts>, GitOpsError> {
    let reader = Reader::new(repo, trees, Vec::new());
    ids.iter()
        .map(|id| {
            let commit = repo.find_commit(*id).map_err(GitOpsError::Git)?;
            commit_facts(&reader, &commit)
        })
        .collect()
}

fn commit_facts(reader: &Reader<'_>, commit: &Commit<'_>) -> Result<CommitFacts, GitOpsError> {
    let signature = |s: git2::Signature<'_>| {
        format!(
            "{} <{}>",
            String::from_utf8_lossy(s.name_bytes()),
            String::from_utf8_lossy(s.email_bytes())
        )
    };
    let message = String::from_utf8_lossy(commit.message_bytes());
    let subject = commit
        .summary_bytes()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .unwrap_or_default();
    let parent_tree = if commit.parent_count() > 0 {
        Some(commit.parent(0).map_err(GitOpsError::Git)?.tree_id())
    } else {
        None
    };
    let mut summary = Summary::default();
    diff_trees(reader, parent_tree, Some(commit.tree_id()), &mut summary)?;
    let time = commit.committer().when();
    Ok(CommitFacts {
        id: commit.id(),
        time: time.seconds(),
        offset_minutes: time.offset_minutes(),
        author: signature(commit.author()),
        committer: signature(commit.committer()),
        subject,
        trailers: CommitMessage::parse_trailers(&message),
        added: summary.added,
        modified: summary.modified,
        deleted: summary.deleted,
        touched: summary.touched,
    })
}

/// What changed between two trees.
#[derive(Default)]
struct Summary {
    added: u32,
    modified: u32,
    deleted: u32,
    touched: BTreeSet<Scope>,
}

impl Summary {
    fn note(&mut self, path: &str) {
        let Some((org, workspace)) = scope_of_path(path) else {
            return;
        };
        // Most commits touch one or two scopes: look before allocating.
        let known = self
            .touched
            .iter()
            .any(|s| s.org == org && s.workspace.as_deref() == workspace);
        if !known {
            self.touched.insert(Scope {
                org: org.to_owned(),
                workspace: workspace.map(str::to_owned),
            });
        }
    }
}

/// Counts the files added, modified and deleted from `old` to `new` (files of a tree that
/// became a file, or the reverse, count as deleted and added, as `git diff` shows them), and
/// notes the scope of every changed path. Trees are read through the tree cache, where the
/// engine's latest commits already are.
fn diff_trees(
    reader: &Reader<'_>,
    old: Option<Oid>,
    new: Option<Oid>,
    summary: &mut Summary,
) -> Result<(), GitOpsError> {
    reader.diff(old, new, &mut |path, before, after| {
        match (before, after) {
            (Some(_), Some(_)) => summary.modified += 1,
            (Some(_), None) => summary.deleted += 1,
            (None, Some(_)) => summary.added += 1,
            (None, None) => return Ok(()),
        }
        summary.note(path);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::{peek_tip, scope_of_path};

    #[test]
    fn tips_are_read_from_loose_and_packed_refs_or_left_to_libgit2() {
        let dir = std::env::temp_dir().join(format!("hb-peek-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("objects")).expect("mkdir");
        std::fs::create_dir_all(dir.join("refs/heads/team")).expect("mkdir");
        std::fs::write(dir.join("HEAD"), "ref: refs/heads/main\n").expect("write");
        let a = "0123456789abcdef0123456789ABCDEF01234567";
        let b = "89abcdef0123456789abcdef0123456789abcdef";
        std::fs::write(dir.join("refs/heads/main"), format!("{a}\n")).expect("write");
        std::fs::write(
            dir.join("packed-refs"),
            format!(
                "# pack-refs with: peeled fully-peeled sorted\n{b} refs/heads/main\n\
                 {b} refs/heads/team/x\n^{a}\n{a} refs/tags/v1\n"
            ),
        )
        .expect("write");
        std::fs::write(dir.join("refs/heads/sym"), "ref: refs/heads/main\n").expect("write");
        let tip = |branch: &str| peek_tip(&dir, branch).map(|(_, id)| id);
        let main = tip("main").expect("loose ref");
        assert_eq!(main[..4], [0x01, 0x23, 0x45, 0x67]);
        assert_eq!(main[16..], [0x01, 0x23, 0x45, 0x67]);
        assert_eq!(tip("team/x").map(|id| id[0]), Some(0x89));
        for none in [
            "sym",
            "absent",
            "../HEAD",
            "team/../main",
            "",
            "v1",
            "main.lock",
        ] {
            assert_eq!(tip(none), None, "{none}");
        }
        // A work tree's .git folder.
        let work = dir.join("work");
        std::fs::create_dir_all(work.join(".git/refs/heads")).expect("mkdir");
        std::fs::write(work.join(".git/HEAD"), "ref: refs/heads/main\n").expect("write");
        std::fs::write(work.join(".git/refs/heads/main"), format!("{b}\n")).expect("write");
        let (git_dir, id) = peek_tip(&work, "main").expect("work tree");
        assert_eq!((git_dir, id[0]), (work.join(".git"), 0x89));
        // Linked work trees are left to libgit2.
        std::fs::write(work.join(".git/commondir"), "../..\n").expect("write");
        assert_eq!(peek_tip(&work, "main"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn paths_map_to_organizations_and_workspaces() {
        let cases = [
            (
                "intent/acme/dev/workspace.yaml",
                Some(("acme", Some("dev"))),
            ),
            (
                "intent/acme/dev/projects/web.yaml",
                Some(("acme", Some("dev"))),
            ),
            ("intent/acme/organization.yaml", Some(("acme", None))),
            ("intent/platform.yaml", None),
            (
                "tenants/home/acme/dev/host/vcluster.yaml",
                Some(("acme", Some("dev"))),
            ),
            ("tenants/home/acme/kustomization.yaml", Some(("acme", None))),
            ("tenants/home/acme.yaml", Some(("acme", None))),
            ("tenants/home/kustomization.yaml", None),
            ("tenants/home", None),
            ("clusters/home/tenants.yaml", None),
            ("README.md", None),
            ("docs/acme/dev/notes.md", None),
        ];
        for (path, expected) in cases {
            assert_eq!(scope_of_path(path), expected, "{path}");
        }
    }
}
