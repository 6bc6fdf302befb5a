//! HTML building: every piece of job data goes through [`esc`]; pages share [`page`]'s layout.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Principal;

/// `text` with `& < > " '` escaped: safe in element content and in quoted attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for a query string value.
pub(crate) fn query_value(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Unix ms as RFC 3339 UTC, to the second.
pub(crate) fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A duration in ms for people: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub(crate) fn took(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{} h {:02} min", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// A hidden input carrying the session's CSRF token.
pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(csrf))
}

/// A one-button form POSTing to `action` (an absolute `/console/...` path we built).
pub(crate) fn button(action: &str, label: &str, csrf: &str, hidden: &[(&str, &str)]) -> String {
    let mut out = format!(
        r#"<form method="post" action="{}" class="inline">{}"#,
        esc(action),
        csrf_field(csrf)
    );
    for (name, value) in hidden {
        let _ = write!(
            out,
            r#"<input type="hidden" name="{}" value="{}">"#,
            esc(name),
            esc(value)
        );
    }
    let _ = write!(
        out,
        r#"<button type="submit" data-action="{}">{}</button></form>"#,
        esc(label),
        esc(label)
    );
    out
}

/// A whole page: header with navigation (when signed in), `body` (already escaped HTML).
pub(crate) fn page(
    status: StatusCode,
    title: &str,
    who: Option<(&Principal, &str)>,
    body: &str,
) -> Response {
    live_page(status, title, who, body, None)
}

/// A page that updates itself (console.js) when a job moves: any job (`"all"`) or the one
/// job whose id `live` is; its `data-live-part` elements are swapped in place.
pub(crate) fn live_page(
    status: StatusCode,
    title: &str,
    who: Option<(&Principal, &str)>,
    body: &str,
    live: Option<&str>,
) -> Response {
    let live = live.map_or(String::new(), |l| format!(r#" data-live="{}""#, esc(l)));
    let nav = match who {
        Some((principal, csrf)) => {
            let scope = if principal.admin {
                "admin"
            } else if principal.write {
                "write"
            } else {
                "read"
            };
            let dead = if principal.admin {
                r#"<a href="/console/dead">Dead tasks</a><a href="/console/workers">Workers</a>"#
            } else {
                ""
            };
            format!(
                r#"<nav><a href="/console">Overview</a><a href="/console/jobs">Jobs</a>{dead}
<span class="who">signed in as <b id="who">{}</b> ({scope})</span>{}</nav>"#,
                esc(&principal.tenant),
                button("/console/logout", "Sign out", csrf, &[])
            )
        }
        None => String::new(),
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{} · vidq console</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/console/console.css"><script src="/console/console.js" defer></script></head>
<body><header><span class="brand">vidq console</span>{nav}</header>
<main{live}><h1>{}</h1>
{body}
</main></body></html>"#,
        esc(title),
        esc(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(headers);
    response
}

/// No caching, no framing, no referrer (presigned URLs stay on the page), scripts from us only.
pub(crate) fn secure_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; media-src 'self' http: https:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// A page saying what went wrong.
pub(crate) fn error_page(
    status: StatusCode,
    message: &str,
    who: Option<(&Principal, &str)>,
) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    page(
        status,
        title,
        who,
        &format!(r#"<p class="error" id="error">{}</p>"#, esc(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(took(850), "850 ms");
        assert_eq!(took(12_300), "12.3 s");
        assert_eq!(took(245_000), "4 min 05 s");
        assert_eq!(took(7_380_000), "2 h 03 min");
    }
}
