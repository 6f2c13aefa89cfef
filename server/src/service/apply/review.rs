//! Review mode: an action proposed on its own branch `hexabase/<request-id>`, and merged
//! later (fast-forward, or applied again on a newer head).

use super::*;

/// An action proposed for review on its own branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The review branch, `hexabase/<request-id>`.
    pub branch: String,
    /// The commit on it.
    pub commit: String,
    /// The request was proposed and merged before (a retry): `commit` is on the branch, and
    /// the review branch is gone.
    pub merged: bool,
}

/// What a review branch was made from, kept so it can be re-applied onto a newer head.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ReviewRecord {
    meta: ActionMeta,
    action: Action,
}

/// The review branch for a request id; `None` when the id cannot name a branch.
pub fn review_branch(request_id: &str) -> Option<String> {
    let ok = !request_id.is_empty()
        && request_id.len() <= 100
        && request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !request_id.starts_with('.')
        && !request_id.contains("..")
        && !request_id.ends_with(".lock");
    let branch = format!("hexabase/{request_id}");
    (ok && refs::is_valid_branch(&branch)).then_some(branch)
}

impl Engine {
    /// review, instead of on the branch. `None` when the action changes nothing. A retried
    /// request gets its first proposal back (marked `merged` once it is on the branch).
    pub fn propose(
        &self,
        meta: &ActionMeta,
        action: &Action,
    ) -> Result<Option<Proposal>, ApplyError> {
        let branch = review_branch(&meta.request_id).ok_or_else(|| {
            ActionError::Refused(format!(
                "request id {:?} cannot name a review branch",
                meta.request_id
            ))
        })?;
        let repo = self.gitops.repo()?;
        if let Some(proposal) = self.proposed(&repo, &branch, &meta.request_id)? {
            return Ok(Some(proposal));
        }
        let prepared = self.prepare(&repo, action)?;
        let Some(tree) = prepared.tree else {
            return Ok(None);
        };
        self.gitops.write_pack(&repo, &prepared.objects)?;
        let record = ReviewRecord {
            meta: meta.clone(),
            action: action.clone(),
        };
        self.write_review(&meta.request_id, &record)?;
        let refname = format!("refs/heads/{branch}");
        let committed = self.gitops.commit_ref(
            &repo,
            &refname,
            prepared.parent,
            None,
            tree,
            &meta.actor,
            &self.bot,
            &message(meta, action).render(),
        );
        match committed {
            Ok(commit) => Ok(Some(Proposal {
                branch,
                commit: commit.to_string(),
                merged: false,
            })),
            // The same request, proposed concurrently, or another use of the branch name.
            Err(GitOpsError::Moved { .. }) => {
                match self.proposed(&repo, &branch, &meta.request_id)? {
                    Some(proposal) => Ok(Some(proposal)),
                    None => {
                        Err(ActionError::AlreadyExists(format!("review branch {branch}")).into())
                    }
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The proposal `request` already made: its review branch when that carries the
    /// request, or its commit on the branch once merged.
    fn proposed(
        &self,
        repo: &Repository,
        branch: &str,
        request: &str,
    ) -> Result<Option<Proposal>, ApplyError> {
        if let Some(id) = refs::target(repo, &format!("refs/heads/{branch}"))? {
            let same = history::trailers(repo, id)?.is_some_and(|t| t.request == request);
            if same {
                return Ok(Some(Proposal {
                    branch: branch.to_owned(),
                    commit: id.to_string(),
                    merged: false,
                }));
            }
        }
        let head = self.gitops.head(repo)?;
        Ok(self
            .requests
            .find(repo, head, request)?
            .map(|(commit, _)| Proposal {
                branch: branch.to_owned(),
                commit: commit.to_string(),
                merged: true,
            }))
    }

    /// Lands a review branch: fast-forward when the branch has not moved since it was made,
    /// otherwise the action is applied again on the newer head. The review branch goes away.
    /// A retry, once the request is on the branch, is [`Outcome::AlreadyApplied`].
    pub fn merge_review(&self, request_id: &str) -> Result<Outcome, ApplyError> {
        let branch = review_branch(request_id)
            .ok_or_else(|| ActionError::NotFound(format!("review {request_id}")))?;
        let refname = format!("refs/heads/{branch}");
        let repo = self.gitops.repo()?;
        let head = self.gitops.head(&repo)?;
        // The review's own request: whatever carries its id on the branch is its commit.
        if let Some((commit, _)) = self.requests.find(&repo, head, request_id)? {
            self.forget_review(&repo, &refname, request_id)?;
            return Ok(Outcome::AlreadyApplied {
                commit: commit.to_string(),
            });
        }
        let Some(review) = refs::target(&repo, &refname)? else {
            return Err(ActionError::NotFound(format!("review branch {branch}")).into());
        };
        let record = self.read_review(request_id)?;
        let parent = history::first_parent(&repo, review)?;
        let _guard = lock(&self.commit_lock);
        let head = self.gitops.head(&repo)?;
        let outcome = if parent == head {
            // Push outbox hook (service::push): journal the review commit's action before the
            // branch can reach it.
            crate::service::journal::record(&repo, review, &record.meta, &record.action)?;
            let moved = refs::update(
                &repo,
                &self.gitops.branch_ref(),
                review,
                head,
                "hexabase: merge review",
            );
            match moved {
                Ok(_) => {
                    self.requests
                        .note(head, review, request_id, record.meta.digest.as_deref());
                    Outcome::Committed {
                        commit: review.to_string(),
                        drift: Vec::new(),
                    }
                }
                Err(_) => self.apply_locked(&record.meta, &record.action)?,
            }
        } else {
            self.apply_locked(&record.meta, &record.action)?
        };
        self.forget_review(&repo, &refname, request_id)?;
        Ok(outcome)
    }

    /// Removes a landed review's branch and record.
    fn forget_review(
        &self,
        repo: &Repository,
        refname: &str,
        request_id: &str,
    ) -> Result<(), ApplyError> {
        refs::delete(repo, refname)?;
        let _ = std::fs::remove_file(self.review_path(request_id));
        Ok(())
    }

    fn review_path(&self, request_id: &str) -> std::path::PathBuf {
        self.gitops
            .path()
            .join("hexabase")
            .join("reviews")
            .join(format!("{request_id}.json"))
    }

    fn write_review(&self, request_id: &str, record: &ReviewRecord) -> Result<(), ApplyError> {
        let path = self.review_path(request_id);
        let io = |e: std::io::Error| ApplyError::Journal(path.display().to_string(), e);
        let dir = path.parent().expect("review files live in a folder");
        std::fs::create_dir_all(dir).map_err(io)?;
        let json = serde_json::to_vec(record).expect("actions serialize");
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&tmp).map_err(io)?;
            file.write_all(&json).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)
    }

    fn read_review(&self, request_id: &str) -> Result<ReviewRecord, ApplyError> {
        let path = self.review_path(request_id);
        let text =
            std::fs::read(&path).map_err(|e| ApplyError::Journal(path.display().to_string(), e))?;
        serde_json::from_slice(&text).map_err(|e| {
            ApplyError::Journal(
                path.display().to_string(),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }
}
