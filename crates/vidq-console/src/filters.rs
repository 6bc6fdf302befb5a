//! The jobs list's filters: state, tenant (admins), metadata `key=value`, and a creation time
//! range. State and tenant choose the index read; the time range bounds it (`until` starts the
//! read below that time, `since` ends it); metadata is checked on each page read.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use vidq_core::{JobId, JobPage, JobState, ListCursor};

use crate::Principal;
use crate::html::{esc, query_value, time};

/// What the list shows.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    pub(crate) state: Option<JobState>,
    pub(crate) tenant: Option<String>,
    pub(crate) meta: Option<(String, String)>,
    pub(crate) since_ms: Option<u64>,
    pub(crate) until_ms: Option<u64>,
    pub(crate) cursor: Option<ListCursor>,
}

/// `2026-12-02T03:57:44Z`, `2026-12-02T03:57`, `2026-12-02 03:57:44` (UTC) as Unix ms.
fn parse_time(name: &str, s: &str) -> Result<u64, String> {
    let s = s.trim();
    let full = if s.len() == 16 {
        format!("{s}:00")
    } else {
        s.to_owned()
    };
    humantime::parse_rfc3339_weak(full.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .ok_or_else(|| format!("{name}: {s:?} is not a UTC time like 2026-12-02T03:57:44Z"))
}

impl Filters {
    /// The filters of the query string; a bad one is an error naming it.
    pub(crate) fn parse(
        principal: &Principal,
        query: &HashMap<String, String>,
    ) -> Result<Self, String> {
        let given = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut filters = Self::default();
        if let Some(s) = given("state") {
            filters.state = Some(
                s.parse()
                    .map_err(|_| format!("state: {s:?} is not a job state"))?,
            );
        }
        filters.tenant = if principal.admin {
            given("tenant").map(str::to_owned)
        } else {
            Some(principal.tenant.clone())
        };
        if let Some(m) = given("meta") {
            let (k, v) = m
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("meta: {m:?} is not key=value"))?;
            filters.meta = Some((k.to_owned(), v.to_owned()));
        }
        if let Some(s) = given("since") {
            filters.since_ms = Some(parse_time("since", s)?);
        }
        if let Some(s) = given("until") {
            // Through the end of that second: times are shown to the second.
            filters.until_ms = Some(parse_time("until", s)?.saturating_add(999));
        }
        if let (Some(since), Some(until)) = (filters.since_ms, filters.until_ms)
            && since > until
        {
            return Err("since: must not be after until".to_owned());
        }
        filters.cursor = match given("cursor") {
            Some(c) => Some(
                c.parse()
                    .map_err(|_| "cursor: not a cursor of this list".to_owned())?,
            ),
            // `until` starts below it: a cursor of a job not in the index reads by score.
            None => match filters.until_ms {
                Some(until) => format!("{}_{}", until.saturating_add(1), JobId::new())
                    .parse()
                    .ok(),
                None => None,
            },
        };
        Ok(filters)
    }

    /// Drops what the page's index read cannot: jobs before `since` (and the next page, once
    /// one is met: the list is newest first) and jobs without the metadata.
    pub(crate) fn apply(&self, mut page: JobPage) -> JobPage {
        if let Some(since) = self.since_ms
            && page.jobs.iter().any(|j| j.created_at < since)
        {
            page.jobs.retain(|j| j.created_at >= since);
            page.next_cursor = None;
        }
        if let Some((k, v)) = &self.meta {
            page.jobs
                .retain(|j| j.request.metadata().get(k).is_some_and(|value| value == v));
        }
        page
    }

    /// The query string of these filters with `cursor` (for the next page's link).
    pub(crate) fn next_href(&self, principal: &Principal, cursor: &ListCursor) -> String {
        let mut href = format!("/console/jobs?cursor={}", query_value(&cursor.to_string()));
        if let Some(s) = self.state {
            let _ = write!(href, "&state={}", s.as_str());
        }
        if let (true, Some(t)) = (principal.admin, &self.tenant) {
            let _ = write!(href, "&tenant={}", query_value(t));
        }
        if let Some((k, v)) = &self.meta {
            let _ = write!(href, "&meta={}", query_value(&format!("{k}={v}")));
        }
        if let Some(since) = self.since_ms {
            let _ = write!(href, "&since={}", query_value(&time(since)));
        }
        href
    }

    /// The filter form, showing these filters.
    pub(crate) fn form(&self, principal: &Principal) -> String {
        let mut out = String::from(
            r#"<form method="get" action="/console/jobs" class="filters"><label>Search <input type="search" name="q" id="q" placeholder="job id, img_uuid or idempotency key"></label> <label>State <select name="state" id="state"><option value="">any</option>"#,
        );
        for s in JobState::ALL {
            let selected = if self.state == Some(s) {
                " selected"
            } else {
                ""
            };
            let _ = write!(out, r#"<option{selected}>{}</option>"#, s.as_str());
        }
        out.push_str("</select></label>");
        if principal.admin {
            let _ = write!(
                out,
                r#" <label>Tenant <input name="tenant" id="tenant" value="{}"></label>"#,
                esc(self.tenant.as_deref().unwrap_or(""))
            );
        }
        let meta = self
            .meta
            .as_ref()
            .map(|(k, v)| format!("{k}={v}"))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#" <label>Metadata <input name="meta" id="meta" placeholder="key=value" value="{}"></label> <label>Created since <input name="since" id="since" placeholder="2026-12-02T03:00:00Z" value="{}"></label> <label>until <input name="until" id="until" placeholder="UTC" value="{}"></label> <button type="submit" id="filter">Show</button></form>"#,
            esc(&meta),
            self.since_ms.map(time).unwrap_or_default(),
            self.until_ms.map(time).unwrap_or_default(),
        );
        out
    }
}
