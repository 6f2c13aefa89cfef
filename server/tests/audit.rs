//! The audit log on real repositories: engine commits and commits by people, every filter,
//! the index kept up to date incrementally and rebuilt after a history rewrite or corruption,
//! and `hb audit` as a process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use server::gitops::{GitOps, Identity};
use server::service::action::Action;
use server::service::apply::{ActionMeta, Engine, Outcome};
use server::service::audit::{
    self, AuditEntry, AuditLog, AuditQuery, IndexState, MANUAL, RebuildReason, TimeSpec,
};

fn temp_repo(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hb-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
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

fn engine(path: &Path) -> Engine {
    let gitops = GitOps::open(path, "main").expect("repository opens");
    let bot = Identity {
        name: "Hexabase".into(),
        email: "bot@hexabase.example".into(),
    };
    Engine::new(gitops, bot).expect("engine starts")
}

fn create_project(org: &str, ws: &str, project: &str) -> Action {
    Action::CreateProject {
        org: org.into(),
        workspace: ws.into(),
        project: project.into(),
        display_name: None,
    }
}

fn committed(outcome: Outcome) -> String {
    match outcome {
        Outcome::Committed { commit, .. } => commit,
        other => panic!("expected a commit, got {other:?}"),
    }
}

/// 2020-01-02T03:04:05Z: the time of the commit made by a person.
const PAST: i64 = 1_577_934_245;

/// A commit by a person on `main`, at `time`, writing `files` (`None` deletes).
fn commit_by_hand(path: &Path, files: &[(&str, Option<&str>)], message: &str, time: i64) -> String {
    let repo = git2::Repository::open(path).expect("open");
    let head = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_commit())
        .expect("head");
    let edits: BTreeMap<String, server::gitops::Edit> = files
        .iter()
        .map(|(p, text)| {
            let edit = text.map_or(server::gitops::Edit::Remove, |t| {
                server::gitops::Edit::Write(t.as_bytes().to_vec())
            });
            ((*p).to_owned(), edit)
        })
        .collect();
    let tree = server::gitops::tree::apply(&repo, Some(&head.tree().expect("tree")), &edits)
        .expect("tree")
        .expect("non-empty");
    let tree = repo.find_tree(tree).expect("tree");
    let person = git2::Signature::new("Pat Person", "pat@example.com", &git2::Time::new(time, 60))
        .expect("signature");
    repo.commit(
        Some("refs/heads/main"),
        &person,
        &person,
        message,
        &tree,
        &[&head],
    )
    .expect("commit")
    .to_string()
}

const HANDMADE: &str =
    "apiVersion: hexabase.ai/v1alpha1\nkind: Project\nmetadata:\n  name: handmade\nspec: {}\n";

/// The example imported by `admin`, then: alice creates acme/dev/billing, bob creates
/// globex/research/lab, carol deletes acme/prod/shop, Pat adds a project to acme/dev by hand.
/// Returns the commit ids in order.
fn history(name: &str) -> (PathBuf, Engine, Vec<String>) {
    let path = temp_repo(name);
    let engine = engine(&path);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gitops-repo-example/intent");
    let files = server::tree::read_intent(&root).expect("example intent");
    let mut ids = vec![committed(
        engine
            .import(&meta("admin", "seed"), &files, "platform: import intent")
            .expect("imports"),
    )];
    ids.push(committed(
        engine
            .apply(
                &meta("alice", "req-a"),
                &create_project("acme", "dev", "billing"),
            )
            .expect("applies"),
    ));
    ids.push(committed(
        engine
            .apply(
                &meta("bob", "req-b"),
                &create_project("globex", "research", "lab"),
            )
            .expect("applies"),
    ));
    ids.push(committed(
        engine
            .apply(
                &meta("carol", "req-c"),
                &Action::DeleteProject {
                    org: "acme".into(),
                    workspace: "prod".into(),
                    project: "shop".into(),
                },
            )
            .expect("applies"),
    ));
    ids.push(commit_by_hand(
        &path,
        &[
            ("intent/acme/dev/projects/handmade.yaml", Some(HANDMADE)),
            ("docs/notes.md", Some("# notes\n")),
        ],
        "add a project by hand\n\nSigned-off-by: Pat Person <pat@example.com>\n",
        PAST,
    ));
    (path, engine, ids)
}

