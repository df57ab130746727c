//! Routing documents as both backends store them: the whole [`Routing`] as JSON text, one row
//! per service.

use mcp_fleet_model::{Routing, ServerId, Version};

use crate::StoreError;

/// The document as stored (and as the change feed carries it).
pub(crate) fn render(doc: &Routing) -> Result<String, StoreError> {
    serde_json::to_string(doc).map_err(|e| StoreError::Corrupt {
        id: format!("routing of {}", doc.service),
        reason: format!("cannot render: {e}"),
    })
}

/// Reads a stored document back.
pub(crate) fn parse(service: &ServerId, text: &str) -> Result<Routing, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        id: format!("routing of {service}"),
        reason: e.to_string(),
    })
}

/// Distinct stored versions, parsed and sorted.
pub(crate) fn versions(service: &ServerId, raw: Vec<String>) -> Result<Vec<Version>, StoreError> {
    let mut out = raw
        .iter()
        .map(|v| {
            v.parse::<Version>().map_err(|e| StoreError::Corrupt {
                id: format!("an entry of service {service}"),
                reason: format!("version {e}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}
