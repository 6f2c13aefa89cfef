//! Property tests of the whole pipeline (`intent::load` + `Compiler::compile`), built on the
//! example intent in `gitops-repo-example/intent/`:
//!
//! - determinism: the same intent, however it is formatted, gives the same bytes;
//! - free text: any string in a free-text field round-trips exactly and never changes which
//!   objects are rendered;
//! - paths: every file of a workspace stays under `tenants/<cluster>/<org>/<ws>/`, and invalid
//!   names give diagnostics, not files;
//! - robustness: arbitrary file contents give diagnostics, never a panic or an [`Error`].
//!
//! Intent documents are built as typed values and encoded with `serde_saphyr::to_string`, so
//! the intent itself always says exactly what the test means.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use compiler::intent::{self, EnvVar, Intent, Organization, Platform, Project, Workspace};
use compiler::{Catalog, Compiler, Diagnostic, IntentFiles, Options, Output};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use text_rule::refused;

#[path = "support/text_rule.rs"]
mod text_rule;

// ---------------------------------------------------------------------------------------------
// The example intent.

const EXAMPLE: &[(&str, &str)] = &[
    (
        "platform.yaml",
        include_str!("../../gitops-repo-example/intent/platform.yaml"),
    ),
    (
        "acme/organization.yaml",
        include_str!("../../gitops-repo-example/intent/acme/organization.yaml"),
    ),
    (
        "acme/dev/workspace.yaml",
        include_str!("../../gitops-repo-example/intent/acme/dev/workspace.yaml"),
    ),
    (
        "acme/dev/projects/web.yaml",
        include_str!("../../gitops-repo-example/intent/acme/dev/projects/web.yaml"),
    ),
    (
        "acme/dev/projects/api.yaml",
        include_str!("../../gitops-repo-example/intent/acme/dev/projects/api.yaml"),
    ),
    (
        "acme/prod/workspace.yaml",
        include_str!("../../gitops-repo-example/intent/acme/prod/workspace.yaml"),
    ),
    (
        "acme/prod/projects/shop.yaml",
        include_str!("../../gitops-repo-example/intent/acme/prod/projects/shop.yaml"),
    ),
    (
        "globex/organization.yaml",
        include_str!("../../gitops-repo-example/intent/globex/organization.yaml"),
    ),
    (
        "globex/research/workspace.yaml",
        include_str!("../../gitops-repo-example/intent/globex/research/workspace.yaml"),
    ),
    (
        "globex/research/projects/models.yaml",
        include_str!("../../gitops-repo-example/intent/globex/research/projects/models.yaml"),
    ),
];

fn example_files() -> IntentFiles {
    EXAMPLE
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect()
}

fn example(path: &str) -> &'static str {
    EXAMPLE
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("{path} is not an example file"))
}

/// Parses an example file into its typed document.
fn typed<T: DeserializeOwned>(path: &str) -> T {
    serde_saphyr::from_str(example(path)).unwrap_or_else(|e| panic!("{path} parses: {e}"))
}

/// Encodes a document as YAML with serde-saphyr's serializer.
fn yaml<T: Serialize>(doc: &T) -> String {
    serde_saphyr::to_string(doc).expect("intent documents serialize")
}

// ---------------------------------------------------------------------------------------------
// Compiling.

/// Few cases by default, each a whole compile (about 60 ms in debug): the file runs in well
/// under 30 s on two cores. `PROPTEST_CASES`, when set, replaces every block's count
/// (`scripts/test.sh` raises it for CI). No failure persistence (no files next to the tests);
/// shrinking is capped so a failure reports quickly.
fn config(cases: u32) -> Config {
    // `Config::default()` reads `PROPTEST_CASES`; an explicit `cases` would override it. The
    // compiler reads no environment (clippy.toml), but this is the test runner's setting.
    #[allow(clippy::disallowed_methods)]
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default().cases
    } else {
        cases
    };
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    }
}

fn compiler() -> &'static Compiler {
    static COMPILER: OnceLock<Compiler> = OnceLock::new();
    COMPILER.get_or_init(|| Compiler::new(&Catalog::builtin()).expect("built-in catalog loads"))
}

/// What `hb compile` does: load, compile, merge the diagnostics, and drop the files when any
/// is an error. `Err` from the compiler is a bug (bad input must give diagnostics): it fails
/// the test.
struct Compiled {
    output: Output,
    /// Load and compile diagnostics together, sorted.
    diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The files that would be written: none when there are errors.
    fn files(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        if self.has_errors() {
            &EMPTY
        } else {
            &self.output.files
        }
    }

    fn errors(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| format!("{d}\n"))
            .collect::<String>()
    }
}

fn try_compile_with(compiler: &Compiler, files: &IntentFiles) -> Result<Compiled, String> {
    let (intent, diagnostics) = intent::load(files);
    try_compile_intent(compiler, &intent, diagnostics)
}

/// Compiles a loaded intent and merges the loader's `diagnostics` with the compiler's.
fn try_compile_intent(
    compiler: &Compiler,
    intent: &Intent,
    mut diagnostics: Vec<Diagnostic>,
) -> Result<Compiled, String> {
    let output = compiler
        .compile(intent, &Options::default())
        .map_err(|e| format!("the compiler failed instead of reporting diagnostics: {e:?}"))?;
    diagnostics.extend(output.diagnostics.iter().cloned());
    diagnostics.sort();
    Ok(Compiled {
        output,
        diagnostics,
    })
}

