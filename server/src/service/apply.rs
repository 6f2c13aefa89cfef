//! Apply = read intent at the branch head → apply the action → compile the affected
//! workspaces → build the new tree from the parent's → commit → compare-and-swap the branch.
//! A moved branch means doing it again on the new head, never a text merge.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use compiler::{Catalog, Compiler, Diagnostic};
use git2::{Oid, Repository};

use super::action::{Action, ActionError};
use crate::gitops::{CommitMessage, Edit, GitOps, GitOpsError, Identity, Snapshot, Trailers};

/// How often a commit is retried when other processes keep moving the branch.
const MAX_ATTEMPTS: usize = 64;

/// Who asked for an action, and the request it came with.
#[derive(Debug, Clone)]
pub struct ActionMeta {
    /// The acting user: the commit's author.
    pub actor: Identity,
    /// The request id, for the `Hexabase-Request` trailer.
    pub request_id: String,
}

/// What an applied action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One new commit on the branch.
    Committed {
        /// The commit id.
        commit: String,
    },
    /// The action changed nothing, so there is no commit.
    Unchanged,
}

/// Why an action was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The action does not fit the current intent.
    #[error(transparent)]
    Action(#[from] ActionError),
    /// The resulting intent has problems; nothing was committed.
    #[error("the change leaves the intent invalid")]
    Invalid(Vec<Diagnostic>),
    /// Git failed.
    #[error("failed to commit the change")]
    GitOps(#[from] GitOpsError),
    /// The compiler failed (a bug, not bad input).
    #[error("failed to compile the change")]
    Compiler(#[from] compiler::Error),
    /// Others kept moving the branch.
    #[error("the branch kept moving; gave up after {0} attempts")]
    Contention(usize),
}

/// The commit engine for one repository and branch.
pub struct Engine {
    gitops: GitOps,
    compiler: Compiler,
    bot: Identity,
    /// Serializes the commit step inside this process; compiles run in parallel.
    commit_lock: Mutex<()>,
}

/// A change computed against one parent, ready to commit.
struct Prepared {
    parent: Option<Oid>,
    snapshot: Snapshot,
    edits: BTreeMap<String, Edit>,
}

impl Engine {
    /// An engine writing `gitops`' branch as `bot`.
    pub fn new(gitops: GitOps, bot: Identity) -> Result<Self, compiler::Error> {
        Ok(Self {
            gitops,
            compiler: Compiler::new(&Catalog::builtin())?,
            bot,
            commit_lock: Mutex::new(()),
        })
    }

    /// The repository.
    pub fn gitops(&self) -> &GitOps {
        &self.gitops
    }

    /// Applies `action` as one commit on the branch.
    pub fn apply(&self, meta: &ActionMeta, action: &Action) -> Result<Outcome, ApplyError> {
        let repo = self.gitops.repo()?;
        // Compile outside the lock, so concurrent actions compile in parallel.
        let mut prepared = self.prepare(&repo, action)?;
        let _guard = self
            .commit_lock
            .lock()
            .expect("the commit lock is never poisoned: commit code does not panic");
        for _ in 0..MAX_ATTEMPTS {
            if self.gitops.head(&repo)? != prepared.parent {
                prepared = self.prepare(&repo, action)?;
            }
            match self.commit(&repo, meta, action, prepared) {
                Ok(outcome) => return Ok(outcome),
                Err(Retry::Moved(again)) => prepared = *again,
                Err(Retry::Failed(e)) => return Err(e),
            }
        }
        Err(ApplyError::Contention(MAX_ATTEMPTS))
    }

    /// Replaces the whole intent with `files` and renders everything: the first commit of a
    /// repository, or a re-render after people changed the platform by hand.
    pub fn import(
        &self,
        meta: &ActionMeta,
        files: &compiler::IntentFiles,
        subject: &str,
    ) -> Result<Outcome, ApplyError> {
        let repo = self.gitops.repo()?;
        let _guard = self
            .commit_lock
            .lock()
            .expect("the commit lock is never poisoned: commit code does not panic");
        let (intent, problems) = compiler::intent::load(files);
        let mut output = self
            .compiler
            .compile(&intent, &compiler::Options::default())?;
        output.diagnostics.extend(problems);
        if output.has_errors() {
            return Err(ApplyError::Invalid(output.diagnostics));
        }
        for _ in 0..MAX_ATTEMPTS {
            let head = self.gitops.head(&repo)?;
            let base = head
                .map(|h| repo.find_commit(h).and_then(|c| c.tree()))
                .transpose()
                .map_err(GitOpsError::Git)?;
            let mut edits = BTreeMap::new();
            let mut existing = BTreeSet::new();
            if let Some(tree) = &base {
                GitOps::files_under(&repo, tree, "", &mut existing)?;
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
            let tree = crate::gitops::tree::apply(&repo, base.as_ref(), &edits)?;
            let Some(tree) = tree else {
                return Ok(Outcome::Unchanged);
            };
            if base.as_ref().map(git2::Tree::id) == Some(tree) {
                return Ok(Outcome::Unchanged);
            }
            let message = CommitMessage {
                subject: subject.to_owned(),
                body: None,
                trailers: Trailers {
                    actor: format!("{} <{}>", meta.actor.name, meta.actor.email),
                    action: "import".to_owned(),
                    org: None,
                    workspace: None,
                    request: meta.request_id.clone(),
                    compiler: compiler::VERSION.to_owned(),
                },
            };
            match self
                .gitops
                .commit(&repo, head, tree, &meta.actor, &self.bot, &message.render())
            {
                Ok(id) => {
                    return Ok(Outcome::Committed {
                        commit: id.to_string(),
                    });
                }
                Err(GitOpsError::Moved { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApplyError::Contention(MAX_ATTEMPTS))
    }

    fn prepare(&self, repo: &Repository, action: &Action) -> Result<Prepared, ApplyError> {
        let head = self.gitops.head(repo)?;
        let base = self.gitops.snapshot(repo, head)?;
        let change = action.apply(&base.intent)?;
        if change.files.is_empty() {
            return Ok(Prepared {
                parent: head,
                snapshot: (*base).clone(),
                edits: BTreeMap::new(),
            });
        }
        let mut snapshot = Snapshot {
            commit: None,
            tree: base.tree,
            intent_tree: None,
            intent: base.intent.clone(),
            problems: base.problems.clone(),
        };
        for (path, text) in &change.files {
            let problems = snapshot.intent.set_file(path, text.as_deref());
            if problems.is_empty() {
                snapshot.problems.remove(path);
            } else {
                snapshot.problems.insert(path.clone(), problems);
            }
        }
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
        let output = self
            .compiler
            .compile_workspaces(&snapshot.intent, &change.workspaces)?;
        if output.has_errors() {
            return Err(ApplyError::Invalid(output.diagnostics));
        }
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
        // Each affected workspace's folder is replaced as a whole, on every cluster (it may have moved).
        for (org, ws) in &change.workspaces {
            for cluster in &clusters {
                edits.insert(format!("tenants/{cluster}/{org}/{ws}"), Edit::Remove);
            }
        }
        for (path, text) in output.files {
            edits.insert(path, Edit::Write(text.into_bytes()));
        }
        // Shared files the output speaks for but no longer renders are stale.
        if let Some(tree) = base.tree {
            let tree = repo.find_tree(tree).map_err(GitOpsError::Git)?;
            let orgs: BTreeSet<&String> = change.workspaces.iter().map(|(o, _)| o).collect();
            let mut existing = BTreeSet::new();
            GitOps::files_under(repo, &tree, "infrastructure", &mut existing)?;
            for cluster in &clusters {
                for org in &orgs {
                    for path in [
                        format!("tenants/{cluster}/{org}.yaml"),
                        format!("tenants/{cluster}/{org}/kustomization.yaml"),
                    ] {
                        GitOps::files_under(repo, &tree, &path, &mut existing)?;
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
        Ok(Prepared {
            parent: head,
            snapshot,
            edits,
        })
    }

    fn commit(
        &self,
        repo: &Repository,
        meta: &ActionMeta,
        action: &Action,
        prepared: Prepared,
    ) -> Result<Outcome, Retry> {
        let Prepared {
            parent,
            mut snapshot,
            edits,
        } = prepared;
        let base = snapshot
            .tree
            .map(|t| repo.find_tree(t))
            .transpose()
            .map_err(|e| Retry::Failed(GitOpsError::Git(e).into()))?;
        let new_tree = crate::gitops::tree::apply(repo, base.as_ref(), &edits)
            .map_err(|e| Retry::Failed(e.into()))?;
        let new_tree = match new_tree {
            Some(t) => t,
            None => repo
                .treebuilder(None)
                .and_then(|b| b.write())
                .map_err(|e| Retry::Failed(GitOpsError::Git(e).into()))?,
        };
        if Some(new_tree) == snapshot.tree {
            return Ok(Outcome::Unchanged);
        }
        let (org, ws) = action.scope();
        let message = CommitMessage {
            subject: action.subject(),
            body: None,
            trailers: Trailers {
                actor: format!("{} <{}>", meta.actor.name, meta.actor.email),
                action: action.kind().to_owned(),
                org: Some(org.to_owned()),
                workspace: ws.map(str::to_owned),
                request: meta.request_id.clone(),
                compiler: compiler::VERSION.to_owned(),
            },
        };
        let author = Identity {
            name: crate::gitops::sanitize_line(&meta.actor.name, 100),
            email: crate::gitops::sanitize_line(&meta.actor.email, 200).replace(['<', '>'], ""),
        };
        match self.gitops.commit(
            repo,
            parent,
            new_tree,
            &author,
            &self.bot,
            &message.render(),
        ) {
            Ok(id) => {
                snapshot.commit = Some(id);
                snapshot.tree = Some(new_tree);
                snapshot.intent_tree = repo
                    .find_tree(new_tree)
                    .ok()
                    .and_then(|t| t.get_name("intent").map(|e| e.id()));
                self.gitops.remember(&Arc::new(snapshot));
                Ok(Outcome::Committed {
                    commit: id.to_string(),
                })
            }
            Err(GitOpsError::Moved { .. }) => {
                let again = self.prepare(repo, action).map_err(Retry::Failed)?;
                Err(Retry::Moved(Box::new(again)))
            }
            Err(e) => Err(Retry::Failed(e.into())),
        }
    }
}

/// A commit attempt that must be redone on the new head, or a real failure.
enum Retry {
    Moved(Box<Prepared>),
    Failed(ApplyError),
}

/// True when the edits already decide `path` (written, or under a replaced folder).
fn output_owns(edits: &BTreeMap<String, Edit>, path: &str) -> bool {
    edits.contains_key(path)
        || edits.iter().any(|(p, e)| {
            matches!(e, Edit::Remove)
                && path.starts_with(p.as_str())
                && path.as_bytes().get(p.len()) == Some(&b'/')
        })
}
