//! The layering rules of `server/src`, checked by parsing every file with `syn`.
//!
//! A *module* here is a file: `lib.rs` is the crate root, `a.rs` and `a/mod.rs` are `a`, and
//! `a/b.rs` is `a::b`. Inline `mod x { .. }` blocks belong to the file they are written in.
//! `main.rs` is the `hb` binary, a crate of its own: it is held to the crate and size rules but
//! is not a node of the module graph.
//!
//! The module graph has an edge from a file to every module a path in it names: `use` trees,
//! paths in code and types, and `crate::`/`super::`/`self::` sequences inside macro
//! invocations. A path is resolved from the file's own position (`super::` climbs, `self::` and
//! the names of the file's own child modules stay), and it names the longest module prefix
//! that is a file: `crate::service::apply::Applied` is an edge to `service::apply`.
//! A child naming its parent (`super::Error`) is an edge.
//! A parent naming its own descendants is composition, not dependency: `mod b;`, `pub use
//! b::Thing` and calls into `b::` from `a/mod.rs` make no edge, so a folder whose children share
//! the parent's error type is not a cycle.
//!
//! Test code (`#[cfg(test)]` items, and the files of modules declared `#[cfg(test)] mod x;`)
//! is not part of the architecture: it may reach across the layers to build its fixtures, and
//! it does not count towards a file's size.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Files with more non-test lines than this need a `//! Size: <reason>` line at their top.
pub(crate) const SIZE_LIMIT: usize = 600;

/// Folders whose modules must not import a front door.
const BELOW_HTTP: [&str; 3] = ["service", "store", "gitops"];

/// The front doors: the API (`http`) and the web console (`console`).
const FRONT_DOORS: [&str; 2] = ["http", "console"];

/// External crates each confined to one folder of `server/src`.
const CONFINED: [(&str, &str); 2] = [("git2", "gitops"), ("sqlx", "store")];

/// One broken rule, in plain words, with the file and line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Violation {
    /// A file did not parse as Rust.
    Unparsable { file: String, reason: String },
    /// A module below `http` names `crate::http`.
    ImportsHttp {
        file: String,
        line: usize,
        path: String,
    },
    /// A confined crate is named outside its folder.
    Confined {
        file: String,
        line: usize,
        krate: String,
        home: String,
        path: String,
    },
    /// Modules that depend on each other in a loop; `steps` is one loop, each step with the
    /// place that makes the edge.
    Cycle {
        modules: Vec<String>,
        steps: Vec<String>,
    },
    /// A file over the size limit with no reason written at its top.
    TooLong { file: String, lines: usize },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Unparsable { file, reason } => {
                write!(f, "{file}: does not parse as Rust: {reason}")
            }
            Violation::ImportsHttp { file, line, path } => write!(
                f,
                "{file}:{line}: names `{path}`, but service/, store/ and gitops/ must not import \
                 crate::http or crate::console (move what they need below them, or map it there)"
            ),
            Violation::Confined {
                file,
                line,
                krate,
                home,
                path,
            } => write!(
                f,
                "{file}:{line}: names `{path}`, but only server/src/{home}/ may use {krate} \
                 (add what you need to {home}/)"
            ),
            Violation::Cycle { modules, steps } => write!(
                f,
                "import cycle between {} modules ({}):\n    {}",
                modules.len(),
                modules.join(", "),
                steps.join("\n    ")
            ),
            Violation::TooLong { file, lines } => write!(
                f,
                "{file}: {lines} lines of non-test code (more than {SIZE_LIMIT}); split it by \
                 concern, or say why at its top with a `//! Size: <reason>` line"
            ),
        }
    }
}

/// A module path such as `["service", "apply"]`; the crate root is empty.
type ModPath = Vec<String>;

