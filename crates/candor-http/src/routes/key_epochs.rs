//! The key epochs slice's routes: the admin reads the tenant key epochs and the erasure bound
//! they give, and rolls a new epoch on demand.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{MethodRouter, get};
use candor_vault::Vault;
use candor_vault::key_epochs::EpochStatus;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::{ADMIN, RouteSpec};

/// The tenant key epochs (admin only): the epoch new keys are wrapped under, every epoch's
/// dates, and how long after an erasure a database copy taken before it can still open the
/// customer's data.
#[utoipa::path(get, path = "/v1/key-epochs",
    responses((status = 200, body = KeyEpochsResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn key_epochs(
    State(vault): State<Arc<Vault>>,
    Authenticated { principal: p, .. }: Authenticated,
) -> Result<Json<KeyEpochsResponse>, ApiError> {
    Ok(Json(vault.key_epochs().status(&p)?.into()))
}

/// Start a new key epoch now (admin only): live customers' keys are rewrapped into it, and
/// earlier epochs are retired and, once the retention has passed, destroyed. For when a copy of
/// the database may have leaked; epochs also roll on their own schedule.
#[utoipa::path(post, path = "/v1/key-epochs",
    responses((status = 200, body = KeyEpochsResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn roll_key_epoch(
    State(vault): State<Arc<Vault>>,
    Authenticated { principal: p, now }: Authenticated,
) -> Result<Json<KeyEpochsResponse>, ApiError> {
    Ok(Json(vault.key_epochs().roll(&p, now).await?.into()))
}

/// This slice's part of the route table.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    vec![
        (
            RouteSpec::new(Method::GET, "/v1/key-epochs", ADMIN),
            get(key_epochs),
        ),
        (
            RouteSpec::new(Method::POST, "/v1/key-epochs", ADMIN),
            axum::routing::post(roll_key_epoch),
        ),
    ]
}

/// The tenant key epochs.
#[derive(Serialize, ToSchema)]
pub struct KeyEpochsResponse {
    /// The epoch new customer keys are wrapped under.
    pub current: u32,
    /// The oldest epoch the answering node's keyring still holds; every earlier one is
    /// destroyed there.
    pub oldest_held: u32,
    /// Seconds from one epoch's start to the next's.
    pub epoch_secs: i64,
    /// Seconds a retired epoch is kept (the database's backup retention).
    pub retention_secs: i64,
    /// Seconds after an erasure by which a database copy taken before it no longer opens the
    /// customer's data: epoch length + retention + one check interval.
    pub erasure_bound_secs: i64,
    /// Every epoch, oldest first.
    pub epochs: Vec<KeyEpoch>,
}

/// One tenant key epoch.
#[derive(Serialize, ToSchema)]
pub struct KeyEpoch {
    /// Its number.
    pub epoch: u32,
    /// Unix seconds.
    pub started_at: i64,
    /// When it stopped wrapping any live customer's key.
    pub retired_at: Option<i64>,
    /// When it was destroyed.
    pub destroyed_at: Option<i64>,
}

impl From<EpochStatus> for KeyEpochsResponse {
    fn from(s: EpochStatus) -> KeyEpochsResponse {
        KeyEpochsResponse {
            current: s.current,
            oldest_held: s.oldest_held,
            epoch_secs: s.epoch_secs,
            retention_secs: s.retention_secs,
            erasure_bound_secs: s.erasure_bound_secs,
            epochs: s
                .epochs
                .into_iter()
                .map(|e| KeyEpoch {
                    epoch: e.epoch,
                    started_at: e.started_at,
                    retired_at: e.retired_at,
                    destroyed_at: e.destroyed_at,
                })
                .collect(),
        }
    }
}
