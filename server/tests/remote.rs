//! The push side against real remotes: a bare repository over `file://`, Git's smart HTTP
//! protocol (git http-backend behind a tiny CGI server with Basic auth), and SSH (a
//! loopback sshd). Someone else pushing first, and the remote being down, lose nothing.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use server::gitops::remote::{Credentials, Remote, RemoteConfig, RemoteError};
use server::gitops::{CommitMessage, GitOps, Identity};
use server::service::action::Action;
use server::service::apply::{ActionMeta, Engine, Outcome};
use server::service::push::{PushError, Pusher};

// --- Fixtures -------------------------------------------------------------------------------

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hb-remote-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
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

fn create_project(ws: &str, project: &str) -> Action {
    Action::CreateProject {
        org: "acme".into(),
        workspace: ws.into(),
        project: project.into(),
        display_name: None,
    }
}

/// An empty bare repository whose HEAD is `main`.
fn bare_remote(path: &Path) {
    let repo = git2::Repository::init_bare(path).expect("bare remote");
    repo.set_head("refs/heads/main").expect("HEAD");
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn config(url: String, credentials: Credentials) -> RemoteConfig {
    RemoteConfig {
        name: "origin".into(),
        url,
        credentials,
    }
}

/// An engine on a fresh local repository with a pusher to `remote`.
fn instance(local: &Path, remote: RemoteConfig) -> (Arc<Engine>, Pusher) {
    let gitops = GitOps::open(local, "main").expect("local repository");
    let engine = Arc::new(Engine::new(gitops, bot()).expect("engine"));
    let pusher = Pusher::new(Arc::clone(&engine), Remote::new(remote)).expect("pusher");
    (engine, pusher)
}

/// Imports the example intent and pushes it: the remote's first commit.
fn seed(engine: &Engine, pusher: &Pusher) {
    let outcome = engine
        .import(
            &meta("admin", "seed"),
            &example_files(),
            "platform: import intent",
        )
        .expect("imports");
    assert!(matches!(outcome, Outcome::Committed { .. }));
    let report = pusher.push_pending().expect("seed pushed");
    assert_eq!(report.pushed.len(), 1);
}

fn apply(engine: &Engine, request: &str, action: &Action) -> git2::Oid {
    match engine
        .apply(&meta("alice", request), action)
        .expect("applies")
    {
        Outcome::Committed { commit, .. } => git2::Oid::from_str(&commit).expect("oid"),
        other => panic!("{request} made no commit: {other:?}"),
    }
}

fn head(path: &Path) -> git2::Oid {
    git2::Repository::open(path)
        .expect("open")
        .refname_to_id("refs/heads/main")
        .expect("main")
}

/// The branch's history, newest first.
fn history(path: &Path) -> Vec<git2::Oid> {
    let repo = git2::Repository::open(path).expect("open");
    let mut walk = repo.revwalk().expect("revwalk");
    walk.push_ref("refs/heads/main").expect("main");
    walk.collect::<Result<_, _>>().expect("walk")
}

/// The `Hexabase-Request` trailers of the branch's history, oldest first.
fn requests(path: &Path) -> Vec<String> {
    let repo = git2::Repository::open(path).expect("open");
    let mut out: Vec<String> = history(path)
        .iter()
        .filter_map(|id| {
            let commit = repo.find_commit(*id).expect("commit");
            CommitMessage::parse_trailers(commit.message().expect("utf-8")).map(|t| t.request)
        })
        .collect();
    out.reverse();
    out
}

fn assert_linear(path: &Path) {
    let repo = git2::Repository::open(path).expect("open");
    for id in history(path) {
        assert!(
            repo.find_commit(id).expect("commit").parent_count() <= 1,
            "history is linear"
        );
    }
}

/// Journal files waiting (not set aside).
fn journal_files(local: &Path) -> usize {
    std::fs::read_dir(local.join("hexabase/journal"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

fn git(args: &[&str], dir: &Path) {
    let output = Command::new("git")
        .args(["-c", "user.name=Pat", "-c", "user.email=pat@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// --- file:// --------------------------------------------------------------------------------

#[test]
fn actions_are_pushed_to_a_file_remote_in_order() {
    let dir = temp_dir("file");
    let remote = dir.join("remote.git");
    bare_remote(&remote);
    let local = dir.join("local.git");
    let (engine, pusher) = instance(&local, config(file_url(&remote), Credentials::None));
    seed(&engine, &pusher);
    let ours: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|p| apply(&engine, &format!("req-{p}"), &create_project("dev", p)))
        .collect();
    assert_eq!(pusher.pending().expect("pending"), ours);
    assert_eq!(journal_files(&local), 3);

    let report = pusher.push_pending().expect("pushes");
    assert_eq!(report.pushed, ours);
    assert_eq!(report.rejected, 0);
    assert_eq!(head(&remote), head(&local));
    assert!(pusher.pending().expect("pending").is_empty());
    assert_eq!(journal_files(&local), 0, "pushed commits leave the journal");
    assert_eq!(requests(&remote), ["seed", "req-a", "req-b", "req-c"]);
    common::assert_head_is_compiled(&remote);
    // Orphans (a commit whose branch move failed) go once they are old; young ones may
    // belong to a commit whose branch is about to move, and stay.
    let journal = local.join("hexabase/journal");
    let old = journal.join(format!(
        "{}.json",
        git2::Oid::hash_object(git2::ObjectType::Blob, b"old").expect("oid")
    ));
    let young = journal.join(format!(
        "{}.json",
        git2::Oid::hash_object(git2::ObjectType::Blob, b"young").expect("oid")
    ));
    std::fs::write(&old, "{}").expect("orphan");
    std::fs::write(&young, "{}").expect("orphan");
    std::fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200)))
        .expect("age");
    // Nothing pending: nothing to push.
    assert_eq!(
        pusher.push_pending().expect("no-op").pushed,
        Vec::<git2::Oid>::new()
    );
    assert!(!old.exists() && young.exists());
}

#[test]
fn a_push_refused_because_someone_pushed_first_is_a_fetch_and_a_reapply() {
    let dir = temp_dir("race");
    let remote = dir.join("remote.git");
    bare_remote(&remote);
    let url = file_url(&remote);
    let local = dir.join("local.git");
    let (engine, pusher) = instance(&local, config(url.clone(), Credentials::None));
    seed(&engine, &pusher);
    // Our fetch: we are up to date with the remote.
    pusher.sync().expect("fetches");

    // We work locally...
    let ours = [
        ("ours-1", create_project("dev", "billing")),
        ("ours-2", create_project("prod", "billing")),
        ("ours-3", create_project("dev", "search")),
    ];
    for (request, action) in &ours {
        apply(&engine, request, action);
    }
    // ...while another Hexabase instance and a person push to the remote.
    let (other, other_pusher) = instance(&dir.join("other.git"), config(url, Credentials::None));
    other_pusher.sync().expect("other fetches");
    let theirs = apply(&other, "theirs", &create_project("dev", "web2"));
    other_pusher.push_pending().expect("other pushes");
    let clone = dir.join("clone");
    git(
        &[
            "clone",
            "-q",
            &file_url(&remote),
            clone.to_str().expect("utf-8"),
        ],
        &dir,
    );
    std::fs::create_dir_all(clone.join("docs")).expect("docs");
    std::fs::write(clone.join("docs/notes.md"), "# notes\n").expect("write");
    git(&["add", "docs/notes.md"], &clone);
    git(&["commit", "-q", "-m", "docs: add notes"], &clone);
    git(&["push", "-q", "origin", "HEAD:main"], &clone);
    let person = head(&remote);

    // The remote layer alone: a refused push is an error, not git2's silent Ok.
    let repo = git2::Repository::open(&local).expect("open");
    match pusher.remote().push(&repo, head(&local), "main") {
        Err(RemoteError::Rejected { refname, .. }) => assert_eq!(refname, "refs/heads/main"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let report = pusher.push_pending().expect("pushes after a re-apply");
    assert!(report.rejected >= 1, "{report:?}");
    assert_eq!(report.replayed.len(), 3, "{report:?}");
    assert!(report.dropped.is_empty() && report.absorbed.is_empty());
    assert_eq!(head(&remote), head(&local));
    assert_linear(&remote);
    let remote_history = history(&remote);
    assert!(remote_history.contains(&theirs));
    assert!(remote_history.contains(&person));
    assert_eq!(
        requests(&remote),
        ["seed", "theirs", "ours-1", "ours-2", "ours-3"],
        "each action exactly once, ours after theirs, in order"
    );
    let files = common::head_files(&remote);
    assert_eq!(files["docs/notes.md"], "# notes\n");
    for path in [
        "intent/acme/dev/projects/web2.yaml",
        "intent/acme/dev/projects/billing.yaml",
        "intent/acme/prod/projects/billing.yaml",
        "intent/acme/dev/projects/search.yaml",
    ] {
        assert!(files.contains_key(path), "{path}");
    }
    common::assert_head_is_compiled(&remote);
    assert_eq!(journal_files(&local), 0);

    // The other instance picks everything up as its new base.
    other_pusher.sync().expect("other fetches again");
    assert_eq!(head(&dir.join("other.git")), head(&remote));
}

/// A seeded `file://` remote and two instances up to date with it: ours (`local.git`) and
/// another one (`other.git`). Returns the folder, the remote, and each engine and pusher.
fn two_instances(name: &str) -> (PathBuf, PathBuf, Arc<Engine>, Pusher, Arc<Engine>, Pusher) {
    let dir = temp_dir(name);
    let remote = dir.join("remote.git");
    bare_remote(&remote);
    let url = file_url(&remote);
    let (engine, pusher) = instance(
        &dir.join("local.git"),
        config(url.clone(), Credentials::None),
    );
    seed(&engine, &pusher);
    let (other, other_pusher) = instance(&dir.join("other.git"), config(url, Credentials::None));
    other_pusher.sync().expect("other fetches");
    (dir, remote, engine, pusher, other, other_pusher)
}

#[test]
fn an_action_that_no_longer_applies_is_dropped_and_reported() {
    let (dir, remote, engine, pusher, other, other_pusher) = two_instances("conflict");
    // Both create the same project; the other pushes first.
    apply(&engine, "ours", &create_project("dev", "same"));
    apply(&engine, "ours-after", &create_project("dev", "next"));
    apply(&other, "theirs", &create_project("dev", "same"));
    other_pusher.push_pending().expect("other pushes");

    let report = pusher.push_pending().expect("pushes");
    assert_eq!(report.dropped.len(), 1, "{report:?}");
    assert!(
        report.dropped[0].reason.contains("already exists"),
        "{report:?}"
    );
    assert_eq!(requests(&remote), ["seed", "theirs", "ours-after"]);
    common::assert_head_is_compiled(&remote);
    assert!(
        dir.join(format!(
            "local.git/hexabase/journal/dropped/{}.json",
            report.dropped[0].commit
        ))
        .is_file()
    );
}

#[test]
fn a_pending_request_the_remote_already_has_is_not_applied_again() {
    let (dir, remote, engine, pusher, other, other_pusher) = two_instances("same-request");
    // A client retried one request against two instances; both committed it.
    let ours = apply(&engine, "retried", &create_project("dev", "twice"));
    apply(&engine, "ours-after", &create_project("dev", "next"));
    // The other instance had committed something else first, so the commits differ (the
    // same change on the same parent in the same second would be the very same commit).
    apply(&other, "theirs-first", &create_project("prod", "first"));
    let theirs = apply(&other, "retried", &create_project("dev", "twice"));
    assert_ne!(ours, theirs);
    other_pusher.push_pending().expect("other pushes");

    let report = pusher.push_pending().expect("pushes");
    assert_eq!(report.already_on_remote, [(ours, theirs)], "{report:?}");
    assert!(report.dropped.is_empty(), "{report:?}");
    assert_eq!(report.replayed.len(), 1, "{report:?}");
    assert_eq!(
        requests(&remote),
        ["seed", "theirs-first", "retried", "ours-after"]
    );
    assert_eq!(head(&remote), head(&local_of(&dir)));
    assert_eq!(journal_files(&local_of(&dir)), 0);
    common::assert_head_is_compiled(&remote);
    // The local engine now answers a further retry with the remote's commit.
    assert_eq!(
        engine
            .apply(&meta("alice", "retried"), &create_project("dev", "twice"))
            .expect("answers"),
        Outcome::AlreadyApplied {
            commit: theirs.to_string()
        }
    );
}

fn local_of(dir: &Path) -> PathBuf {
    dir.join("local.git")
}

#[test]
fn a_refused_import_is_imported_again_on_the_remote_head() {
    let (dir, remote, engine, pusher, other, other_pusher) = two_instances("import");
    // We import an intent with one more project; the other instance pushes first.
    let mut files = example_files();
    files.insert(
        "acme/dev/projects/imported.yaml".into(),
        "apiVersion: hexabase.ai/v1alpha1\nkind: Project\nmetadata:\n  name: imported\nspec: {}\n"
            .into(),
    );
    let imported = engine
        .import(
            &meta("admin", "reimport"),
            &files,
            "platform: import intent",
        )
        .expect("imports");
    let Outcome::Committed {
        commit: imported, ..
    } = imported
    else {
        panic!("import made no commit: {imported:?}")
    };
    apply(&engine, "ours-after", &create_project("prod", "after"));
    assert!(
        local_of(&dir)
            .join(format!("hexabase/journal/{imported}.json"))
            .is_file(),
        "the import is journaled"
    );
    apply(&other, "theirs", &create_project("dev", "theirs"));
    other_pusher.push_pending().expect("other pushes");

    let report = pusher
        .push_pending()
        .expect("pushes: the import is re-applied");
    assert_eq!(report.replayed.len(), 2, "{report:?}");
    assert!(report.dropped.is_empty(), "{report:?}");
    assert_eq!(
        requests(&remote),
        ["seed", "theirs", "reimport", "ours-after"]
    );
    // An import replaces the whole intent: theirs is gone again, ours is there.
    let head_files = common::head_files(&remote);
    assert!(head_files.contains_key("intent/acme/dev/projects/imported.yaml"));
    assert!(!head_files.contains_key("intent/acme/dev/projects/theirs.yaml"));
    assert!(head_files.contains_key("intent/acme/prod/projects/after.yaml"));
    common::assert_head_is_compiled(&remote);
    assert_eq!(journal_files(&local_of(&dir)), 0);
}

#[test]
fn with_the_remote_down_actions_still_commit_and_are_pushed_later_in_order() {
    let dir = temp_dir("down");
    let remote = dir.join("remote.git");
    bare_remote(&remote);
    let local = dir.join("local.git");
    let (engine, pusher) = instance(&local, config(file_url(&remote), Credentials::None));
    seed(&engine, &pusher);
    let seeded = head(&remote);

    let away = dir.join("remote-away.git");
    std::fs::rename(&remote, &away).expect("remote goes down");
    let ours: Vec<_> = (0..4)
        .map(|i| {
            apply(
                &engine,
                &format!("down-{i}"),
                &create_project("dev", &format!("p{i}")),
            )
        })
        .collect();
    let error = pusher.push_pending().expect_err("the remote is down");
    assert!(
        matches!(error, PushError::Remote(RemoteError::Transport { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("push to") && message.contains("remote.git"),
        "{message}"
    );
    assert!(pusher.sync().is_err(), "fetching fails too");
    assert_eq!(pusher.pending().expect("pending"), ours, "nothing lost");
    assert_eq!(journal_files(&local), 4);

    std::fs::rename(&away, &remote).expect("remote comes back");
    assert_eq!(head(&remote), seeded);
    let report = pusher.push_pending().expect("pushes");
    assert_eq!(report.pushed, ours, "all of them, in order");
    assert_eq!(
        requests(&remote),
        ["seed", "down-0", "down-1", "down-2", "down-3"],
        "none lost or duplicated"
    );
    assert_eq!(journal_files(&local), 0);
    common::assert_head_is_compiled(&remote);
}

// --- Smart HTTP ------------------------------------------------------------------------------

const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

/// A loopback HTTP server running `git http-backend` as CGI per request, with Basic auth.
struct HttpServer {
    port: u16,
}

impl HttpServer {
    fn start(root: &Path, user: &str, password: &str) -> Self {
        assert!(
            Path::new(HTTP_BACKEND).exists(),
            "{HTTP_BACKEND} is missing (Debian's git package has it)"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let root = root.to_owned();
        let user = user.to_owned();
        let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (root, user, expected) = (root.clone(), user.clone(), expected.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &root, &user, &expected);
                });
            }
        });
        Self { port }
    }
}

/// One request, one response, then the connection closes.
fn serve(stream: TcpStream, root: &Path, user: &str, expected: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(length) = headers.get("content-length") {
        body.resize(length.parse().unwrap_or(0), 0);
        reader.read_exact(&mut body)?;
    }
    if headers.get("authorization").map(String::as_str) != Some(expected) {
        stream.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"hexabase-test\"\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return stream.flush();
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut child = Command::new(HTTP_BACKEND)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &method)
        .env(
            "CONTENT_TYPE",
            headers.get("content-type").cloned().unwrap_or_default(),
        )
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let mut output = Vec::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_end(&mut output)?;
    child.wait()?;
    let _ = writer.join();
    // CGI output: headers, an empty line, the body.
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .unwrap_or((output.len(), output.len()));
    let head = String::from_utf8_lossy(&output[..split.0]).into_owned();
    let mut status = "200 OK".to_owned();
    let mut response = Vec::new();
    for header in head.lines() {
        match header.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                status = value.trim().to_owned();
            }
            Some(_) => {
                response.extend_from_slice(header.as_bytes());
                response.extend_from_slice(b"\r\n");
            }
            None => {}
        }
    }
    let body = &output[split.1..];
    stream.write_all(format!("HTTP/1.1 {status}\r\n").as_bytes())?;
    stream.write_all(&response)?;
    stream.write_all(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )?;
    stream.write_all(body)?;
    stream.flush()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn smart_http_with_basic_auth_and_a_password_file() {
    let dir = temp_dir("http");
    let served = dir.join("served");
    let remote = served.join("remote.git");
    bare_remote(&remote);
    git2::Repository::open(&remote)
        .and_then(|r| r.config())
        .and_then(|mut c| c.set_bool("http.receivepack", true))
        .expect("receive-pack over HTTP");
    let server = HttpServer::start(&served, "alice", "s3cret");
    let url = format!("http://127.0.0.1:{}/remote.git", server.port);
    let password_file = dir.join("password");
    std::fs::write(&password_file, "s3cret\n").expect("password file");
    let credentials = Credentials::Http {
        username: "alice".into(),
        password_file,
    };

    let local = dir.join("local.git");
    let (engine, pusher) = instance(&local, config(url.clone(), credentials.clone()));
    seed(&engine, &pusher);
    let ours = [
        apply(&engine, "http-1", &create_project("dev", "h1")),
        apply(&engine, "http-2", &create_project("prod", "h2")),
    ];
    let report = pusher.push_pending().expect("pushes over HTTP");
    assert_eq!(report.pushed, ours);
    assert_eq!(head(&remote), head(&local));
    common::assert_head_is_compiled(&remote);

    // Fetch over HTTP: a second instance starts from the remote.
    let other_local = dir.join("other.git");
    let (_other, other_pusher) = instance(&other_local, config(url.clone(), credentials));
    other_pusher.sync().expect("fetches over HTTP");
    assert_eq!(head(&other_local), head(&remote));

    // The server refuses the update itself (a hook): git2's push() returns Ok, the per-ref
    // status says no, and that is a rejection, with nothing lost.
    let hook = remote.join("hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().expect("hooks")).expect("hooks");
    std::fs::write(&hook, "#!/bin/sh\necho 'main is frozen' >&2\nexit 1\n").expect("hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let frozen = apply(&engine, "http-3", &create_project("dev", "h3"));
    match pusher.push_pending() {
        Err(PushError::Remote(RemoteError::Rejected { refname, reason })) => {
            assert_eq!(refname, "refs/heads/main");
            assert!(reason.contains("hook"), "{reason}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(pusher.pending().expect("pending"), [frozen]);
    std::fs::remove_file(&hook).expect("unfreeze");
    assert_eq!(pusher.push_pending().expect("pushes").pushed, [frozen]);

    // A wrong password is refused, and says so.
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "nope\n").expect("password file");
    let (_third, third) = instance(
        &dir.join("third.git"),
        config(
            url,
            Credentials::Http {
                username: "alice".into(),
                password_file: wrong,
            },
        ),
    );
    match third.sync() {
        Err(PushError::Remote(RemoteError::Authentication { .. })) => {}
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

// --- SSH -------------------------------------------------------------------------------------

const SSHD: &str = "/usr/sbin/sshd";

/// A loopback sshd on a free port, with its own host key; stopped on drop.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hexabase-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen");
}

impl Sshd {
    fn start(dir: &Path, authorized_key: &Path) -> Self {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (scripts/test.sh does)"
        );
        // sshd insists on its privilege separation folder, even for a loopback test.
        let _ = std::fs::create_dir_all("/run/sshd");
        let host_key = dir.join("host_ed25519");
        keygen(&host_key);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
                host_key.display(),
                authorized_key.display(),
                dir.join("sshd.pid").display(),
            ),
        )
        .expect("sshd config");
        let log = dir.join("sshd.log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("sshd starts");
        let sshd = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                std::fs::read_to_string(&sshd.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    fn known_hosts_line(&self, dir: &Path) -> String {
        let public = std::fs::read_to_string(dir.join("host_ed25519.pub")).expect("host key");
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().expect("type"), fields.next().expect("key"));
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }
}

fn user_name() -> String {
    let output = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[test]
fn ssh_with_a_key_and_known_hosts() {
    let dir = temp_dir("ssh");
    let remote = dir.join("remote.git");
    bare_remote(&remote);
    let key = dir.join("id_ed25519");
    keygen(&key);
    let sshd = Sshd::start(&dir, &dir.join("id_ed25519.pub"));
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line(&dir)).expect("known_hosts");
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        user_name(),
        sshd.port,
        remote.display()
    );
    let credentials = Credentials::Ssh {
        username: None,
        private_key: key.clone(),
        known_hosts,
    };

    let local = dir.join("local.git");
    let (engine, pusher) = instance(&local, config(url.clone(), credentials.clone()));
    let outcome = engine
        .import(
            &meta("admin", "seed"),
            &example_files(),
            "platform: import intent",
        )
        .expect("imports");
    assert!(matches!(outcome, Outcome::Committed { .. }));
    let ours = apply(&engine, "ssh-1", &create_project("dev", "s1"));
    let report = pusher.push_pending().unwrap_or_else(|e| {
        panic!(
            "pushes over SSH: {e:?}\n{}",
            std::fs::read_to_string(&sshd.log).unwrap_or_default()
        )
    });
    assert_eq!(report.pushed.last(), Some(&ours));
    assert_eq!(head(&remote), head(&local));

    let other_local = dir.join("other.git");
    let (_other, other_pusher) = instance(&other_local, config(url.clone(), credentials));
    other_pusher.sync().expect("fetches over SSH");
    assert_eq!(head(&other_local), head(&remote));

    // A host key that is not the one in known_hosts is refused before authenticating.
    let wrong_hosts = dir.join("known_hosts_wrong");
    let other_key = dir.join("other_host");
    keygen(&other_key);
    let public = std::fs::read_to_string(dir.join("other_host.pub")).expect("key");
    std::fs::write(&wrong_hosts, format!("[127.0.0.1]:{} {public}", sshd.port))
        .expect("known_hosts");
    let (_third, third) = instance(
        &dir.join("third.git"),
        config(
            url,
            Credentials::Ssh {
                username: None,
                private_key: key,
                known_hosts: wrong_hosts,
            },
        ),
    );
    match third.sync() {
        Err(PushError::Remote(RemoteError::HostKey { reason, .. })) => {
            assert!(reason.contains("differs"), "{reason}");
        }
        other => panic!("expected a host key error, got {other:?}"),
    }
    drop(sshd);
}