fn query(path: &Path, query: &AuditQuery) -> Vec<AuditEntry> {
    audit::audit(path, "main", query).expect("audit").0
}

fn commits_of(entries: &[AuditEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.commit.as_str()).collect()
}

fn index_path(path: &Path) -> PathBuf {
    // The repositories here are bare: the Git directory is the repository.
    audit::index_file(path, "main")
}

#[test]
fn every_commit_has_a_record_with_trailers_or_derived_from_paths() {
    let (path, _engine, ids) = history("records");
    let all = query(&path, &AuditQuery::default());
    // Newest first.
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.reverse();
    assert_eq!(commits_of(&all), expected);

    let manual = &all[0];
    assert!(manual.manual);
    assert_eq!(manual.actor, "Pat Person <pat@example.com>");
    assert_eq!(manual.action, MANUAL);
    assert_eq!(manual.org.as_deref(), Some("acme"));
    assert_eq!(manual.workspace.as_deref(), Some("dev"));
    assert_eq!(manual.subject, "add a project by hand");
    assert_eq!(manual.request, None);
    assert_eq!(manual.compiler, None);
    assert_eq!(manual.timestamp, PAST);
    assert_eq!(manual.time, "2020-01-02T04:04:05+01:00");
    assert_eq!(
        (
            manual.files.added,
            manual.files.modified,
            manual.files.deleted
        ),
        (2, 0, 0)
    );
    assert_eq!(manual.workspaces, ["acme/dev"]);
    assert_eq!(manual.orgs, ["acme"]);

    let carol = &all[1];
    assert!(!carol.manual);
    assert_eq!(carol.actor, "carol <carol@example.com>");
    assert_eq!(carol.action, "delete-project");
    assert_eq!(carol.org.as_deref(), Some("acme"));
    assert_eq!(carol.workspace.as_deref(), Some("prod"));
    assert_eq!(carol.request.as_deref(), Some("req-c"));
    assert_eq!(carol.compiler.as_deref(), Some(compiler::VERSION));
    assert_eq!(carol.author, "carol <carol@example.com>");
    assert_eq!(carol.committer, "Hexabase <bot@hexabase.example>");
    assert!(carol.files.deleted >= 1, "{:?}", carol.files);
    assert_eq!(carol.workspaces, ["acme/prod"]);

    let alice = &all[3];
    assert_eq!(alice.subject, "acme/dev: create project billing");
    // The intent file and at least the rendered project namespace are new; the inside
    // kustomization lists it.
    assert!(alice.files.added >= 2, "{:?}", alice.files);
    assert!(alice.files.modified >= 1, "{:?}", alice.files);
    assert_eq!(alice.files.deleted, 0);

    let import = &all[4];
    assert_eq!(import.action, "import");
    assert_eq!(import.actor, "admin <admin@example.com>");
    assert_eq!(import.org, None);
    assert_eq!(import.workspace, None);
    assert_eq!(
        import.workspaces,
        ["acme/dev", "acme/prod", "globex/research"]
    );
    assert_eq!(import.orgs, ["acme", "globex"]);
    assert_eq!(import.files.modified + import.files.deleted, 0);
    let _ = std::fs::remove_dir_all(&path);
}

