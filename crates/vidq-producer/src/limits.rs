//! `[api.quotas]` and `[api.limits]`: what one tenant may hold and create, the backlog cap,
//! and the server's own bounds (request timeout, requests at once, batch size).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use vidq_core::{CreateQuota, SettingsError};

/// `[api.quotas]`: limits per tenant (a token's name; 0 = no limit), overridden per tenant in
/// `[api.quotas.tenants.<name>]`, and the backlog cap over every tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSettings {
    /// Most unfinished jobs (not succeeded, failed, canceled or expired) a tenant may have.
    pub unfinished: u64,
    /// Most jobs a tenant may create per UTC day (Redis's clock).
    pub daily: u64,
    /// Most unfinished jobs in Redis, all tenants together: above it creates answer 503.
    pub backlog: u64,
    /// `Retry-After` of a refusal by `unfinished` or `backlog` (they free up as jobs end; the
    /// daily quota's is the time to the next UTC midnight).
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Per-tenant overrides.
    pub tenants: BTreeMap<String, TenantQuota>,
}

/// `[api.quotas.tenants.<name>]`: what differs for one tenant (unset: the default).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantQuota {
    /// Most unfinished jobs of this tenant (0: no limit).
    pub unfinished: Option<u64>,
    /// Most jobs this tenant may create per UTC day (0: no limit).
    pub daily: Option<u64>,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            unfinished: 0,
            daily: 0,
            backlog: 100_000,
            retry_after: Duration::from_secs(30),
            tenants: BTreeMap::new(),
        }
    }
}

impl QuotaSettings {
    /// The limits of one create by `tenant` (`None`: a caller without a tenant, which only the
    /// backlog cap applies to).
    #[must_use]
    pub fn for_tenant(&self, tenant: Option<&str>) -> CreateQuota {
        let own = tenant
            .and_then(|t| self.tenants.get(t))
            .copied()
            .unwrap_or_default();
        let some = |n: u64| (n > 0).then_some(n);
        CreateQuota {
            unfinished: some(own.unfinished.unwrap_or(self.unfinished)),
            per_day: some(own.daily.unwrap_or(self.daily)),
            backlog: some(self.backlog),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.retry_after < Duration::from_secs(1) {
            return Err(SettingsError::Invalid(
                "api.quotas.retry_after: must be at least 1s".into(),
            ));
        }
        if let Some(bad) = self
            .tenants
            .keys()
            .find(|t| !crate::settings::valid_tenant_name(t))
        {
            return Err(SettingsError::Invalid(format!(
                "api.quotas.tenants: `{}` is not a tenant name (1 to 64 ASCII letters, digits, `-`, `_` or `.`)",
                bad.chars().take(64).collect::<String>()
            )));
        }
        Ok(())
    }
}

/// `[api.limits]`: bounds of the server itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Longest a request may take (every route but the event stream): then 503 `timeout`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Requests served at once by this replica (event streams included); one more answers
    /// 503 `overloaded` at once.
    pub max_concurrent: usize,
    /// Most jobs in one `POST /v1/jobs:batch`.
    pub batch_max: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_concurrent: 1024,
            batch_max: 100,
        }
    }
}

impl ServerLimits {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |what: &str| Err(SettingsError::Invalid(format!("api.limits.{what}")));
        if self.request_timeout < Duration::from_millis(100) {
            return invalid("request_timeout: must be at least 100ms");
        }
        if self.max_concurrent == 0 {
            return invalid("max_concurrent: must be at least 1");
        }
        if !(1..=1000).contains(&self.batch_max) {
            return invalid("batch_max: must be 1 to 1000");
        }
        Ok(())
    }
}