fn compile_with(compiler: &Compiler, files: &IntentFiles) -> Compiled {
    try_compile_with(compiler, files).unwrap_or_else(|e| panic!("{e}"))
}

fn compile(files: &IntentFiles) -> Compiled {
    compile_with(compiler(), files)
}

/// For proptest bodies: a compiler `Error` fails the case (and is shrunk) without a panic.
fn check_compile(files: &IntentFiles) -> Result<Compiled, TestCaseError> {
    try_compile_with(compiler(), files).map_err(TestCaseError::fail)
}

/// As [`check_compile`], but the loader sees the files one by one in the order given, through
/// [`Intent::set_file`], instead of in the sorted order of [`IntentFiles`].
fn check_compile_in_order(files: &[(String, String)]) -> Result<Compiled, TestCaseError> {
    let mut intent = Intent::default();
    let mut diagnostics = Vec::new();
    for (path, text) in files {
        diagnostics.extend(intent.set_file(path, Some(text)));
    }
    try_compile_intent(compiler(), &intent, diagnostics).map_err(TestCaseError::fail)
}

/// The example compiled once.
fn baseline() -> &'static Compiled {
    static BASELINE: OnceLock<Compiled> = OnceLock::new();
    BASELINE.get_or_init(|| {
        let compiled = compile(&example_files());
        assert!(
            !compiled.has_errors(),
            "the example compiles:\n{}",
            compiled.errors()
        );
        assert!(!compiled.output.files.is_empty());
        compiled
    })
}

// ---------------------------------------------------------------------------------------------
// Reading the output back.

/// Every document of a rendered YAML file, parsed back.
fn documents(path: &str, text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{path} does not parse back: {e}\n{text}"))
}

fn str_at<'a>(doc: &'a Value, pointer: &str) -> &'a str {
    doc.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// (path, apiVersion, kind, namespace, name) of every document of every YAML file.
type ObjectKey = (String, String, String, String, String);

/// The objects of one rendered file.
fn file_objects(path: &str, text: &str) -> Vec<ObjectKey> {
    if !path.ends_with(".yaml") {
        return Vec::new();
    }
    documents(path, text)
        .iter()
        .map(|doc| {
            (
                path.to_owned(),
                str_at(doc, "/apiVersion").to_owned(),
                str_at(doc, "/kind").to_owned(),
                str_at(doc, "/metadata/namespace").to_owned(),
                str_at(doc, "/metadata/name").to_owned(),
            )
        })
        .collect()
}

/// Rendered files with their objects, to compare other outputs against.
struct Reference {
    files: BTreeMap<String, String>,
    objects: BTreeMap<String, Vec<ObjectKey>>,
}

impl Reference {
    fn new(files: &BTreeMap<String, String>) -> Self {
        let objects = files
            .iter()
            .map(|(path, text)| (path.clone(), file_objects(path, text)))
            .collect();
        Self {
            files: files.clone(),
            objects,
        }
    }

    fn all_objects(&self) -> BTreeSet<ObjectKey> {
        collect_objects(self.objects.values().flatten().cloned())
    }

    /// The objects of every document of `files`; files identical to the reference's are not
    /// parsed again (parsing every policy on every case is most of the test's time).
    fn objects_of(&self, files: &BTreeMap<String, String>) -> BTreeSet<ObjectKey> {
        collect_objects(files.iter().flat_map(|(path, text)| {
            if self.files.get(path) == Some(text) {
                self.objects[path].clone()
            } else {
                file_objects(path, text)
            }
        }))
    }
}

fn collect_objects(keys: impl Iterator<Item = ObjectKey>) -> BTreeSet<ObjectKey> {
    let mut set = BTreeSet::new();
    for key in keys {
        assert!(set.insert(key.clone()), "{key:?} is rendered twice");
    }
    set
}

fn example_reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| Reference::new(baseline().files()))
}

/// The one document of `kind` named `name` in the file at `path`.
fn object(files: &BTreeMap<String, String>, path: &str, kind: &str, name: &str) -> Value {
    let text = files
        .get(path)
        .unwrap_or_else(|| panic!("{path} is rendered"));
    let mut found: Vec<Value> = documents(path, text)
        .into_iter()
        .filter(|d| str_at(d, "/kind") == kind && str_at(d, "/metadata/name") == name)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} {name} in {path}");
    found.remove(0)
}

/// The value of the environment variable `name` of a container.
fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container
        .get("env")?
        .as_array()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
        .get("value")?
        .as_str()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("a list of strings").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// True when a rendered path is safe to write: relative, no `.`/`..`/empty segments, and a
/// path the compiler owns.
fn safe_path(path: &str) -> bool {
    !path.starts_with('/')
        && !path.contains('\\')
        && !path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        && compiler::is_generated(path)
}

// ---------------------------------------------------------------------------------------------
// Small deterministic shuffling, driven by a proptest-chosen seed.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The same data with every mapping's keys in a random order.
fn shuffle_keys(value: Value, rng: &mut Rng) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            rng.shuffle(&mut entries);
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, shuffle_keys(v, rng)))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| shuffle_keys(v, rng)).collect())
        }
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// a. Determinism.

