//! How each backend implements [`crate::Store`]: a module per section of the trait (`entries`,
//! `health`, `tokens`, `routing`, `events`), each method a function of the same name taking the
//! store first. The two backends' modules can then be read side by side, and this one list ties
//! their functions to the trait.

/// Implements [`crate::Store`] for `$store` (which has a `pool`) from the functions of its
/// modules `entries`, `health`, `lease`, `tokens`, `routing` and `events`; `$extra` are further methods
/// (the ones with a default that the backend overrides).
macro_rules! store_by_concern {
    ($store:ty, $backend:literal, { $($extra:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            // Entries.
            async fn upsert_capped(
                &self,
                reg: mcp_fleet_model::Registration,
                now: mcp_fleet_model::Timestamp,
                caps: &$crate::EntryCaps,
            ) -> Result<$crate::Upserted, $crate::StoreError> {
                entries::upsert(self, reg, now, caps).await
            }
            async fn get(
                &self,
                id: &mcp_fleet_model::ServerId,
            ) -> Result<Option<mcp_fleet_model::Entry>, $crate::StoreError> {
                entries::get(self, id).await
            }
            async fn delete_by(
                &self,
                id: &mcp_fleet_model::ServerId,
                by: Option<&str>,
            ) -> Result<bool, $crate::StoreError> {
                entries::delete_by(self, id, by).await
            }
            async fn count_entries(&self, by: Option<&str>) -> Result<(u64, u64), $crate::StoreError> {
                entries::count_entries(self, by).await
            }
            async fn list(&self, query: &$crate::ListQuery) -> Result<$crate::Page, $crate::StoreError> {
                entries::list(self, query).await
            }
            async fn list_rendered(
                &self,
                query: &$crate::ListQuery,
            ) -> Result<$crate::RenderedPage, $crate::StoreError> {
                entries::list_rendered(self, query).await
            }
            fn status_rows(
                &self,
            ) -> futures::stream::BoxStream<'_, Result<$crate::StatusRow, $crate::StoreError>> {
                entries::status_rows(self)
            }

            // Catalog.
            async fn put_catalogs(
                &self,
                records: &[$crate::CatalogRecord],
            ) -> Result<Vec<$crate::CatalogWritten>, $crate::StoreError> {
                catalog::put_catalogs(self, records).await
            }
            async fn touch_catalogs(
                &self,
                touches: &[$crate::CatalogTouch],
            ) -> Result<Vec<mcp_fleet_model::ServerId>, $crate::StoreError> {
                catalog::touch_catalogs(self, touches).await
            }
            async fn server_catalog(
                &self,
                id: &mcp_fleet_model::ServerId,
            ) -> Result<Option<mcp_fleet_model::ServerCatalog>, $crate::StoreError> {
                catalog::server_catalog(self, id).await
            }
            async fn service_catalog(
                &self,
                service: &mcp_fleet_model::ServerId,
                version: &str,
            ) -> Result<Option<mcp_fleet_model::ServerCatalog>, $crate::StoreError> {
                catalog::service_catalog(self, service, version).await
            }
            async fn catalog_times(
                &self,
            ) -> Result<Vec<(mcp_fleet_model::ServerId, mcp_fleet_model::Timestamp)>, $crate::StoreError> {
                catalog::catalog_times(self).await
            }
            async fn search_tools(
                &self,
                query: &$crate::ToolQuery,
            ) -> Result<$crate::ToolPage, $crate::StoreError> {
                catalog::search_tools(self, query).await
            }
            async fn tool_pins(
                &self,
                service: &mcp_fleet_model::ServerId,
            ) -> Result<Vec<mcp_fleet_model::ToolPin>, $crate::StoreError> {
                catalog::tool_pins(self, service).await
            }
            async fn accept_tool(
                &self,
                service: &mcp_fleet_model::ServerId,
                tool: &str,
                by: Option<&str>,
                now: mcp_fleet_model::Timestamp,
            ) -> Result<Vec<mcp_fleet_model::ToolPin>, $crate::StoreError> {
                catalog::accept_tool(self, service, tool, by, now).await
            }

            // Health.
            async fn health_rows(
                &self,
                after: Option<i64>,
            ) -> Result<(Vec<$crate::HealthRow>, i64), $crate::StoreError> {
                health::health_rows(self, after).await
            }
            async fn record_checks(
                &self,
                checks: &[$crate::CheckRecord],
            ) -> Result<Vec<$crate::Written>, $crate::StoreError> {
                health::record_checks(self, checks).await
            }
            async fn heartbeat(
                &self,
                id: &mcp_fleet_model::ServerId,
                now: mcp_fleet_model::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                health::heartbeat(self, id, now).await
            }
            async fn heartbeats(&self) -> Result<Vec<$crate::HeartbeatRow>, $crate::StoreError> {
                health::heartbeats(self).await
            }
            async fn deregister_if_down(
                &self,
                id: &mcp_fleet_model::ServerId,
                before: mcp_fleet_model::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                health::deregister_if_down(self, id, before).await
            }

            // Leases.
            async fn renew_leases(
                &self,
                replica: &str,
                ttl: std::time::Duration,
                grace: std::time::Duration,
                busy: &[u32],
            ) -> Result<$crate::Leases, $crate::StoreError> {
                lease::renew_leases(self, replica, ttl, grace, busy).await
            }
            async fn release_leases(&self, replica: &str) -> Result<(), $crate::StoreError> {
                lease::release_leases(self, replica).await
            }

            // Tokens.
            async fn create_token(
                &self,
                token: &mcp_fleet_model::TokenRecord,
            ) -> Result<(), $crate::StoreError> {
                tokens::create_token(self, token).await
            }
            async fn token(
                &self,
                id: &str,
            ) -> Result<Option<mcp_fleet_model::TokenRecord>, $crate::StoreError> {
                tokens::token(self, id).await
            }
            async fn tokens(&self) -> Result<Vec<mcp_fleet_model::TokenRecord>, $crate::StoreError> {
                tokens::tokens(self).await
            }
            async fn revoke_token(
                &self,
                id: &str,
                now: mcp_fleet_model::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                tokens::revoke_token(self, id, now).await
            }
            async fn has_tokens(&self) -> Result<bool, $crate::StoreError> {
                tokens::has_tokens(self).await
            }

            // Routing.
            async fn put_routing(
                &self,
                doc: &mcp_fleet_model::Routing,
            ) -> Result<bool, $crate::StoreError> {
                routing::put_routing(self, doc).await
            }
            async fn get_routing(
                &self,
                service: &mcp_fleet_model::ServerId,
            ) -> Result<Option<mcp_fleet_model::Routing>, $crate::StoreError> {
                routing::get_routing(self, service).await
            }
            async fn routing_documents(
                &self,
            ) -> Result<Vec<mcp_fleet_model::Routing>, $crate::StoreError> {
                routing::routing_documents(self).await
            }
            async fn delete_routing(
                &self,
                service: &mcp_fleet_model::ServerId,
            ) -> Result<bool, $crate::StoreError> {
                routing::delete_routing(self, service).await
            }
            async fn record_rollback(
                &self,
                service: &mcp_fleet_model::ServerId,
                version: &mcp_fleet_model::Version,
                reason: &str,
                by: Option<&str>,
                now: mcp_fleet_model::Timestamp,
            ) -> Result<Option<mcp_fleet_model::Routing>, $crate::StoreError> {
                routing::record_rollback(self, service, version, reason, by, now).await
            }
            async fn record_observations(
                &self,
                service: &mcp_fleet_model::ServerId,
                report: &mcp_fleet_model::Observations,
                now: mcp_fleet_model::Timestamp,
            ) -> Result<Option<mcp_fleet_model::ObservedTotals>, $crate::StoreError> {
                routing::record_observations(self, service, report, now).await
            }
            async fn service_versions(
                &self,
                service: &mcp_fleet_model::ServerId,
            ) -> Result<Vec<mcp_fleet_model::Version>, $crate::StoreError> {
                routing::service_versions(self, service).await
            }

            // Events.
            async fn events_since(
                &self,
                after: i64,
                limit: u32,
            ) -> Result<$crate::EventLog, $crate::StoreError> {
                events::events_since(self, after, limit).await
            }
            async fn current_revision(&self) -> Result<i64, $crate::StoreError> {
                events::current_revision(self).await
            }

            // The backend.
            async fn ping(&self) -> Result<(), $crate::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
            fn backend(&self) -> &'static str {
                $backend
            }
            fn pool_stats(&self) -> Option<$crate::PoolStats> {
                Some($crate::PoolStats::of(&self.pool))
            }

            $($extra)*
        }
    };
}
pub(crate) use store_by_concern;
