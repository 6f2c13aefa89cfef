//! Golden snapshots: each `data/<behaviour>.yaml` overlays the example intent
//! (`gitops-repo-example/intent/`) and snapshots the rendered files of the workspaces it
//! touches, followed by every diagnostic. Review changes with `cargo insta review`.
#![allow(clippy::disallowed_methods)] // tests read fixtures from disk

mod support;

#[test]
fn render() {
    insta::glob!("data/*.yaml", |path| {
        let overlay = std::fs::read_to_string(path).expect("case file is readable");
        insta::assert_snapshot!(support::render_case(&overlay));
    });
}