fn show(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

/// Where a path was written and what it said.
#[derive(Debug, Clone)]
struct Mention {
    /// The path resolved from the crate root, when it starts inside the crate.
    absolute: Option<Vec<String>>,
    /// The path as written.
    written: String,
    line: usize,
}

struct SourceFile {
    /// Relative to the checked folder's parent, e.g. `src/service/apply.rs`.
    shown: String,
    /// `None` for `main.rs` (a crate of its own).
    module: Option<ModPath>,
    mentions: Vec<Mention>,
    non_test_lines: usize,
    has_size_reason: bool,
    /// Modules declared here as `#[cfg(test)] mod x;`: their files are test code.
    test_modules: Vec<ModPath>,
}

/// Checks every `.rs` file under `src` (a crate's `src` folder) and returns every violation,
/// sorted. `label` prefixes the file names in the messages, e.g. `server/src`.
pub(crate) fn check(src: &Path, label: &str) -> Vec<Violation> {
    let mut files = Vec::new();
    collect(src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut parsed = Vec::new();
    for path in files {
        let relative = path.strip_prefix(src).expect("collected under src");
        let shown = format!("{label}/{}", relative.display());
        let module = module_of(relative);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) => {
                violations.push(Violation::Unparsable {
                    file: shown,
                    reason: err.to_string(),
                });
                continue;
            }
        };
        match parse(&text, module.clone()) {
            Ok(found) => parsed.push(SourceFile {
                shown,
                module,
                mentions: found.mentions,
                non_test_lines: found.non_test_lines,
                has_size_reason: found.has_size_reason,
                test_modules: found.test_modules,
            }),
            Err(err) => violations.push(Violation::Unparsable {
                file: shown,
                reason: format!("line {}: {err}", err.span().start().line),
            }),
        }
    }
    // Files of modules declared `#[cfg(test)] mod x;` (and their children) are test code.
    let test_modules: Vec<ModPath> = parsed
        .iter()
        .flat_map(|f| f.test_modules.iter().cloned())
        .collect();
    parsed.retain(|file| {
        file.module
            .as_ref()
            .is_none_or(|m| !test_modules.iter().any(|t| m.starts_with(t)))
    });
    let modules: BTreeSet<ModPath> = parsed.iter().filter_map(|f| f.module.clone()).collect();

    // Edges of the module graph, each with the first place that makes it.
    let mut edges: BTreeMap<ModPath, BTreeMap<ModPath, String>> = BTreeMap::new();
    for file in &parsed {
        let folder = file.module.as_ref().and_then(|m| m.first().cloned());
        for mention in &file.mentions {
            let target = mention
                .absolute
                .as_ref()
                .map(|abs| longest_module(&modules, abs));
            if let (Some(folder), Some(target)) = (&folder, &target)
                && BELOW_HTTP.contains(&folder.as_str())
                && target
                    .first()
                    .is_some_and(|door| FRONT_DOORS.contains(&door.as_str()))
            {
                violations.push(Violation::ImportsHttp {
                    file: file.shown.clone(),
                    line: mention.line,
                    path: mention.written.clone(),
                });
            }
            for (krate, home) in CONFINED {
                let names_it = mention.written.split("::").any(|segment| segment == krate);
                if names_it && folder.as_deref() != Some(home) {
                    violations.push(Violation::Confined {
                        file: file.shown.clone(),
                        line: mention.line,
                        krate: krate.to_string(),
                        home: home.to_string(),
                        path: mention.written.clone(),
                    });
                }
            }
            if let (Some(from), Some(target)) = (&file.module, target)
                && !target.starts_with(from)
            {
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(target)
                    .or_insert_with(|| {
                        format!(
                            "{}:{} names `{}`",
                            file.shown, mention.line, mention.written
                        )
                    });
            }
        }
        if file.non_test_lines > SIZE_LIMIT && !file.has_size_reason {
            violations.push(Violation::TooLong {
                file: file.shown.clone(),
                lines: file.non_test_lines,
            });
        }
    }
    violations.extend(cycles(&modules, &edges));
    violations.sort();
    violations.dedup();
    violations
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `lib.rs` -> root, `a.rs` and `a/mod.rs` -> `a`, `a/b.rs` -> `a::b`; `main.rs` -> none.
fn module_of(relative: &Path) -> Option<ModPath> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file has a name");
    if parts.is_empty() && last == "main.rs" {
        return None;
    }
    if !(parts.is_empty() && last == "lib.rs") && last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    Some(parts)
}

/// The longest prefix of `path` that is a module (the root at least).
fn longest_module(modules: &BTreeSet<ModPath>, path: &[String]) -> ModPath {
    (0..=path.len())
        .rev()
        .map(|len| path[..len].to_vec())
        .find(|prefix| modules.contains(prefix))
        .unwrap_or_default()
}