/// How one intent file is written; all styles carry the same data.
#[derive(Debug, Clone, Copy)]
enum Style {
    /// The example file as it is.
    Original,
    /// serde-saphyr block style, defaults written out.
    Block,
    /// Block style with the keys of every mapping shuffled.
    ShuffledBlock,
    /// JSON on one line (YAML flow style), keys shuffled.
    FlowCompact,
    /// Pretty JSON (YAML flow style over several lines), keys shuffled.
    FlowPretty,
}

/// Rewrites an example file in `style`, with optional comments and document markers.
fn restyle<T: Serialize + DeserializeOwned>(
    path: &str,
    style: Style,
    decorate: (bool, bool, bool),
    rng: &mut Rng,
) -> String {
    let doc: T = typed(path);
    let value = || serde_json::to_value(&doc).expect("intent documents serialize to JSON");
    let body = match style {
        Style::Original => example(path).to_owned(),
        Style::Block => yaml(&doc),
        Style::ShuffledBlock => yaml(&shuffle_keys(value(), rng)),
        Style::FlowCompact => serde_json::to_string(&shuffle_keys(value(), rng)).unwrap() + "\n",
        Style::FlowPretty => {
            serde_json::to_string_pretty(&shuffle_keys(value(), rng)).unwrap() + "\n"
        }
    };
    let (comment, marker, trailer) = decorate;
    let mut text = String::new();
    if comment {
        text.push_str("# Written by the property tests: same data, other formatting.\n");
    }
    if marker {
        text.push_str("---\n");
    }
    text.push_str(&body);
    if trailer {
        text.push_str("# the end\n");
    }
    text
}

fn restyle_file(path: &str, style: Style, decorate: (bool, bool, bool), rng: &mut Rng) -> String {
    match path.rsplit('/').next() {
        Some("platform.yaml") => restyle::<Platform>(path, style, decorate, rng),
        Some("organization.yaml") => restyle::<Organization>(path, style, decorate, rng),
        Some("workspace.yaml") => restyle::<Workspace>(path, style, decorate, rng),
        _ => restyle::<Project>(path, style, decorate, rng),
    }
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::Original),
        Just(Style::Block),
        Just(Style::ShuffledBlock),
        Just(Style::FlowCompact),
        Just(Style::FlowPretty),
    ]
}