#[test]
fn filters_by_org_workspace_actor_action_and_time() {
    let (path, _engine, ids) = history("filters");
    let [import, alice, bob, carol, pat] = [0, 1, 2, 3, 4].map(|i| ids[i].as_str());
    let q = |f: fn(&mut AuditQuery)| {
        let mut query = AuditQuery::default();
        f(&mut query);
        query
    };
    let cases: Vec<(AuditQuery, Vec<&str>)> = vec![
        (
            q(|q| q.org = Some("acme".into())),
            vec![pat, carol, alice, import],
        ),
        (q(|q| q.org = Some("globex".into())), vec![bob, import]),
        (q(|q| q.org = Some("nobody".into())), vec![]),
        (
            q(|q| q.workspace = Some("dev".into())),
            vec![pat, alice, import],
        ),
        (
            q(|q| q.workspace = Some("acme/prod".into())),
            vec![carol, import],
        ),
        (
            q(|q| {
                q.org = Some("globex".into());
                q.workspace = Some("dev".into());
            }),
            vec![],
        ),
        (
            q(|q| {
                q.org = Some("acme".into());
                q.workspace = Some("dev".into());
            }),
            vec![pat, alice, import],
        ),
        (q(|q| q.actor = Some("alice".into())), vec![alice]),
        (q(|q| q.actor = Some("BOB@example.com".into())), vec![bob]),
        (
            q(|q| q.actor = Some("Pat Person <pat@example.com>".into())),
            vec![pat],
        ),
        (
            q(|q| q.action = Some("create-project".into())),
            vec![bob, alice],
        ),
        (q(|q| q.action = Some(MANUAL.into())), vec![pat]),
        (
            q(|q| {
                q.action = Some("create-project".into());
                q.org = Some("acme".into());
            }),
            vec![alice],
        ),
        // Pat's commit is dated 2020-01-02T03:04:05Z; the others are from now.
        (q(|q| q.until = Some(TimeSpec::Day(18_263))), vec![pat]),
        (q(|q| q.until = Some(TimeSpec::Day(18_262))), vec![]),
        (
            q(|q| q.since = Some(TimeSpec::Day(18_264))),
            vec![carol, bob, alice, import],
        ),
        (
            q(|q| {
                q.since = Some(TimeSpec::At(PAST));
                q.until = Some(TimeSpec::At(PAST));
            }),
            vec![pat],
        ),
        (q(|q| q.until = Some(TimeSpec::At(PAST - 1))), vec![]),
        (q(|q| q.limit = Some(2)), vec![pat, carol]),
    ];
    for (query, expected) in cases {
        assert_eq!(
            commits_of(&self::query(&path, &query)),
            expected,
            "{query:?}"
        );
    }
    // Dates and timestamps parse as the CLI takes them.
    assert_eq!(
        "2020-01-02".parse::<TimeSpec>().ok(),
        Some(TimeSpec::Day(18_263))
    );
    assert_eq!(
        "2020-01-02T04:04:05+01:00".parse::<TimeSpec>().ok(),
        Some(TimeSpec::At(PAST))
    );
    let _ = std::fs::remove_dir_all(&path);
}

#[test]
fn the_index_grows_with_new_commits_and_is_reused() {
    let (path, engine, ids) = history("incremental");
    let mut log = AuditLog::new(&path, "main");
    let refresh = log.refresh().expect("refresh");
    assert_eq!(
        refresh.state,
        IndexState::Rebuilt {
            reason: RebuildReason::Missing,
            commits: 5
        }
    );
    assert!(refresh.store_error.is_none(), "{:?}", refresh.store_error);
    assert_eq!(refresh.path, index_path(&path));
    assert!(refresh.path.is_file());
    assert_eq!(log.refresh().expect("refresh").state, IndexState::Fresh);

    // Another process (a fresh log) reads the stored index as it is.
    let mut other = AuditLog::new(&path, "main");
    assert_eq!(other.refresh().expect("refresh").state, IndexState::Fresh);
    assert_eq!(other.len(), 5);
    let before = other.query(&AuditQuery::default());

    let new = committed(
        engine
            .apply(
                &meta("dave", "req-d"),
                &create_project("acme", "dev", "later"),
            )
            .expect("applies"),
    );
    let by_hand = commit_by_hand(
        &path,
        &[("intent/globex/organization.yaml", None)],
        "remove globex by hand",
        PAST + 10,
    );
    assert_eq!(
        log.refresh().expect("refresh").state,
        IndexState::Extended { commits: 2 }
    );
    let after = log.query(&AuditQuery::default());
    assert_eq!(commits_of(&after[..2]), [by_hand.as_str(), new.as_str()]);
    assert_eq!(after[2..], before[..]);
    let removal = &after[0];
    assert_eq!(
        (removal.org.as_deref(), removal.workspace.as_deref()),
        (Some("globex"), None)
    );
    assert_eq!(removal.files.deleted, 1);

    // The stored index was extended too: a new process finds it up to date, and its answers
    // equal those of an index built from scratch.
    let mut third = AuditLog::new(&path, "main");
    assert_eq!(third.refresh().expect("refresh").state, IndexState::Fresh);
    assert_eq!(third.query(&AuditQuery::default()), after);
    // Packed refs are read as well as loose ones.
    let packed = Command::new("git")
        .arg("-C")
        .arg(&path)
        .args(["pack-refs", "--all"])
        .status()
        .expect("git runs");
    assert!(packed.success());
    assert!(!path.join("refs/heads/main").exists());
    let mut fourth = AuditLog::new(&path, "main");
    assert_eq!(fourth.refresh().expect("refresh").state, IndexState::Fresh);
    assert_eq!(fourth.query(&AuditQuery::default()), after);
    std::fs::remove_file(index_path(&path)).expect("remove");
    let (rebuilt, refresh) = audit::audit(&path, "main", &AuditQuery::default()).expect("audit");
    assert!(matches!(
        refresh.state,
        IndexState::Rebuilt {
            reason: RebuildReason::Missing,
            commits: 7
        }
    ));
    assert_eq!(rebuilt, after);
    assert_eq!(ids.len() + 2, rebuilt.len());
    let _ = std::fs::remove_dir_all(&path);
}

