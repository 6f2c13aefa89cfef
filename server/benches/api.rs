//! Measures the API of the real `hb serve` on a repository of 10,000 rendered workspaces, on
//! SQLite and on PostgreSQL, and prints a markdown table. Nothing here asserts on time; it
//! only reports.
//!
//! ```text
//! cargo bench -p server --bench api
//! HB_API_ACTIONS=640 HB_API_LISTS=200 HB_API_DATABASES=sqlite cargo bench -p server --bench api
//! ```
//!
//! Targets (issue #4, "Speed"), each on SQLite and on PostgreSQL:
//! 1. [`CLIENTS`] concurrent HTTP clients creating projects, each its own commit: at least
//!    250 actions per second, with p99 under 100 ms. Two measurements, because a closed loop
//!    cannot show both: with [`CLIENTS`] requests always in flight, the mean latency is
//!    [`CLIENTS`] ÷ the rate whatever the server does (Little's law; 64 ÷ 250/s = 256 ms).
//!    So the clients first create projects as fast as they are answered (the rate the
//!    server sustains), then at [`PACED_RATE`] actions per second in all, each client on a
//!    fixed schedule, and the p99 of that phase is the latency at that rate (counted from
//!    when each request was due, so a slow answer that delays the next request counts
//!    against both: no coordinated omission).
//! 2. Listing an organization's workspaces (100 of them) answers in under 10 ms: p50 and p99
//!    of one client's requests in a row, on an otherwise idle server. The same list asked
//!    every 50 ms while the writers run is reported too.
//! 3. The server's resident memory stays under 200 MB: its peak (`VmHWM`) over the run.
//!
//! How: `hb serve` (the binary of this profile) runs as a child process on a free port; the
//! clients run in this process (reqwest on tokio, one connection each), on the same two
//! cores, so the server does not have the machine to itself. Setting up goes through the
//! API: a first server on an empty repository prints the setup token; the administrator
//! signs up (`bench@example.com`, the actor of the cached repository's import), makes an API
//! token, creates the organizations of the workload and the [`TARGETS`] workspaces the
//! writers use, with the plans and clusters they have in the cached repository (the creator
//! of a workspace is in its `WSAdmins` group). Then the server stops, its `gitops.git` is
//! replaced by a clone of the cached repository (`common`, shared with `engine.rs`), and the
//! server starts again: the history it indexed is gone, so it indexes all 10,000 workspaces
//! again, keeping the groups of those it knows. Requests that do not succeed are counted by
//! status and reported; they are not in the latencies.
//!
//! The per-organization write limit is raised to 10,000 actions per second (burst 10,000)
//! for the run (`HEXABASE_LIMITS__ACTIONS_PER_ORG_PER_SECOND`, `..._BURST`): the limiter
//! still runs, but never refuses.
//!
//! Environment: `HB_API_ACTIONS` (default [`ACTIONS`]), `HB_API_PACED` ([`PACED`], the
//! actions of the paced phase), `HB_API_CLIENTS` ([`CLIENTS`]),
//! `HB_API_TARGETS` (workspaces written to, [`TARGETS`]), `HB_API_LISTS` (list requests,
//! [`LISTS`]) change the counts; `HB_API_DATABASES` is `sqlite,postgres` (the default), or one
//! of them. PostgreSQL is `HEXABASE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each run creates a fresh database there and
//! drops it after. `HB_BENCH_DIR` moves the cache as for `engine.rs`; the data folders of a
//! run are made next to the cached repository (hard links to its pack) and deleted at the end.
//! `MALLOC_*` variables (`MALLOC_ARENA_MAX=2`, which the chart sets) are passed on to the
//! server.