#[test]
fn compiling_twice_gives_the_same_output() {
    let files = example_files();
    let first = compile(&files);
    let fresh = Compiler::new(&Catalog::builtin()).expect("built-in catalog loads");
    let second = compile_with(&fresh, &files);
    let third = compile(&files);
    for other in [&second, &third] {
        assert_eq!(first.output.files, other.output.files);
        assert_eq!(first.output.workspaces, other.output.workspaces);
        assert_eq!(first.diagnostics, other.diagnostics);
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// Formatting, key order, comments and the order the loader sees the files in do not
    /// matter: the output bytes and the workspace fingerprints are those of the example.
    ///
    /// `intent::load` takes a sorted map, so the order is varied where it can matter: the
    /// files go through [`Intent::set_file`] (what `load` and the server's per-commit updates
    /// call) one by one in a shuffled order.
    #[test]
    fn formatting_does_not_change_the_output(
        styles in prop::collection::vec((style(), any::<(bool, bool, bool)>()), EXAMPLE.len()),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let mut entries: Vec<(String, String)> = EXAMPLE
            .iter()
            .zip(&styles)
            .map(|((path, _), (style, decorate))| {
                ((*path).to_owned(), restyle_file(path, *style, *decorate, &mut rng))
            })
            .collect();
        rng.shuffle(&mut entries);
        let compiled = check_compile_in_order(&entries)?;
        let base = baseline();
        prop_assert!(!compiled.has_errors(), "{}", compiled.errors());
        prop_assert_eq!(&compiled.diagnostics, &base.diagnostics);
        prop_assert_eq!(&compiled.output.workspaces, &base.output.workspaces);
        // Compare file by file for a readable failure.
        let paths: Vec<&String> = compiled.output.files.keys().collect();
        let base_paths: Vec<&String> = base.output.files.keys().collect();
        prop_assert_eq!(paths, base_paths);
        for (path, text) in &compiled.output.files {
            prop_assert_eq!(text, &base.output.files[path], "{} differs", path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// b. Free text.

/// Fragments that mean something to YAML, minijinja or a terminal.
const NASTY: &[&str] = &[
    "\n",
    "\r",
    "\r\n",
    "\t",
    "\"",
    "'",
    "\\",
    ": ",
    ":",
    "#",
    " #",
    "---",
    "...",
    "--- |",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a",
    "*a",
    "!",
    "!!str",
    "!!binary",
    "|",
    "|-",
    ">",
    ">+",
    "%YAML",
    "- ",
    "? ",
    "@",
    "`",
    "~",
    "<<",
    "null",
    "true",
    "no",
    "0x1F",
    "1e3",
    ".inf",
    "{{ x }}",
    "{% if %}",
    "{#",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{2029}",
    "\u{feff}",
    "\u{0}",
    "\u{1b}[31m",
    "\u{fffe}",
    "\u{ffff}",
    "\u{1f600}",
    " ",
    "  ",
];

fn nasty_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(NASTY).prop_map(str::to_owned),
        2 => "[a-zA-Z0-9 ]{1,4}",
        1 => any::<char>().prop_map(String::from),
    ];
    prop_oneof![
        1 => any::<String>(),
        3 => prop::collection::vec(piece, 0..10).prop_map(|v| v.concat()),
    ]
}

/// One value for every free-text field the example has.
#[derive(Debug, Clone)]
struct FreeText {
    org_display_name: String,
    workspace_display_name: String,
    project_display_name: String,
    cron_env: String,
    cron_command: Vec<String>,
    cron_args: Vec<String>,
    function_env: String,
}

/// `text` without the characters the rule refuses.
fn accepted(text: &str, multi_line: bool) -> String {
    text.chars().filter(|c| !refused(*c, multi_line)).collect()
}

/// Free text the compiler accepts: display names are single-line; commands, arguments and
/// environment values may hold newlines.
fn free_text() -> impl Strategy<Value = FreeText> {
    let list = || prop::collection::vec(nasty_string(), 1..4);
    (
        nasty_string(),
        nasty_string(),
        nasty_string(),
        nasty_string(),
        list(),
        list(),
        nasty_string(),
    )
        .prop_map(|(o, w, p, ce, cc, ca, fe)| {
            let many = |v: Vec<String>| v.iter().map(|t| accepted(t, true)).collect();
            FreeText {
                org_display_name: accepted(&o, false),
                workspace_display_name: accepted(&w, false),
                project_display_name: accepted(&p, false),
                cron_env: accepted(&ce, true),
                cron_command: many(cc),
                cron_args: many(ca),
                function_env: accepted(&fe, true),
            }
        })
}

/// The free-text fields, with the file and path a diagnostic about each names.
const FREE_TEXT_FIELDS: &[(&str, &str, bool)] = &[
    ("intent/acme/organization.yaml", "spec.displayName", false),
    ("intent/acme/dev/workspace.yaml", "spec.displayName", false),
    (
        "intent/acme/dev/projects/web.yaml",
        "spec.displayName",
        false,
    ),
    (
        "intent/acme/dev/projects/web.yaml",
        "spec.cronJobs[nightly-report].env[0].value",
        true,
    ),
    (
        "intent/acme/dev/projects/web.yaml",
        "spec.cronJobs[nightly-report].command[0]",
        true,
    ),
    (
        "intent/acme/dev/projects/web.yaml",
        "spec.cronJobs[nightly-report].args[0]",
        true,
    ),
    (
        "intent/acme/dev/projects/web.yaml",
        "spec.functions[checkout].env[0].value",
        true,
    ),
];

/// Plain text with `text` in the `field`th free-text field.
fn with_one_field(field: usize, text: String) -> FreeText {
    let mut free = plain_text();
    match field {
        0 => free.org_display_name = text,
        1 => free.workspace_display_name = text,
        2 => free.project_display_name = text,
        3 => free.cron_env = text,
        4 => free.cron_command = vec![text],
        5 => free.cron_args = vec![text],
        _ => free.function_env = text,
    }
    free
}

/// Characters the rule refuses in every field.
const REFUSED: &[char] = &[
    '\0',
    '\r',
    '\u{1b}',
    '\u{7f}',
    '\u{80}',
    '\u{85}',
    '\u{9b}',
    '\u{9f}',
    '\u{fdd0}',
    '\u{fffe}',
    '\u{ffff}',
    '\u{1fffe}',
    '\u{10ffff}',
];

fn plain_text() -> FreeText {
    FreeText {
        org_display_name: "plain".into(),
        workspace_display_name: "plain".into(),
        project_display_name: "plain".into(),
        cron_env: "plain".into(),
        cron_command: vec!["plain".into()],
        cron_args: vec!["plain".into()],
        function_env: "plain".into(),
    }
}

/// The example's acme/dev workspace alone, with `text` in every free-text field. (The other
/// workspaces would only make each case slower.)
fn with_free_text(text: &FreeText) -> IntentFiles {
    let mut files = example_files();
    files.retain(|path, _| !path.starts_with("globex/") && !path.starts_with("acme/prod/"));
    let mut org: Organization = typed("acme/organization.yaml");
    org.spec.display_name = Some(text.org_display_name.clone());
    files.insert("acme/organization.yaml".into(), yaml(&org));

    let mut ws: Workspace = typed("acme/dev/workspace.yaml");
    ws.spec.display_name = Some(text.workspace_display_name.clone());
    files.insert("acme/dev/workspace.yaml".into(), yaml(&ws));

    let mut web: Project = typed("acme/dev/projects/web.yaml");
    web.spec.display_name = Some(text.project_display_name.clone());
    let job = &mut web.spec.cron_jobs[0];
    job.env = vec![EnvVar {
        name: "REPORT_BUCKET".into(),
        value: text.cron_env.clone(),
    }];
    job.command.clone_from(&text.cron_command);
    job.args.clone_from(&text.cron_args);
    web.spec.functions[0].env = vec![EnvVar {
        name: "CURRENCY".into(),
        value: text.function_env.clone(),
    }];
    files.insert("acme/dev/projects/web.yaml".into(), yaml(&web));
    files
}

/// The example with plain strings in the free-text fields, rendered.
fn plain() -> &'static (Reference, BTreeSet<ObjectKey>) {
    static PLAIN: OnceLock<(Reference, BTreeSet<ObjectKey>)> = OnceLock::new();
    PLAIN.get_or_init(|| {
        let compiled = compile(&with_free_text(&plain_text()));
        assert!(!compiled.has_errors(), "{}", compiled.errors());
        let reference = Reference::new(compiled.files());
        let objects = reference.all_objects();
        (reference, objects)
    })
}

const WEB: &str = "tenants/home/acme/dev/inside/projects/web.yaml";
const FUNCTIONS: &str = "tenants/home/acme/dev/host/functions.yaml";

proptest! {
    #![proptest_config(config(48))]

    /// Any string in a free-text field is carried through exactly and cannot add, remove or
    /// rename an object.
    #[test]
    fn free_text_round_trips_and_changes_no_object(text in free_text()) {
        let files = with_free_text(&text);

        // The intent says exactly what we meant (serde-saphyr encodes it safely).
        let (intent, _) = intent::load(&files);
        let acme = &intent.organizations["acme"];
        let org = acme.organization.as_ref().expect("organization loads");
        prop_assert_eq!(org.spec.display_name.as_deref(), Some(text.org_display_name.as_str()));
        let ws = acme.workspaces["dev"].workspace.as_ref().expect("workspace loads");
        prop_assert_eq!(ws.spec.display_name.as_deref(), Some(text.workspace_display_name.as_str()));

        let compiled = check_compile(&files)?;
        prop_assert!(!compiled.has_errors(), "{}", compiled.errors());
        let rendered = compiled.files();
        let (reference, plain_objects) = plain();
        prop_assert_eq!(&reference.objects_of(rendered), plain_objects);

        let namespace = object(rendered, WEB, "Namespace", "web");
        prop_assert_eq!(
            namespace.pointer("/metadata/annotations/hexabase.ai~1display-name").and_then(Value::as_str),
            Some(text.project_display_name.as_str())
        );
        let cron = object(rendered, WEB, "CronJob", "nightly-report");
        let container = cron
            .pointer("/spec/jobTemplate/spec/template/spec/containers/0")
            .expect("the CronJob has a container");
        prop_assert_eq!(env_value(container, "REPORT_BUCKET"), Some(text.cron_env.as_str()));
        prop_assert_eq!(&strings(container.get("command")), &text.cron_command);
        prop_assert_eq!(&strings(container.get("args")), &text.cron_args);

        let service = object(rendered, FUNCTIONS, "Service", "web-checkout");
        let container = service
            .pointer("/spec/template/spec/containers/0")
            .expect("the Service has a container");
        prop_assert_eq!(env_value(container, "CURRENCY"), Some(text.function_env.as_str()));
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// A refused character anywhere in any free-text field is an error naming that field, so
    /// nothing is written; a newline is refused only in single-line fields.
    #[test]
    fn refused_characters_are_reported_with_the_field(
        field in 0..FREE_TEXT_FIELDS.len(),
        text in nasty_string(),
        at in any::<prop::sample::Index>(),
        bad in prop_oneof![4 => prop::sample::select(REFUSED), 1 => Just('\n')],
    ) {
        let (file, path, multi_line) = FREE_TEXT_FIELDS[field];
        prop_assume!(refused(bad, multi_line));
        let mut chars: Vec<char> = accepted(&text, multi_line).chars().collect();
        chars.insert(at.index(chars.len() + 1), bad);
        let text: String = chars.into_iter().collect();
        let compiled = check_compile(&with_free_text(&with_one_field(field, text)))?;
        prop_assert!(
            compiled
                .diagnostics
                .iter()
                .any(|d| d.is_error() && d.file == file && d.path == path),
            "no error at {} {} for {:?}:\n{}",
            file,
            path,
            bad,
            compiled.errors()
        );
        prop_assert!(compiled.files().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// c. Paths.

/// A DNS label of `min..=max` characters.
fn dns_label(min: usize, max: usize) -> impl Strategy<Value = String> {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    const ANY: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
    (min..=max).prop_flat_map(|len| {
        (
            prop::sample::select(ALNUM),
            prop::collection::vec(prop::sample::select(ANY), len.saturating_sub(2)),
            prop::sample::select(ALNUM),
        )
            .prop_map(move |(first, middle, last)| {
                let mut s = vec![first];
                if len > 1 {
                    s.extend(middle);
                    s.push(last);
                }
                String::from_utf8(s).expect("ASCII")
            })
    })
}

/// The names one workspace's files are placed by.
#[derive(Debug, Clone)]
struct Names {
    cluster: String,
    org: String,
    ws: String,
    project: String,
}

/// Valid names: the host namespace `ws-<org>-<ws>` stays within 63 characters, the project
/// is not a reserved namespace, and nothing collides with the rest of the example.
fn valid_names() -> impl Strategy<Value = Names> {
    (
        dns_label(1, 63),
        dns_label(1, 58).prop_flat_map(|org| {
            let room = 59 - org.len();
            (Just(org), dns_label(1, room))
        }),
        dns_label(1, 63),
    )
        .prop_filter(
            "no clash with the example's other names",
            |(cluster, (org, _), project)| {
                cluster != "edge"
                    && org != "globex"
                    && project != "default"
                    && !project.starts_with("kube-")
            },
        )
        .prop_map(|(cluster, (org, ws), project)| Names {
            cluster,
            org,
            ws,
            project,
        })
}

/// The example with its `home` cluster renamed and a workspace placed by `names`, beside the
/// unchanged `globex` organization.
fn with_names(names: &Names) -> IntentFiles {
    let mut files = example_files();
    files.retain(|path, _| !path.starts_with("acme/"));
    let mut platform: Platform = typed("platform.yaml");
    platform.spec.clusters[0].name.clone_from(&names.cluster);
    files.insert("platform.yaml".into(), yaml(&platform));

    let mut org: Organization = typed("acme/organization.yaml");
    org.metadata.name.clone_from(&names.org);
    files.insert(format!("{}/organization.yaml", names.org), yaml(&org));

    let mut ws: Workspace = typed("acme/dev/workspace.yaml");
    ws.metadata.name.clone_from(&names.ws);
    ws.spec.cluster.clone_from(&names.cluster);
    files.insert(
        format!("{}/{}/workspace.yaml", names.org, names.ws),
        yaml(&ws),
    );

    let mut project: Project = typed("acme/dev/projects/web.yaml");
    project.metadata.name.clone_from(&names.project);
    // Function host names `<project>-<function>` have room for 56 characters.
    project
        .spec
        .functions
        .retain(|f| names.project.len() + 1 + f.name.len() <= 57);
    files.insert(
        format!("{}/{}/projects/{}.yaml", names.org, names.ws, names.project),
        yaml(&project),
    );
    files
}

/// A name that is not a valid DNS label anywhere.
fn invalid_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,5}[A-Z][a-zA-Z0-9]{0,5}",
        "[a-z]{0,5}/[a-z/]{0,5}",
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just(String::new()),
        "[a-z]{0,3}\\.\\.(/[a-z.]{0,3}){0,2}",
        "\\.\\./[a-z]{1,5}",
        "/[a-z]{1,5}",
        "[a-z0-9]{64,90}",
        "-[a-z]{1,5}",
        "[a-z]{1,5}-",
        "[a-z]{1,3}[ _.:*%\\\\\\x00\\n\u{e9}\u{2028}][a-z]{0,3}",
        any::<String>().prop_filter("not a DNS label", |s| {
            s.is_empty()
                || s.len() > 63
                || s.starts_with('-')
                || s.ends_with('-')
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }),
    ]
}

/// Which name the invalid one replaces.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Cluster,
    Org,
    Ws,
    Project,
}

fn assert_safe_paths(compiled: &Compiled) -> Result<(), TestCaseError> {
    for path in compiled.output.files.keys() {
        prop_assert!(safe_path(path), "unsafe path {:?}", path);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(24))]

    /// With valid names of any length the workspace compiles, and every file of it is under
    /// `tenants/<cluster>/<org>/<ws>/`.
    #[test]
    fn workspace_files_stay_in_their_folder(names in valid_names()) {
        let compiled = check_compile(&with_names(&names))?;
        prop_assert!(!compiled.has_errors(), "{}", compiled.errors());
        assert_safe_paths(&compiled)?;
        let root = format!("tenants/{}/{}/{}", names.cluster, names.org, names.ws);
        let key = format!("{}/{}", names.org, names.ws);
        let out = compiled.output.workspaces.get(&key);
        prop_assert!(out.is_some_and(|w| w.rendered && w.root == root), "{:?}", out);
        let org_dir = format!("tenants/{}/{}/", names.cluster, names.org);
        let org_index = format!("{org_dir}kustomization.yaml");
        let mut own = 0;
        for path in compiled.files().keys() {
            if path.starts_with(&format!("{root}/")) {
                own += 1;
            } else if path.starts_with(&org_dir) {
                prop_assert_eq!(path, &org_index, "a file of {} outside {}", key, root);
            }
            let parts: Vec<&str> = path.split('/').collect();
            if let ["tenants", _, org, ws, _, ..] = parts.as_slice()
                && *org == names.org
                && *ws == names.ws
            {
                prop_assert!(path.starts_with(&format!("{root}/")), "{} is not under {}", path, root);
            }
        }
        let flux = format!("{root}/flux.yaml");
        let project = format!("{root}/inside/projects/{}.yaml", names.project);
        prop_assert!(compiled.files().contains_key(&flux), "{} is missing", flux);
        prop_assert!(compiled.files().contains_key(&project), "{} is missing", project);
        prop_assert!(own > 5, "only {} files under {}", own, root);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// An invalid cluster, organization, workspace or project name gives an error, so nothing
    /// is written; whatever the compiler rendered anyway stays inside the tree.
    #[test]
    fn invalid_names_give_diagnostics(
        base in valid_names(),
        slot in prop_oneof![Just(Slot::Cluster), Just(Slot::Org), Just(Slot::Ws), Just(Slot::Project)],
        bad in invalid_name(),
    ) {
        let mut names = base;
        match slot {
            Slot::Cluster => names.cluster.clone_from(&bad),
            Slot::Org => names.org.clone_from(&bad),
            Slot::Ws => names.ws.clone_from(&bad),
            Slot::Project => names.project.clone_from(&bad),
        }
        let compiled = check_compile(&with_names(&names))?;
        prop_assert!(compiled.has_errors(), "{:?} as the {:?} name compiled", bad, slot);
        prop_assert!(compiled.files().is_empty());
        assert_safe_paths(&compiled)?;
    }
}

// ---------------------------------------------------------------------------------------------
// d. Robustness.

/// Anything at all as the text of an intent file.
fn junk() -> impl Strategy<Value = String> {
    let yamlish = prop::collection::vec(
        prop_oneof![
            prop::sample::select(NASTY).prop_map(str::to_owned),
            prop::sample::select(
                &[
                    "apiVersion: hexabase.ai/v1alpha1\n",
                    "kind: Project\n",
                    "metadata:\n  name: web\n",
                    "spec:\n",
                    "  ",
                    "- ",
                    "a: &x [1, 2]\n",
                    "b: *x\n",
                    "<<: *x\n",
                    "!!map {}\n",
                    "? [a]\n: b\n",
                    "%TAG ! tag:x,2000:\n",
                    "'\n",
                    "\"\\u12\"\n",
                    "\u{feff}",
                ][..]
            )
            .prop_map(str::to_owned),
            "[a-z]{1,8}",
        ],
        0..24,
    )
    .prop_map(|v| v.concat());
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        yamlish,
    ]
}

/// An example file cut, spliced and patched at a random place.
fn mutated(path: &'static str) -> impl Strategy<Value = String> {
    let text = example(path);
    let len = text.chars().count();
    (0..=len, 0..=len.min(64), nasty_string()).prop_map(move |(at, cut, insert)| {
        let chars: Vec<char> = text.chars().collect();
        let end = (at + cut).min(len);
        let mut out: String = chars[..at].iter().collect();
        out.push_str(&insert);
        out.extend(&chars[end..]);
        out
    })
}

fn example_path() -> impl Strategy<Value = &'static str> {
    prop::sample::select(EXAMPLE.iter().map(|(p, _)| *p).collect::<Vec<_>>())
}