#[test]
fn a_rewritten_history_rebuilds_the_index() {
    let (path, engine, ids) = history("rewrite");
    let (_, refresh) = audit::audit(&path, "main", &AuditQuery::default()).expect("audit");
    assert!(matches!(refresh.state, IndexState::Rebuilt { .. }));
    let mut log = AuditLog::new(&path, "main");
    assert_eq!(log.refresh().expect("refresh").state, IndexState::Fresh);

    // Force the branch back to alice's commit and commit something else on top.
    let repo = git2::Repository::open(&path).expect("open");
    repo.reference(
        "refs/heads/main",
        git2::Oid::from_str(&ids[1]).expect("oid"),
        true,
        "test: rewrite history",
    )
    .expect("force-move");
    let new = committed(
        engine
            .apply(
                &meta("erin", "req-e"),
                &create_project("acme", "prod", "ops"),
            )
            .expect("applies"),
    );
    for state in [
        audit::audit(&path, "main", &AuditQuery::default())
            .expect("audit")
            .1
            .state,
        log.refresh().expect("refresh").state,
    ] {
        assert_eq!(
            state,
            IndexState::Rebuilt {
                reason: RebuildReason::Rewritten,
                commits: 3
            }
        );
    }
    let entries = log.query(&AuditQuery::default());
    assert_eq!(commits_of(&entries), [new.as_str(), &ids[1], &ids[0]]);
    assert!(
        query(
            &path,
            &AuditQuery {
                actor: Some("carol".into()),
                ..AuditQuery::default()
            }
        )
        .is_empty()
    );
    let _ = std::fs::remove_dir_all(&path);
}

#[test]
fn a_corrupt_or_foreign_index_is_rebuilt_silently() {
    let (path, _engine, _ids) = history("corrupt");
    let (expected, _) = audit::audit(&path, "main", &AuditQuery::default()).expect("audit");
    let file = index_path(&path);
    let good = std::fs::read(&file).expect("index");
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    let corruptions: Vec<Vec<u8>> = vec![
        flipped,
        good[..good.len() / 3].to_vec(),
        Vec::new(),
        b"not an index at all\n".to_vec(),
    ];
    for bytes in corruptions {
        std::fs::write(&file, &bytes).expect("corrupt");
        let (entries, refresh) =
            audit::audit(&path, "main", &AuditQuery::default()).expect("audit");
        assert!(
            matches!(
                refresh.state,
                IndexState::Rebuilt {
                    reason: RebuildReason::Invalid(_),
                    commits: 5
                }
            ),
            "{:?}",
            refresh.state
        );
        assert!(refresh.store_error.is_none());
        assert_eq!(entries, expected);
        // The rebuilt index was stored and is good again.
        let (_, refresh) = audit::audit(&path, "main", &AuditQuery::default()).expect("audit");
        assert_eq!(refresh.state, IndexState::Fresh);
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().expect("folder"))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("main.idx")]);
    let _ = std::fs::remove_dir_all(&path);
}

