//! The minijinja environment, the YAML-safe formatter, and file placement.

mod scan;
mod yaml;

use std::collections::BTreeMap;

use minijinja::value::ValueKind;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use crate::Error;
use crate::catalog::Catalog;
use crate::plan::WorkspaceModel;

pub(crate) use yaml::{check_documents, quote};

/// A template value from anything serializable.
pub(crate) fn val<T: serde::Serialize>(value: &T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// Templates compiled once, rendered many times.
pub(crate) struct Renderer {
    env: Environment<'static>,
}

impl Renderer {
    pub(crate) fn new(catalog: &Catalog) -> Result<Self, Error> {
        let mut env = Environment::new();
        // SemiStrict: a missing value may be tested in `if`, but printing or iterating it fails.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .keep_trailing_newline(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        // Auto-escaping marks template output as safe text; the formatter below does all quoting.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Custom("yaml".into()));
        env.set_formatter(|out, _state, value| {
            // Template text and safe strings (`labels`, `verbatim`) are trusted; every value is written as a
            // double-quoted YAML scalar, so no value can add a line, a key or a document.
            if value.is_safe() {
                return out
                    .write_str(value.as_str().unwrap_or_default())
                    .map_err(Into::into);
            }
            let mut buf = String::new();
            match value.kind() {
                ValueKind::String => quote(value.as_str().unwrap_or_default(), &mut buf),
                ValueKind::Number | ValueKind::Bool => buf.push_str(&value.to_string()),
                kind => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "refusing to print a value of kind {kind}: templates print scalars only"
                        ),
                    ));
                }
            }
            out.write_str(&buf).map_err(Into::into)
        });
        env.add_filter("verbatim", verbatim);
        env.add_function("labels", labels);
        for (name, source) in &catalog.templates {
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|source| Error::TemplateInvalid {
                    name: name.clone(),
                    source: Box::new(source),
                })?;
        }
        Ok(Self { env })
    }

    pub(crate) fn render(&self, name: &str, ctx: &Value) -> Result<String, Error> {
        let template = self
            .env
            .get_template(name)
            .map_err(|_| Error::TemplateNotFound {
                name: name.to_owned(),
            })?;
        let text = template.render(ctx).map_err(|source| Error::RenderFailed {
            template: name.to_owned(),
            source: Box::new(source),
        })?;
        if name.ends_with(".yaml.j2") {
            Ok(normalize(&text))
        } else {
            Ok(format!("{}\n", text.trim_end()))
        }
    }
}

/// The labels every object of a workspace carries, plus `extra`, as `metadata.labels` lines
/// (four spaces in). A function rather than a template macro: it runs for every object.
fn labels(ws: &Value, extra: Option<&Value>) -> Result<Value, minijinja::Error> {
    let field = |name: &str| -> Result<String, minijinja::Error> {
        ws.get_attr(name)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("ws.{name} is not a string"),
                )
            })
    };
    let mut out = String::with_capacity(256);
    out.push_str("    app.kubernetes.io/managed-by: hexabase\n");
    for (key, name) in [
        ("hexabase.ai/org", "org"),
        ("hexabase.ai/workspace", "name"),
        ("toolkit.fluxcd.io/tenant", "tenant"),
    ] {
        out.push_str("    ");
        out.push_str(key);
        out.push_str(": ");
        quote(&field(name)?, &mut out);
        out.push('\n');
    }
    if let Some(extra) = extra.filter(|e| !e.is_undefined() && !e.is_none()) {
        for key in extra.try_iter()? {
            let value = extra.get_item(&key)?;
            let (Some(key), Some(value)) = (key.as_str(), value.as_str()) else {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "labels must be strings",
                ));
            };
            out.push_str("    ");
            quote(key, &mut out);
            out.push_str(": ");
            quote(value, &mut out);
            out.push('\n');
        }
    }
    Ok(Value::from_safe_string(out))
}

