//! Incremental compiles: fingerprints skip unchanged workspaces, `compile_workspaces` renders
//! only what an action touched, and `Output::owns` tells a writer what is stale.
#![allow(clippy::disallowed_methods)] // tests read fixtures from disk

mod support;

use std::collections::{BTreeMap, BTreeSet};

use compiler::{Catalog, Compiler, Options, Scope};

fn compiler() -> Compiler {
    Compiler::new(&Catalog::builtin()).expect("built-in catalog loads")
}

#[test]
fn unchanged_workspaces_are_skipped_and_changed_ones_rerendered() {
    let compiler = compiler();
    let mut files = support::example_files();
    let first = compiler
        .compile_files(&files, &Options::default())
        .expect("compiles");
    assert!(first.diagnostics.is_empty());
    let previous: BTreeMap<String, String> = first
        .workspaces
        .iter()
        .map(|(k, w)| (k.clone(), w.fingerprint.clone()))
        .collect();

    // Same input: nothing rendered again, and nothing the skipped workspaces wrote is stale.
    let again = compiler
        .compile_files(
            &files,
            &Options {
                previous: previous.clone(),
            },
        )
        .expect("compiles");
    assert!(again.workspaces.values().all(|w| !w.rendered));
    assert!(
        !again
            .files
            .keys()
            .any(|p| p.starts_with("tenants/home/acme/dev/"))
    );
    assert!(!again.owns("tenants/home/acme/dev/host/vcluster.yaml"));

    // One project changes: only its workspace renders, with a new fingerprint.
    let web = files
        .get_mut("acme/dev/projects/web.yaml")
        .expect("example has web");
    *web = web.replace("requestsCpu: \"4\"", "requestsCpu: \"6\"");
    let changed = compiler
        .compile_files(&files, &Options { previous })
        .expect("compiles");
    let rendered: Vec<&String> = changed
        .workspaces
        .iter()
        .filter(|(_, w)| w.rendered)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(rendered, ["acme/dev"]);
    assert_ne!(
        changed.workspaces["acme/dev"].fingerprint,
        first.workspaces["acme/dev"].fingerprint
    );
    assert_eq!(
        changed.workspaces["acme/prod"].fingerprint,
        first.workspaces["acme/prod"].fingerprint
    );
    let quota = &changed.files["tenants/home/acme/dev/inside/projects/web.yaml"];
    assert!(quota.contains("\"requests.cpu\": \"6\""), "{quota}");
}

#[test]
fn compiling_one_workspace_matches_the_full_compile() {
    let compiler = compiler();
    let files = support::example_files();
    let full = compiler
        .compile_files(&files, &Options::default())
        .expect("compiles");
    let (intent, _) = compiler::intent::load(&files);
    let only: BTreeSet<(String, String)> = [("acme".to_owned(), "prod".to_owned())].into();
    let partial = compiler
        .compile_workspaces(&intent, &only)
        .expect("compiles");
    assert!(partial.diagnostics.is_empty(), "{:?}", partial.diagnostics);
    assert_eq!(partial.scope, Scope::Workspaces(only));
    for (path, text) in &partial.files {
        assert_eq!(
            full.files.get(path),
            Some(text),
            "{path} differs from the full compile"
        );
    }
    assert!(
        partial
            .files
            .contains_key("tenants/home/acme/prod/host/vcluster.yaml")
    );
    assert!(
        !partial
            .files
            .keys()
            .any(|p| p.starts_with("tenants/home/acme/dev/"))
    );
    assert!(
        !partial
            .files
            .keys()
            .any(|p| p.starts_with("tenants/edge/globex"))
    );
    // The partial output speaks for its workspace and its organization's index, nothing else.
    assert!(partial.owns("tenants/home/acme/prod/host/old-file.yaml"));
    assert!(partial.owns("tenants/edge/acme/prod/host/vcluster.yaml"));
    assert!(partial.owns("tenants/home/acme/kustomization.yaml"));
    assert!(!partial.owns("tenants/home/acme/dev/host/vcluster.yaml"));
    assert!(!partial.owns("tenants/edge/globex/kustomization.yaml"));
    assert!(!partial.owns("intent/acme/prod/workspace.yaml"));
    assert!(!partial.owns("clusters/home/flux-system/gotk-sync.yaml"));
}

