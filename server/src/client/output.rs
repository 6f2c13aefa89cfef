//! Printing answers: a table (the default), JSON or YAML.

use std::fmt::Write as _;

use serde_json::Value;

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// The server's JSON, pretty-printed.
    Json,
    /// The same as YAML.
    Yaml,
}

/// `value` in `format`; a table shows `columns` (or, when none of them is there, the
/// scalar fields of the first row), one row per list item or one row for an object.
pub fn render(value: &Value, format: Format, columns: &[&str]) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|mut text| {
                text.push('\n');
                text
            })
            .map_err(|e| e.to_string()),
        Format::Yaml => serde_saphyr::to_string(value).map_err(|e| e.to_string()),
        Format::Table => Ok(table(value, columns)),
    }
}

/// A field of a row: at its top level, or inside one of its objects (a detail answer such
/// as `{"workspace": {...}, "admin": true}`).
fn field<'a>(row: &'a Value, key: &str) -> Option<&'a Value> {
    row.get(key).or_else(|| {
        row.as_object()?
            .values()
            .filter_map(Value::as_object)
            .find_map(|nested| nested.get(key))
    })
}

fn cell(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => format!("[{}]", items.len()),
        Some(Value::Object(_)) => "{…}".to_owned(),
        Some(other) => other.to_string(),
    };
    // One line per row, whatever the server sent.
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn table(value: &Value, columns: &[&str]) -> String {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    if rows.is_empty() {
        return "No resources found.\n".to_owned();
    }
    let mut keys: Vec<String> = columns
        .iter()
        .filter(|c| rows.iter().any(|r| field(r, c).is_some()))
        .map(|c| (*c).to_owned())
        .collect();
    if keys.is_empty() {
        keys = rows[0]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| !v.is_object() && !v.is_array())
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
    }
    if keys.is_empty() {
        return rows
            .iter()
            .map(|r| format!("{}\n", cell(Some(r))))
            .collect();
    }
    let header: Vec<String> = keys.iter().map(|k| header_of(k)).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| keys.iter().map(|k| cell(field(r, k))).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &body {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&body) {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            let _ = write!(line, "{c:<width$}   ", width = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `displayName` → `DISPLAY NAME`.
fn header_of(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_become_aligned_columns() {
        let value = json!([
            {"name": "dev", "plan": "shared-small", "projects": 2, "displayName": null},
            {"name": "production", "plan": "dedicated-large", "projects": 10}
        ]);
        let text = render(&value, Format::Table, &["name", "plan", "projects", "nope"]).unwrap();
        assert_eq!(
            text,
            "NAME         PLAN              PROJECTS\n\
             dev          shared-small      2\n\
             production   dedicated-large   10\n"
        );
    }

    #[test]
    fn details_nested_values_and_unknown_shapes() {
        let detail = json!({"workspace": {"name": "dev", "plan": "p"}, "admin": true});
        assert_eq!(
            render(&detail, Format::Table, &["name", "plan", "admin"]).unwrap(),
            "NAME   PLAN   ADMIN\ndev    p      true\n"
        );
        let other = json!([{"userId": "u1", "tags": ["a"], "note": "x\ny"}]);
        assert_eq!(
            render(&other, Format::Table, &[]).unwrap(),
            "USER ID   NOTE\nu1        x y\n"
        );
        assert_eq!(
            render(&json!([]), Format::Table, &["name"]).unwrap(),
            "No resources found.\n"
        );
    }

    #[test]
    fn json_and_yaml_print_the_answer_as_it_is() {
        let value = json!({"name": "dev", "projects": 2});
        assert_eq!(
            render(&value, Format::Json, &[]).unwrap(),
            "{\n  \"name\": \"dev\",\n  \"projects\": 2\n}\n"
        );
        let yaml = render(&value, Format::Yaml, &[]).unwrap();
        assert_eq!(yaml, "name: dev\nprojects: 2\n");
    }
}