/// Intent paths, valid and not.
fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => example_path().prop_map(str::to_owned),
        1 => "[a-z./]{0,12}(organization|workspace|platform)?\\.ya?ml",
        1 => "([a-z.]{0,4}/){0,4}projects/[a-zA-Z.]{0,5}\\.yaml",
        1 => any::<String>(),
    ]
}

/// Every string leaf of a document, by JSON pointer.
fn string_leaves(value: &Value, at: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                string_leaves(v, &format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                string_leaves(v, &format!("{at}/{i}"), out);
            }
        }
        Value::String(_) => out.push(at.to_owned()),
        _ => {}
    }
}

/// An example file whose structure is kept and one string field (the `pick`th of those
/// whose JSON pointer `wanted` accepts) replaced.
fn with_field_replaced(path: &str, pick: usize, wanted: fn(&str) -> bool, text: String) -> String {
    let mut value: Value = serde_saphyr::from_str(example(path)).expect("example files parse");
    let mut leaves = Vec::new();
    string_leaves(&value, "", &mut leaves);
    leaves.retain(|l| wanted(l));
    let leaf = &leaves[pick % leaves.len()];
    *value.pointer_mut(leaf).expect("the leaf exists") = Value::String(text);
    yaml(&value)
}

/// A string that is often a valid name, so checks further down are reached.
fn field_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => nasty_string(),
        1 => dns_label(1, 70),
        1 => "[a-z0-9.:/@_-]{0,40}",
        1 => "[0-9]{1,4}(m|Mi|Gi|k|e3|\\.5)?",
        1 => "[*/0-9, @a-z-]{0,16}",
    ]
}

