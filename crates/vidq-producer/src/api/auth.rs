//! Bearer tokens from the settings, kept as SHA-256 digests and compared in constant time,
//! each with its scopes. A token's name is its tenant: the caller sees only that tenant's
//! jobs, unless it is admin. The set can be replaced while serving (`vidq serve` on SIGHUP).

use std::sync::{Arc, RwLock};

use axum::http::{HeaderMap, header};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use crate::{ApiToken, Scope};

/// The tokens allowed to call the API. `Debug` shows names only.
pub(crate) struct Tokens {
    entries: RwLock<Arc<Vec<Entry>>>,
}

struct Entry {
    name: String,
    /// sha256 of the token: every comparison then runs over 32 bytes whatever the lengths.
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.snapshot();
        f.debug_list()
            .entries(entries.iter().map(|e| &e.name))
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
            entries: RwLock::new(Arc::new(entries(tokens))),
        }
    }

    /// Replaces the whole set: requests already past authorization go on; the next ones see
    /// the new set. Returns how many tokens it holds.
    pub(crate) fn replace(&self, tokens: &[ApiToken]) -> usize {
        let fresh = Arc::new(entries(tokens));
        let count = fresh.len();
        match self.entries.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        count
    }

    /// How many tokens there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.snapshot().len()
    }

    fn snapshot(&self) -> Arc<Vec<Entry>> {
        match self.entries.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The caller presenting `headers`, if its token has `scope` (`admin` implies `read` and
    /// `write`): 401 without a known bearer token, 403 without the scope.
    pub(crate) fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Caller, ApiError> {
        let presented =
            bearer(headers).ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        self.authorize_digest(&digest(presented.expose_secret()), scope)
    }

    /// The caller whose token's SHA-256 digest is `presented`, if it has `scope` (the
    /// console checks a session's token this way on every request).
    pub(crate) fn authorize_digest(
        &self,
        presented: &[u8; 32],
        scope: Scope,
    ) -> Result<Caller, ApiError> {
        let entries = self.snapshot();
        // Compare against every token, without stopping early, so timing reveals nothing.
        let mut found = None;
        for (index, entry) in entries.iter().enumerate() {
            if bool::from(entry.digest.ct_eq(presented)) {
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

/// Tokens whose digest cannot be read were refused when the settings were loaded; any left
/// here are skipped.
fn entries(tokens: &[ApiToken]) -> Vec<Entry> {
    tokens
        .iter()
        .filter_map(|t| {
            Some(Entry {
                name: t.name.clone(),
                digest: t.digest()?,
                scopes: t.scopes.clone(),
            })
        })
        .collect()
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
                sha256: None,
                scopes: vec![Scope::Read],
            },
            ApiToken {
                name: "ops".into(),
                token: SecretString::from(String::new()),
                // printf %s admin-token-0123456789 | sha256sum
                sha256: Some(SecretString::from(hex::encode(digest(
                    "admin-token-0123456789",
                )))),
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

    #[test]
    fn a_digest_matches_its_token_and_the_set_can_be_replaced() {
        let t = tokens();
        let admin = t
            .authorize(&headers("Bearer admin-token-0123456789"), Scope::Read)
            .unwrap();
        assert_eq!(admin.tenant, "ops");
        assert_eq!(
            t.replace(&[ApiToken {
                name: "new".into(),
                token: SecretString::from("new-token-0123456789"),
                sha256: None,
                scopes: vec![Scope::Read],
            }]),
            1
        );
        assert_eq!(t.len(), 1);
        let gone = t
            .authorize(&headers("Bearer admin-token-0123456789"), Scope::Read)
            .unwrap_err();
        assert_eq!(gone.status(), 401);
        let new = t
            .authorize(&headers("Bearer new-token-0123456789"), Scope::Read)
            .unwrap();
        assert_eq!(new.tenant, "new");
    }
}
