//! Every operation of the OpenAPI document has an `hb` command (`client::coverage`), and
//! every command there is one `hb` parses, on a kind it knows: a new route without a
//! command, or a command for a route that is gone, fails here.

use std::collections::BTreeSet;
use std::process::Command;

use server::client::coverage::OPERATIONS;
use server::client::kinds::{self, Update};

fn operation_ids() -> BTreeSet<String> {
    let document = server::http::openapi::document();
    let mut ids = BTreeSet::new();
    for (_, item) in document["paths"].as_object().expect("paths") {
        for (_, operation) in item.as_object().expect("a path item") {
            if let Some(id) = operation["operationId"].as_str() {
                ids.insert(id.to_owned());
            }
        }
    }
    ids
}

#[test]
fn every_operation_has_a_command_and_every_command_an_operation() {
    let ids = operation_ids();
    let table: BTreeSet<String> = OPERATIONS.iter().map(|(id, _)| (*id).to_owned()).collect();
    assert_eq!(
        table.len(),
        OPERATIONS.len(),
        "an operation is twice in the table"
    );
    let missing: Vec<&String> = ids.difference(&table).collect();
    let gone: Vec<&String> = table.difference(&ids).collect();
    assert!(
        missing.is_empty(),
        "operations no `hb` command reaches (add them to client::coverage::OPERATIONS): \
         {missing:?}"
    );
    assert!(
        gone.is_empty(),
        "commands for operations the API no longer has: {gone:?}"
    );
}

#[test]
fn every_command_parses_and_names_a_kind_it_can_act_on() {
    let mut failures = Vec::new();
    for (id, line) in OPERATIONS {
        if line.starts_with("browser:") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "hb", "{id}: {line}");
        let output = Command::new(env!("CARGO_BIN_EXE_hb"))
            .args(&words[1..])
            .arg("--help")
            .output()
            .expect("hb runs");
        if !output.status.success() {
            failures.push(format!(
                "{id}: `{line}` does not parse: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
            continue;
        }
        let verb = words[1];
        if !["get", "create", "delete", "apply", "edit"].contains(&verb) {
            continue;
        }
        let Some(kind) = words.get(2).filter(|w| !w.starts_with('-')) else {
            continue;
        };
        match kinds::find(kind) {
            None => failures.push(format!("{id}: `{line}` names no kind hb knows")),
            Some(kind) if matches!(verb, "apply" | "edit") && kind.update == Update::None => {
                failures.push(format!("{id}: `{line}`: {} cannot be updated", kind.plural));
            }
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
