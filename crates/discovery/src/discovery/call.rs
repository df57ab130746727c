//! Calling a tool: routing a name to a connected instance, and the checks on arguments.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::Peer;
use serde_json::Value;

use super::Discovery;
use crate::connection::target;
use crate::direct::Direct;
use crate::error::{DiscoveryError, clip};
use crate::index::{DiscoveredTool, Resolved, ServerPart, ServerState, Slot};

/// What a call resolved to.
pub(super) struct Route {
    pub(super) peer: Peer<RoleClient>,
    pub(super) direct: Option<Arc<Direct>>,
    pub(super) tool: Arc<DiscoveredTool>,
    pub(super) server: Arc<ServerPart>,
}

impl Discovery {
    /// Where a call of `name` goes: one connected instance offering it, taking turns among a
    /// service's (an idle one when none is connected: `Ok(Err(slot))`, to be woken); `exact`
    /// takes `name` as an instance's own name only.
    fn route(&self, name: &str, exact: bool) -> Result<Result<Route, Slot>, DiscoveryError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(DiscoveryError::Shutdown);
        }
        let index = self.shared.index();
        let resolved = if exact {
            index.resolve_instance(name)
        } else {
            index.resolve(name)
        };
        let slot = match resolved {
            Resolved::Found([only]) => only,
            Resolved::Found(slots) => {
                let turn = self.shared.turn.fetch_add(1, Ordering::Relaxed);
                let ready = |s: &&Slot| matches!(s.server.state, ServerState::Ready);
                let idle = |s: &&Slot| matches!(s.server.state, ServerState::Idle);
                let (head, tail) = slots.split_at(turn % slots.len());
                tail.iter()
                    .chain(head)
                    .find(ready)
                    .or_else(|| tail.iter().chain(head).find(idle))
                    .unwrap_or(&slots[0])
            }
            Resolved::Ambiguous(candidates) => {
                return Err(DiscoveryError::AmbiguousTool {
                    name: clip(name),
                    candidates,
                });
            }
            Resolved::NotFound => {
                return Err(DiscoveryError::ToolNotFound {
                    name: clip(name),
                    known: index.len(),
                });
            }
        };
        match (&slot.server.state, &slot.server.peer) {
            (ServerState::Ready, Some(peer)) => Ok(Ok(Route {
                peer: peer.clone(),
                direct: slot.server.direct.clone(),
                tool: slot.tool.clone(),
                server: slot.server.clone(),
            })),
            (ServerState::Idle, _) => Ok(Err(slot.clone())),
            (state, _) => Err(DiscoveryError::Unavailable {
                what: format!("tool {}", slot.tool.qualified_name),
                server: slot.server.meta.id.clone(),
                reason: match state {
                    ServerState::Unavailable { reason, .. } => reason.clone(),
                    _ => "still connecting".into(),
                },
            }),
        }
    }

    /// Calls tool `name` with `arguments` (a JSON object, or null for none), within the call
    /// timeout. `name` is the service's name of the tool (`<service>__<tool>`, as the gateway
    /// names it), an instance's own (`<serverId>__<tool>`), or the bare name when every server
    /// offering it is an instance of one service. A service's instances take turns, skipping
    /// disconnected ones.
    ///
    /// The lookup is a hash-map probe or two in the current index snapshot. A tool with no connected
    /// server fails at once with [`DiscoveryError::Unavailable`]. The result is the server's
    /// `CallToolResult`: a tool that ran and failed has `is_error: Some(true)`.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Value,
    ) -> Result<CallToolResult, DiscoveryError> {
        let arguments = object_or_null(name, arguments)?;
        self.call(name, false, arguments.map(Cow::Owned)).await
    }

    /// [`Discovery::call_tool`] with borrowed `arguments`, for a caller that may send the same
    /// call again (elsewhere, after [`DiscoveryError::not_sent`]): on `http://` sessions the
    /// call is written straight from them, without a copy.
    pub async fn call_tool_ref(
        &self,
        name: &str,
        arguments: &Value,
    ) -> Result<CallToolResult, DiscoveryError> {
        let arguments = match arguments {
            Value::Object(map) => Some(Cow::Borrowed(map)),
            Value::Null => None,
            other => return Err(invalid_arguments(name, other)),
        };
        self.call(name, false, arguments).await
    }

    /// [`Discovery::call_tool_ref`] on exactly the instance whose own name
    /// ([`DiscoveredTool::qualified_name`]) is `name`, never another: for callers that choose
    /// the instance themselves (the gateway routes by version and ejects outliers).
    pub async fn call_instance_tool_ref(
        &self,
        name: &str,
        arguments: &Value,
    ) -> Result<CallToolResult, DiscoveryError> {
        let arguments = match arguments {
            Value::Object(map) => Some(Cow::Borrowed(map)),
            Value::Null => None,
            other => return Err(invalid_arguments(name, other)),
        };
        self.call(name, true, arguments).await
    }

    /// Wakes the idle server of `slot` and waits (within the connect timeout) for it to
    /// connect; then the route to its tool.
    async fn wake(&self, slot: Slot) -> Result<Route, DiscoveryError> {
        let mut published = self.shared.published.subscribe();
        slot.server.signals.wake.notify_one();
        let limit = self.shared.settings.connect_timeout + Duration::from_secs(1);
        let deadline = tokio::time::Instant::now() + limit;
        // By the instance's own name: the server woken, not another of its service.
        let name = slot.tool.qualified_name.as_str();
        loop {
            if let Ok(route) = self.route(name, true)? {
                return Ok(route);
            }
            let changed = tokio::time::timeout_at(deadline, published.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                return Err(DiscoveryError::Unavailable {
                    what: format!("tool {name}"),
                    server: slot.server.meta.id.clone(),
                    reason: if self.shared.shutdown.is_cancelled() {
                        "shutting down".into()
                    } else {
                        format!("still connecting after {} ms", limit.as_millis())
                    },
                });
            }
        }
    }

    async fn call(
        &self,
        name: &str,
        exact: bool,
        arguments: Option<Cow<'_, JsonObject>>,
    ) -> Result<CallToolResult, DiscoveryError> {
        let route = match self.route(name, exact)? {
            Ok(route) => route,
            Err(idle) => self.wake(idle).await?,
        };
        let tool = route.tool.tool.name.clone();
        let limit = self.shared.settings.call_timeout;
        let what = || format!("tool {}", route.tool.qualified_name);
        let target = target(&route.server.meta);
        // A listing past its `ttlMs` is used once more while the supervisor re-lists.
        route.server.signals.touch();
        let direct = route
            .direct
            .as_ref()
            .filter(|direct| direct.handles(&route.tool.tool));
        let called = match direct {
            Some(direct) => tokio::time::timeout(limit, direct.call_tool(tool, arguments))
                .await
                .map(|r| r.map_err(|e| target.direct_error(&what(), e))),
            None => {
                let mut params = CallToolRequestParams::new(tool);
                if let Some(arguments) = arguments {
                    params = params.with_arguments(arguments.into_owned());
                }
                tokio::time::timeout(limit, route.peer.call_tool(params))
                    .await
                    .map(|r| r.map_err(|e| target.service_error(&what(), &e)))
            }
        };
        match called {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => {
                if matches!(
                    error,
                    DiscoveryError::Transport { .. } | DiscoveryError::Unreachable { .. }
                ) {
                    // Let the supervisor find out whether the session died.
                    route.server.signals.suspect.notify_one();
                }
                Err(error)
            }
            Err(_) => Err(target.timeout(&what(), limit)),
        }
    }
}

