//! The user flows of the product specification (4.1 to 4.4) end to end through `hb` alone,
//! against the real `hb serve`: sign-up and the private organization, an invitation sent and
//! accepted, billing; the platform's settings read, edited in `$EDITOR` and applied from a
//! file; a workspace on a plan with its default groups and bindings; a project with its
//! quota and a custom Role, edited; Roles and preset ClusterRoles bound to groups and
//! unbound; a member added to a group; and every change in `hb audit`. No curl.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

struct Server {
    child: Child,
    url: String,
    setup_token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hb-cli-flows-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Starts `hb serve` on a free port (SQLite, no remote) and reads its log until the setup
/// token.
fn start(dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hb"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HEXABASE_LISTEN", "127.0.0.1:0")
        .env("HEXABASE_METRICS_LISTEN", "off")
        .env("HEXABASE_DATA_DIR", dir.join("data"))
        .env("HEXABASE_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hb serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut url, mut setup_token) = (None, None);
    while setup_token.is_none() {
        let line = lines
            .next()
            .expect("hb serve printed no setup token before exiting")
            .expect("a line");
        if let Some(rest) = line.strip_prefix("hb: serving ") {
            url = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some((_, token)) = line.split_once("--setup-token ") {
            setup_token = Some(token.trim().to_owned());
        }
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        url: url.expect("the API URL was printed"),
        setup_token: setup_token.expect("token"),
    }
}

/// One person's `hb`: their own config file, and `$EDITOR` when given.
struct Hb {
    config: PathBuf,
    editor: Option<String>,
}

impl Hb {
    fn new(dir: &Path, who: &str) -> Self {
        Self {
            config: dir.join(format!("{who}.toml")),
            editor: None,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hb"));
        command
            .args(args)
            .env("HB_CONFIG", &self.config)
            .env("HB_PASSWORD", "correct horse battery staple")
            .env_remove("VISUAL")
            .stdin(Stdio::null());
        match &self.editor {
            Some(editor) => command.env("EDITOR", editor),
            None => command.env_remove("EDITOR"),
        };
        command.output().expect("hb runs")
    }

    /// Runs `args`, which must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "hb {}: exit {:?}\nstdout: {}\nstderr: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8")
    }

    /// Runs `args` with `-o json`.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&args)).expect("JSON")
    }

    /// Runs `args`, which the server must refuse (exit 1); its standard error.
    fn refused(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "hb {} should be refused; stdout: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .filter_map(|item| item[key].as_str().map(str::to_owned))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// An `$EDITOR` that runs `sed` expressions on the file it is given.
fn sed_editor(dir: &Path, name: &str, script: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nsed -i {script} \"$1\"\n")).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    path.display().to_string()
}

#[test]
fn the_product_flows_run_through_hb_alone() {
    let dir = temp_dir();
    let server = start(&dir);
    let url = server.url.as_str();
    let mut ana = Hb::new(&dir, "ana");
    let bob = Hb::new(&dir, "bob");

    // 4.1: sign-up makes a private organization, its first user; billing; invitations.
    let setup = server.setup_token.as_str();
    let signup = [
        "login",
        url,
        "--signup",
        "--setup-token",
        setup,
        "--email",
        "ana@example.com",
        "--name",
        "Ana",
    ];
    assert!(ana.ok(&signup).contains("logged in"));
    let orgs = ana.json(&["get", "orgs"]);
    assert_eq!(orgs.as_array().expect("a list").len(), 1, "{orgs}");
    assert_eq!(orgs[0]["personal"], true);
    assert_eq!(orgs[0]["role"], "owner");
    let org = orgs[0]["slug"].as_str().expect("a slug").to_owned();
    let org = org.as_str();
    ana.ok(&["get", "billing", "--org", org]);
    let me = ana.json(&["get", "me"]);
    assert_eq!(me["email"], "ana@example.com");

    let invitation = ana.json(&[
        "create",
        "invitation",
        "bob@example.com",
        "--org",
        org,
        "--role",
        "billing",
    ]);
    let token = invitation["token"]
        .as_str()
        .expect("the invitation's token");
    bob.ok(&[
        "login",
        url,
        "--signup",
        "--email",
        "bob@example.com",
        "--name",
        "Bob",
    ]);
    assert!(
        bob.ok(&["accept-invitation", token])
            .contains(&format!("joined organization {org}"))
    );
    let members = ana.json(&["get", "members", "--org", org]);
    assert!(
        names(&members, "email").contains(&"bob@example.com".to_owned()),
        "{members}"
    );
    // Bob is in two organizations now: `hb audit` asks which.
    let which = bob.run(&["audit"]);
    assert_eq!(which.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&which.stderr).contains("choose one with --org"));

