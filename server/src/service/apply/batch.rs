//! The commit step: actions queue up and a leader commits them as one batch (a chain of
//! commits, one pack, one compare-and-swap of the branch), and retries are answered from
//! the request index.

use super::*;

impl Engine {
    /// Applies `action` as one commit on the branch. A request id already on the branch
    /// (a retry) makes no commit: the answer is [`Outcome::AlreadyApplied`] with its commit.
    ///
    /// The change is computed outside the commit lock, so concurrent actions compile in
    /// parallel. It then joins the queue; a thread that finds no batch under way commits
    /// everything queued, each action its own commit, chained, with one pack write and one
    /// compare-and-swap of the branch. A change computed on an older head is reused when
    /// only this engine's commits to other workspaces came in between; otherwise it is
    /// computed again on the new head (re-applying the action, never merging text).
    pub fn apply(&self, meta: &ActionMeta, action: &Action) -> Result<Outcome, ApplyError> {
        let prepared = {
            let _t = timing::span("apply.prepare");
            let repo = self.gitops.cached_repo()?;
            // A retry is answered before its action runs: the action would likely no
            // longer apply. The batch checks again under the commit lock.
            let head = self.gitops.head(&repo)?;
            if let Some(done) = self.already_applied(&repo, head, meta)? {
                return Ok(done);
            }
            match self.prepare_on(&repo, head, action) {
                Ok(prepared) => prepared,
                Err(e) => return self.unless_applied(&repo, meta, e),
            }
        };
        let job = Arc::new(Job {
            meta: meta.clone(),
            action: action.clone(),
            prepared: Mutex::new(Some(prepared)),
            outcome: Mutex::new(None),
        });
        // Leader and followers: when no batch is being committed, this thread commits
        // everything queued; otherwise it waits for that batch to end, and returns if its
        // job was in it. Outcomes are set before the batch ends (under the queue lock), so
        // a follower never waits for a lock only to learn that it is done.
        let waiting = timing::span("apply.wait_for_commit");
        let mut queue = lock(&self.queue);
        queue.jobs.push(Arc::clone(&job));
        let mut committed = false;
        while lock(&job.outcome).is_none() {
            if queue.committing {
                queue = self
                    .batch_done
                    .wait(queue)
                    .expect("the engine's locks are never poisoned: nothing panics under them");
                continue;
            }
            queue.committing = true;
            let batch = std::mem::take(&mut queue.jobs);
            drop(queue);
            {
                let _guard = lock(&self.commit_lock);
                self.commit_batch(&batch);
            }
            committed = true;
            queue = lock(&self.queue);
            queue.committing = false;
            self.batch_done.notify_all();
        }
        drop(queue);
        drop(waiting);
        if committed {
            // On the maintenance thread: never on an answer's way.
            self.gitops.request_roll_up();
        }
        lock(&job.outcome)
            .take()
            .expect("a job is done once its batch is")
    }

    /// [`Engine::apply`] with the commit lock already held, on the branch's current head.
    pub(super) fn apply_locked(
        &self,
        meta: &ActionMeta,
        action: &Action,
    ) -> Result<Outcome, ApplyError> {
        let prepared = self.prepare(&*self.gitops.cached_repo()?, action)?;
        let job = Arc::new(Job {
            meta: meta.clone(),
            action: action.clone(),
            prepared: Mutex::new(Some(prepared)),
            outcome: Mutex::new(None),
        });
        self.commit_batch(std::slice::from_ref(&job));
        lock(&job.outcome)
            .take()
            .expect("a job is done once its batch is")
    }

    /// Commits `jobs` in order, with the commit lock held, and sets each one's outcome.
    fn commit_batch(&self, jobs: &[Arc<Job>]) {
        let _t = timing::span("batch");
        let outcomes = self
            .gitops
            .cached_repo()
            .map_err(ApplyError::from)
            .and_then(|repo| self.run_batch(&repo, jobs));
        match outcomes {
            Ok(outcomes) => {
                for (job, outcome) in jobs.iter().zip(outcomes) {
                    *lock(&job.outcome) = Some(outcome);
                }
            }
            Err(e) => {
                // Nothing of the batch landed. Every job fails with the batch's error as
                // the source of its own.
                let e = Arc::new(e);
                for job in jobs {
                    *lock(&job.outcome) = Some(Err(ApplyError::Batch(Arc::clone(&e))));
                }
            }
        }
    }

