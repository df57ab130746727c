//! `GET /address-policy`: the address policy this registry enforces, so the gateway and the
//! discovery library can enforce the same one on their own connections.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use mcp_fleet_model::AddressPolicyDocument;

use super::json;
use crate::AppState;
use crate::error::ApiError;

#[utoipa::path(
    get,
    path = "/address-policy",
    tag = "operations",
    summary = "The address policy: which addresses entries may point at",
    description = "Every denied range (defaults, `--probe-policy strict` ranges and \
                   `--probe-deny-cidr`) and every exception (`--probe-allow-cidr`). Registration \
                   refuses URLs at denied literal addresses (and `localhost` names when loopback \
                   is denied), probes and alerts never connect to them, and `mcp-fleet gateway`, \
                   `tools` and `call` read this document and never connect to them either. \
                   IPv6 forms embedding an IPv4 address (IPv4-compatible, NAT64, 6to4, Teredo) \
                   are checked as that address too.",
    responses((status = 200, description = "The effective policy", body = AddressPolicyDocument))
)]
pub(crate) async fn address_policy(State(state): State<AppState>) -> Result<Response, ApiError> {
    json(StatusCode::OK, &state.policy().document())
}