/// The session of a connected part.
pub(super) fn ready_peer(
    part: &ServerPart,
    what: &str,
) -> Result<Peer<RoleClient>, DiscoveryError> {
    match (&part.state, &part.peer) {
        (ServerState::Ready, Some(peer)) => Ok(peer.clone()),
        (state, _) => Err(DiscoveryError::Unavailable {
            what: clip(what),
            server: part.meta.id.clone(),
            reason: match state {
                ServerState::Unavailable { reason, .. } => reason.clone(),
                ServerState::Idle => "not connected yet (lazy: a tool call connects)".into(),
                _ => "still connecting".into(),
            },
        }),
    }
}

/// Tool arguments: an object, or nothing for null.
pub(super) fn object_or_null(
    tool: &str,
    arguments: Value,
) -> Result<Option<JsonObject>, DiscoveryError> {
    match arguments {
        Value::Object(map) => Ok(Some(map)),
        Value::Null => Ok(None),
        other => Err(invalid_arguments(tool, &other)),
    }
}

/// `tool` was given `arguments` that are neither an object nor null.
pub(super) fn invalid_arguments(tool: &str, arguments: &Value) -> DiscoveryError {
    let found = match arguments {
        Value::Object(_) => "an object",
        Value::Null => "null",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
    };
    DiscoveryError::InvalidArguments {
        tool: clip(tool),
        found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_must_be_objects() {
        assert_eq!(object_or_null("t", Value::Null).expect("null"), None);
        assert!(
            object_or_null("t", serde_json::json!({"a": 1}))
                .expect("object")
                .is_some()
        );
        let e = object_or_null("t", serde_json::json!([1])).expect_err("array");
        assert_eq!(
            e.to_string(),
            "arguments of t must be a JSON object (or null), not an array"
        );
    }
}