    /// Commits `jobs` as a chain on the branch head and moves the branch once; the outcome
    /// of each, or an error when nothing landed.
    fn run_batch(
        &self,
        repo: &Repository,
        jobs: &[Arc<Job>],
    ) -> Result<Vec<Result<Outcome, ApplyError>>, ApplyError> {
        let mut prepared: Vec<Option<Prepared>> =
            jobs.iter().map(|j| lock(&j.prepared).take()).collect();
        let branch = self.gitops.branch_ref();
        for _ in 0..MAX_ATTEMPTS {
            let t = timing::span("batch.snapshot");
            let head = self.gitops.head(repo)?;
            let mut current = self.gitops.snapshot(repo, head)?;
            drop(t);
            let mut chain: Vec<(Landed, BTreeSet<(String, String)>)> = Vec::new();
            // The batch's objects, in memory until they are packed.
            let mut objects = NewObjects::default();
            let mut outcomes = Vec::with_capacity(jobs.len());
            // Request ids committed in this batch, and what to tell the request index once
            // the branch has moved: a retry is answered with its first commit, whether that
            // is on the branch (checked against the very head the compare-and-swap expects,
            // so of two concurrent retries only one commits) or earlier in this batch.
            let mut in_batch: BTreeMap<&str, (String, Option<&str>)> = BTreeMap::new();
            let mut notes: Vec<(Option<Oid>, Oid, &str, Option<&str>)> = Vec::new();
            for (job, slot) in jobs.iter().zip(prepared.iter_mut()) {
                let request = job.meta.request_id.as_str();
                let earlier = match in_batch.get(request) {
                    Some((commit, digest)) => same_request(*digest, job.meta.digest.as_deref())
                        .map(|()| {
                            Some(Outcome::AlreadyApplied {
                                commit: commit.clone(),
                            })
                        }),
                    None => self.already_applied(repo, head, &job.meta),
                };
                match earlier {
                    Ok(Some(done)) => {
                        slot.take();
                        outcomes.push(Ok(done));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                }
                let parent = current.commit;
                let outcome = self.commit_one(
                    repo,
                    job,
                    slot.take(),
                    &mut current,
                    &mut chain,
                    &mut objects,
                );
                if let Ok(Outcome::Committed { commit, .. }) = &outcome {
                    if let Ok(id) = Oid::from_str(commit) {
                        notes.push((parent, id, request, job.meta.digest.as_deref()));
                    }
                    in_batch.insert(request, (commit.clone(), job.meta.digest.as_deref()));
                }
                outcomes.push(outcome);
            }
            let Some((last, _)) = chain.last() else {
                return Ok(outcomes);
            };
            let t = timing::span("batch.write_pack");
            self.gitops.write_pack(repo, &objects)?;
            if let Some(tree) = current.tree {
                self.gitops.keep_trees(&objects, tree);
            }
            drop(t);
            // Readers that see the branch move find its snapshot at once instead of deriving
            // it. Its objects are on disk now, so it is sound even if the branch does not
            // move (it is then a snapshot of a commit nobody asks for).
            self.gitops.remember(&current);
            let t = timing::span("batch.move_ref");
            let reflog = match chain.len() {
                1 => "hexabase: 1 commit".to_owned(),
                n => format!("hexabase: {n} commits"),
            };
            match self
                .gitops
                .move_ref(repo, &branch, head, last.commit, &reflog)
            {
                Ok(()) => {
                    drop(t);
                    for (parent, commit, request, digest) in notes {
                        self.requests.note(parent, commit, request, digest);
                    }
                    let t = timing::span("batch.remember_written");
                    let reader = self.gitops.reader(repo, vec![&objects]);
                    let mut landed = lock(&self.landed);
                    for (commit, workspaces) in chain {
                        self.remember_written(&reader, commit.tree, &workspaces);
                        landed.push_back(commit);
                    }
                    while landed.len() > LANDED_KEPT {
                        landed.pop_front();
                    }
                    drop(landed);
                    drop(t);
                    return Ok(outcomes);
                }
                // Someone else moved the branch: every job again, on the new head.
                Err(GitOpsError::Moved { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApplyError::Contention(MAX_ATTEMPTS))
    }

    /// Commits one job on `current` (in memory: the objects go to `objects`, for the pack),
    /// and makes the new commit `current`.
    fn commit_one(
        &self,
        repo: &Repository,
        job: &Job,
        prepared: Option<Prepared>,
        current: &mut Arc<Snapshot>,
        chain: &mut Vec<(Landed, BTreeSet<(String, String)>)>,
        objects: &mut NewObjects,
    ) -> Result<Outcome, ApplyError> {
        let (prepared, rebased) = match prepared {
            Some(p) if p.parent == current.commit => (p, false),
            Some(p) if self.reusable(&p, current.commit, chain) => (p.rebase(current), true),
            _ => {
                let _t = timing::span("commit.prepare_again");
                let reader = self.gitops.reader(repo, vec![&*objects]);
                (self.prepare_from(&reader, current, &job.action)?, false)
            }
        };
        let t = timing::span("commit.tree");
        objects.extend(&prepared.objects);
        let new_tree = if rebased {
            let mut spine = NewObjects::default();
            let tree = {
                let reader = self.gitops.reader(repo, vec![&*objects]);
                self.rebased_tree(&reader, current, &prepared, &mut spine)?
            };
            objects.extend(&spine);
            tree
        } else {
            prepared.tree
        };
        drop(t);
        let Prepared {
            mut snapshot,
            files,
            workspaces,
            drift,
            rendered,
            ..
        } = prepared;
        let Some(new_tree) = new_tree.filter(|t| Some(*t) != current.tree) else {
            return Ok(Outcome::Unchanged);
        };
        self.record_rendered(
            &self.gitops.reader(repo, vec![&*objects]),
            new_tree,
            &rendered,
        );
        // Crash tests (`failpoints` feature): blobs and trees are written (in memory).
        crate::gitops::failpoint!("apply-tree-written");
        let t = timing::span("commit.object");
        let text = message(&job.meta, &job.action).render();
        let parent = current.commit;
        let id = self.gitops.commit_object(
            parent,
            new_tree,
            &job.meta.actor,
            &self.bot,
            &text,
            objects,
        )?;
        drop(t);
        let _t = timing::span("commit.journal_and_land");
        // Push outbox hook (service::push): the commit object is written, then its action is
        // journaled (fsynced), and only then does the branch move.
        crate::service::journal::record(repo, id, &job.meta, &job.action)?;
        land(
            &mut snapshot,
            &self.gitops.reader(repo, vec![&*objects]),
            id,
            new_tree,
        );
        chain.push((
            Landed {
                commit: id,
                parent,
                tree: new_tree,
                footprint: Footprint::of(&files, &workspaces),
            },
            workspaces,
        ));
        *current = Arc::new(snapshot);
        Ok(Outcome::Committed {
            commit: id.to_string(),
            drift,
        })
    }

    /// True when `prepared` (computed on its parent) holds on `head` too: only this engine's
    /// commits lie between, and none of them conflicts with it.
    pub(super) fn reusable(
        &self,
        prepared: &Prepared,
        head: Option<Oid>,
        chain: &[(Landed, BTreeSet<(String, String)>)],
    ) -> bool {
        let mine = Footprint::of(&prepared.files, &prepared.workspaces);
        if mine.structural {
            return false;
        }
        let landed = lock(&self.landed);
        let mut at = head;
        for _ in 0..=LANDED_KEPT + chain.len() {
            if at == prepared.parent {
                return true;
            }
            let Some(commit) = at else {
                return false;
            };
            let found = chain
                .iter()
                .rev()
                .map(|(l, _)| l)
                .chain(landed.iter().rev())
                .find(|l| l.commit == commit);
            match found {
                Some(l) if !l.footprint.conflicts(&mine) => at = l.parent,
                _ => return false,
            }
        }
        false
    }

    /// [`Outcome::AlreadyApplied`] when `meta`'s request is on the branch head already (a
    /// retry), [`ApplyError::KeyReused`] when its id is there from another request, and
    /// `None` otherwise; nothing is applied.
    pub fn replayed(&self, meta: &ActionMeta) -> Result<Option<Outcome>, ApplyError> {
        let repo = self.gitops.cached_repo()?;
        let head = self.gitops.head(&repo)?;
        self.already_applied(&repo, head, meta)
    }

    /// `Err(e)`, unless `request` is on the branch by now: a concurrent retry of the same
    /// request landed first, and `e` is only its action failing a second time.
    fn unless_applied(
        &self,
        repo: &Repository,
        meta: &ActionMeta,
        e: ApplyError,
    ) -> Result<Outcome, ApplyError> {
        let head = self.gitops.head(repo)?;
        self.already_applied(repo, head, meta)?.ok_or(e)
    }

    /// [`Outcome::AlreadyApplied`] when `meta`'s request is already on the branch at
    /// `head`; [`ApplyError::KeyReused`] when its id is there but from another request.
    pub(super) fn already_applied(
        &self,
        repo: &Repository,
        head: Option<Oid>,
        meta: &ActionMeta,
    ) -> Result<Option<Outcome>, ApplyError> {
        let Some((commit, digest)) = self.requests.find(repo, head, &meta.request_id)? else {
            return Ok(None);
        };
        same_request(digest.as_deref(), meta.digest.as_deref())?;
        Ok(Some(Outcome::AlreadyApplied {
            commit: commit.to_string(),
        }))
    }
}
