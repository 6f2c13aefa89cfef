//! `hb serve`: opens the stores, seeds an empty repository, and runs the API and the metrics
//! listener until shutdown, letting requests in flight finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::gitops::{GitOps, Identity, Signing};
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::service::accounts::SignIn;
use crate::service::apply::{ActionMeta, Engine};
use crate::service::credentials::{generate_token, hash_token};
use crate::service::issuer::Issuer;
use crate::service::outbox::Outbox;
use crate::settings::Settings;
use crate::store::{PlanPrice, Store};

/// The platform an empty repository starts with: the example's, with its issuer set to the
/// public URL when that is `https://` (vCluster API servers accept only https issuers).
/// Platform engineers change it like any intent: a commit to `intent/platform.yaml`.
const STARTER_PLATFORM: &str = include_str!("../../gitops-repo-example/intent/platform.yaml");
const STARTER_ISSUER: &str = "https://hexabase.example.com";

/// Opens everything `settings` names: the data folder, the database (migrated), the
/// repository (seeded with the starter platform when its branch has no commit) and, with
/// `git.remote` set, the pusher (an empty local branch first takes the remote's, so that a
/// new server joins an existing repository instead of forking it).
pub async fn open(settings: Settings) -> Result<AppState> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "failed to create the data folder {}",
            settings.data_dir.display()
        )
    })?;
    let store = Store::connect(settings.database_url().expose())
        .await
        .context("failed to open the database")?;
    let (engine, outbox) = tokio::task::spawn_blocking({
        let settings = settings.clone();
        move || -> Result<_> {
            let engine = Arc::new(open_engine(&settings)?);
            let outbox = Outbox::open(&settings, &engine).context("failed to set up pushing")?;
            if let Some(pusher) = outbox.pusher() {
                let repo = engine.gitops().repo()?;
                if engine.gitops().head(&repo)?.is_none() {
                    pusher.sync().with_context(|| {
                        format!(
                            "failed to fetch {} before starting the empty local repository",
                            pusher.remote().config().url
                        )
                    })?;
                }
            }
            seed(&engine, &settings)?;
            Ok((engine, outbox))
        }
    })
    .await
    .context("the repository task failed")??;
    if !settings.billing.monthly_cents.is_empty() {
        let prices: Vec<PlanPrice> = settings
            .billing
            .monthly_cents
            .iter()
            .map(|(plan, cents)| PlanPrice {
                plan: plan.clone(),
                currency: settings.billing.currency.clone(),
                monthly_cents: *cents,
            })
            .collect();
        store
            .set_plan_prices(&prices)
            .await
            .context("failed to set the plan prices from billing.monthly_cents")?;
    }
    let adopted = crate::service::tenancy::adopt_organizations(&store, &engine)
        .await
        .context("failed to give organizations found in Git their rows")?;
    let synced = crate::service::tenancy::sync_index(&store, &engine)
        .await
        .context("failed to index the workspaces")?;
    let bot = Identity {
        name: settings.git.bot_name.clone(),
        email: settings.git.bot_email.clone(),
    };
    let moved = crate::service::groups::move_access_to_git(&store, &engine, bot)
        .await
        .context("failed to move the workspaces' groups to Git")?;
    if moved > 0 {
        tracing::info!(workspaces = moved, "moved groups and members to Git");
    }
    tracing::info!(
        written = synced.written,
        defaulted = synced.defaulted,
        groups_removed = synced.groups_removed,
        adopted,
        "indexed the workspaces"
    );
    // Reading the intent of every workspace touched most of the packs: give those pages
    // back (see `GitOps::release_handles`).
    engine.gitops().release_handles();
    settings
        .issuer
        .check()
        .map_err(|e| anyhow::anyhow!("issuer.{e}"))?;
    let issuer = Arc::new(Issuer::new(store.clone(), settings.issuer.clone()));
    Ok(AppState {
        store,
        engine,
        sign_in: Arc::new(SignIn::new(&settings)),
        issuer,
        settings: Arc::new(settings),
        metrics: Arc::new(Metrics::default()),
        outbox: Arc::new(outbox),
        applying: Arc::new(tokio::sync::Semaphore::new(
            crate::service::submit::APPLYING_PER_CPU
                * std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        )),
    })
}

fn open_engine(settings: &Settings) -> Result<Engine> {
    let signing = match (&settings.git.sign_ssh_key, &settings.git.sign_gpg_key) {
        (Some(key), _) => Some(Signing::Ssh { key: key.clone() }),
        (None, Some(key_id)) => Some(Signing::OpenPgp {
            key_id: key_id.clone(),
            home: None,
        }),
        (None, None) => None,
    };
    let repo_path = settings.git_repo();
    let gitops = GitOps::open(&repo_path, &settings.git.branch)
        .with_context(|| format!("failed to open the repository {}", repo_path.display()))?
        .with_signing(signing);
    let bot = Identity {
        name: settings.git.bot_name.clone(),
        email: settings.git.bot_email.clone(),
    };
    Engine::new(gitops, bot).context("failed to load the templates")
}

