//! `hb get|create|delete <kind>` and `hb audit` through the REST API.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::args::{CreateArgs, DeleteArgs, GetArgs};
use super::kinds;
use super::output::{self, Format};
use super::{connect, finish};

fn kind_of(name: &str) -> Result<&'static kinds::Kind> {
    kinds::find(name).ok_or_else(|| anyhow!("unknown kind {name:?}; one of: {}", kinds::known()))
}
/// `hb get`.
pub fn get(args: &GetArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let kind = kind_of(&args.kind)?;
        let (mut path, kind) =
            kinds::collection_path(kind, &args.target.target()).map_err(|e| anyhow!(e))?;
        if let Some(name) = &args.name {
            path = format!(
                "{path}/{}",
                kinds::segment(name).map_err(|e| anyhow!("name: {e}"))?
            );
        }
        let answer = connect(env)?.call(Method::GET, &path, None, &[])?;
        output::render(&answer.body, args.output, kind.columns).map_err(|e| anyhow!(e))
    })())
}

/// Sets `key` (dotted for nesting) to `value` in `body`.
fn set_field(body: &mut Map<String, Value>, key: &str, value: Value) -> Result<()> {
    let mut parts = key.split('.').peekable();
    let mut at = body;
    while let Some(part) = parts.next() {
        if part.is_empty() {
            bail!("--set {key}: empty key");
        }
        if parts.peek().is_none() {
            at.insert(part.to_owned(), value);
            return Ok(());
        }
        let next = at
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        at = next
            .as_object_mut()
            .ok_or_else(|| anyhow!("--set {key}: {part} is not an object"))?;
    }
    Ok(())
}

/// The body of `hb create`: the file, then the name, the typed flags and `--set`.
fn create_body(args: &CreateArgs, kind: &kinds::Kind) -> Result<Value> {
    let mut body = match &args.file {
        None => Map::new(),
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("failed to read the body")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("--file: failed to read {}", path.display()))?
            };
            let value: Value = serde_json::from_str(&text).or_else(|_| {
                serde_saphyr::from_str(&text)
                    .map_err(|e| anyhow!("--file {}: neither JSON nor YAML: {e}", path.display()))
            })?;
            match value {
                Value::Object(map) => map,
                _ => bail!("--file {}: must hold an object", path.display()),
            }
        }
    };
    body.insert(kind.name_field.to_owned(), json!(args.name));
    let display_key = if kind.plural == "organizations" {
        "name"
    } else {
        "displayName"
    };
    if kind.plural == "organizations" {
        let display = args.display_name.as_deref().unwrap_or(&args.name);
        body.entry("name").or_insert_with(|| json!(display));
    }
    for (key, value) in [
        ("plan", &args.plan),
        ("cluster", &args.cluster),
        (display_key, &args.display_name),
        ("parent", &args.parent),
        ("role", &args.role),
    ] {
        if let Some(value) = value {
            body.insert(key.to_owned(), json!(value));
        }
    }
    for pair in &args.set {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {pair}: expected KEY=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
        set_field(&mut body, key, value)?;
    }
    Ok(Value::Object(body))
}

/// What a create or delete answers, in a line: the commit when there is one.
fn done_line(verb: &str, kind: &kinds::Kind, name: &str, answer: &Value) -> String {
    let singular = kind.plural.strip_suffix('s').unwrap_or(kind.plural);
    match answer.get("commit").and_then(Value::as_str) {
        Some(commit) => format!("{singular} {name} {verb} (commit {commit})\n"),
        None if answer.get("commit").is_some() => {
            format!("{singular} {name} unchanged (nothing to commit)\n")
        }
        None => format!("{singular} {name} {verb}\n"),
    }
}

