//! The commit engine on real repositories: one commit per action, compare-and-swap under
//! concurrency, commits by people picked up, hand edits of rendered files overwritten.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use compiler::intent::{PolicyRule, Quota, Role, RoleBinding};
use server::gitops::{CommitMessage, GitOps, Identity};
use server::service::action::Action;
use server::service::apply::{ActionMeta, ApplyError, Engine, Outcome};

fn temp_repo(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hb-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn bot() -> Identity {
    Identity {
        name: "Hexabase".into(),
        email: "bot@hexabase.example".into(),
    }
}

fn meta(user: &str, request: &str) -> ActionMeta {
    ActionMeta {
        actor: Identity {
            name: user.into(),
            email: format!("{user}@example.com"),
        },
        request_id: request.into(),
        actor_id: None,
        digest: None,
    }
}

fn example_files() -> compiler::IntentFiles {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gitops-repo-example/intent");
    server::tree::read_intent(&root).expect("example intent")
}

fn engine(path: &Path) -> Engine {
    let gitops = GitOps::open(path, "main").expect("repository opens");
    Engine::new(gitops, bot()).expect("engine starts")
}

fn seeded(name: &str) -> (PathBuf, Engine) {
    let path = temp_repo(name);
    let engine = engine(&path);
    let outcome = engine
        .import(
            &meta("admin", "seed"),
            &example_files(),
            "platform: import intent",
        )
        .expect("imports");
    assert!(matches!(outcome, Outcome::Committed { .. }));
    (path, engine)
}

fn commits(path: &Path) -> Vec<git2::Oid> {
    let repo = git2::Repository::open(path).expect("open");
    let mut walk = repo.revwalk().expect("revwalk");
    walk.push_ref("refs/heads/main").expect("push");
    walk.collect::<Result<_, _>>().expect("walk")
}

fn create_project(org: &str, ws: &str, project: &str) -> Action {
    Action::CreateProject {
        org: org.into(),
        workspace: ws.into(),
        project: project.into(),
        display_name: None,
    }
}

#[test]
fn an_action_is_one_commit_with_author_committer_and_trailers() {
    let (path, engine) = seeded("one");
    let before = commits(&path).len();
    let outcome = engine
        .apply(
            &meta("alice", "req-1"),
            &create_project("acme", "dev", "billing"),
        )
        .expect("applies");
    let Outcome::Committed { commit, .. } = outcome else {
        panic!("expected a commit")
    };
    assert_eq!(commits(&path).len(), before + 1);
    let repo = git2::Repository::open(&path).expect("open");
    let commit = repo
        .find_commit(git2::Oid::from_str(&commit).expect("oid"))
        .expect("commit");
    assert_eq!(commit.author().name().ok(), Some("alice"));
    assert_eq!(commit.author().email().ok(), Some("alice@example.com"));
    assert_eq!(commit.committer().name().ok(), Some("Hexabase"));
    assert_eq!(
        commit.summary().ok().flatten(),
        Some("acme/dev: create project billing")
    );
    let trailers =
        CommitMessage::parse_trailers(commit.message().expect("utf-8")).expect("trailers");
    assert_eq!(trailers.action, "create-project");
    assert_eq!(trailers.org.as_deref(), Some("acme"));
    assert_eq!(trailers.workspace.as_deref(), Some("dev"));
    assert_eq!(trailers.request, "req-1");
    assert_eq!(trailers.compiler, compiler::VERSION);
    let files = common::head_files(&path);
    assert!(files.contains_key("intent/acme/dev/projects/billing.yaml"));
    assert!(
        files["tenants/home/acme/dev/inside/kustomization.yaml"].contains("projects/billing.yaml")
    );
    common::assert_head_is_compiled(&path);
    // The parent's tree is shared: only changed paths got new objects.
    let parent = commit.parent(0).expect("parent");
    let old = parent.tree().expect("tree");
    let new = commit.tree().expect("tree");
    assert_eq!(
        old.get_name("infrastructure").map(|e| e.id()),
        new.get_name("infrastructure").map(|e| e.id())
    );
}

#[test]
fn an_action_that_changes_nothing_makes_no_commit_and_a_bad_one_none_either() {
    let (path, engine) = seeded("noop");
    let bind = Action::BindRole {
        org: "acme".into(),
        workspace: "dev".into(),
        project: "web".into(),
        binding: RoleBinding {
            group: "WSUsers".into(),
            role: Some("deployer".into()),
            cluster_role: None,
        },
    };
    let before = commits(&path);
    assert_eq!(
        engine.apply(&meta("alice", "r"), &bind).expect("applies"),
        Outcome::Unchanged
    );
    let too_much = Action::SetProjectQuota {
        org: "acme".into(),
        workspace: "dev".into(),
        project: "web".into(),
        quota: Quota {
            requests_cpu: Some("999".into()),
            ..Quota::default()
        },
    };
    match engine.apply(&meta("alice", "r"), &too_much) {
        Err(ApplyError::Invalid(diagnostics)) => {
            assert!(
                diagnostics
                    .iter()
                    .any(|d| d.path == "spec.quota.requestsCpu"),
                "{diagnostics:?}"
            );
        }
        other => panic!("expected diagnostics, got {other:?}"),
    }
    let escalate = Action::CreateRole {
        org: "acme".into(),
        workspace: "dev".into(),
        project: "web".into(),
        role: Role {
            name: "root".into(),
            rules: vec![PolicyRule {
                api_groups: vec!["".into()],
                resources: vec!["pods".into()],
                verbs: vec!["escalate".into()],
                resource_names: vec![],
            }],
        },
    };
    assert!(matches!(
        engine.apply(&meta("alice", "r"), &escalate),
        Err(ApplyError::Invalid(_))
    ));
    assert!(matches!(
        engine.apply(&meta("alice", "r"), &create_project("acme", "nope", "x")),
        Err(ApplyError::Action(_))
    ));
    assert_eq!(commits(&path), before);
}

#[test]
fn a_batch_that_fails_gives_each_action_the_batch_error_as_its_source() {
    let (path, engine) = seeded("batch-fails");
    let before = commits(&path);
    // A lock file nobody releases: every compare-and-swap of the branch fails as if the
    // branch had moved, until the batch gives up.
    let lock = path.join("refs/heads/main.lock");
    std::fs::write(&lock, "").expect("lock");
    let error = engine
        .apply(
            &meta("alice", "locked"),
            &create_project("acme", "dev", "locked"),
        )
        .expect_err("the branch cannot move");
    match &error {
        ApplyError::Batch(source) => {
            assert!(matches!(**source, ApplyError::Contention(_)), "{source:?}");
        }
        other => panic!("expected the batch's own error as the source, got {other:?}"),
    }
    let source = std::error::Error::source(&error).expect("the batch's error");
    assert!(source.to_string().contains("kept moving"), "{source}");
    std::fs::remove_file(&lock).expect("unlock");
    assert_eq!(commits(&path), before, "nothing landed");
}

#[test]
fn concurrent_writers_get_one_commit_each_on_a_linear_history() {
    let (path, engine) = seeded("threads");
    let engine = Arc::new(engine);
    // A second engine on the same repository behaves like another process: its own caches
    // and locks, sharing only the branch.
    let other = Arc::new(self::engine(&path));
    let before = commits(&path).len();
    let (writers, actions) = (6, 8);
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let engine = if w % 2 == 0 {
                Arc::clone(&engine)
            } else {
                Arc::clone(&other)
            };
            std::thread::spawn(move || {
                for a in 0..actions {
                    let ws = if a % 2 == 0 { "dev" } else { "prod" };
                    let outcome = engine
                        .apply(
                            &meta(&format!("user{w}"), &format!("r{w}-{a}")),
                            &create_project("acme", ws, &format!("p{w}-{a}")),
                        )
                        .expect("applies");
                    assert!(matches!(outcome, Outcome::Committed { .. }));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer finished");
    }
    let history = commits(&path);
    assert_eq!(history.len(), before + writers * actions);
    let repo = git2::Repository::open(&path).expect("open");
    for id in &history {
        assert!(
            repo.find_commit(*id).expect("commit").parent_count() <= 1,
            "history is linear"
        );
    }
    let files = common::head_files(&path);
    for w in 0..writers {
        for a in 0..actions {
            let ws = if a % 2 == 0 { "dev" } else { "prod" };
            assert!(files.contains_key(&format!("intent/acme/{ws}/projects/p{w}-{a}.yaml")));
        }
    }
    common::assert_head_is_compiled(&path);
    common::assert_fsck_clean(&path);
}

#[test]
fn actions_write_packs_that_are_rolled_up_and_stay_sound() {
    let (path, engine) = seeded("packs");
    let (loose, _) = common::object_files(&path);
    let before = commits(&path).len();
    let actions = server::gitops::PACKS_BEFORE_ROLLUP * 2 + 5;
    for a in 0..actions {
        let ws = if a % 2 == 0 { "dev" } else { "prod" };
        let outcome = engine
            .apply(
                &meta("packer", &format!("pack-{a}")),
                &create_project("acme", ws, &format!("p{a}")),
            )
            .expect("applies");
        assert!(matches!(outcome, Outcome::Committed { .. }));
        // Roll-ups run on the engine's maintenance thread.
        engine.gitops().wait_for_maintenance();
        // Every action's objects went into a pack; none were written loose.
        let (now_loose, packs) = common::object_files(&path);
        assert_eq!(now_loose, loose, "loose objects after action {a}");
        assert!(
            packs <= server::gitops::PACKS_BEFORE_ROLLUP + 1,
            "{packs} packs after action {a}: small packs are rolled up"
        );
    }
    assert_eq!(commits(&path).len(), before + actions);
    common::assert_fsck_clean(&path);
    common::assert_head_is_compiled(&path);
    // Another handle (another process) reads every commit from the packs.
    let repo = git2::Repository::open(&path).expect("open");
    for id in commits(&path) {
        repo.find_commit(id)
            .and_then(|c| c.tree())
            .expect("every commit and tree is readable");
    }
}

#[test]
fn commits_by_people_are_picked_up_and_hand_edits_overwritten() {
    let (path, engine) = seeded("people");
    // A person adds a project by hand and edits a rendered file.
    let repo = git2::Repository::open(&path).expect("open");
    let head = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_commit())
        .expect("head");
    let project =
        "apiVersion: hexabase.ai/v1alpha1\nkind: Project\nmetadata:\n  name: handmade\nspec: {}\n";
    let mut edits = BTreeMap::new();
    edits.insert(
        "intent/acme/dev/projects/handmade.yaml".to_owned(),
        server::gitops::Edit::Write(project.into()),
    );
    edits.insert(
        "tenants/home/acme/dev/host/network.yaml".to_owned(),
        server::gitops::Edit::Write(b"hand: edit\n".to_vec()),
    );
    edits.insert(
        "docs/notes.md".to_owned(),
        server::gitops::Edit::Write(b"# kept\n".to_vec()),
    );
    let tree = server::gitops::tree::apply(&repo, Some(&head.tree().expect("tree")), &edits)
        .expect("tree")
        .expect("non-empty");
    let person = git2::Signature::now("Pat", "pat@example.com").expect("sig");
    let tree = repo.find_tree(tree).expect("tree");
    repo.commit(
        Some("refs/heads/main"),
        &person,
        &person,
        "add a project by hand",
        &tree,
        &[&head],
    )
    .expect("commit");

    engine
        .apply(&meta("alice", "r"), &create_project("acme", "dev", "after"))
        .expect("applies");
    let files = common::head_files(&path);
    assert!(
        files["tenants/home/acme/dev/inside/kustomization.yaml"].contains("projects/handmade.yaml")
    );
    assert!(files["tenants/home/acme/dev/host/network.yaml"].contains("kind: NetworkPolicy"));
    assert_eq!(files["docs/notes.md"], "# kept\n");
    common::assert_head_is_compiled(&path);
}

#[test]
fn deleting_a_workspace_removes_its_folder_and_index_entries() {
    let (path, engine) = seeded("delete");
    engine
        .apply(
            &meta("alice", "r"),
            &Action::DeleteWorkspace {
                org: "acme".into(),
                workspace: "prod".into(),
            },
        )
        .expect("applies");
    let files = common::head_files(&path);
    assert!(!files.keys().any(|p| p.starts_with("tenants/home/acme/prod/") || p.starts_with("intent/acme/prod/")));
    assert!(!files["tenants/home/acme/kustomization.yaml"].contains("prod/"));
    common::assert_head_is_compiled(&path);
}

#[test]
fn review_branches_fast_forward_or_reapply_onto_a_newer_head() {
    let (path, engine) = seeded("review");
    let head = commits(&path)[0];
    let proposal = engine
        .propose(
            &meta("alice", "req-ff"),
            &create_project("acme", "dev", "reviewed"),
        )
        .expect("proposes")
        .expect("changes something");
    assert_eq!(proposal.branch, "hexabase/req-ff");
    assert_eq!(
        commits(&path)[0],
        head,
        "the branch does not move while under review"
    );
    let merged = engine.merge_review("req-ff").expect("merges");
    assert_eq!(
        merged,
        Outcome::Committed {
            commit: proposal.commit,
            drift: vec![]
        },
        "fast-forward"
    );
    let repo = git2::Repository::open(&path).expect("open");
    assert!(
        repo.find_reference("refs/heads/hexabase/req-ff").is_err(),
        "review branch removed"
    );

    // A review that fell behind is applied again on the newer head.
    let late = engine
        .propose(
            &meta("bob", "req-late"),
            &create_project("acme", "prod", "later"),
        )
        .expect("proposes")
        .expect("changes something");
    engine
        .apply(
            &meta("carol", "r"),
            &create_project("acme", "dev", "meanwhile"),
        )
        .expect("applies");
    let Outcome::Committed { commit, .. } = engine.merge_review("req-late").expect("merges") else {
        panic!("commit")
    };
    assert_ne!(commit, late.commit);
    let landed = repo
        .find_commit(git2::Oid::from_str(&commit).expect("oid"))
        .expect("commit");
    assert_eq!(landed.author().name().ok(), Some("bob"));
    let files = common::head_files(&path);
    assert!(files.contains_key("intent/acme/prod/projects/later.yaml"));
    assert!(files.contains_key("intent/acme/dev/projects/meanwhile.yaml"));
    common::assert_head_is_compiled(&path);

    for bad in ["../main", "a b", "x.lock", "", "a..b", "-\n"] {
        assert!(
            engine
                .propose(&meta("eve", bad), &create_project("acme", "dev", "evil"))
                .is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn hand_edits_of_rendered_files_are_reported_as_drift() {
    let (path, engine) = seeded("drift");
    hand_edit(&path, "tenants/home/acme/dev/host/network.yaml");
    let Outcome::Committed { drift, .. } = engine
        .apply(&meta("alice", "r1"), &create_project("acme", "dev", "x"))
        .expect("applies")
    else {
        panic!("commit")
    };
    assert_eq!(drift, ["tenants/home/acme/dev/host/network.yaml"]);
    let Outcome::Committed { drift, .. } = engine
        .apply(&meta("alice", "r2"), &create_project("acme", "dev", "y"))
        .expect("applies")
    else {
        panic!("commit")
    };
    assert!(drift.is_empty());
}

#[test]
fn renders_are_remembered_across_restarts_and_hand_edits_still_found() {
    let (path, first) = seeded("rendered");
    drop(first);
    // The import recorded every folder it rendered by tree id; a torn last line is skipped.
    let record = path.join("hexabase/rendered");
    let text = std::fs::read_to_string(&record).expect("the import records its renders");
    let repo = git2::Repository::open(&path).expect("open");
    let folder = |root: &str| {
        repo.find_reference("refs/heads/main")
            .and_then(|r| r.peel_to_tree())
            .and_then(|t| t.get_path(Path::new(root)))
            .map(|e| e.id().to_string())
            .expect("folder")
    };
    assert!(text.contains(&folder("tenants/home/acme/prod")));
    std::fs::write(&record, format!("{text}0123abc")).expect("tear");
    hand_edit(&path, "tenants/home/acme/dev/host/network.yaml");
    let engine = engine(&path);
    for (ws, expected) in [
        ("dev", vec!["tenants/home/acme/dev/host/network.yaml"]),
        ("prod", vec![]),
    ] {
        let Outcome::Committed { drift, .. } = engine
            .apply(&meta("alice", ws), &create_project("acme", ws, "x"))
            .expect("applies")
        else {
            panic!("commit")
        };
        assert_eq!(drift, expected, "{ws}");
    }
    // The new renders are recorded too.
    let text = std::fs::read_to_string(&record).expect("record");
    assert!(text.contains(&folder("tenants/home/acme/dev")));
    common::assert_fsck_clean(&path);
}

/// Commits a hand edit of `file` on the branch, as a person would.
fn hand_edit(path: &Path, file: &str) {
    let repo = git2::Repository::open(path).expect("open");
    let head = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_commit())
        .expect("head");
    let mut edits = BTreeMap::new();
    edits.insert(
        file.to_owned(),
        server::gitops::Edit::Write(b"hand: edit\n".to_vec()),
    );
    let tree = server::gitops::tree::apply(&repo, Some(&head.tree().expect("tree")), &edits)
        .expect("tree")
        .expect("tree");
    let person = git2::Signature::now("Pat", "pat@example.com").expect("sig");
    repo.commit(
        Some("refs/heads/main"),
        &person,
        &person,
        "tweak",
        &repo.find_tree(tree).expect("tree"),
        &[&head],
    )
    .expect("commit");
}

#[test]
fn free_text_cannot_forge_subject_lines_or_trailers() {
    let (path, engine) = seeded("inject");
    let nasty =
        "x\n\nHexabase-Actor: root <root@x>\nHexabase-Org: other\u{2028}Hexabase-Workspace: y";
    // Display text may look like trailers but holds no line break (the intent's text rule).
    let shown =
        "x Hexabase-Actor: root <root@x>\u{2028}Hexabase-Org: other\u{2029}Hexabase-Workspace: y";
    let evil = ActionMeta {
        actor: Identity {
            name: nasty.into(),
            email: "a@x>\nHexabase-Action: delete".into(),
        },
        request_id: "req\nHexabase-Org: z".into(),
        actor_id: None,
        digest: None,
    };
    let action = Action::CreateProject {
        org: "acme".into(),
        workspace: "dev".into(),
        project: "injected".into(),
        display_name: Some(shown.into()),
    };
    // A line break is not display text: the action is refused with the field at fault.
    let broken = Action::CreateProject {
        org: "acme".into(),
        workspace: "dev".into(),
        project: "broken".into(),
        display_name: Some(nasty.into()),
    };
    match engine.apply(&evil, &broken) {
        Err(ApplyError::Invalid(problems)) => {
            assert!(
                problems.iter().any(|d| d.path == "spec.displayName"),
                "{problems:?}"
            );
        }
        other => panic!("a display name with a line break was not refused: {other:?}"),
    }
    let Outcome::Committed { commit, .. } = engine.apply(&evil, &action).expect("applies") else {
        panic!("commit")
    };
    let repo = git2::Repository::open(&path).expect("open");
    let commit = repo
        .find_commit(git2::Oid::from_str(&commit).expect("oid"))
        .expect("commit");
    let message = commit.message().expect("utf-8");
    let trailer_lines: Vec<&str> = message
        .lines()
        .filter(|l| l.starts_with("Hexabase-"))
        .collect();
    assert_eq!(trailer_lines.len(), 6, "{message}");
    assert!(
        !message
            .lines()
            .any(|l| l.starts_with("Hexabase-Actor: root")),
        "{message}"
    );
    let trailers = CommitMessage::parse_trailers(message).expect("trailers");
    assert_eq!(trailers.org.as_deref(), Some("acme"));
    assert_eq!(trailers.workspace.as_deref(), Some("dev"));
    assert_eq!(
        commit.summary().ok().flatten(),
        Some("acme/dev: create project injected")
    );
    assert!(!commit.author().name().unwrap_or_default().contains('\n'));
    // The display name itself is kept, exactly, in the intent.
    let files = common::head_files(&path);
    let (intent, _) = compiler::intent::load(
        &files
            .iter()
            .filter_map(|(p, t)| p.strip_prefix("intent/").map(|p| (p.to_owned(), t.clone())))
            .collect(),
    );
    let project = intent.organizations["acme"].workspaces["dev"].projects["injected"].project();
    assert_eq!(project.spec.display_name.as_deref(), Some(shown));
}

fn run(command: &mut std::process::Command) -> String {
    let output = command.output().expect("tool runs");
    assert!(
        output.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn commits_are_signed_with_ssh_and_openpgp_keys_git_can_verify() {
    use server::gitops::Signing;
    let dir = temp_repo("signing-keys");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // SSH: git verifies against an allowed-signers file, as Flux's users would.
    let key = dir.join("id_ed25519");
    run(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bot", "-f"])
        .arg(&key));
    let public = std::fs::read_to_string(dir.join("id_ed25519.pub")).expect("public key");
    let allowed = dir.join("allowed_signers");
    std::fs::write(&allowed, format!("bot@hexabase.example {public}")).expect("write");
    // OpenPGP: a throwaway GnuPG home with one signing key.
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).expect("mkdir");
    run(std::process::Command::new("gpg")
        .arg("--homedir")
        .arg(&home)
        .args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Hexabase <bot@hexabase.example>",
            "ed25519",
            "sign",
            "never",
        ]));

    for (name, signing) in [
        ("ssh", Signing::Ssh { key }),
        (
            "openpgp",
            Signing::OpenPgp {
                key_id: "bot@hexabase.example".into(),
                home: Some(home.clone()),
            },
        ),
    ] {
        let path = temp_repo(&format!("signed-{name}"));
        let gitops = GitOps::open(&path, "main")
            .expect("opens")
            .with_signing(Some(signing));
        let engine = Engine::new(gitops, bot()).expect("engine");
        engine
            .import(
                &meta("admin", "seed"),
                &example_files(),
                "platform: import intent",
            )
            .expect("imports");
        let Outcome::Committed { commit, .. } = engine
            .apply(
                &meta("alice", "r"),
                &create_project("acme", "dev", "signed"),
            )
            .expect("applies")
        else {
            panic!("commit")
        };
        let verify = std::process::Command::new("git")
            .arg("-C")
            .arg(&path)
            .arg("-c")
            .arg(format!("gpg.ssh.allowedSignersFile={}", allowed.display()))
            .env("GNUPGHOME", &home)
            .args(["verify-commit", "-v", &commit])
            .output()
            .expect("git runs");
        let said = String::from_utf8_lossy(&verify.stderr);
        assert!(verify.status.success(), "{name}: {said}");
        assert!(
            said.contains("Good") || said.contains("good"),
            "{name}: {said}"
        );
    }
}

/// How many commits on `main` carry `Hexabase-Request: <request>`.
fn commits_for(path: &Path, request: &str) -> usize {
    let repo = git2::Repository::open(path).expect("open");
    let mut walk = repo.revwalk().expect("revwalk");
    walk.push_ref("refs/heads/main").expect("main");
    walk.filter(|id| {
        let commit = repo
            .find_commit(*id.as_ref().expect("walk"))
            .expect("commit");
        commit
            .message()
            .ok()
            .and_then(CommitMessage::parse_trailers)
            .is_some_and(|t| t.request == request)
    })
    .count()
}

fn committed(outcome: Outcome) -> String {
    match outcome {
        Outcome::Committed { commit, .. } => commit,
        other => panic!("expected a commit, got {other:?}"),
    }
}

#[test]
fn a_retried_request_gets_its_first_commit_back_and_commits_nothing() {
    let (path, engine) = seeded("retry");
    let first = committed(
        engine
            .apply(&meta("alice", "req-1"), &create_project("acme", "dev", "x"))
            .expect("applies"),
    );
    let again = Outcome::AlreadyApplied { commit: first };
    let before = commits(&path).len();
    // The same request again, even with an action that would no longer apply.
    assert_eq!(
        engine
            .apply(&meta("alice", "req-1"), &create_project("acme", "dev", "x"))
            .expect("answers"),
        again
    );
    // A person commits on top; another process (a new engine) still knows the request.
    let other = crate::engine(&path);
    committed(
        other
            .apply(&meta("bob", "req-2"), &create_project("acme", "dev", "y"))
            .expect("applies"),
    );
    assert_eq!(
        other
            .apply(&meta("alice", "req-1"), &create_project("acme", "dev", "x"))
            .expect("answers"),
        again
    );
    assert_eq!(
        engine
            .apply(&meta("alice", "req-1"), &create_project("acme", "dev", "x"))
            .expect("answers"),
        again
    );
    assert_eq!(commits(&path).len(), before + 1, "only req-2 committed");
    assert_eq!(commits_for(&path, "req-1"), 1);
    // An import is a request like any other.
    assert!(matches!(
        engine
            .import(
                &meta("admin", "seed"),
                &example_files(),
                "platform: import intent"
            )
            .expect("answers"),
        Outcome::AlreadyApplied { .. }
    ));
}

#[test]
fn concurrent_retries_of_one_request_make_one_commit() {
    let (path, engine) = seeded("retry-race");
    let engine = Arc::new(engine);
    // Threads of one engine, and a second engine on the same repository (another process
    // as far as locks go: it shares only the branch's compare-and-swap).
    let second = Arc::new(crate::engine(&path));
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let engine = if i % 2 == 0 { &engine } else { &second };
                scope.spawn(move || {
                    engine
                        .apply(
                            &meta("alice", "req-race"),
                            &create_project("acme", "dev", "raced"),
                        )
                        .expect("applies or answers")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let committed: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Committed { commit, .. } => Some(commit),
            _ => None,
        })
        .collect();
    assert_eq!(committed.len(), 1, "{outcomes:?}");
    for outcome in &outcomes {
        match outcome {
            Outcome::Committed { .. } => {}
            Outcome::AlreadyApplied { commit } => assert_eq!(commit, committed[0]),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(commits_for(&path, "req-race"), 1);
    common::assert_head_is_compiled(&path);
}

#[test]
fn a_retried_proposal_or_merge_gets_the_first_one_back() {
    let (path, engine) = seeded("retry-review");
    let action = create_project("acme", "dev", "reviewed");
    let proposal = engine
        .propose(&meta("alice", "req-review"), &action)
        .expect("proposes")
        .expect("a change");
    assert!(!proposal.merged);
    assert_eq!(
        engine
            .propose(&meta("alice", "req-review"), &action)
            .expect("answers"),
        Some(proposal.clone())
    );
    let merged = engine.merge_review("req-review").expect("merges");
    assert_eq!(
        merged,
        Outcome::Committed {
            commit: proposal.commit.clone(),
            drift: Vec::new()
        }
    );
    assert_eq!(
        engine.merge_review("req-review").expect("answers"),
        Outcome::AlreadyApplied {
            commit: proposal.commit.clone()
        }
    );
    let again = engine
        .propose(&meta("alice", "req-review"), &action)
        .expect("answers")
        .expect("the merged proposal");
    assert!(again.merged);
    assert_eq!(again.commit, proposal.commit);
    assert_eq!(commits_for(&path, "req-review"), 1);
}

#[test]
fn snapshots_of_recent_heads_are_derived_once_and_shared() {
    let (path, writer) = seeded("snapshots");
    let head = |outcome: Outcome| match outcome {
        Outcome::Committed { commit, .. } => git2::Oid::from_str(&commit).expect("oid"),
        other => panic!("expected a commit, got {other:?}"),
    };
    let first = head(
        writer
            .apply(&meta("alice", "s-1"), &create_project("acme", "dev", "one"))
            .expect("applies"),
    );
    let second = head(
        writer
            .apply(&meta("alice", "s-2"), &create_project("acme", "dev", "two"))
            .expect("applies"),
    );
    // A fresh engine knows no snapshot: concurrent readers of one head share one derivation.
    let fresh = engine(&path);
    let shared: Vec<_> = std::thread::scope(|s| {
        let readers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let repo = fresh.gitops().repo().expect("open");
                    fresh
                        .gitops()
                        .snapshot(&repo, Some(second))
                        .expect("snapshot")
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("reader"))
            .collect()
    });
    assert!(shared.iter().all(|s| std::sync::Arc::ptr_eq(s, &shared[0])));
    let projects = |s: &server::gitops::Snapshot| -> Vec<String> {
        s.intent.organizations["acme"].workspaces["dev"]
            .projects
            .keys()
            .cloned()
            .collect()
    };
    assert!(projects(&shared[0]).contains(&"two".to_owned()));
    // An older head read after a newer one is derived (backwards) without displacing it.
    let repo = fresh.gitops().repo().expect("open");
    let older = fresh.gitops().snapshot(&repo, Some(first)).expect("older");
    assert!(projects(&older).contains(&"one".to_owned()));
    assert!(!projects(&older).contains(&"two".to_owned()));
    let again = fresh.gitops().snapshot(&repo, Some(second)).expect("newer");
    assert!(std::sync::Arc::ptr_eq(&again, &shared[0]));
}
