//! The committed JSON Schema matches the intent types. `UPDATE_GOLDEN=1` rewrites it.
#![allow(clippy::disallowed_methods)] // tests read and write fixtures

#[test]
fn committed_schema_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/intent.schema.json");
    let current = format!(
        "{}\n",
        serde_json::to_string_pretty(&compiler::intent::json_schema()).expect("schema encodes")
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &current).expect("schema written");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "compiler/schema/intent.schema.json is stale: run `UPDATE_GOLDEN=1 cargo test -p compiler --test schema`"
    );
}
