//! Bearer tokens from the settings, compared in constant time, each with its scopes. A
//! token's name is its tenant: the caller sees only that tenant's jobs, unless it is admin.

use axum::http::{HeaderMap, header};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use crate::{ApiToken, Scope};

/// The tokens allowed to call the API. `Debug` shows names only.
pub(crate) struct Tokens {
    entries: Vec<Entry>,
}

struct Entry {
    name: String,
    /// sha256 of the token: every comparison then runs over 32 bytes whatever the lengths.
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.name))
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Who is calling: its tenant, and whether it may act on every tenant's jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The token's name: the tenant owning the jobs it creates.
    pub(crate) tenant: String,
    /// The token has the `admin` scope.
    pub(crate) admin: bool,
    /// Which token of the settings it presented (tokens of one tenant are rate limited each
    /// on its own).
    pub(crate) token: usize,
}

impl Caller {
    /// Whether this caller may see and act on a job owned by `owner` (jobs without an owner,
    /// stored before jobs had owners, are an admin's only).
    pub(crate) fn may_see(&self, owner: Option<&str>) -> bool {
        self.admin || owner == Some(self.tenant.as_str())
    }
}

impl Tokens {
    pub(crate) fn new(tokens: &[ApiToken]) -> Self {
        Self {
            entries: tokens
                .iter()
                .map(|t| Entry {
                    name: t.name.clone(),
                    digest: digest(t.token.expose_secret()),
                    scopes: t.scopes.clone(),
                })
                .collect(),
        }
    }

    /// The caller presenting `headers`, if its token has `scope` (`admin` implies `read` and
    /// `write`): 401 without a known bearer token, 403 without the scope.
    pub(crate) fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Caller, ApiError> {
        let presented =
            bearer(headers).ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        let presented = digest(presented.expose_secret());
        // Compare against every token, without stopping early, so timing reveals nothing.
        let mut found = None;
        for (index, entry) in self.entries.iter().enumerate() {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some((index, entry));
            }
        }
        let (token, entry) = found.ok_or_else(|| ApiError::unauthorized("unknown bearer token"))?;
        let admin = entry.scopes.contains(&Scope::Admin);
        if !admin && !entry.scopes.contains(&scope) {
            return Err(ApiError::forbidden(match scope {
                Scope::Read => "read",
                Scope::Write => "write",
                Scope::Admin => "admin",
            }));
        }
        Ok(Caller {
            tenant: entry.name.clone(),
            admin,
            token,
        })
    }
}

fn bearer(headers: &HeaderMap) -> Option<SecretString> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then(|| SecretString::from(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[
            ApiToken {
                name: "reader".into(),
                token: SecretString::from("reader-token-0123456789"),
                scopes: vec![Scope::Read],
            },
            ApiToken {
                name: "ops".into(),
                token: SecretString::from("admin-token-0123456789"),
                scopes: vec![Scope::Admin],
            },
        ])
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn checks_token_and_scope() {
        let t = tokens();
        let reader = t
            .authorize(&headers("Bearer reader-token-0123456789"), Scope::Read)
            .unwrap();
        assert_eq!(
            reader,
            Caller {
                tenant: "reader".into(),
                admin: false,
                token: 0,
            }
        );
        assert!(reader.may_see(Some("reader")));
        assert!(!reader.may_see(Some("other")));
        assert!(!reader.may_see(None));
        let admin = t
            .authorize(&headers("Bearer admin-token-0123456789"), Scope::Write)
            .unwrap();
        assert!(admin.admin);
        assert!(admin.may_see(Some("other")) && admin.may_see(None));
        let no_scope = t
            .authorize(&headers("bearer reader-token-0123456789"), Scope::Write)
            .unwrap_err();
        assert_eq!(no_scope.status(), 403);
        let wrong = t
            .authorize(&headers("Bearer reader-token-012345678"), Scope::Read)
            .unwrap_err();
        assert_eq!(wrong.status(), 401);
        let missing = t.authorize(&HeaderMap::new(), Scope::Read).unwrap_err();
        assert_eq!(missing.status(), 401);
        assert!(!format!("{t:?}").contains("reader-token"));
    }
}