/// Writes a string unquoted, for block scalars; only characters that cannot break out of one.
fn verbatim(value: &str) -> Result<Value, minijinja::Error> {
    let ok = value.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'.' | b'_' | b':' | b'/' | b'@' | b'+' | b'=' | b'?' | b'&' | b'%' | b'~' | b'-'
            )
    });
    if ok {
        Ok(Value::from_safe_string(value.to_owned()))
    } else {
        Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("{value:?} cannot be written verbatim"),
        ))
    }
}

/// No blank lines, no trailing spaces, `\n` endings and one trailing newline.
/// Blank lines carry no meaning in what we render (block scalars hold none), and dropping
/// them keeps templates readable without whitespace-control noise.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for line in text.lines() {
        let line = line.trim_end();
        if !line.is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Renders every file of one workspace: `tenants/<cluster>/<org>/<ws>/...`.
pub(crate) fn workspace(
    renderer: &Renderer,
    platform: &Value,
    ws: &WorkspaceModel,
) -> Result<BTreeMap<String, String>, Error> {
    let root = workspace_root(ws);
    // Converted once: a template value clones by reference count.
    let ws_value = val(ws);
    let ctx = minijinja::context! {
        ws => ws_value.clone(),
        platform => platform.clone(),
        images => val(&crate::images::PLATFORM_IMAGES),
    };
    let mut files = BTreeMap::new();
    let mut host = vec![
        "identity.yaml",
        "monitoring.yaml",
        "namespace.yaml",
        "network.yaml",
        "sources.yaml",
        "sync.yaml",
        "vcluster.yaml",
    ];
    if !ws.functions.is_empty() {
        host.push("functions.yaml");
    }
    // The sync-git-credentials policy is rendered only with a tenant Git credential; its copy
    // in this namespace is the only Secret Kyverno may write here.
    if platform
        .get_attr("tenant_git_secret")
        .is_ok_and(|v| !v.is_undefined() && !v.is_none())
    {
        host.push("git-credentials.yaml");
    }
    host.sort_unstable();
    files.insert(
        format!("{root}/flux.yaml"),
        renderer.render("workspace/flux.yaml.j2", &ctx)?,
    );
    for file in &host {
        let text = renderer.render(&format!("workspace/{file}.j2"), &ctx)?;
        files.insert(format!("{root}/host/{file}"), text);
    }
    files.insert(
        format!("{root}/host/kustomization.yaml"),
        kustomization(renderer, &host)?,
    );
    let mut inside = vec!["rbac.yaml".to_owned()];
    files.insert(
        format!("{root}/inside/rbac.yaml"),
        renderer.render("workspace/rbac.yaml.j2", &ctx)?,
    );
    for project in &ws.projects {
        let ctx = minijinja::context! {
            ws => ws_value.clone(),
            p => val(project),
        };
        let file = format!("projects/{}.yaml", project.name);
        files.insert(
            format!("{root}/inside/{file}"),
            renderer.render("workspace/project.yaml.j2", &ctx)?,
        );
        inside.push(file);
    }
    inside.sort_unstable();
    files.insert(
        format!("{root}/inside/kustomization.yaml"),
        kustomization(renderer, &inside)?,
    );
    for path in files.keys() {
        let escapes = !path.starts_with(&format!("{root}/"))
            || path
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..");
        if escapes {
            return Err(Error::PathEscapes {
                path: path.clone(),
                root,
            });
        }
    }
    Ok(files)
}

/// The workspace's folder in the rendered tree.
pub(crate) fn workspace_root(ws: &WorkspaceModel) -> String {
    format!("tenants/{}/{}/{}", ws.cluster, ws.org, ws.name)
}

/// A `kustomization.yaml` listing `resources` in order.
pub(crate) fn kustomization<S: AsRef<str>>(
    renderer: &Renderer,
    resources: &[S],
) -> Result<String, Error> {
    let files: Vec<&str> = resources.iter().map(AsRef::as_ref).collect();
    renderer.render(
        "kustomization.yaml.j2",
        &minijinja::context! { files => val(&files) },
    )
}
