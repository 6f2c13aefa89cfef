//! What the engine remembers of what it wrote: the fingerprints workspace folders were
//! rendered from, and the folders as last written (to tell hand edits apart).

use super::*;

impl Engine {
    /// Records that the folders `rendered` (root, fingerprint) in `tree` are the compiler's
    /// output for those fingerprints. That is a fact about content (a tree id and the hash
    /// of the inputs), true whether or not the commit lands, so it is kept in memory and
    /// appended to `<gitdir>/hexabase/rendered` (`<tree id> <fingerprint>` lines) without
    /// fsync: a line lost in a crash only costs a compile later, and a torn or garbled line
    /// is skipped when the file is read.
    pub(super) fn record_rendered(
        &self,
        reader: &Reader<'_>,
        tree: Oid,
        rendered: &[(String, String)],
    ) {
        if rendered.is_empty() {
            return;
        }
        let mut map = lock(&self.rendered);
        let map = map.get_or_insert_with(|| self.load_rendered());
        let mut lines = String::new();
        for (root, fingerprint) in rendered {
            let Ok(Some(entry)) = reader.entry(tree, root) else {
                continue;
            };
            if map.get(&entry.id) != Some(fingerprint) {
                map.insert(entry.id, fingerprint.clone());
                lines.push_str(&format!("{} {fingerprint}\n", entry.id));
            }
        }
        if lines.is_empty() {
            return;
        }
        let path = self.rendered_path();
        let append = || -> std::io::Result<()> {
            use std::io::Write as _;
            std::fs::create_dir_all(path.parent().expect("in a folder"))?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?
                .write_all(lines.as_bytes())
        };
        // A cache: failing to write it only costs compiles later.
        let _ = append();
    }

    fn rendered_path(&self) -> std::path::PathBuf {
        self.gitops.path().join("hexabase").join("rendered")
    }

    /// The folders known to be renders, from `<gitdir>/hexabase/rendered`.
    pub(super) fn load_rendered(&self) -> HashMap<Oid, String> {
        let text = std::fs::read(self.rendered_path()).unwrap_or_default();
        let mut map = HashMap::new();
        // Only whole lines: the last one may be torn.
        for line in text
            .split(|b| *b == b'\n')
            .filter(|l| l.len() == 40 + 1 + 64)
        {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let Some((id, fingerprint)) = line.split_once(' ') else {
                continue;
            };
            let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
            if id.len() == 40
                && hex(id)
                && hex(fingerprint)
                && let Ok(id) = Oid::from_str(id)
            {
                map.insert(id, fingerprint.to_owned());
            }
        }
        map
    }

    /// Remembers the workspace folders as written in `tree`.
    pub(super) fn remember_written(
        &self,
        reader: &Reader<'_>,
        tree: Oid,
        workspaces: &BTreeSet<(String, String)>,
    ) {
        let Ok(Some(tenants)) = reader.entry(tree, "tenants") else {
            return;
        };
        let Ok(tenants) = reader.tree(tenants.id) else {
            return;
        };
        let mut written = self
            .written
            .lock()
            .expect("the written map is never poisoned");
        for cluster in tenants
            .entries()
            .iter()
            .filter_map(|e| std::str::from_utf8(&e.name).ok())
        {
            for (org, ws) in workspaces {
                let root = format!("tenants/{cluster}/{org}/{ws}");
                match reader.entry(tree, &root) {
                    Ok(Some(entry)) => written.insert(root, entry.id),
                    _ => written.remove(&root),
                };
            }
        }
    }
}
