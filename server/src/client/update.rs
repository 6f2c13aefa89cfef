//! `hb apply` and `hb edit`, in the manner of kubectl: the new object from a file (`apply`)
//! or from the current one opened in `$EDITOR` (`edit`), sent with `PUT`; and
//! `hb accept-invitation`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::args::{AcceptArgs, ApplyArgs, EditArgs};
use super::kinds::{self, Kind, Update};
use super::output::{self, Format};
use super::resources::{done_line, kind_of, parse_object, read_body, set_all};
use super::{connect, finish};

/// The path `PUT` changes `kind` named `name` at, and the object's path for `GET`.
fn paths(
    kind: &'static Kind,
    name: Option<&str>,
    target: &kinds::Target,
) -> Result<(String, String)> {
    let (collection, kind) = kinds::collection_path(kind, target).map_err(|e| anyhow!(e))?;
    let one = |name: Option<&str>| -> Result<String> {
        let name = name.ok_or_else(|| anyhow!("{} need a name", kind.plural))?;
        let name = kinds::segment(name).map_err(|e| anyhow!("name: {e}"))?;
        Ok(format!("{collection}/{name}"))
    };
    match kind.update {
        Update::None => bail!(
            "{} cannot be changed in place: delete and create them again",
            kind.plural
        ),
        Update::Item => {
            let path = one(name)?;
            Ok((path.clone(), path))
        }
        Update::Sub(suffix) => {
            let path = one(name)?;
            Ok((format!("{path}/{suffix}"), path))
        }
        Update::Object => Ok((collection.clone(), collection)),
    }
}

/// The kind a file's document names (`kind: Platform`), for `hb apply -f` without a kind.
fn kind_of_document(body: &Map<String, Value>) -> Result<&'static Kind> {
    let named = body.get("kind").and_then(Value::as_str).ok_or_else(|| {
        anyhow!("name the kind (hb apply <kind> -f <file>) or give the file a `kind`")
    })?;
    kind_of(named)
}

/// A whole intent document (`apiVersion`, `kind`, `spec`) is taken for its `spec`.
fn unwrap_document(mut body: Map<String, Value>) -> Map<String, Value> {
    if body.contains_key("apiVersion")
        && body.contains_key("kind")
        && let Some(Value::Object(spec)) = body.remove("spec")
    {
        return spec;
    }
    body
}

/// `hb apply`.
pub fn apply(args: &ApplyArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        if args.file.is_none() && args.set.is_empty() {
            bail!("give the new object with -f <file> or --set KEY=VALUE");
        }
        let file = read_body(args.file.as_deref())?;
        let kind = match &args.kind {
            Some(kind) => kind_of(kind)?,
            None => kind_of_document(&file)?,
        };
        let mut body = unwrap_document(file);
        set_all(&mut body, &args.set)?;
        let name = args.name.clone().or_else(|| {
            (!kind.name_field.is_empty())
                .then(|| body.get(kind.name_field).and_then(Value::as_str))
                .flatten()
                .map(str::to_owned)
        });
        let (path, _) = paths(kind, name.as_deref(), &args.target.target())?;
        let answer = connect(env)?.call(Method::PUT, &path, Some(&Value::Object(body)), &[])?;
        let shown = name.as_deref().unwrap_or(kind.plural);
        match args.output {
            Format::Table => Ok(done_line("configured", kind, shown, &answer.body)),
            format => output::render(&answer.body, format, &[]).map_err(|e| anyhow!(e)),
        }
    })())
}

/// What `hb edit` opens: the fields of `current` that `PUT` takes back.
fn editable(kind: &Kind, current: Value) -> Value {
    match (kind.update, kind.editable, current) {
        // One object whose update takes one of its fields (the platform's `spec`).
        (Update::Object, [key], Value::Object(mut map)) => map.remove(*key).unwrap_or(Value::Null),
        (_, [], current) => current,
        (_, keys, Value::Object(map)) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .collect(),
        ),
        (_, _, current) => current,
    }
}

const EDIT_HEADER: &str = "# Edit the object below; lines starting with '#' are ignored, and an \
                           unchanged file changes nothing.\n";