/// A string that is often a URL the platform's checks accept.
fn url_text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => nasty_string(),
        6 => "https?://[a-z]{1,8}(\\.example\\.com)?(:[0-9]{1,5})?/[!-~\u{e9}]{0,12}",
        1 => "(ssh|oci)://[a-z]{1,8}(\\.example\\.com)?(:[0-9]{1,5})?/[!-~\u{e9}]{0,12}",
    ]
}

/// JSON pointers of the platform's URL fields.
fn is_url_field(pointer: &str) -> bool {
    ["/url", "Url", "/apiServer", "/repository"]
        .iter()
        .any(|end| pointer.ends_with(end))
}

proptest! {
    #![proptest_config(config(64))]

    /// Any text in any intent file gives diagnostics, never a panic or a compiler `Error`.
    #[test]
    fn arbitrary_file_text_never_panics(
        edits in prop::collection::vec(
            (any_path(), prop_oneof![
                2 => junk(),
                2 => example_path().prop_flat_map(mutated),
            ]),
            1..3,
        ),
    ) {
        let mut files = example_files();
        for (path, text) in edits {
            files.insert(path, text);
        }
        let compiled = check_compile(&files)?;
        assert_safe_paths(&compiled)?;
    }

    /// Any string in any string field of a well-formed document gives a clean compile or
    /// diagnostics, never a panic or a compiler `Error`; files stay inside the tree.
    #[test]
    fn arbitrary_field_values_never_panic(
        path in example_path(),
        pick in any::<usize>(),
        text in field_text(),
    ) {
        let mut files = example_files();
        files.insert(path.to_owned(), with_field_replaced(path, pick, |_| true, text));
        let compiled = check_compile(&files)?;
        assert_safe_paths(&compiled)?;
        // Whatever is rendered parses back.
        example_reference().objects_of(compiled.files());
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// The same for the platform's URL fields, with URL-like strings: a URL is either
    /// rejected with a diagnostic or rendered, never a compiler `Error`.
    #[test]
    fn arbitrary_platform_urls_never_panic(pick in any::<usize>(), text in url_text()) {
        let mut files = example_files();
        let platform = with_field_replaced("platform.yaml", pick, is_url_field, text);
        files.insert("platform.yaml".to_owned(), platform);
        let compiled = check_compile(&files)?;
        assert_safe_paths(&compiled)?;
        example_reference().objects_of(compiled.files());
    }
}

/// Names the compiler itself gives objects of the example, and a few reserved ones.
fn output_names() -> Vec<String> {
    let mut names: BTreeSet<String> = example_reference()
        .objects
        .values()
        .flatten()
        .flat_map(|(_, _, _, namespace, name)| [namespace.clone(), name.clone()])
        .filter(|n| !n.is_empty())
        .collect();
    names.extend(
        [
            "flux-system",
            "kube-system",
            "default",
            "vcluster",
            "monitoring",
            "hexabase-system",
        ]
        .map(str::to_owned),
    );
    names.into_iter().collect()
}

/// Which name of acme/dev gets the picked name.
#[derive(Debug, Clone, Copy)]
enum NameField {
    Project,
    Role,
    CronJob,
    Function,
    Group,
    WorkspaceGroup,
}

fn with_name(field: NameField, name: &str) -> IntentFiles {
    let mut files = example_files();
    let mut web: Project = typed("acme/dev/projects/web.yaml");
    match field {
        NameField::Project => {
            let mut api: Project = typed("acme/dev/projects/api.yaml");
            api.metadata.name = name.to_owned();
            files.remove("acme/dev/projects/api.yaml");
            files.insert(format!("acme/dev/projects/{name}.yaml"), yaml(&api));
        }
        NameField::Role => {
            web.spec.roles[0].name = name.to_owned();
            web.spec.role_bindings[0].role = Some(name.to_owned());
        }
        NameField::CronJob => web.spec.cron_jobs[0].name = name.to_owned(),
        NameField::Function => web.spec.functions[0].name = name.to_owned(),
        NameField::Group => web.spec.role_bindings[0].group = name.to_owned(),
        NameField::WorkspaceGroup => {
            let mut ws: Workspace = typed("acme/dev/workspace.yaml");
            ws.spec.cluster_role_bindings[0].group = name.to_owned();
            files.insert("acme/dev/workspace.yaml".into(), yaml(&ws));
        }
    }
    files.insert("acme/dev/projects/web.yaml".into(), yaml(&web));
    files
}

proptest! {
    #![proptest_config(config(32))]

    /// A user-chosen name equal to one the compiler uses for its own objects (a namespace, a
    /// binding, a release) is rejected with a diagnostic or rendered, never a compiler `Error`
    /// such as "rendered twice".
    #[test]
    fn names_the_compiler_uses_never_fail(
        field in prop_oneof![
            Just(NameField::Project),
            Just(NameField::Role),
            Just(NameField::CronJob),
            Just(NameField::Function),
            Just(NameField::Group),
            Just(NameField::WorkspaceGroup),
        ],
        pick in any::<prop::sample::Index>(),
    ) {
        let names = output_names();
        let name = pick.get(&names);
        let compiled = check_compile(&with_name(field, name))?;
        assert_safe_paths(&compiled)?;
        example_reference().objects_of(compiled.files());
    }
}

/// Every namespace the compiler renders into, as a project name. Found this way: a project
/// named like the workspace's host namespace (`ws-acme-dev`) passes validation, then the
/// parse-back check sees `Namespace ws-acme-dev` twice (once on the host, once in the
/// vCluster) and the compile fails with `Error::InvalidOutput` instead of a diagnostic.
#[test]
fn project_named_like_a_namespace_the_compiler_uses_never_fails() {
    let namespaces: BTreeSet<String> = example_reference()
        .objects
        .values()
        .flatten()
        .filter(|(path, ..)| path.starts_with("tenants/home/acme/dev/"))
        .map(|(_, _, _, namespace, _)| namespace.clone())
        .filter(|n| !n.is_empty())
        .collect();
    let failures: Vec<String> = namespaces
        .iter()
        .filter_map(|name| {
            try_compile_with(compiler(), &with_name(NameField::Project, name))
                .err()
                .map(|e| format!("project {name:?}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Found by `cargo fuzz run compile` and `arbitrary_platform_urls_never_panic`: a monitoring
/// URL passes the platform checks but holds a character the `verbatim` filter refuses, so the
/// compile fails with `Error::RenderFailed` instead of a diagnostic.
#[test]
fn monitoring_url_with_a_comma_gives_a_diagnostic_or_renders() {
    for url in [
        "https://metrics.example.com/api/v1/write?a=1,2",
        "https://metrics.example.com/api/v1/wri\u{e9}te",
    ] {
        let mut platform: Platform = typed("platform.yaml");
        platform.spec.monitoring.remote_write_url = Some(url.to_owned());
        let mut files = example_files();
        files.insert("platform.yaml".into(), yaml(&platform));
        let (intent, _) = intent::load(&files);
        let result = compiler().compile(&intent, &Options::default());
        assert!(result.is_ok(), "remoteWriteUrl {url:?}: {:?}", result.err());
    }
}
