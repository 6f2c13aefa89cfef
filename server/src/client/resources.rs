//! `hb get|create|delete <kind>` and `hb audit` through the REST API.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::args::{CreateArgs, DeleteArgs, GetArgs};
use super::kinds;
use super::output::{self, Format};
use super::{connect, finish};

pub(super) fn kind_of(name: &str) -> Result<&'static kinds::Kind> {
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
        match args.output {
            Format::Table if kind.columns.is_empty() => describe(&answer.body),
            format => output::render(&answer.body, format, kind.columns).map_err(|e| anyhow!(e)),
        }
    })())
}

/// One object with no table columns (the platform, billing), as YAML; the platform's
/// `placeholders` are listed after it, as what to replace.
fn describe(body: &Value) -> Result<String> {
    let mut shown = body.clone();
    let placeholders = shown
        .as_object_mut()
        .and_then(|o| o.remove("placeholders"))
        .and_then(|p| p.as_array().cloned())
        .unwrap_or_default();
    let mut text = output::render(&shown, Format::Yaml, &[]).map_err(|e| anyhow!(e))?;
    if !placeholders.is_empty() {
        text.push_str(
            "# Placeholders to replace (hb edit platform):
",
        );
        for field in placeholders.iter().filter_map(Value::as_str) {
            text.push_str(&format!("#   {field}\n"));
        }
    }
    Ok(text)
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

/// The object in the file `path` (`-`: standard input), JSON or YAML.
pub(super) fn read_body(path: Option<&Path>) -> Result<Map<String, Value>> {
    let Some(path) = path else {
        return Ok(Map::new());
    };
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("failed to read the body")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("--file: failed to read {}", path.display()))?
    };
    parse_object(&text).map_err(|e| anyhow!("--file {}: {e}", path.display()))
}

/// `text` as a JSON or YAML object.
pub(super) fn parse_object(text: &str) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_str(text).or_else(|_| {
        serde_saphyr::from_str(text).map_err(|e| format!("neither JSON nor YAML: {e}"))
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err("must hold an object".to_owned()),
    }
}

/// Sets each `--set KEY=VALUE` in `body`.
pub(super) fn set_all(body: &mut Map<String, Value>, pairs: &[String]) -> Result<()> {
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {pair}: expected KEY=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
        set_field(body, key, value)?;
    }
    Ok(())
}

/// The body of `hb create`: the file, then the name, the typed flags and `--set`.
fn create_body(args: &CreateArgs, kind: &kinds::Kind) -> Result<Value> {
    let mut body = read_body(args.file.as_deref())?;
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
        ("clusterRole", &args.cluster_role),
    ] {
        if let Some(value) = value {
            body.insert(key.to_owned(), json!(value));
        }
    }
    set_all(&mut body, &args.set)?;
    Ok(Value::Object(body))
}

/// What a create or delete answers, in a line: the commit when there is one.
pub(super) fn done_line(verb: &str, kind: &kinds::Kind, name: &str, answer: &Value) -> String {
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
            // What has no commit may hold what is shown once (a token): print it whole.
            Format::Table if answer.body.get("commit").is_none() => {
                output::render(&answer.body, Format::Yaml, &[]).map_err(|e| anyhow!(e))
            }
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
        let target = if kind.name_field == "group" {
            binding_query(
                &path,
                &args.name,
                args.role.as_deref(),
                args.cluster_role.as_deref(),
            )
        } else {
            let name = kinds::segment(&args.name).map_err(|e| anyhow!("name: {e}"))?;
            format!("{path}/{name}")
        };
        let answer = connect(env)?.call(Method::DELETE, &target, None, &[])?;
        match args.output {
            Format::Table => Ok(done_line("deleted", kind, &args.name, &answer.body)),
            format => output::render(&answer.body, format, &[]).map_err(|e| anyhow!(e)),
        }
    })())
}

/// A binding's path: its collection with the group and what is bound as the query.
fn binding_query(
    path: &str,
    group: &str,
    role: Option<&str>,
    cluster_role: Option<&str>,
) -> String {
    let mut query = format!("{path}?group={}", kinds::encode(group));
    if let Some(role) = role {
        query = format!("{query}&role={}", kinds::encode(role));
    }
    if let Some(cluster_role) = cluster_role {
        query = format!("{query}&clusterRole={}", kinds::encode(cluster_role));
    }
    query
}

/// `hb audit` against the server (no `--repo`): `GET /api/v1/orgs/{org}/audit`.
pub fn audit(args: &crate::cli::AuditArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let client = connect(env)?;
        let org = match &args.org {
            Some(org) => org.clone(),
            None => only_org(&client)?,
        };
        let org = org.as_str();
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
        let answer = client.call(Method::GET, &path, None, &[])?;
        if args.json {
            return output::render(&answer.body, Format::Json, &[]).map_err(|e| anyhow!(e));
        }
        let entries: Vec<crate::service::audit::AuditEntry> =
            serde_json::from_value(answer.body).context("the server's audit answer")?;
        Ok(crate::service::audit::render_table(&entries))
    })())
}

/// The caller's only organization, or what to choose from.
fn only_org(client: &super::Client) -> Result<String> {
    let answer = client.call(Method::GET, "/api/v1/orgs", None, &[])?;
    let slugs: Vec<&str> = answer
        .body
        .as_array()
        .map(|orgs| orgs.iter().filter_map(|o| o["slug"].as_str()).collect())
        .unwrap_or_default();
    match slugs.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => bail!("you are in no organization: create one with `hb create org <slug>`"),
        many => bail!(
            "you are in {} organizations: choose one with --org ({})",
            many.len(),
            many.join(", ")
        ),
    }
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
            cluster_role: None,
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