mod common;
// The tests' PostgreSQL helpers; the bench uses only some of them.
#[allow(dead_code)]
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{
    Cache, ORGANIZATIONS, Report, Result, WORKSPACES, cpu_time, cpu_time_of, env_count, fmt, git,
    load_average, percentile, placement, progress,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ACTIONS: usize = 4_000;
/// Actions of the paced phase, and its rate in actions per second (all clients together).
const PACED: usize = 2_500;
const PACED_RATE: f64 = 250.0;
const CLIENTS: usize = 64;
const TARGETS: usize = 256;
const LISTS: usize = 1_000;
/// The administrator: the actor of the cached repository's import.
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "correct horse battery staple";
const RATE: &str = "10000";

fn main() -> Result<()> {
    let counts = Counts {
        actions: env_count("HB_API_ACTIONS", ACTIONS),
        paced: env_count("HB_API_PACED", PACED),
        clients: env_count("HB_API_CLIENTS", CLIENTS).max(1),
        targets: env_count("HB_API_TARGETS", TARGETS).clamp(1, WORKSPACES),
        lists: env_count("HB_API_LISTS", LISTS).max(1),
    };
    let databases = std::env::var("HB_API_DATABASES").unwrap_or_else(|_| "sqlite,postgres".into());
    let mut report = Report::default();
    let load_at_start = load_average();
    let cache = Cache::ready(&mut report)?;
    // Waits if files were deleted there just now (see `Cache::reset`).
    cache.reset()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut runs = Vec::new();
    for database in databases.split(',').map(str::trim) {
        let run = match database {
            "sqlite" => runtime.block_on(run(&cache, &counts, "SQLite", None))?,
            "postgres" => {
                let Some(db) = runtime.block_on(postgres::fresh_database()) else {
                    report.note("PostgreSQL: skipped, nothing answers.".to_owned());
                    continue;
                };
                let outcome = runtime.block_on(run(&cache, &counts, "PostgreSQL", Some(&db.url)));
                drop(db);
                outcome?
            }
            other => return Err(format!("HB_API_DATABASES: unknown database {other:?}").into()),
        };
        runs.push(run);
    }
    for run in &runs {
        run.rows(&counts, &mut report);
    }
    report.note(format!(
        "Repository: {WORKSPACES} workspaces in {ORGANIZATIONS} organizations ({} files at the \
         base commit, packed); {} clients write to {} of the workspaces, each action a new \
         project in the next one (so the workspace is rendered again); lists ask for an \
         organization's 100 workspaces as its owner.",
        cache.files, counts.clients, counts.targets
    ));
    report.note(format!(
        "Write limit per organization raised to {RATE}/s, burst {RATE} \
         (`HEXABASE_LIMITS__ACTIONS_PER_ORG_PER_SECOND`, `..._BURST`); logs at `info`, JSON, \
         read by this process."
    ));
    report.note(format!(
        "Server and clients share {} CPUs; load average (1 min) before {load_at_start}, after \
         {}. Other processes on the machine slow wall times down.",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average()
    ));
    progress("deleting the data folders");
    for run in &runs {
        let _ = std::fs::remove_dir_all(&run.dir);
    }
    // The next run (or engine.rs) waits for the freed inodes, as after a prune.
    std::fs::write(cache.dir.join("pruned"), "")?;
    report.print();
    Ok(())
}

struct Counts {
    actions: usize,
    paced: usize,
    clients: usize,
    targets: usize,
    lists: usize,
}

/// What one database's run measured.
#[derive(Default)]
struct Run {
    database: &'static str,
    dir: PathBuf,
    setup: Duration,
    start: Duration,
    rss_after_start: u64,
    hwm_after_start: u64,
    peak_rss: u64,
    write_times: Vec<Duration>,
    write_wall: Duration,
    write_failures: BTreeMap<String, usize>,
    paced_times: Vec<Duration>,
    paced_wall: Duration,
    paced_failures: BTreeMap<String, usize>,
    commits: usize,
    server_cpu: Duration,
    client_cpu: Duration,
    commit_mean: Option<Duration>,
    handler_mean: Option<Duration>,
    lists_loaded: Vec<Duration>,
    list_times: Vec<Duration>,
    list_failures: BTreeMap<String, usize>,
    errors_logged: usize,
    last_error: Option<String>,
}

impl Run {
    fn rows(&self, counts: &Counts, report: &mut Report) {
        let db = self.database;
        let ok = self.write_times.len();
        let rate = ok as f64 / self.write_wall.as_secs_f64().max(1e-9);
        let mut times = self.write_times.clone();
        let (p50, p99) = if times.is_empty() {
            (Duration::ZERO, Duration::ZERO)
        } else {
            (percentile(&mut times, 50), percentile(&mut times, 99))
        };
        report.row(
            db,
            format!(
                "{} clients creating projects as fast as they are answered, one commit each: \
                 {ok} of {} succeeded in {}",
                counts.clients,
                counts.actions,
                fmt(self.write_wall)
            ),
            format!("{rate:.0} actions/s"),
            "≥ 250/s",
            Some(rate >= 250.0 && self.write_failures.is_empty()),
        );
        report.row(
            db,
            format!(
                "… latency a client sees then: p50; p99 (with {} requests always in flight, the \
                 mean is {} ÷ the rate)",
                counts.clients, counts.clients
            ),
            format!("{}; {}", fmt(p50), fmt(p99)),
            "",
            None,
        );
        let paced_ok = self.paced_times.len();
        let paced_rate = paced_ok as f64 / self.paced_wall.as_secs_f64().max(1e-9);
        let mut paced = self.paced_times.clone();
        let paced_p =
            (!paced.is_empty()).then(|| (percentile(&mut paced, 50), percentile(&mut paced, 99)));
        report.row(
            db,
            format!(
                "{} clients creating projects at {PACED_RATE} actions/s in all (each on a fixed \
                 schedule, latency counted from when a request was due): {paced_ok} of {} \
                 succeeded at {paced_rate:.0}/s; p50; p99",
                counts.clients, counts.paced
            ),
            paced_p.map_or_else(
                || "none succeeded".to_owned(),
                |(a, b)| format!("{}; {}", fmt(a), fmt(b)),
            ),
            "p99 < 100 ms",
            Some(
                self.paced_failures.is_empty()
                    && paced_p.is_some_and(|(_, p99)| p99 < Duration::from_millis(100)),
            ),
        );
        let mut failures = self.write_failures.clone();
        for (status, n) in &self.paced_failures {
            *failures.entry(status.clone()).or_default() += n;
        }
        report.row(
            db,
            "… requests that failed (by status), both phases".to_owned(),
            describe_failures(&failures),
            "none",
            Some(failures.is_empty()),
        );
        let per_action = |d: Duration| fmt(d / u32::try_from(ok.max(1)).unwrap_or(u32::MAX));
        report.row(
            db,
            "… per action: server CPU; client CPU (this process); in the engine (`commit_seconds`, \
             mean); in the handler (`http_request_seconds`, mean)"
                .to_owned(),
            format!(
                "{}; {}; {}; {}",
                per_action(self.server_cpu),
                per_action(self.client_cpu),
                self.commit_mean.map_or_else(|| "?".to_owned(), fmt),
                self.handler_mean.map_or_else(|| "?".to_owned(), fmt),
            ),
            "",
            None,
        );
        report.row(
            db,
            "… commits on the branch afterwards, one per action".to_owned(),
            format!("{} (of {ok})", self.commits),
            "",
            None,
        );
        let mut lists = self.list_times.clone();
        let list = if lists.is_empty() {
            None
        } else {
            Some((percentile(&mut lists, 50), percentile(&mut lists, 99)))
        };
        report.row(
            db,
            format!(
                "List an organization's 100 workspaces, {} requests in a row: p50; p99",
                self.list_times.len()
            ),
            list.map_or_else(
                || "none succeeded".to_owned(),
                |(a, b)| format!("{}; {}", fmt(a), fmt(b)),
            ),
            "< 10 ms",
            Some(list.is_some_and(|(_, p99)| p99 < Duration::from_millis(10))),
        );
        if !self.list_failures.is_empty() {
            report.row(
                db,
                "… list requests that failed (by status)".to_owned(),
                describe_failures(&self.list_failures),
                "none",
                Some(false),
            );
        }
        let mut loaded = self.lists_loaded.clone();
        if !loaded.is_empty() {
            report.row(
                db,
                format!(
                    "… the same list every 50 ms while the writers run ({}): p50; p99",
                    loaded.len()
                ),
                format!(
                    "{}; {}",
                    fmt(percentile(&mut loaded, 50)),
                    fmt(percentile(&mut loaded, 99))
                ),
                "",
                None,
            );
        }
        report.row(
            db,
            "Server's peak resident memory (`VmHWM`) over the run".to_owned(),
            format!("{} MB", self.peak_rss / 1024),
            "< 200 MB",
            Some(self.peak_rss < 200 * 1024),
        );
        report.row(
            db,
            format!(
                "… start on the cached repository (index all {WORKSPACES} workspaces); resident \
                 memory then"
            ),
            format!(
                "{}; {} MB (peak so far {} MB)",
                fmt(self.start),
                self.rss_after_start / 1024,
                self.hwm_after_start / 1024
            ),
            "",
            None,
        );
        report.row(
            db,
            format!(
                "… setting up through the API (sign-up, token, organizations, {} workspaces)",
                counts.targets
            ),
            fmt(self.setup),
            "",
            None,
        );
        if self.errors_logged > 0 {
            report.note(format!(
                "{db}: the server logged {} errors; the last: {}",
                self.errors_logged,
                self.last_error.as_deref().unwrap_or("?")
            ));
        }
    }
}

fn describe_failures(failures: &BTreeMap<String, usize>) -> String {
    if failures.is_empty() {
        return "0".to_owned();
    }
    failures
        .iter()
        .map(|(status, n)| format!("{n} × {status}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The workspaces the writers use (numbers into the workload), spread over the organizations.
fn targets(n: usize) -> Vec<usize> {
    let mut out: Vec<usize> = (0..n).map(|i| (i * 7_919) % WORKSPACES).collect();
    out.sort_unstable();
    out.dedup();
    out
}

async fn run(
    cache: &Cache,
    counts: &Counts,
    database: &'static str,
    database_url: Option<&str>,
) -> Result<Run> {
    let dir = cache.dir.join(format!("api-{}", database.to_lowercase()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut result = Run {
        database,
        dir: dir.clone(),
        ..Run::default()
    };
    let targets = targets(counts.targets);

    // Setting up, on an empty repository.
    progress(&format!("{database}: setting up through the API"));
    let started = Instant::now();
    let server = Server::start(&dir, database_url, true)?;
    let setup_token = server
        .setup_token
        .clone()
        .ok_or("the first start printed no setup token")?;
    let http = reqwest::Client::new();
    let api = Api {
        http: http.clone(),
        url: server.url.clone(),
        token: sign_up(&http, &server.url, &setup_token).await?,
    };
    let orgs: std::collections::BTreeSet<String> =
        targets.iter().map(|&i| placement(i).0).collect();
    for_each(&orgs.iter().cloned().collect::<Vec<_>>(), 4, |org| {
        let api = api.clone();
        async move {
            let body = json!({"slug": org, "name": format!("Organization {org}")});
            api.expect("POST", "/api/v1/orgs", Some(body), StatusCode::CREATED)
                .await
        }
    })
    .await?;
    for_each(&targets, 4, |i| {
        let api = api.clone();
        async move {
            let (org, ws, cluster, plan) = placement(i);
            let body = json!({"name": ws, "plan": plan, "cluster": cluster});
            api.expect(
                "POST",
                &format!("/api/v1/orgs/{org}/workspaces"),
                Some(body),
                StatusCode::CREATED,
            )
            .await
        }
    })
    .await?;
    server.stop()?;

    // The cached repository instead of the one just made.
    let repo = dir.join("data/gitops.git");
    std::fs::remove_dir_all(&repo)?;
    let out = Command::new("git")
        .args(["clone", "--bare", "--local", "-q"])
        .arg(&cache.repo)
        .arg(&repo)
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    git(&repo, &["remote", "remove", "origin"])?;
    git(
        &repo,
        &["update-ref", "refs/heads/main", &cache.base.to_string()],
    )?;
    result.setup = started.elapsed();

    progress(&format!(
        "{database}: starting on the cached repository ({WORKSPACES} workspaces)"
    ));
    let started = Instant::now();
    let server = Server::start(&dir, database_url, false)?;
    result.start = started.elapsed();
    result.rss_after_start = memory(server.pid(), "VmRSS");
    result.hwm_after_start = memory(server.pid(), "VmHWM");
    let api = Api {
        url: server.url.clone(),
        ..api
    };
    // The administrator is in WSAdmins of the first workspace, and owns its organization.
    let (org, ws, _, _) = placement(targets[0]);
    let detail = api
        .expect(
            "GET",
            &format!("/api/v1/orgs/{org}/workspaces/{ws}"),
            None,
            StatusCode::OK,
        )
        .await?;
    if detail["admin"] != json!(true) {
        return Err(format!("not an administrator of {org}/{ws}: {detail}").into());
    }
    // Warm-up, not measured: the first actions after the start.
    for k in 0..4 {
        let (org, ws, _, _) = placement(targets[k % targets.len()]);
        api.expect(
            "POST",
            &format!("/api/v1/orgs/{org}/workspaces/{ws}/projects"),
            Some(json!({"name": format!("warm-up-{k}")})),
            StatusCode::CREATED,
        )
        .await?;
    }

    // 1. Writers, and a list every 50 ms meanwhile.
    progress(&format!(
        "{database}: {} clients, {} actions (server pid {})",
        counts.clients,
        counts.actions,
        server.pid()
    ));
    let before = commits_since(&repo, cache)?;
    let (server_cpu, client_cpu) = (cpu_time_of(&server.pid().to_string()), cpu_time());
    let metrics_before = server_metrics(&http, &server.metrics).await?;
    let done = Arc::new(AtomicBool::new(false));
    let lister = tokio::spawn({
        let (api, done, org) = (api.clone(), Arc::clone(&done), org.clone());
        async move {
            let mut times = Vec::new();
            let path = format!("/api/v1/orgs/{org}/workspaces");
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                if let Ok((StatusCode::OK, _)) = api.call("GET", &path, None).await {
                    times.push(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            times
        }
    });
    let writes = write(
        &api,
        counts.clients,
        &targets,
        "bench",
        counts.actions,
        None,
    )
    .await?;
    result.write_times = writes.times;
    result.write_failures = writes.failures;
    result.write_wall = writes.wall;
    result.server_cpu = cpu_time_of(&server.pid().to_string()).saturating_sub(server_cpu);
    result.client_cpu = cpu_time().saturating_sub(client_cpu);
    done.store(true, Ordering::Relaxed);
    result.lists_loaded = lister.await?;
    let metrics_after = server_metrics(&http, &server.metrics).await?;
    let mean = |name: &str| {
        let sum = metrics_after.get(&format!("{name}_sum"))?
            - metrics_before.get(&format!("{name}_sum"))?;
        let count = metrics_after.get(&format!("{name}_count"))?
            - metrics_before.get(&format!("{name}_count"))?;
        (count > 0.0).then(|| Duration::from_secs_f64(sum / count))
    };
    result.commit_mean = mean("hexabase_commit_seconds");
    result.handler_mean = mean("create_project");
    result.commits = commits_since(&repo, cache)? - before;

    // 2. The same writers at a fixed rate in all: latency at that rate.
    progress(&format!(
        "{database}: {} clients, {} actions at {PACED_RATE} actions/s",
        counts.clients, counts.paced
    ));
    let pace = Duration::from_secs_f64(counts.clients as f64 / PACED_RATE);
    let paced = write(
        &api,
        counts.clients,
        &targets,
        "paced",
        counts.paced,
        Some(pace),
    )
    .await?;
    result.paced_times = paced.times;
    result.paced_failures = paced.failures;
    result.paced_wall = paced.wall;

    // 3. Lists, one after another, on an idle server.
    progress(&format!("{database}: {} lists in a row", counts.lists));
    let org_names: Vec<String> = orgs.into_iter().collect();
    for i in 0..counts.lists {
        let org = &org_names[i % org_names.len()];
        let path = format!("/api/v1/orgs/{org}/workspaces");
        let started = Instant::now();
        match api.call("GET", &path, None).await {
            Ok((StatusCode::OK, Value::Array(rows)))
                if rows.len() == WORKSPACES / ORGANIZATIONS =>
            {
                result.list_times.push(started.elapsed());
            }
            Ok((status, answer)) => {
                let what = if status == StatusCode::OK {
                    format!(
                        "200 with {} workspaces",
                        answer.as_array().map_or(0, Vec::len)
                    )
                } else {
                    format!("{status} {}", answer["code"].as_str().unwrap_or(""))
                };
                *result.list_failures.entry(what).or_default() += 1;
            }
            Err(error) => *result.list_failures.entry(error.to_string()).or_default() += 1,
        }
    }

    result.peak_rss = memory(server.pid(), "VmHWM");
    let (errors, last) = server.errors();
    result.errors_logged = errors;
    result.last_error = last;
    server.stop()?;
    Ok(result)
}

/// Commits on the branch of `repo` since the cached base.
/// What the writers did: each success's latency, failures by status, the time it all took.
struct Writes {
    times: Vec<Duration>,
    failures: BTreeMap<String, usize>,
    wall: Duration,
}

/// `clients` clients (one connection each) creating `actions` projects named
/// `<prefix>-<n>`, each in the next of `targets`. Without `pace`, each client sends its next
/// request when the last is answered (closed loop: `clients` requests always in flight).
/// With `pace`, each client sends one every `pace`, on a fixed schedule staggered across
/// the clients, whatever the answers (open loop: a fixed rate in all); a request's latency
/// then counts from when it was due, so a late answer that delays the next request counts
/// against both (no coordinated omission).
async fn write(
    api: &Api,
    clients: usize,
    targets: &[usize],
    prefix: &'static str,
    actions: usize,
    pace: Option<Duration>,
) -> Result<Writes> {
    // Each client loads the system's certificates: made before the clock starts.
    let made: Vec<Api> = (0..clients)
        .map(|_| Api {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("a client without TLS settings builds"),
            ..api.clone()
        })
        .collect();
    let started = Instant::now();
    let writers: Vec<_> = made
        .into_iter()
        .enumerate()
        .map(|(c, client)| {
            let targets = targets.to_vec();
            let actions: Vec<usize> = (c..actions).step_by(clients).collect();
            let stagger = pace.map(|p| p.mul_f64(c as f64 / clients as f64));
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(actions.len());
                let mut failures: BTreeMap<String, usize> = BTreeMap::new();
                for (k, n) in actions.into_iter().enumerate() {
                    let due = match (pace, stagger) {
                        (Some(pace), Some(stagger)) => {
                            let due = started + stagger + pace * u32::try_from(k).unwrap_or(0);
                            tokio::time::sleep_until(due.into()).await;
                            due
                        }
                        _ => Instant::now(),
                    };
                    let (org, ws, _, _) = placement(targets[n % targets.len()]);
                    let path = format!("/api/v1/orgs/{org}/workspaces/{ws}/projects");
                    let body = json!({"name": format!("{prefix}-{n}")});
                    match client.call("POST", &path, Some(body)).await {
                        Ok((StatusCode::CREATED, answer)) if answer["commit"].is_string() => {
                            times.push(due.elapsed());
                        }
                        Ok((status, answer)) => {
                            let code = answer["code"].as_str().unwrap_or("").to_owned();
                            *failures.entry(format!("{status} {code}")).or_default() += 1;
                        }
                        Err(error) => *failures.entry(error.to_string()).or_default() += 1,
                    }
                }
                (times, failures)
            })
        })
        .collect();
    let mut out = Writes {
        times: Vec::with_capacity(actions),
        failures: BTreeMap::new(),
        wall: Duration::ZERO,
    };
    for writer in writers {
        let (times, failures) = writer.await?;
        out.times.extend(times);
        for (status, n) in failures {
            *out.failures.entry(status).or_default() += n;
        }
    }
    out.wall = started.elapsed();
    Ok(out)
}

fn commits_since(repo: &Path, cache: &Cache) -> Result<usize> {
    let range = format!("{}..refs/heads/main", cache.base);
    Ok(git(repo, &["rev-list", "--count", &range])?
        .trim()
        .parse()?)
}

/// Runs `f` on every item, `width` at a time.
async fn for_each<T, F, Fut>(items: &[T], width: usize, f: F) -> Result<()>
where
    T: Clone,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Value, String>> + Send + 'static,
{
    for chunk in items.chunks(width) {
        let tasks: Vec<_> = chunk.iter().cloned().map(|i| tokio::spawn(f(i))).collect();
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
    }
    Ok(())
}

/// Signs the administrator up with the setup token and returns a new API token.
async fn sign_up(http: &reqwest::Client, url: &str, setup_token: &str) -> Result<String> {
    let response = http
        .post(format!("{url}/api/v1/auth/signup"))
        .json(&json!({
            "email": EMAIL,
            "name": "Bench",
            "password": PASSWORD,
            "setupToken": setup_token,
        }))
        .send()
        .await?;
    if response.status() != StatusCode::CREATED {
        return Err(format!("sign-up: {}", response.text().await?).into());
    }
    let cookie = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hb_session="))
        .and_then(|v| v.split(';').next())
        .ok_or("sign-up set no session cookie")?
        .to_owned();
    let signed_in: Value = response.json().await?;
    let csrf = signed_in["csrfToken"].as_str().ok_or("no csrfToken")?;
    let response = http
        .post(format!("{url}/api/v1/tokens"))
        .header(reqwest::header::COOKIE, cookie)
        .header("x-csrf-token", csrf)
        .json(&json!({"name": "bench"}))
        .send()
        .await?;
    if response.status() != StatusCode::CREATED {
        return Err(format!("creating a token: {}", response.text().await?).into());
    }
    let created: Value = response.json().await?;
    Ok(created["secret"]
        .as_str()
        .ok_or("the token has no secret")?
        .to_owned())
}

/// The API as the administrator, with their token.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    /// Sends one request; the status and the JSON answer (`null` when there is none).
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<(StatusCode, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Sends one request that must answer `expected` (errors are strings: they cross tasks).
    async fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> std::result::Result<Value, String> {
        let (status, answer) = self
            .call(method, path, body)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if status != expected {
            return Err(format!("{method} {path}: {status} {answer}"));
        }
        Ok(answer)
    }
}

/// The metrics the server exposes, summed over labels where the name is
/// `hexabase_commit_seconds_*`, or the `create_project` route's `http_request_seconds_*`
/// (as `create_project_sum` and `create_project_count`).
async fn server_metrics(http: &reqwest::Client, url: &str) -> Result<BTreeMap<String, f64>> {
    let text = http.get(url).send().await?.text().await?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let key = if let Some(rest) = name.strip_prefix("hexabase_http_request_seconds_") {
            let post = name.contains("method=\"POST\"")
                && name.contains("route=\"/api/v1/orgs/{org}/workspaces/{ws}/projects\"");
            match rest.split_once('{') {
                Some((suffix @ ("sum" | "count"), _)) if post => format!("create_project_{suffix}"),
                _ => continue,
            }
        } else if name.starts_with("hexabase_commit_seconds_sum")
            || name.starts_with("hexabase_commit_seconds_count")
        {
            name.split('{').next().unwrap_or(name).to_owned()
        } else {
            continue;
        };
        *out.entry(key).or_default() += value;
    }
    Ok(out)
}

/// A field of `/proc/<pid>/status`, in kB.
fn memory(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `hb serve` as a child process on free ports, its log read by a thread.
struct Server {
    child: Child,
    url: String,
    metrics: String,
    setup_token: Option<String>,
    log: Arc<Mutex<LogTally>>,
}

#[derive(Default)]
struct LogTally {
    errors: usize,
    last_error: Option<String>,
}

impl Server {
    /// Starts the server on `dir/data` and waits until it serves (and, with `expect_token`,
    /// has printed the setup token).
    fn start(dir: &Path, database_url: Option<&str>, expect_token: bool) -> Result<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hb"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HEXABASE_LISTEN", "127.0.0.1:0")
            .env("HEXABASE_METRICS_LISTEN", "127.0.0.1:0")
            .env("HEXABASE_DATA_DIR", dir.join("data"))
            .env("HEXABASE_LOG_FORMAT", "json")
            .env("HEXABASE_LIMITS__ACTIONS_PER_ORG_PER_SECOND", RATE)
            .env("HEXABASE_LIMITS__ACTIONS_PER_ORG_BURST", RATE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = database_url {
            command.env("HEXABASE_DATABASE_URL", url);
        }
        // The allocator's settings, as the chart sets them (`MALLOC_ARENA_MAX`).
        for (key, value) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| k.starts_with("MALLOC_")) {
                command.env(key, value);
            }
        }
        let mut child = command.spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(LogTally::default()));
        std::thread::spawn({
            let log = Arc::clone(&log);
            move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("\"level\":\"ERROR\"") {
                        let mut log = log.lock().expect("never poisoned");
                        log.errors += 1;
                        log.last_error = Some(line.clone());
                    }
                    // Read on after `start` stops listening: the server must never block.
                    let _ = tx.send(line);
                }
            }
        });
        let mut server = Self {
            child,
            url: String::new(),
            metrics: String::new(),
            setup_token: None,
            log,
        };
        // In order: the URL, the metrics URL, and (when no account exists) the setup token.
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(900))
                .map_err(|_| "hb serve exited or hung before serving")?;
            if let Some(rest) = line.strip_prefix("hb: serving ") {
                server.url = rest.split_whitespace().next().unwrap_or("").to_owned();
            }
            if let Some(rest) = line.strip_prefix("hb: metrics at ") {
                server.metrics = rest.trim().to_owned();
                if !expect_token {
                    break;
                }
            }
            if let Some((_, token)) = line.split_once("--setup-token ") {
                server.setup_token = Some(token.trim().to_owned());
                break;
            }
        }
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Errors logged so far, and the last one.
    fn errors(&self) -> (usize, Option<String>) {
        let log = self.log.lock().expect("not poisoned");
        (log.errors, log.last_error.clone())
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) -> Result<()> {
        let out = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .output()?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
        }
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("hb serve exited with {status}").into());
        }
        Ok(())
    }
}

impl Drop for Server {
    /// A server left running by an error is killed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