/// `hb create`.
pub fn create(args: &CreateArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let kind = kind_of(&args.kind)?;
        let (path, kind) =
            kinds::collection_path(kind, &args.target.target()).map_err(|e| anyhow!(e))?;
        let body = create_body(args, kind)?;
        let answer = connect(env)?.call(Method::POST, &path, Some(&body), &[])?;
        match args.output {
            Format::Table => Ok(done_line("created", kind, &args.name, &answer.body)),
            format => output::render(&answer.body, format, &[]).map_err(|e| anyhow!(e)),
        }
    })())
}

/// `hb delete`.
pub fn delete(args: &DeleteArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let kind = kind_of(&args.kind)?;
        let (path, kind) =
            kinds::collection_path(kind, &args.target.target()).map_err(|e| anyhow!(e))?;
        let name = kinds::segment(&args.name).map_err(|e| anyhow!("name: {e}"))?;
        let answer = connect(env)?.call(Method::DELETE, &format!("{path}/{name}"), None, &[])?;
        match args.output {
            Format::Table => Ok(done_line("deleted", kind, &args.name, &answer.body)),
            format => output::render(&answer.body, format, &[]).map_err(|e| anyhow!(e)),
        }
    })())
}

/// `hb audit` against the server (no `--repo`): `GET /api/v1/orgs/{org}/audit`.
pub fn audit(args: &crate::cli::AuditArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let org = args
            .org
            .as_deref()
            .ok_or_else(|| anyhow!("--org is needed against the server (or give --repo)"))?;
        let limit = args.limit.map(|l| l.to_string());
        let query: Vec<String> = [
            ("workspace", args.workspace.as_deref()),
            ("actor", args.actor.as_deref()),
            ("action", args.action.as_deref()),
            ("since", args.since.as_deref()),
            ("until", args.until.as_deref()),
            ("limit", limit.as_deref()),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some(format!("{key}={}", kinds::encode(value?))))
        .collect();
        let query = query.join("&");
        let org = kinds::segment(org).map_err(|e| anyhow!("--org: {e}"))?;
        let path = if query.is_empty() {
            format!("/api/v1/orgs/{org}/audit")
        } else {
            format!("/api/v1/orgs/{org}/audit?{query}")
        };
        let answer = connect(env)?.call(Method::GET, &path, None, &[])?;
        if args.json {
            return output::render(&answer.body, Format::Json, &[]).map_err(|e| anyhow!(e));
        }
        let entries: Vec<crate::service::audit::AuditEntry> =
            serde_json::from_value(answer.body).context("the server's audit answer")?;
        Ok(crate::service::audit::render_table(&entries))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::args::TargetArgs;

    #[test]
    fn create_bodies_take_the_file_the_name_the_flags_and_set() {
        let dir = std::env::temp_dir().join(format!("hb-client-body-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cron.yaml");
        std::fs::write(
            &file,
            "schedule: '*/5 * * * *'\nimage: busybox\nname: ignored\n",
        )
        .unwrap();
        let args = CreateArgs {
            kind: "cronjobs".into(),
            name: "tick".into(),
            target: TargetArgs::default(),
            file: Some(file),
            set: vec!["suspend=true".into(), "resources.cpu=250m".into()],
            plan: None,
            cluster: None,
            display_name: Some("Tick".into()),
            parent: None,
            role: None,
            output: Format::Table,
        };
        let body = create_body(&args, kinds::find("cronjob").unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "schedule": "*/5 * * * *",
                "image": "busybox",
                "name": "tick",
                "displayName": "Tick",
                "suspend": true,
                "resources": {"cpu": "250m"}
            })
        );
        let org = CreateArgs {
            kind: "org".into(),
            name: "acme".into(),
            file: None,
            set: Vec::new(),
            display_name: None,
            ..args
        };
        let body = create_body(&org, kinds::find("org").unwrap()).unwrap();
        assert_eq!(body, json!({"slug": "acme", "name": "acme"}));
        let bad = CreateArgs {
            set: vec!["novalue".into()],
            ..org
        };
        let error = create_body(&bad, kinds::find("org").unwrap()).unwrap_err();
        assert!(error.to_string().contains("--set novalue"), "{error}");
    }
}