/// Every strongly connected component with more than one module, with one shortest loop.
fn cycles(
    modules: &BTreeSet<ModPath>,
    edges: &BTreeMap<ModPath, BTreeMap<ModPath, String>>,
) -> Vec<Violation> {
    let nodes: Vec<&ModPath> = modules.iter().collect();
    let index: BTreeMap<&ModPath, usize> = nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let successors: Vec<Vec<usize>> = nodes
        .iter()
        .map(|m| {
            edges
                .get(*m)
                .map(|to| to.keys().filter_map(|t| index.get(t).copied()).collect())
                .unwrap_or_default()
        })
        .collect();
    let mut out = Vec::new();
    for component in strongly_connected(&successors) {
        if component.len() < 2 {
            continue;
        }
        let members: BTreeSet<usize> = component.iter().copied().collect();
        let start = *members.first().expect("not empty");
        // Shortest way back to `start` inside the component (breadth first).
        let mut previous: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        'search: while let Some(node) = queue.pop_front() {
            for &next in &successors[node] {
                if !members.contains(&next) {
                    continue;
                }
                if next == start {
                    last = Some(node);
                    break 'search;
                }
                if let std::collections::btree_map::Entry::Vacant(slot) = previous.entry(next) {
                    slot.insert(node);
                    queue.push_back(next);
                }
            }
        }
        let mut path = vec![last.expect("a component of two or more has a loop")];
        while let Some(&before) = previous.get(path.last().expect("not empty")) {
            path.push(before);
        }
        path.reverse();
        if path[0] != start {
            path.insert(0, start);
        }
        path.push(start);
        let steps = path
            .windows(2)
            .map(|pair| {
                let (from, to) = (nodes[pair[0]], nodes[pair[1]]);
                format!("{} -> {}: {}", show(from), show(to), edges[from][to])
            })
            .collect();
        let mut names: Vec<String> = members.iter().map(|&i| show(nodes[i])).collect();
        names.sort();
        out.push(Violation::Cycle {
            modules: names,
            steps,
        });
    }
    out
}

/// Tarjan's algorithm, iteratively.
fn strongly_connected(successors: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let count = successors.len();
    let mut index = vec![usize::MAX; count];
    let mut low = vec![0; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut next_index = 0;
    let mut components = Vec::new();
    for root in 0..count {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (node, ref mut child)) = work.last_mut() {
            if let Some(&next) = successors[node].get(*child) {
                *child += 1;
                if index[next] == usize::MAX {
                    index[next] = next_index;
                    low[next] = next_index;
                    next_index += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    work.push((next, 0));
                } else if on_stack[next] {
                    low[node] = low[node].min(index[next]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                loop {
                    let member = stack.pop().expect("the node is on the stack");
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

/// What one file says, as far as the rules care.
struct Parsed {
    mentions: Vec<Mention>,
    non_test_lines: usize,
    has_size_reason: bool,
    test_modules: Vec<ModPath>,
}

/// Parses one file: what it names, its lines outside test items, whether it gives a reason
/// for its size, and which of its child modules are test code.
fn parse(text: &str, module: Option<ModPath>) -> syn::Result<Parsed> {
    let file = syn::parse_file(text)?;
    let has_size_reason = file.attrs.iter().filter_map(doc_line).any(|line| {
        line.trim()
            .strip_prefix("Size:")
            .is_some_and(|reason| !reason.trim().is_empty())
    });
    let mut visitor = Names {
        file_module: module.unwrap_or_default(),
        inline: Vec::new(),
        children: vec![BTreeSet::new()],
        mentions: Vec::new(),
        test_lines: BTreeSet::new(),
        test_modules: Vec::new(),
    };
    visitor.children[0] = child_modules(&file.items);
    visitor.visit_file(&file);
    let total = text.lines().count();
    Ok(Parsed {
        mentions: visitor.mentions,
        non_test_lines: total - visitor.test_lines.len(),
        has_size_reason,
        test_modules: visitor.test_modules,
    })
}

fn doc_line(attr: &syn::Attribute) -> Option<String> {
    if !attr.path().is_ident("doc") {
        return None;
    }
    let syn::Meta::NameValue(value) = &attr.meta else {
        return None;
    };
    match &value.value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(text),
            ..
        }) => Some(text.value()),
        _ => None,
    }
}

/// `#[cfg(test)]` or `#[cfg(all(test, ..))]`; `#[cfg(not(test))]` is not test code.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        if !attr.path().is_ident("cfg") {
            return false;
        }
        let Ok(list) = attr.meta.require_list() else {
            return false;
        };
        let tokens: String = list
            .tokens
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        tokens == "test"
            || tokens
                .strip_prefix("all(")
                .and_then(|rest| rest.strip_suffix(')'))
                .is_some_and(|inner| inner.split(',').any(|part| part == "test"))
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item;
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// The names of the modules declared directly among `items` (`mod a;` or `mod a { .. }`).
fn child_modules(items: &[syn::Item]) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(module) if !is_test_only(&module.attrs) => {
                Some(module.ident.to_string())
            }
            _ => None,
        })
        .collect()
}

