//! Measures `hb audit` on a long history against its targets and prints a markdown table.
//!
//! ```text
//! cargo bench -p server --bench audit              # 100,000 commits
//! HB_AUDIT_COMMITS=20000 cargo bench -p server --bench audit
//! ```
//!
//! The history is generated with `git fast-import` into a temporary bare repository: each
//! commit changes one project file under `intent/<org>/<ws>/projects/`, spread over 1,000
//! workspaces in 20 organizations by 50 actors, with the `Hexabase-*` trailers the engine
//! writes; every 50th commit is a person's, without trailers. Then it measures: the cold index
//! build; `audit --workspace X` with a warm index, in process and as an `hb` process; the
//! same question put to `git log --grep='Hexabase-Workspace: X' --format=%H`; a refresh after
//! 100 new commits; and a query on a long-lived in-memory [`AuditLog`].
//!
//! Targets: `audit --workspace X` under 100 ms with a warm index, and faster than `git log
//! --grep`. Plain `Instant` timing with medians; nothing here asserts on time, it only reports.
//! Without `--bench` (as `cargo test --benches` runs it) it uses 2,000 commits.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use server::service::audit::{self, AuditLog, AuditQuery, IndexState};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const ORGS: usize = 20;
const WORKSPACES: usize = 1_000;
const ACTORS: usize = 50;
const PROJECTS: usize = 5;
const MANUAL_EVERY: usize = 50;
const NEW_COMMITS: usize = 100;
/// 2024-01-01T00:00:00Z; commits are five minutes apart.
const START: i64 = 1_704_067_200;
const ACTIONS: [&str; 5] = [
    "create-project",
    "set-project-quota",
    "bind-role",
    "create-cron-job",
    "update-function",
];
/// The workspace the queries ask about.
const TARGET_WS: usize = 420;

fn workspace_of(i: usize) -> usize {
    // A fixed permutation-ish spread (splitmix64 finalizer), so every workspace gets about
    // the same number of commits in no particular order.
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % WORKSPACES as u64) as usize
}

fn org_name(ws: usize) -> String {
    format!("o{:02}", ws / (WORKSPACES / ORGS))
}

fn ws_name(ws: usize) -> String {
    format!("w{ws:04}")
}

/// Appends commits `range` to `refs/heads/main` of the bare repository at `repo`.
fn fast_import(repo: &Path, range: std::ops::Range<usize>) -> Result<()> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdin);
    let first = range.start;
    let mut message = String::new();
    let mut content = String::new();
    for i in range {
        let ws = workspace_of(i);
        let (org, wsn) = (org_name(ws), ws_name(ws));
        let actor = (i * 7 + 3) % ACTORS;
        let project = (i / 3) % PROJECTS;
        let time = START + i as i64 * 300;
        let manual = i % MANUAL_EVERY == MANUAL_EVERY - 1;
        message.clear();
        let person = format!("user{actor:02} <user{actor:02}@example.com>");
        let committer = if manual {
            let _ = writeln!(message, "Tweak {wsn} by hand");
            person.clone()
        } else {
            let action = ACTIONS[i % ACTIONS.len()];
            let _ = write!(
                message,
                "{org}/{wsn}: {action} p{project}\n\n\
                 Hexabase-Actor: {person}\n\
                 Hexabase-Action: {action}\n\
                 Hexabase-Org: {org}\n\
                 Hexabase-Workspace: {wsn}\n\
                 Hexabase-Request: req-{i}\n\
                 Hexabase-Compiler: 0.0.0\n"
            );
            "Hexabase <bot@hexabase.invalid>".to_owned()
        };
        content.clear();
        let _ = write!(
            content,
            "apiVersion: hexabase.ai/v1alpha1\nkind: Project\nmetadata:\n  name: p{project}\nspec:\n  revision: {i}\n"
        );
        writeln!(out, "commit refs/heads/main")?;
        writeln!(out, "author {person} {time} +0000")?;
        writeln!(out, "committer {committer} {time} +0000")?;
        writeln!(out, "data {}", message.len())?;
        out.write_all(message.as_bytes())?;
        if i == first && first > 0 {
            writeln!(out, "from refs/heads/main^0")?;
        }
        writeln!(
            out,
            "M 100644 inline intent/{org}/{wsn}/projects/p{project}.yaml"
        )?;
        writeln!(out, "data {}", content.len())?;
        out.write_all(content.as_bytes())?;
        writeln!(out)?;
    }
    writeln!(out, "done")?;
    out.flush()?;
    drop(out);
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("git fast-import failed: {status}").into());
    }
    Ok(())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Runs `f` `n` times; the median duration and the last result.
