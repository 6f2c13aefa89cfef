//! The platform's settings (`intent/platform.yaml`: the Git source, the issuer, the host
//! clusters, the plans, the chart versions, SOPS) as the platform administrator reads and
//! changes them. Each change is one commit made through the engine, which compiles the whole
//! intent first: a change the compiler refuses lands nowhere, and its diagnostics name the
//! field. Everyone signed in may list the plans, to choose one for a workspace.

use std::sync::Arc;
use std::time::Instant;

use compiler::intent::{API_VERSION, Cluster, Metadata, Plan, Platform, PlatformSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Services;
use super::apply::{ActionMeta, ApplyError, Outcome};
use super::caller::Caller;
use super::submit::{CommitAnswer, RequestKey, reindex};
use super::tenancy::{TenancyError, head};
use crate::store::PlanPrice;

/// The text that marks a value of the starter platform as a placeholder to replace.
pub const PLACEHOLDER: &str = "example.com";

/// The platform's settings as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformView {
    /// The settings, as `spec` of `intent/platform.yaml` holds them.
    pub spec: PlatformSpec,
    /// The fields (`spec.oidc.issuerUrl`, `spec.clusters[0].domain`) that still hold a
    /// placeholder of the starter platform (a host under `example.com`), to replace.
    pub placeholders: Vec<String>,
    /// The commit the settings were read at.
    pub commit: Option<String>,
}

/// A plan as everyone signed in sees it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    /// The plan's name.
    pub name: String,
    /// Shared agents or a dedicated monitoring stack.
    pub monitoring: compiler::intent::MonitoringMode,
    /// Where the workspace's pods run (`Shared` or `Dedicated` nodes).
    pub placement: compiler::intent::PlacementMode,
    /// The Kyverno policies the plan's workspaces get.
    pub policies: Vec<String>,
    /// Registry prefixes images may come from.
    pub allowed_registries: Vec<String>,
    /// The quota of the whole workspace.
    pub host_quota: compiler::intent::Quota,
    /// The default quota of each project.
    pub project_quota: compiler::intent::Quota,
    /// What it costs a month, when billing has a price for it (kept in SQL, not in Git).
    pub price: Option<PlanPrice>,
}

impl From<&Plan> for PlanView {
    fn from(plan: &Plan) -> Self {
        Self {
            name: plan.name.clone(),
            monitoring: plan.monitoring,
            placement: plan.placement.mode,
            policies: plan.policies.clone(),
            allowed_registries: plan.allowed_registries.clone(),
            host_quota: plan.host_quota.clone(),
            project_quota: plan.project_quota.clone(),
            price: None,
        }
    }
}

