//! A real registry on `127.0.0.1:0` over a throwaway database, a client for it, and the
//! servers its tests probe: all from `mcp-fleet-test-support`, shared with the other suites.

pub(crate) use mcp_fleet_test_support::registry::{
    TestRegistry, fast_health, seed_body, seed_body_at, start_all, start_checked,
    start_checked_denying, start_checked_with, start_replica, start_sqlite, start_with,
};
pub(crate) use mcp_fleet_test_support::{black_hole, live_server, refused_url, timed_black_hole};