    // The platform's settings: placeholders shown, edited in $EDITOR, applied from a file,
    // refused with the field at fault; for the platform administrator only.
    let platform = ana.ok(&["get", "platform"]);
    assert!(platform.contains("# Placeholders to replace"), "{platform}");
    assert!(platform.contains("spec.clusters[0].domain"), "{platform}");
    assert!(bob.refused(&["get", "platform"]).contains("403"));
    ana.editor = Some(sed_editor(
        &dir,
        "edit-domain.sh",
        "'s/domain: home.example.com/domain: home.lab.test/'",
    ));
    let edited = ana.ok(&["edit", "platform"]);
    assert!(
        edited.starts_with("platform platform edited (commit "),
        "{edited}"
    );
    let view = ana.json(&["get", "platform"]);
    assert_eq!(view["spec"]["clusters"][0]["domain"], "home.lab.test");
    let placeholders = view["placeholders"].to_string();
    assert!(
        !placeholders.contains("spec.clusters[0].domain"),
        "{placeholders}"
    );
    assert!(
        placeholders.contains("spec.clusters[1].domain"),
        "{placeholders}"
    );
    let mut spec = view["spec"].clone();
    spec["clusters"][1]["domain"] = "edge.lab.test".into();
    let file = write(&dir, "platform.json", &spec.to_string());
    assert!(
        ana.ok(&["apply", "platform", "-f", &file])
            .contains("(commit ")
    );
    let clusters = ana.json(&["get", "clusters"]);
    assert_eq!(clusters[1]["domain"], "edge.lab.test");
    spec["oidc"]["issuerUrl"] = "ftp://nowhere".into();
    let bad = write(&dir, "bad.json", &spec.to_string());
    let refused = ana.refused(&["apply", "platform", "-f", &bad]);
    assert!(refused.contains("spec.oidc.issuerUrl"), "{refused}");
    let plan = write(
        &dir,
        "plan.yaml",
        "name: tiny\nprojectQuota:\n  requestsCpu: \"1\"\n  pods: \"5\"\npolicies: [disallow-privileged]\n",
    );
    assert!(ana.ok(&["apply", "plan", "-f", &plan]).contains("(commit "));

    // 4.2: a workspace on a plan, its default groups, the creator in WSAdmins, the default
    // binding of hexabase:workspace-admin to WSAdmins.
    let plans = ana.json(&["get", "plans"]);
    assert!(
        names(&plans, "name").contains(&"tiny".to_owned()),
        "{plans}"
    );
    // Its price, in SQL (no commit), shown with the plans.
    ana.ok(&["apply", "price", "tiny", "--set", "monthly=2900"]);
    let plans = ana.json(&["get", "plans"]);
    let tiny = plans
        .as_array()
        .and_then(|list| list.iter().find(|p| p["name"] == "tiny"))
        .expect("tiny listed");
    assert_eq!(tiny["price"]["monthlyCents"], 2900, "{plans}");
    let refused = ana.refused(&["apply", "price", "tiny", "--set", "monthly=-1"]);
    assert!(refused.contains("monthly"), "{refused}");
    ana.ok(&[
        "create",
        "workspace",
        "dev",
        "--org",
        org,
        "--plan",
        "shared-small",
    ]);
    let groups = names(
        &ana.json(&["get", "groups", "--org", org, "-w", "dev"]),
        "name",
    );
    for group in ["WorkspaceMembers", "WSAdmins", "WSUsers"] {
        assert!(groups.contains(&group.to_owned()), "{group} in {groups:?}");
    }
    let admins = ana.json(&[
        "get", "members", "--org", org, "-w", "dev", "--group", "WSAdmins",
    ]);
    assert!(
        names(&admins, "email").contains(&"ana@example.com".to_owned()),
        "{admins}"
    );
    let crbs = ana.json(&["get", "clusterrolebindings", "--org", org, "-w", "dev"]);
    assert!(
        crbs.as_array()
            .expect("a list")
            .iter()
            .any(|b| b["group"] == "WSAdmins" && b["clusterRole"] == "hexabase:workspace-admin"),
        "{crbs}"
    );
    ana.ok(&[
        "apply",
        "workspace",
        "dev",
        "--org",
        org,
        "--set",
        "plan=tiny",
    ]);
    assert_eq!(
        ana.json(&["get", "workspace", "dev", "--org", org])["plan"],
        "tiny"
    );
    ana.ok(&[
        "apply",
        "workspace",
        "dev",
        "--org",
        org,
        "--set",
        "plan=shared-small",
    ]);

