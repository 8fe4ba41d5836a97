//! Optional bearer-token authentication: the `[auth]` section, the scopes, and the check of a
//! presented token against the configured hashes.
//!
//! The configuration holds only the sha256 of each token, never the token, so a leaked config
//! file or log line does not grant access. A presented token is hashed and its digest compared
//! with every configured digest without stopping at the first match, in constant time per
//! digest; an attacker controls the token but not the digest it hashes to, so even a plain
//! comparison of digests would leak nothing useful, and this costs nothing.
//!
//! The HTTP side (which routes need which scope, the 401/403 problems) lives in `api::auth`.

mod token;

use std::fmt;

use serde::Deserialize;

pub use token::{TOKEN_PREFIX, generate_token, sha256_hex};

/// What a token may do. `write` implies `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every read: GETs and the read-only POSTs (lookups, online and historical retrieval).
    Read,
    /// Reads and every change: saves, deletes, pushes, materialization, registry apply,
    /// cache clearing.
    Write,
}

impl Scope {
    /// Whether a token of this scope may make a request that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }

    /// The scope's name, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[auth]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether every route but `/health`, the API documentation and the console's pages needs
    /// a token.
    pub enabled: bool,
    /// The accepted tokens, as `[[auth.tokens]]` tables.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One `[[auth.tokens]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A label for logs and 403 messages (who holds the token).
    pub name: String,
    /// The sha256 of the token, as 64 hexadecimal characters.
    pub sha256: String,
    /// What the token may do.
    pub scope: Scope,
}

impl AuthConfig {
    /// Checks the section once at start-up; the message names the key. The tokens are
    /// checked even when auth is off, so a mistake shows before it is switched on.
    pub fn validate(&self) -> Result<(), String> {
        Authenticator::new(&self.tokens)?;
        if self.enabled && self.tokens.is_empty() {
            return Err(
                "auth.tokens must list at least one token when auth.enabled = true \
                 (create one with `featurestore token create --scope read`)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The token check the server applies, or `None` when auth is off.
    pub fn authenticator(&self) -> Result<Option<Authenticator>, String> {
        self.validate()?;
        if self.enabled {
            Authenticator::new(&self.tokens).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's configured name.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
}

/// Checks presented tokens against the configured hashes.
#[derive(Debug, Clone)]
pub struct Authenticator {
    known: Vec<(Identity, [u8; 32])>,
}

impl Authenticator {
    /// The check for `tokens`: an error naming the key when a hash is not 64 hex characters,
    /// a name is empty, or two entries share a name or a hash.
    pub fn new(tokens: &[TokenConfig]) -> Result<Self, String> {
        let mut known: Vec<(Identity, [u8; 32])> = Vec::with_capacity(tokens.len());
        for (i, token) in tokens.iter().enumerate() {
            let key = format!("auth.tokens[{i}]");
            if token.name.trim().is_empty() {
                return Err(format!("{key}.name must not be empty"));
            }
            let digest = token::parse_digest(&token.sha256).ok_or_else(|| {
                format!(
                    "{key}.sha256 must be the sha256 of the token as 64 hexadecimal characters, \
                     got {} characters",
                    token.sha256.chars().count()
                )
            })?;
            for (j, (other, other_digest)) in known.iter().enumerate() {
                if *other_digest == digest {
                    return Err(format!(
                        "{key}.sha256 is the same as auth.tokens[{j}].sha256 ({:?}): each token \
                         must appear once",
                        other.name
                    ));
                }
                if other.name == token.name {
                    return Err(format!(
                        "{key}.name {:?} is already used by auth.tokens[{j}]",
                        token.name
                    ));
                }
            }
            known.push((
                Identity {
                    name: token.name.clone(),
                    scope: token.scope,
                },
                digest,
            ));
        }
        Ok(Self { known })
    }

    /// The identity whose hash matches `presented`, if any.
    pub fn verify(&self, presented: &str) -> Option<&Identity> {
        let digest = token::digest(presented);
        let mut found = None;
        // Every entry is compared, so the time taken does not say which entry matched.
        for (identity, known) in &self.known {
            if token::same_digest(known, &digest) {
                found = Some(identity);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, sha256: &str, scope: Scope) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            sha256: sha256.into(),
            scope,
        }
    }

    #[test]
    fn write_implies_read_but_not_the_reverse() {
        assert!(Scope::Write.allows(Scope::Read));
        assert!(Scope::Write.allows(Scope::Write));
        assert!(Scope::Read.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write));
    }

    #[test]
    fn a_configured_token_is_recognised_by_its_hash_only() -> Result<(), String> {
        let token = generate_token().map_err(|e| e.to_string())?;
        let auth = Authenticator::new(&[
            entry("reader", &sha256_hex("another"), Scope::Read),
            entry("ci", &sha256_hex(&token).to_uppercase(), Scope::Write),
        ])?;
        assert_eq!(
            auth.verify(&token),
            Some(&Identity {
                name: "ci".into(),
                scope: Scope::Write
            })
        );
        assert_eq!(auth.verify(&sha256_hex(&token)), None);
        assert_eq!(auth.verify(""), None);
        Ok(())
    }

    #[test]
    fn bad_hashes_duplicates_and_missing_tokens_name_the_key() {
        let good = sha256_hex("a");
        let short = Authenticator::new(&[entry("a", "abc", Scope::Read)]);
        assert!(matches!(short, Err(m) if m.contains("auth.tokens[0].sha256")));
        let not_hex = Authenticator::new(&[entry("a", &"g".repeat(64), Scope::Read)]);
        assert!(matches!(not_hex, Err(m) if m.contains("auth.tokens[0].sha256")));
        let twice = Authenticator::new(&[
            entry("a", &good, Scope::Read),
            entry("b", &good.to_uppercase(), Scope::Write),
        ]);
        assert!(matches!(twice, Err(m) if m.contains("auth.tokens[1].sha256")));
        let same_name = Authenticator::new(&[
            entry("a", &good, Scope::Read),
            entry("a", &sha256_hex("b"), Scope::Read),
        ]);
        assert!(matches!(same_name, Err(m) if m.contains("auth.tokens[1].name")));
        let none = AuthConfig {
            enabled: true,
            tokens: Vec::new(),
        };
        assert!(matches!(none.validate(), Err(m) if m.contains("auth.tokens")));
        let off = AuthConfig {
            enabled: false,
            tokens: Vec::new(),
        };
        assert!(matches!(off.authenticator(), Ok(None)));
    }
}
