//! The platform's settings under `/api/v1/platform` (the platform administrator), and its
//! plans and host clusters under `/api/v1/plans` and `/api/v1/clusters` (everyone signed in
//! lists them; the platform administrator changes one). Each change is one commit to
//! `intent/platform.yaml`, compiled before it lands: `service::platform`.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{get, put};
use compiler::intent::{Cluster, Plan, PlatformSpec};

use super::auth::Caller;
use super::commit::{CommitAnswer, RequestKey, apply_error};
use super::json::Json;
use super::{ApiError, ApiRoute, AppState};
use crate::service::platform::{self, PlanView, PlatformError, PlatformView, PriceChange};

impl From<PlatformError> for ApiError {
    fn from(error: PlatformError) -> Self {
        match error {
            PlatformError::Forbidden => ApiError::forbidden(error.to_string()),
            PlatformError::Missing => ApiError::unavailable(error.to_string()),
            PlatformError::NameMismatch { field, .. } => {
                ApiError::invalid(field, error.to_string())
            }
            PlatformError::UnknownPlan(_) => ApiError::invalid("plan", error.to_string()),
            PlatformError::Price { field, .. } => ApiError::invalid(field, error.to_string()),
            PlatformError::Apply(error) => apply_error(error),
            PlatformError::Read(error) => error.into(),
            other => ApiError::internal(&other),
        }
    }
}

const ONE: &str = "/api/v1/platform";

pub(super) fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute::new(
            Method::GET,
            ONE,
            "getPlatform",
            "The platform's settings, with the fields that still hold a placeholder (platform \
             administrator)",
            get(get_platform),
        )
        .response::<PlatformView>(StatusCode::OK),
        ApiRoute::new(
            Method::PUT,
            ONE,
            "setPlatform",
            "Replace the platform's settings (the spec of intent/platform.yaml), compiled \
             before it lands (platform administrator)",
            put(set_platform),
        )
        .request::<PlatformSpec>()
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::PUT,
            "/api/v1/clusters/{cluster}",
            "setPlatformCluster",
            "Add or replace a host cluster (platform administrator)",
            put(set_cluster),
        )
        .request::<Cluster>()
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::PUT,
            "/api/v1/plans/{plan}",
            "setPlatformPlan",
            "Add or replace a plan (platform administrator)",
            put(set_plan),
        )
        .request::<Plan>()
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::PUT,
            "/api/v1/plans/{plan}/price",
            "setPlanPrice",
            "Set a plan's monthly price (platform administrator). Prices are billing data kept \
             in SQL, not intent: no Git commit is made, and the server's billing.monthly_cents \
             setting, when set, replaces them at start",
            put(set_price),
        )
        .request::<PriceChange>()
        .response::<PlanView>(StatusCode::OK),
        ApiRoute::new(
            Method::GET,
            "/api/v1/plans",
            "listPlans",
            "The plans a workspace can be on",
            get(list_plans),
        )
        .response::<Vec<PlanView>>(StatusCode::OK),
        ApiRoute::new(
            Method::GET,
            "/api/v1/clusters",
            "listClusters",
            "The host clusters a workspace can be on",
            get(list_clusters),
        )
        .response::<Vec<Cluster>>(StatusCode::OK),
    ]
}

async fn get_platform(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PlatformView>, ApiError> {
    Ok(Json(platform::get(&state, &caller).await?))
}

async fn set_platform(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Json(spec): Json<PlatformSpec>,
) -> Result<Json<CommitAnswer>, ApiError> {
    Ok(Json(platform::set(&state, &caller, &key, spec).await?))
}

async fn set_cluster(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path(name): Path<String>,
    Json(cluster): Json<Cluster>,
) -> Result<Json<CommitAnswer>, ApiError> {
    Ok(Json(
        platform::set_cluster(&state, &caller, &key, &name, cluster).await?,
    ))
}

async fn set_plan(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path(name): Path<String>,
    Json(plan): Json<Plan>,
) -> Result<Json<CommitAnswer>, ApiError> {
    Ok(Json(
        platform::set_plan(&state, &caller, &key, &name, plan).await?,
    ))
}

async fn set_price(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(change): Json<PriceChange>,
) -> Result<Json<PlanView>, ApiError> {
    Ok(Json(
        platform::set_price(&state, &caller, &name, change).await?,
    ))
}

async fn list_plans(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<PlanView>>, ApiError> {
    Ok(Json(platform::plans(&state).await?))
}

async fn list_clusters(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<Cluster>>, ApiError> {
    Ok(Json(platform::clusters(&state).await?))
}