    // 4.3: a project with the plan's quota, changed; a custom Role, created and edited.
    let ws = ["--org", org, "-w", "dev"];
    let in_web = ["--org", org, "-w", "dev", "-p", "web"];
    ana.ok(&[&["create", "project", "web"][..], &ws].concat());
    ana.ok(&[&["apply", "quota", "--set", "pods=\"15\""][..], &in_web].concat());
    let role = write(
        &dir,
        "role.yaml",
        "rules:\n  - apiGroups: [batch]\n    resources: [cronjobs]\n    verbs: [get, list]\n",
    );
    ana.ok(&[&["create", "role", "cron-editor", "-f", &role][..], &in_web].concat());
    ana.editor = Some(sed_editor(&dir, "edit-verbs.sh", "'s/- list/- create/'"));
    ana.ok(&[&["edit", "role", "cron-editor"][..], &in_web].concat());
    let edited = ana.json(&[&["get", "role", "cron-editor"][..], &in_web].concat());
    let verbs = edited["rules"][0]["verbs"].to_string();
    assert!(verbs.contains("create"), "{edited}");

    // 4.4: Roles and preset ClusterRoles bound to groups, a member added, bindings removed.
    ana.ok(&[
        &["create", "rolebinding", "WSUsers", "--role", "cron-editor"][..],
        &in_web,
    ]
    .concat());
    let viewer = ["--cluster-role", "hexabase:workspace-viewer"];
    ana.ok(&[
        &["create", "clusterrolebinding", "WSUsers"][..],
        &viewer,
        &ws,
    ]
    .concat());
    ana.ok(&[
        &["create", "member", "bob@example.com", "--group", "WSUsers"][..],
        &ws,
    ]
    .concat());
    let users = ana.json(&[&["get", "members", "--group", "WSUsers"][..], &ws].concat());
    assert!(
        names(&users, "email").contains(&"bob@example.com".to_owned()),
        "{users}"
    );
    let bindings = ana.json(&[&["get", "rolebindings"][..], &in_web].concat());
    assert!(
        names(&bindings, "group").contains(&"WSUsers".to_owned()),
        "{bindings}"
    );
    ana.ok(&[
        &["delete", "rolebinding", "WSUsers", "--role", "cron-editor"][..],
        &in_web,
    ]
    .concat());
    ana.ok(&[
        &["delete", "clusterrolebinding", "WSUsers"][..],
        &viewer,
        &ws,
    ]
    .concat());
    let bindings = ana.json(&[&["get", "rolebindings"][..], &in_web].concat());
    assert!(
        !names(&bindings, "group").contains(&"WSUsers".to_owned()),
        "{bindings}"
    );

    // Every change is in the audit, by its author; Ana has one organization, so no --org.
    let audit: Value = serde_json::from_str(&ana.ok(&["audit", "--json"])).expect("JSON");
    let actions = names(&audit, "action");
    for action in [
        "create-workspace",
        "change-plan",
        "create-project",
        "set-project-quota",
        "create-role",
        "update-role",
        "bind-role",
        "unbind-role",
        "bind-cluster-role",
        "unbind-cluster-role",
    ] {
        assert!(
            actions.contains(&action.to_owned()),
            "{action} in {actions:?}"
        );
    }

    // A clone of the server's repository draws no warning from git (no deprecated
    // `core.fsyncObjectFiles` in its config), and has the platform's commits.
    let clone = Command::new("git")
        .arg("clone")
        .arg(dir.join("data").join("gitops.git"))
        .arg(dir.join("clone"))
        .output()
        .expect("git runs");
    let stderr = String::from_utf8_lossy(&clone.stderr);
    assert!(clone.status.success(), "{stderr}");
    assert!(!stderr.contains("deprecated"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("warning"), "{stderr}");
    let log = Command::new("git")
        .arg("-C")
        .arg(dir.join("clone"))
        .args(["log", "--format=%an %s"])
        .output()
        .expect("git runs");
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("Ana platform: change the settings"), "{log}");
    assert!(log.contains("Ana platform: set plan tiny"), "{log}");
}

/// The starter platform on one machine: the issuer may be `http://` at a loopback address
/// (what `hb serve` with no public URL seeds), and only there.
#[test]
fn an_http_issuer_is_taken_on_the_loopback_only() {
    let dir = temp_dir().join("issuer");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gitops-repo-example/intent");
    let starter = std::fs::read_to_string(example.join("platform.yaml")).expect("read");
    for (issuer, valid) in [
        ("http://127.0.0.1:8080", true),
        ("http://localhost:8080", true),
        ("http://[::1]:8080", false),
        ("https://hexabase.example.com", true),
        ("http://hexabase.example.com", false),
        ("http://127.0.0.1.nip.io:8080", false),
    ] {
        let intent = dir.join(issuer.replace([':', '/', '[', ']'], "_"));
        std::fs::create_dir_all(&intent).expect("mkdir");
        let platform = starter.replace("https://hexabase.example.com", issuer);
        std::fs::write(intent.join("platform.yaml"), platform).expect("write");
        let output = Command::new(env!("CARGO_BIN_EXE_hb"))
            .args(["validate", "--json"])
            .arg(&intent)
            .output()
            .expect("hb runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.success(), valid, "{issuer}: {stdout}");
        if !valid {
            assert!(stdout.contains("spec.oidc.issuerUrl"), "{issuer}: {stdout}");
        }
    }
}