/// Why the platform's settings could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// Only the platform administrator reads and changes the settings.
    #[error("only the platform administrator may read or change the platform's settings")]
    Forbidden,
    /// The repository has no readable `intent/platform.yaml`.
    #[error("the platform intent is missing or unreadable")]
    Missing,
    /// A name in the path and the body disagree.
    #[error("{field}: is {body:?} but the path names {path:?}")]
    NameMismatch {
        /// The body's field.
        field: &'static str,
        /// The name in the body.
        body: String,
        /// The name in the path.
        path: String,
    },
    /// The plan named is not in the platform's plans at the branch head.
    #[error("plan: {0:?} is not a plan of the platform")]
    UnknownPlan(String),
    /// A price field is out of range.
    #[error("{field}: {reason}")]
    Price {
        /// The body's field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The price could not be stored.
    #[error("failed to store the plan's price")]
    Store(#[source] crate::store::StoreError),
    /// The head could not be read.
    #[error("failed to read the branch head")]
    Read(#[source] TenancyError),
    /// The engine refused (the compiler's diagnostics) or failed the change.
    #[error("failed to change the platform")]
    Apply(#[source] ApplyError),
    /// The engine's places are closed (the server is stopping).
    #[error("failed to get a place in the engine")]
    Queue(#[source] tokio::sync::AcquireError),
    /// The engine's blocking task failed.
    #[error("the engine's task failed")]
    Task(#[source] tokio::task::JoinError),
}

fn admin(caller: &Caller) -> Result<(), PlatformError> {
    if caller.user.is_admin {
        Ok(())
    } else {
        Err(PlatformError::Forbidden)
    }
}

async fn current(services: &Services) -> Result<(Platform, Option<String>), PlatformError> {
    let snapshot = head(&services.engine).await.map_err(PlatformError::Read)?;
    let platform = snapshot
        .intent
        .platform
        .as_deref()
        .cloned()
        .ok_or(PlatformError::Missing)?;
    Ok((platform, snapshot.commit.map(|c| c.to_string())))
}

/// The platform's settings at the branch head, with the placeholders still in them.
pub async fn get(services: &Services, caller: &Caller) -> Result<PlatformView, PlatformError> {
    admin(caller)?;
    let (platform, commit) = current(services).await?;
    Ok(PlatformView {
        placeholders: placeholders(&platform.spec),
        spec: platform.spec,
        commit,
    })
}

/// The plans of the platform with their prices, for anyone signed in.
pub async fn plans(services: &Services) -> Result<Vec<PlanView>, PlatformError> {
    let (platform, _) = current(services).await?;
    let prices = services
        .store
        .plan_prices()
        .await
        .map_err(PlatformError::Store)?;
    Ok(platform
        .spec
        .plans
        .iter()
        .map(|plan| PlanView {
            price: prices.iter().find(|p| p.plan == plan.name).cloned(),
            ..PlanView::from(plan)
        })
        .collect())
}

/// The host clusters of the platform, for anyone signed in.
pub async fn clusters(services: &Services) -> Result<Vec<Cluster>, PlatformError> {
    let (platform, _) = current(services).await?;
    Ok(platform.spec.clusters)
}

/// The fields of `spec` that hold a placeholder of the starter platform, as paths.
pub fn placeholders(spec: &PlatformSpec) -> Vec<String> {
    fn walk(value: &Value, path: &str, out: &mut Vec<String>) {
        match value {
            Value::String(text) if text.contains(PLACEHOLDER) => out.push(path.to_owned()),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), out);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    walk(item, &format!("{path}.{key}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(spec) {
        walk(&value, "spec", &mut out);
    }
    out
}

/// Replaces the platform's settings with `spec`: one commit, or none when nothing changes.
pub async fn set(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    spec: PlatformSpec,
) -> Result<CommitAnswer, PlatformError> {
    admin(caller)?;
    commit(
        services,
        caller,
        key,
        spec,
        "platform: change the settings".to_owned(),
    )
    .await
}

/// Adds or replaces the host cluster `name`.
pub async fn set_cluster(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    name: &str,
    cluster: Cluster,
) -> Result<CommitAnswer, PlatformError> {
    admin(caller)?;
    same_name("name", &cluster.name, name)?;
    let (platform, _) = current(services).await?;
    let mut spec = platform.spec;
    match spec.clusters.iter_mut().find(|c| c.name == name) {
        Some(slot) => *slot = cluster,
        None => spec.clusters.push(cluster),
    }
    let subject = format!("platform: set cluster {name}");
    commit(services, caller, key, spec, subject).await
}

/// Adds or replaces the plan `name`.
pub async fn set_plan(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    name: &str,
    plan: Plan,
) -> Result<CommitAnswer, PlatformError> {
    admin(caller)?;
    same_name("name", &plan.name, name)?;
    let (platform, _) = current(services).await?;
    let mut spec = platform.spec;
    match spec.plans.iter_mut().find(|p| p.name == name) {
        Some(slot) => *slot = plan,
        None => spec.plans.push(plan),
    }
    let subject = format!("platform: set plan {name}");
    commit(services, caller, key, spec, subject).await
}

/// A plan's new monthly price (`{"monthly": 2900}`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceChange {
    /// The monthly price in the currency's smallest unit (cents): a whole number, 0 or more.
    #[schemars(with = "i64")]
    pub monthly: serde_json::Number,
    /// ISO 4217 currency code (`EUR`); by default the plan's current one, else the server's
    /// `billing.currency`.
    #[serde(default)]
    pub currency: Option<String>,
}

fn monthly(number: &serde_json::Number) -> Result<i64, PlatformError> {
    let reason = match number.as_i64() {
        Some(cents) if cents >= 0 => return Ok(cents),
        Some(_) => "must not be negative",
        None if number.is_u64() => "is too large",
        None => match number.as_f64() {
            Some(value) if value < 0.0 => "must not be negative",
            Some(value) if value.fract() != 0.0 => "must be a whole number of the smallest unit",
            _ => "is too large",
        },
    };
    Err(PlatformError::Price {
        field: "monthly",
        reason,
    })
}

fn currency_code(code: &str) -> Result<String, PlatformError> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code.to_owned())
    } else {
        Err(PlatformError::Price {
            field: "currency",
            reason: "must be an ISO 4217 code of three capital letters (EUR)",
        })
    }
}

/// Sets the monthly price of the plan `name`, which must be a plan at the branch head. Prices
/// are billing data in SQL, not intent: no commit is made.
pub async fn set_price(
    services: &Services,
    caller: &Caller,
    name: &str,
    change: PriceChange,
) -> Result<PlanView, PlatformError> {
    admin(caller)?;
    let cents = monthly(&change.monthly)?;
    let (platform, _) = current(services).await?;
    let plan = platform
        .spec
        .plans
        .iter()
        .find(|p| p.name == name)
        .map(PlanView::from)
        .ok_or_else(|| PlatformError::UnknownPlan(name.to_owned()))?;
    let currency = match change.currency {
        Some(code) => currency_code(&code)?,
        None => {
            let prices = services
                .store
                .plan_prices()
                .await
                .map_err(PlatformError::Store)?;
            prices
                .into_iter()
                .find(|p| p.plan == name)
                .map(|p| p.currency)
                .unwrap_or_else(|| services.settings.billing.currency.clone())
        }
    };
    let price = PlanPrice {
        plan: plan.name.clone(),
        currency,
        monthly_cents: cents,
    };
    services
        .store
        .set_plan_price(&price)
        .await
        .map_err(PlatformError::Store)?;
    Ok(PlanView {
        price: Some(price),
        ..plan
    })
}

fn same_name(field: &'static str, body: &str, path: &str) -> Result<(), PlatformError> {
    if body == path {
        Ok(())
    } else {
        Err(PlatformError::NameMismatch {
            field,
            body: body.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// Writes `spec` as `intent/platform.yaml` through the engine, which compiles everything.
async fn commit(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    spec: PlatformSpec,
    subject: String,
) -> Result<CommitAnswer, PlatformError> {
    let document = Platform {
        api_version: API_VERSION.to_owned(),
        kind: "Platform".to_owned(),
        metadata: Metadata {
            name: "platform".to_owned(),
            ..Metadata::default()
        },
        spec,
    };
    let text = compiler::intent::to_yaml(&document);
    let meta: ActionMeta = key.meta(caller);
    let engine = Arc::clone(&services.engine);
    let started = Instant::now();
    let place = Arc::clone(&services.applying)
        .acquire_owned()
        .await
        .map_err(PlatformError::Queue)?;
    let result = tokio::task::spawn_blocking(move || {
        let _place = place;
        engine.set_platform(&meta, &text, &subject)
    })
    .await
    .map_err(PlatformError::Task)?;
    let (label, answer) = match result {
        Ok(Outcome::Committed { commit, drift }) => {
            services.outbox.committed();
            let answer = CommitAnswer {
                commit: Some(commit),
                drift,
                replayed: false,
            };
            ("committed", answer)
        }
        Ok(Outcome::AlreadyApplied { commit }) => (
            "replayed",
            CommitAnswer {
                commit: Some(commit),
                drift: Vec::new(),
                replayed: true,
            },
        ),
        Ok(Outcome::Unchanged) => ("unchanged", CommitAnswer::default()),
        Err(error) => {
            services.metrics.action("rejected");
            return Err(PlatformError::Apply(error));
        }
    };
    services.metrics.action(label);
    services
        .metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    if label == "committed" {
        // Plans and clusters are what the workspace index shows.
        reindex(services).await;
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_platform_names_its_placeholders() {
        let files = [(
            "platform.yaml".to_owned(),
            include_str!("../../../gitops-repo-example/intent/platform.yaml").to_owned(),
        )]
        .into();
        let (intent, problems) = compiler::intent::load(&files);
        assert!(problems.is_empty(), "{problems:?}");
        let found = placeholders(&intent.platform.expect("a platform").spec);
        for field in [
            "spec.oidc.issuerUrl",
            "spec.clusters[0].apiServer",
            "spec.clusters[0].domain",
            "spec.git.url",
        ] {
            assert!(found.iter().any(|f| f == field), "{field} in {found:?}");
        }
        assert!(
            !found.iter().any(|f| f.starts_with("spec.charts")),
            "{found:?}"
        );
    }
}