fn timed<T>(n: usize, mut f: impl FnMut() -> Result<T>) -> Result<(Duration, T)> {
    let mut times = Vec::with_capacity(n);
    let mut last = None;
    for _ in 0..n {
        let start = Instant::now();
        let value = f()?;
        times.push(start.elapsed());
        last = Some(value);
    }
    Ok((median(times), last.ok_or("no runs")?))
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 1_000.0 {
        format!("{:.2} s", ms / 1e3)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn run_lines(command: &mut Command) -> Result<Vec<String>> {
    let output = command.stderr(Stdio::inherit()).output()?;
    if !output.status.success() {
        return Err(format!("{command:?} failed: {}", output.status).into());
    }
    Ok(String::from_utf8(output.stdout)?
        .lines()
        .map(str::to_owned)
        .collect())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn main() -> Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let commits: usize = match std::env::var("HB_AUDIT_COMMITS") {
        Ok(n) => n.parse()?,
        Err(_) if bench => 100_000,
        Err(_) => 2_000,
    };
    let dir: PathBuf = std::env::temp_dir().join(format!("hb-audit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    git2::Repository::init_bare(&dir)?;
    let result = run(&dir, commits);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &Path, commits: usize) -> Result<()> {
    let load_at_start = load_average();
    let (org, ws) = (org_name(TARGET_WS), ws_name(TARGET_WS));
    let query = AuditQuery {
        workspace: Some(ws.clone()),
        ..AuditQuery::default()
    };
    let mut rows: Vec<(String, String, String)> = Vec::new();

    let start = Instant::now();
    fast_import(dir, 0..commits)?;
    rows.push((
        format!("generate {commits} commits (`git fast-import`)"),
        ms(start.elapsed()),
        "-".into(),
    ));

    // Cold: no index file.
    let start = Instant::now();
    let (cold_entries, refresh) = audit::audit(dir, "main", &query)?;
    let cold = start.elapsed();
    if !matches!(refresh.state, IndexState::Rebuilt { commits: n, .. } if n == commits) {
        return Err(format!("expected a rebuild, got {:?}", refresh.state).into());
    }
    let index_bytes = std::fs::metadata(&refresh.path)?.len();
    rows.push((
        "cold index build + query (in process)".into(),
        ms(cold),
        "-".into(),
    ));
    rows.push((
        "index file size".into(),
        format!(
            "{:.1} MB ({:.0} B/commit)",
            index_bytes as f64 / 1e6,
            index_bytes as f64 / commits as f64
        ),
        "-".into(),
    ));

    // Warm: the index is up to date; every run reads and checks the file again.
    let (warm, entries) = timed(21, || {
        let (entries, refresh) = audit::audit(dir, "main", &query)?;
        if refresh.state != IndexState::Fresh {
            return Err(format!("expected a fresh index, got {:?}", refresh.state).into());
        }
        Ok(entries)
    })?;
    if entries != cold_entries {
        return Err("the warm answer differs from the cold one".into());
    }
    rows.push((
        format!("`audit --workspace {ws}`, warm index, in process (median of 21)"),
        ms(warm),
        "< 100 ms".into(),
    ));

    let hb = env!("CARGO_BIN_EXE_hb");
    let (warm_hb, hb_lines) = timed(11, || {
        run_lines(
            Command::new(hb)
                .args(["audit", "--json", "--workspace", &ws, "--repo"])
                .arg(dir),
        )
    })?;
    rows.push((
        format!("`hb audit --workspace {ws} --json`, warm index, process (median of 11)"),
        ms(warm_hb),
        "< 100 ms".into(),
    ));

    let pattern = format!("--grep=Hexabase-Workspace: {ws}");
    let (git_log, git_ids) = timed(5, || {
        run_lines(Command::new("git").arg("-C").arg(dir).args([
            "log",
            &pattern,
            "--format=%H",
            "refs/heads/main",
        ]))
    })?;
    rows.push((
        format!("`git log --grep='Hexabase-Workspace: {ws}' --format=%H` (median of 5)"),
        ms(git_log),
        format!(
            "hb faster: {} ({:.1}x)",
            if warm_hb < git_log { "yes" } else { "no" },
            git_log.as_secs_f64() / warm_hb.as_secs_f64()
        ),
    ));
    // Same answer, except that the audit also finds the commits people made in the workspace.
    let manual = entries.iter().filter(|e| e.manual).count();
    let by_trailer: Vec<&str> = entries
        .iter()
        .filter(|e| !e.manual)
        .map(|e| e.commit.as_str())
        .collect();
    if by_trailer != git_ids {
        return Err("hb audit and git log --grep disagree".into());
    }
    let hb_json = hb_lines.join("\n");
    let hb_count = serde_json::from_str::<serde_json::Value>(&hb_json)?
        .as_array()
        .map_or(0, Vec::len);
    if hb_count != entries.len() {
        return Err("hb audit --json and the library disagree".into());
    }
    rows.push((
        "records found".into(),
        format!(
            "{} ({} by trailer = git log's {}, {} by people)",
            entries.len(),
            by_trailer.len(),
            git_ids.len(),
            manual
        ),
        "-".into(),
    ));

    // Other filters on the warm index.
    for (label, q) in [
        (
            format!("`audit --org {org}`"),
            AuditQuery {
                org: Some(org),
                ..AuditQuery::default()
            },
        ),
        (
            "`audit --actor user07@example.com --action bind-role`".to_owned(),
            AuditQuery {
                actor: Some("user07@example.com".into()),
                action: Some("bind-role".into()),
                ..AuditQuery::default()
            },
        ),
        (
            "`audit --limit 20` (the latest)".to_owned(),
            AuditQuery {
                limit: Some(20),
                ..AuditQuery::default()
            },
        ),
    ] {
        let (time, found) = timed(11, || Ok(audit::audit(dir, "main", &q)?.0.len()))?;
        rows.push((
            format!("{label}, warm index, in process ({found} records)"),
            ms(time),
            "-".into(),
        ));
    }

    // A long-lived log (the server): the index stays in memory.
    let mut log = AuditLog::new(dir, "main");
    log.refresh()?;
    let (in_memory, _) = timed(101, || {
        log.refresh()?;
        Ok(log.query(&query).len())
    })?;
    rows.push((
        format!("`audit --workspace {ws}`, in-memory `AuditLog` (refresh + query)"),
        ms(in_memory),
        "-".into(),
    ));

    // Incremental: 100 new commits.
    fast_import(dir, commits..commits + NEW_COMMITS)?;
    let start = Instant::now();
    let (_, refresh) = audit::audit(dir, "main", &query)?;
    let incremental = start.elapsed();
    if refresh.state
        != (IndexState::Extended {
            commits: NEW_COMMITS,
        })
    {
        return Err(format!("expected an extension, got {:?}", refresh.state).into());
    }
    rows.push((
        format!("refresh after {NEW_COMMITS} new commits + query (in process)"),
        ms(incremental),
        "-".into(),
    ));

    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!("\n## hb audit on {commits} commits\n");
    println!(
        "{cores} core(s); load average {load_at_start} at start, {} at end; \
         {WORKSPACES} workspaces, {ACTORS} actors, 1 commit in {MANUAL_EVERY} by people.\n",
        load_average()
    );
    println!("| measurement | result | target |");
    println!("| --- | --- | --- |");
    for (what, result, target) in rows {
        println!("| {what} | {result} | {target} |");
    }
    Ok(())
}