#[test]
fn fingerprints_without_compiling_match_the_compile() {
    let compiler = compiler();
    let files = support::example_files();
    let (intent, _) = compiler::intent::load(&files);
    let full = compiler
        .compile(&intent, &Options::default())
        .expect("compiles");
    let all: BTreeSet<(String, String)> = full
        .workspaces
        .keys()
        .map(|k| {
            let (org, ws) = k.split_once('/').expect("org/workspace");
            (org.to_owned(), ws.to_owned())
        })
        .chain([("acme".to_owned(), "missing".to_owned())])
        .collect();
    let fingerprints = compiler.fingerprints(&intent, &all);
    assert_eq!(
        fingerprints.len(),
        full.workspaces.len(),
        "none for a missing workspace"
    );
    for ((org, ws), fingerprint) in &fingerprints {
        assert_eq!(
            &full.workspaces[&format!("{org}/{ws}")].fingerprint,
            fingerprint
        );
    }
}

#[test]
fn output_is_identical_across_runs() {
    let compiler = compiler();
    let files = support::example_files();
    let a = compiler
        .compile_files(&files, &Options::default())
        .expect("compiles");
    let b = compiler
        .compile_files(&files, &Options::default())
        .expect("compiles");
    assert_eq!(a.files, b.files);
    for (path, text) in &a.files {
        assert!(text.ends_with('\n') && !text.contains('\r'), "{path}");
        if path.ends_with(".yaml") {
            assert!(!text.contains("\n\n"), "{path} has a blank line");
        }
    }
}

#[test]
fn set_file_follows_a_tree_file_by_file() {
    let files = support::example_files();
    let (mut intent, _) = compiler::intent::load(&files);
    let mut fewer = files;
    fewer.remove("acme/prod/projects/shop.yaml");
    fewer.remove("acme/prod/workspace.yaml");
    let (expected, _) = compiler::intent::load(&fewer);
    assert!(
        intent
            .set_file("acme/prod/projects/shop.yaml", None)
            .is_empty()
    );
    assert!(intent.set_file("acme/prod/workspace.yaml", None).is_empty());
    assert_eq!(intent, expected);
    assert!(!intent.organizations["acme"].workspaces.contains_key("prod"));

    let broken = intent.set_file("acme/dev/projects/web.yaml", Some("spec: [}"));
    assert_eq!(broken.len(), 1);
    assert!(
        !intent.organizations["acme"].workspaces["dev"]
            .projects
            .contains_key("web")
    );
}

#[test]
fn intent_documents_round_trip_through_to_yaml() {
    let (intent, _) = compiler::intent::load(&support::example_files());
    let mut files = compiler::IntentFiles::new();
    files.insert(
        "platform.yaml".into(),
        compiler::intent::to_yaml(intent.platform.as_deref().expect("platform")),
    );
    for (org, o) in &intent.organizations {
        files.insert(
            format!("{org}/organization.yaml"),
            compiler::intent::to_yaml(o.organization.as_ref().expect("org")),
        );
        for (ws, w) in &o.workspaces {
            files.insert(
                format!("{org}/{ws}/workspace.yaml"),
                compiler::intent::to_yaml(w.workspace.as_ref().expect("ws")),
            );
            for (name, p) in &w.projects {
                files.insert(
                    format!("{org}/{ws}/projects/{name}.yaml"),
                    compiler::intent::to_yaml(&p.project()),
                );
            }
        }
    }
    let (again, diagnostics) = compiler::intent::load(&files);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(again, intent);
}