struct Names {
    file_module: ModPath,
    /// Inline `mod x { .. }` blocks we are inside.
    inline: Vec<String>,
    /// Child modules declared in each scope (the file, then each inline block).
    children: Vec<BTreeSet<String>>,
    mentions: Vec<Mention>,
    test_lines: BTreeSet<usize>,
    test_modules: Vec<ModPath>,
}

impl Names {
    fn here(&self) -> ModPath {
        let mut here = self.file_module.clone();
        here.extend(self.inline.iter().cloned());
        here
    }

    fn mention(&mut self, segments: &[String], line: usize) {
        if segments.is_empty() {
            return;
        }
        let written = segments.join("::");
        let absolute = self.resolve(segments);
        self.mentions.push(Mention {
            absolute,
            written,
            line,
        });
    }

    /// The path from the crate root, or `None` for paths outside the crate (other crates,
    /// local items, generics).
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments[0].as_str();
        match first {
            "crate" => Some(segments[1..].to_vec()),
            "self" => {
                let mut path = self.here();
                path.extend(segments[1..].iter().cloned());
                Some(path)
            }
            "super" => {
                let mut path = self.here();
                let mut rest = segments;
                while rest.first().map(String::as_str) == Some("super") {
                    path.pop()?;
                    rest = &rest[1..];
                }
                path.extend(rest.iter().cloned());
                Some(path)
            }
            _ if self
                .children
                .last()
                .is_some_and(|scope| scope.contains(first)) =>
            {
                let mut path = self.here();
                path.extend(segments.iter().cloned());
                Some(path)
            }
            _ => None,
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                let line = name.ident.span().start().line;
                let mut full = prefix.clone();
                if name.ident != "self" {
                    full.push(name.ident.to_string());
                }
                self.mention(&full, line);
            }
            syn::UseTree::Rename(rename) => {
                let line = rename.ident.span().start().line;
                let mut full = prefix.clone();
                if rename.ident != "self" {
                    full.push(rename.ident.to_string());
                }
                self.mention(&full, line);
            }
            syn::UseTree::Glob(glob) => {
                self.mention(prefix, glob.star_token.spans[0].start().line);
            }
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    /// Paths inside macro invocations, which syn leaves as tokens: every `a::b::c` sequence.
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(group) => {
                    self.tokens(group.stream());
                    i += 1;
                }
                TokenTree::Ident(ident) => {
                    let line = ident.span().start().line;
                    let mut segments = vec![ident.to_string()];
                    let mut j = i + 1;
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (trees.get(j), trees.get(j + 1), trees.get(j + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if segments.len() > 1 {
                        self.mention(&segments, line);
                    }
                    i = j;
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Names {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_test_only(item_attrs(item)) {
            let span = syn::spanned::Spanned::span(item);
            // The attributes are part of the item's span.
            self.test_lines.extend(span.start().line..=span.end().line);
            if let syn::Item::Mod(module) = item {
                let mut path = self.here();
                path.push(module.ident.to_string());
                self.test_modules.push(path);
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        let Some((_, items)) = &module.content else {
            return;
        };
        self.inline.push(module.ident.to_string());
        self.children.push(child_modules(items));
        for item in items {
            self.visit_item(item);
        }
        self.children.pop();
        self.inline.pop();
    }

    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        self.mention(&[item.ident.to_string()], item.ident.span().start().line);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        // `use ::git2::Oid` names an external crate like `use git2::Oid`.
        let mut prefix = Vec::new();
        self.use_tree(&mut prefix, &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect();
        let line = path
            .segments
            .first()
            .map_or(0, |s| s.ident.span().start().line);
        self.mention(&segments, line);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.tokens(mac.tokens.clone());
    }

    fn visit_meta_list(&mut self, list: &'ast syn::MetaList) {
        // `#[derive(sqlx::FromRow)]`: the derive's arguments are tokens.
        self.visit_path(&list.path);
        self.tokens(list.tokens.clone());
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if is_test_only(&item.attrs) {
            let span = syn::spanned::Spanned::span(item);
            self.test_lines.extend(span.start().line..=span.end().line);
            return;
        }
        syn::visit::visit_impl_item_fn(self, item);
    }
}