/// `hb edit`: the object in `$VISUAL` or `$EDITOR` (else `vi`), sent back when changed. A
/// refused change keeps the edited file and names it, so nothing typed is lost.
pub fn edit(args: &EditArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let kind = kind_of(&args.kind)?;
        let (put, get) = paths(kind, args.name.as_deref(), &args.target.target())?;
        let client = connect(env)?;
        let current = client.call(Method::GET, &get, None, &[])?.body;
        let before = editable(kind, current);
        let text = format!(
            "{EDIT_HEADER}{}",
            output::render(&before, Format::Yaml, &[]).map_err(|e| anyhow!(e))?
        );
        let dir = std::env::temp_dir().join(format!("hb-edit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).context("failed to make a folder for the edit")?;
        let file = dir.join(format!("{}.yaml", kind.plural));
        std::fs::write(&file, &text).context("failed to write the file to edit")?;
        let editor = ["VISUAL", "EDITOR"]
            .iter()
            .find_map(|k| env.get(*k).filter(|v| !v.trim().is_empty()))
            .map_or("vi", String::as_str);
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("hb-edit")
            .arg(&file)
            .status()
            .with_context(|| format!("failed to run the editor {editor:?}"))?;
        if !status.success() {
            bail!("the editor {editor:?} failed ({status}); nothing changed");
        }
        let edited = std::fs::read_to_string(&file).context("failed to read the edited file")?;
        let body: String = edited
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let after = Value::Object(
            parse_object(&body)
                .map_err(|e| anyhow!("the edited file ({}): {e}", file.display()))?,
        );
        if after == before {
            let _ = std::fs::remove_dir_all(&dir);
            return Ok("Edit cancelled, no changes made.\n".to_owned());
        }
        let answer = client
            .call(Method::PUT, &put, Some(&after), &[])
            .map_err(|e| anyhow!(e).context(format!("the edit is kept in {}", file.display())))?;
        let _ = std::fs::remove_dir_all(&dir);
        let shown = args.name.as_deref().unwrap_or(kind.plural);
        match args.output {
            Format::Table => Ok(done_line("edited", kind, shown, &answer.body)),
            format => output::render(&answer.body, format, &[]).map_err(|e| anyhow!(e)),
        }
    })())
}

/// `hb accept-invitation`: joins the organization the invitation is for.
pub fn accept_invitation(args: &AcceptArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let token = kinds::segment(&args.token).map_err(|e| anyhow!("token: {e}"))?;
        let path = format!("/api/v1/invitations/{token}/accept");
        let answer = connect(env)?.call(Method::POST, &path, Some(&json!({})), &[])?;
        match args.output {
            Format::Table => {
                let slug = answer.body["slug"].as_str().unwrap_or("?");
                let role = answer.body["role"].as_str().unwrap_or("?");
                Ok(format!("joined organization {slug} as {role}\n"))
            }
            format => output::render(&answer.body, format, &[]).map_err(|e| anyhow!(e)),
        }
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_go_where_the_api_takes_them() {
        let t = kinds::Target {
            org: Some("acme".into()),
            workspace: Some("dev".into()),
            project: Some("web".into()),
            group: None,
        };
        let put = |kind: &str, name: Option<&str>| {
            paths(kinds::find(kind).unwrap(), name, &t).map(|p| p.0)
        };
        assert_eq!(put("platform", None).unwrap(), "/api/v1/platform");
        assert_eq!(put("plan", Some("big")).unwrap(), "/api/v1/plans/big");
        assert_eq!(
            put("cluster", Some("home")).unwrap(),
            "/api/v1/clusters/home"
        );
        assert_eq!(
            put("ws", Some("dev")).unwrap(),
            "/api/v1/orgs/acme/workspaces/dev/plan"
        );
        assert_eq!(
            put("quota", None).unwrap(),
            "/api/v1/orgs/acme/workspaces/dev/projects/web/quota"
        );
        assert_eq!(
            put("cj", Some("tick")).unwrap(),
            "/api/v1/orgs/acme/workspaces/dev/projects/web/cronjobs/tick"
        );
        assert!(put("orgs", Some("acme")).is_err());
        assert!(put("roles", None).is_err());
    }

    #[test]
    fn edits_open_what_put_takes() {
        let platform = kinds::find("platform").unwrap();
        let view = json!({"spec": {"git": {}}, "placeholders": ["spec.git.url"], "commit": "c"});
        assert_eq!(editable(platform, view), json!({"git": {}}));
        let group = kinds::find("group").unwrap();
        let view = json!({"name": "ops", "parent": "WSUsers", "members": 2});
        assert_eq!(editable(group, view), json!({"parent": "WSUsers"}));
        let document = parse_object("apiVersion: v\nkind: Platform\nspec:\n  a: 1\n").unwrap();
        assert_eq!(kind_of_document(&document).unwrap().plural, "platform");
        assert_eq!(Value::Object(unwrap_document(document)), json!({"a": 1}));
    }
}