/// Seeds an empty branch with the starter platform.
fn seed(engine: &Engine, settings: &Settings) -> Result<()> {
    let bot = Identity {
        name: settings.git.bot_name.clone(),
        email: settings.git.bot_email.clone(),
    };
    let repo_path = settings.git_repo();
    let repo = engine.gitops().repo()?;
    if engine.gitops().head(&repo)?.is_none() {
        let public_url = settings.public_url();
        // The issuer is this server: at its public URL, or on one machine at its loopback
        // listen address; anything else keeps the placeholder to replace.
        let loopback = ["http://127.0.0.1:", "http://localhost:"];
        let on_one_machine =
            loopback.iter().any(|p| public_url.starts_with(p)) && !public_url.ends_with(":0");
        let platform = if public_url.starts_with("https://") || on_one_machine {
            STARTER_PLATFORM.replace(STARTER_ISSUER, &public_url)
        } else {
            STARTER_PLATFORM.to_owned()
        };
        let files = [("platform.yaml".to_owned(), platform)].into();
        let meta = ActionMeta {
            actor: bot,
            request_id: "initialize".to_owned(),
            actor_id: None,
            digest: None,
        };
        engine
            .import(&meta, &files, "platform: start with the starter platform")
            .context("failed to seed the repository")?;
        tracing::info!(repo = %repo_path.display(), "seeded the repository with the starter platform");
    }
    Ok(())
}

/// While no account exists, a one-time setup token (printed, never stored in clear) lets the
/// first person sign up and become the platform administrator. A new one is made at every
/// start until then.
pub async fn announce_setup(state: &AppState) -> Result<Option<String>> {
    if state.store.user_count().await? > 0 {
        return Ok(None);
    }
    let token = generate_token("hbs_");
    state.store.set_setup_token(&hash_token(&token)).await?;
    Ok(Some(token))
}

/// Serves the API on `listener` (and metrics on `metrics`) until `shutdown` resolves, then
/// lets requests in flight finish. With a remote, a background pusher runs meanwhile; at
/// shutdown it finishes the push in flight and pushes what the last requests committed,
/// for at most `git.shutdown_push_seconds`.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(metrics_listener) = metrics {
        let registry = Arc::clone(&state.metrics);
        let router = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let registry = Arc::clone(&registry);
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        registry.encode(),
                    )
                }
            }),
        );
        let mut stop = stop_rx.clone();
        // Bounded like the API's listener.
        let limits = state.settings.limits.connections();
        tokio::spawn(crate::connections::serve(
            metrics_listener,
            router,
            limits,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
    }
    let store = state.store.clone();
    tokio::spawn(housekeeping(store.clone(), stop_rx.clone()));
    let pushing = state.outbox.pusher().is_some().then(|| {
        crate::service::outbox::Background::start(
            Arc::clone(&state.outbox),
            Arc::clone(&state.metrics),
            Duration::from_secs(state.settings.git.push_interval_seconds.max(1)),
        )
    });
    let drain_bound = Duration::from_secs(state.settings.git.shutdown_push_seconds);
    let limits = state.settings.limits.connections();
    let app = crate::console::app(state);
    crate::connections::serve(listener, app, limits, async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
    })
    .await;
    if let Some(pushing) = pushing {
        tracing::info!("shutting down: pushing what is pending");
        pushing.drain(drain_bound).await;
    }
    store.close().await;
    Ok(())
}

/// How often expired rows are deleted (see [`Store::purge_expired`]).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// Deletes expired sessions, invitations and sign-in state at once and every
/// [`HOUSEKEEPING_EVERY`] until `stop` turns true. A failure is logged; the next round tries
/// again.
async fn housekeeping(store: Store, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(HOUSEKEEPING_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match store.purge_expired(crate::store::now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "deleted expired sessions and sign-in state"),
            Err(error) => tracing::warn!(
                error = %crate::errors::ErrorChain(&error),
                "failed to delete expired sessions and sign-in state"
            ),
        }
    }
}

/// `hb serve [--config <file>] [--print-config]`, with the process environment as `env`.
/// It sets libgit2's process-wide pack mapping bounds first, so it is meant to be called from
/// `main`, before any other thread starts.
pub fn command(
    config: Option<&std::path::Path>,
    print_config: bool,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<std::process::ExitCode> {
    let config = config
        .map(std::path::Path::to_path_buf)
        .or_else(|| env.get("HEXABASE_CONFIG").map(std::path::PathBuf::from));
    let settings = Settings::load(config.as_deref(), env)?;
    if print_config {
        print!("{}", settings.to_redacted_toml()?);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    crate::gitops::bound_pack_mappings()?;
    init_tracing(&settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("failed to listen on {}", settings.listen))?;
        let metrics = match settings.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("failed to listen on {addr} for metrics"))?,
            ),
            None => None,
        };
        let state = open(settings).await?;
        let url = format!("http://{}", listener.local_addr()?);
        eprintln!("hb: serving {url} (API under {url}/api/v1)");
        if let Some(metrics) = &metrics {
            eprintln!("hb: metrics at http://{}/metrics", metrics.local_addr()?);
        }
        if let Some(token) = announce_setup(&state).await? {
            eprintln!(
                "hb: no account exists yet. Sign up as the administrator with this one-time setup token:\n\
                 \n    hb login {url} --signup --setup-token {token}\n\
                 \n  or open {url}/setup in a browser and paste it (or POST {url}/api/v1/auth/signup\
                 \n  with \"setupToken\"). It is printed once per start."
            );
        }
        run(state, listener, metrics, shutdown_signal()).await
    })?;
    // A push still running on a blocking thread past its bound is abandoned: the branch is
    // the queue, so the next start pushes it again.
    runtime.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("stopped");
    Ok(std::process::ExitCode::SUCCESS)
}

fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEXABASE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into a file or a log collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        crate::settings::LogFormat::Json => builder.json().try_init(),
        crate::settings::LogFormat::Text => builder.try_init(),
    };
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