#[test]
fn an_empty_or_missing_branch_has_no_records() {
    let path = temp_repo("empty");
    drop(engine(&path));
    let (entries, refresh) = audit::audit(&path, "main", &AuditQuery::default()).expect("audit");
    assert!(entries.is_empty());
    assert_eq!(refresh.state, IndexState::Empty);
    assert!(audit::audit(&temp_repo("absent"), "main", &AuditQuery::default()).is_err());
    let _ = std::fs::remove_dir_all(&path);
}

#[test]
fn a_work_tree_repository_keeps_its_index_in_its_git_folder() {
    let path = temp_repo("worktree");
    let repo = git2::Repository::init(&path).expect("init");
    std::fs::create_dir_all(path.join("intent/acme/dev")).expect("mkdir");
    let person = git2::Signature::new("Pat Person", "pat@example.com", &git2::Time::new(PAST, 0))
        .expect("signature");
    let mut parent: Option<git2::Oid> = None;
    for (i, file) in ["intent/acme/dev/workspace.yaml", "README.md"]
        .iter()
        .enumerate()
    {
        std::fs::write(path.join(file), format!("{i}\n")).expect("write");
        let mut index = repo.index().expect("index");
        index.add_path(Path::new(file)).expect("add");
        let tree = repo
            .find_tree(index.write_tree().expect("tree"))
            .expect("tree");
        let parents: Vec<git2::Commit<'_>> = parent
            .iter()
            .map(|p| repo.find_commit(*p).expect("commit"))
            .collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        parent = Some(
            repo.commit(
                Some("refs/heads/main"),
                &person,
                &person,
                &format!("change {i}"),
                &tree,
                &parents,
            )
            .expect("commit"),
        );
    }
    let (entries, refresh) = audit::audit(&path, "main", &AuditQuery::default()).expect("audit");
    assert!(matches!(
        refresh.state,
        IndexState::Rebuilt { commits: 2, .. }
    ));
    assert!(path.join(".git/hexabase/audit-index/main.idx").is_file());
    assert_eq!(entries[1].workspace.as_deref(), Some("dev"));
    assert_eq!(entries[0].workspace, None);
    assert_eq!(entries[0].org, None);
    let (again, refresh) = audit::audit(&path, "main", &AuditQuery::default()).expect("audit");
    assert_eq!(refresh.state, IndexState::Fresh);
    assert_eq!(again, entries);
    let _ = std::fs::remove_dir_all(&path);
}

fn hb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hb"))
}

#[test]
fn hb_audit_prints_json_and_a_table() {
    let (path, _engine, ids) = history("cli");
    let output = hb()
        .args(["audit", "--json", "--workspace", "acme/dev", "--repo"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let entries = json.as_array().expect("an array");
    let commits: Vec<&str> = entries
        .iter()
        .map(|e| e["commit"].as_str().expect("commit"))
        .collect();
    assert_eq!(commits, [&ids[4], &ids[1], &ids[0]]);
    assert_eq!(entries[0]["action"], "manual");
    assert_eq!(entries[0]["actor"], "Pat Person <pat@example.com>");
    assert_eq!(entries[0]["time"], "2020-01-02T04:04:05+01:00");
    assert_eq!(entries[0]["files"]["added"], 2);
    assert_eq!(entries[1]["action"], "create-project");
    assert_eq!(entries[1]["request"], "req-a");
    assert_eq!(entries[1]["workspaces"][0], "acme/dev");

    let output = hb()
        .args([
            "audit",
            "--actor",
            "alice",
            "--since",
            "2020-01-03",
            "--repo",
        ])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).expect("UTF-8");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("TIME (UTC)"), "{table}");
    for part in [
        "alice <alice@example.com>",
        "create-project",
        "acme/dev",
        "acme/dev: create project billing",
        &ids[1][..10],
        "+",
    ] {
        assert!(lines[1].contains(part), "{part:?} in {table}");
    }

    let output = hb()
        .args(["audit", "--since", "last tuesday", "--repo"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("RFC 3339"));
    let _ = std::fs::remove_dir_all(&path);
}
