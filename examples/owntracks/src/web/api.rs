//! The JSON API, close to OwnTracks Recorder's `/api/0/`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::WebState;
use crate::time::{iso, now, parse_instant};

/// Longest range one request may ask for: a year.
const MAX_RANGE: i64 = 366 * 86_400;

/// An error answer: a status and a message, as `{"error": "..."}`.
#[derive(Debug)]
pub(super) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "database");
        Self(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn bad_request(why: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, why.into())
}

#[derive(Debug, Deserialize)]
pub(super) struct Filter {
    user: Option<String>,
    device: Option<String>,
}

/// `GET /api/0/last`: the last position of each device, with `user`, `device`, `topic`,
/// `isotst` and `offline` (its will arrived after it) added.
pub(super) async fn last(
    State(state): State<WebState>,
    Query(filter): Query<Filter>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let last = state.store.last(filter.user, filter.device).await?;
    Ok(Json(
        last.iter()
            .map(|d| {
                let mut value = with_iso(d.location.to_api(&d.user, &d.device));
                value["offline"] = d.offline.into();
                value
            })
            .collect(),
    ))
}

/// `GET /api/0/list`: `{"results": [users]}`, or with `user=`, that user's devices.
pub(super) async fn list(
    State(state): State<WebState>,
    Query(filter): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    let last = state.store.last(filter.user.clone(), None).await?;
    let mut results: Vec<&str> = match &filter.user {
        Some(_) => last.iter().map(|d| d.device.as_str()).collect(),
        None => last.iter().map(|d| d.user.as_str()).collect(),
    };
    results.dedup();
    Ok(Json(json!({ "results": results })))
}

#[derive(Debug, Deserialize)]
pub(super) struct TrackQuery {
    user: Option<String>,
    device: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// `GET /api/0/locations?user=&device=&from=&to=`: `{"count": n, "data": [positions]}`
/// oldest first, or with `format=geojson` a GeoJSON `FeatureCollection`. `to` defaults to
/// now and `from` to 24 hours before `to`; both included; a date alone is midnight UTC.
pub(super) async fn locations(
    State(state): State<WebState>,
    Query(query): Query<TrackQuery>,
) -> Result<Response, ApiError> {
    let user = query
        .user
        .filter(|u| !u.is_empty())
        .ok_or_else(|| bad_request("`user` is required"))?;
    let device = query
        .device
        .filter(|d| !d.is_empty())
        .ok_or_else(|| bad_request("`device` is required"))?;
    let to = match query.to.as_deref() {
        Some(to) => parse_instant(to).map_err(bad_request)?,
        None => now(),
    };
    let from = match query.from.as_deref() {
        Some(from) => parse_instant(from).map_err(bad_request)?,
        None => to - 86_400,
    };
    if from > to {
        return Err(bad_request(format!(
            "`from` ({}) is after `to` ({})",
            iso(from),
            iso(to)
        )));
    }
    if to - from > MAX_RANGE {
        return Err(bad_request("the range is longer than 366 days"));
    }
    let track = state.store.track(&user, &device, from, to).await?;
    match query.format.as_deref() {
        None | Some("json") => {
            let data: Vec<Value> = track
                .iter()
                .map(|l| with_iso(l.to_api(&user, &device)))
                .collect();
            Ok(Json(json!({ "count": data.len(), "data": data })).into_response())
        }
        Some("geojson") => Ok((
            [(axum::http::header::CONTENT_TYPE, "application/geo+json")],
            Json(crate::geojson::track(&user, &device, &track)),
        )
            .into_response()),
        Some(other) => Err(bad_request(format!(
            "unknown format {other:?}: json or geojson"
        ))),
    }
}

/// `GET /api/0/config`: `{"tile_url": ...}`.
pub(super) async fn config(State(state): State<WebState>) -> Json<Value> {
    Json(json!({ "tile_url": state.tile_url }))
}

/// `GET /api/0/stats`: the recorder's counters.
pub(super) async fn stats(State(state): State<WebState>) -> Json<Value> {
    let counters = *state.counters.borrow();
    Json(json!(counters))
}

pub(super) fn with_iso(mut value: Value) -> Value {
    if let Some(tst) = value.get("tst").and_then(Value::as_i64) {
        value["isotst"] = iso(tst).into();
    }
    value
}
