//! YAML quoting round-trips: any string, put in a project's display name, a CronJob's env var
//! value and argument, and a Function's env var value, comes back out of the rendered YAML
//! exactly, and never changes which objects are rendered; or, when it holds a character the
//! intent refuses (control characters, noncharacters, a newline in the display name), each
//! field holding one is reported as an error, and nothing else is. Uses the public API only: the intent
//! is encoded with serde-saphyr's serializer and the output parsed back with serde-saphyr.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use compiler::IntentFiles;
use compiler::intent::{EnvVar, Project};
use serde_json::Value;

use super::common;
use super::text_rule::refused;

const WEB: &str = "tenants/home/acme/dev/inside/projects/web.yaml";
const FUNCTIONS: &str = "tenants/home/acme/dev/host/functions.yaml";

/// The fields `text` lands in, and whether each may hold a newline.
const FIELDS: [(&str, bool); 4] = [
    ("spec.displayName", false),
    ("spec.cronJobs[nightly-report].args[0]", true),
    ("spec.cronJobs[nightly-report].env[0].value", true),
    ("spec.functions[checkout].env[0].value", true),
];

/// Platform, acme, acme/dev and its `web` project with `text` in every free-text field.
fn intent(text: &str) -> IntentFiles {
    let mut files: IntentFiles = [
        "platform.yaml",
        "acme/organization.yaml",
        "acme/dev/workspace.yaml",
    ]
    .into_iter()
    .map(|p| (p.to_owned(), common::example(p).to_owned()))
    .collect();
    let mut web: Project = serde_saphyr::from_str(common::example("acme/dev/projects/web.yaml"))
        .expect("the example project parses");
    web.spec.display_name = Some(text.to_owned());
    let job = &mut web.spec.cron_jobs[0];
    job.env = vec![EnvVar {
        name: "REPORT_BUCKET".into(),
        value: text.to_owned(),
    }];
    job.args = vec![text.to_owned()];
    web.spec.functions[0].env = vec![EnvVar {
        name: "CURRENCY".into(),
        value: text.to_owned(),
    }];
    let yaml = serde_saphyr::to_string(&web).expect("a project serializes");
    files.insert("acme/dev/projects/web.yaml".into(), yaml);
    files
}

fn documents(path: &str, text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{path} does not parse back: {e}\n{text}"))
}

fn str_at<'a>(doc: &'a Value, pointer: &str) -> Option<&'a str> {
    doc.pointer(pointer).and_then(Value::as_str)
}

type Key = (String, String, String, String, String);

fn keys(files: &BTreeMap<String, String>, only: &[&str]) -> BTreeSet<Key> {
    let mut set = BTreeSet::new();
    for (path, text) in files {
        if !path.ends_with(".yaml") || (!only.is_empty() && !only.contains(&path.as_str())) {
            continue;
        }
        for doc in documents(path, text) {
            let s = |p: &str| str_at(&doc, p).unwrap_or_default().to_owned();
            set.insert((
                path.clone(),
                s("/apiVersion"),
                s("/kind"),
                s("/metadata/namespace"),
                s("/metadata/name"),
            ));
        }
    }
    set
}

/// The rendered files for a plain string, and the objects of the two files the text lands in.
fn plain() -> &'static (BTreeMap<String, String>, BTreeSet<Key>) {
    static PLAIN: OnceLock<(BTreeMap<String, String>, BTreeSet<Key>)> = OnceLock::new();
    PLAIN.get_or_init(|| {
        let (output, diagnostics) = common::compile(&intent("plain"));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let keys = keys(&output.files, &[WEB, FUNCTIONS]);
        (output.files, keys)
    })
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| str_at(d, "/kind") == Some(kind) && str_at(d, "/metadata/name") == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container
        .get("env")?
        .as_array()?
        .iter()
        .find(|e| str_at(e, "/name") == Some(name))
        .and_then(|e| str_at(e, "/value"))
}

/// The `quote` target: panics when the input shows a bug.
pub(crate) fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let (output, diagnostics) = common::compile(&intent(text));
    // Characters the intent refuses give one error per field that holds them, and nothing else.
    let refusing: BTreeSet<&str> = FIELDS
        .iter()
        .filter(|(_, multi_line)| text.chars().any(|c| refused(c, *multi_line)))
        .map(|(field, _)| *field)
        .collect();
    let reported: BTreeSet<&str> = diagnostics
        .iter()
        .inspect(|d| assert!(d.is_error(), "{d}"))
        .map(|d| d.path.as_str())
        .collect();
    assert_eq!(reported, refusing, "{diagnostics:?}");
    assert_eq!(diagnostics.len(), refusing.len(), "{diagnostics:?}");
    if !refusing.is_empty() {
        return;
    }
    let (plain_files, plain_keys) = plain();
    // Only the two files the text lands in may differ, and they hold the same objects.
    let paths: Vec<&String> = output.files.keys().collect();
    assert_eq!(paths, plain_files.keys().collect::<Vec<_>>());
    for (path, content) in &output.files {
        if path != WEB && path != FUNCTIONS {
            assert_eq!(content, &plain_files[path], "{path} changed");
        }
    }
    assert_eq!(&keys(&output.files, &[WEB, FUNCTIONS]), plain_keys);

    let web = documents(WEB, &output.files[WEB]);
    let namespace = find(&web, "Namespace", "web");
    assert_eq!(
        str_at(namespace, "/metadata/annotations/hexabase.ai~1display-name"),
        Some(text)
    );
    let cron = find(&web, "CronJob", "nightly-report");
    let container = cron
        .pointer("/spec/jobTemplate/spec/template/spec/containers/0")
        .expect("a container");
    assert_eq!(env(container, "REPORT_BUCKET"), Some(text));
    assert_eq!(str_at(container, "/args/0"), Some(text));
    let functions = documents(FUNCTIONS, &output.files[FUNCTIONS]);
    let service = find(&functions, "Service", "web-checkout");
    let container = service
        .pointer("/spec/template/spec/containers/0")
        .expect("a container");
    assert_eq!(env(container, "CURRENCY"), Some(text));
}
