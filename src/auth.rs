//! Token verification: a marketplace-issued JWT becomes a [`Principal`].
//!
//! Switchboard keeps no passwords or sessions of its own: every HTTP request and every socket
//! carries a token from the marketplace backend, verified here with the configured key.
//!
//! Besides the signature, `exp` (required) and `nbf` (when present) are checked by
//! jsonwebtoken's validation with [`LEEWAY_SECS`] of clock skew. SimpleJWT signs its refresh
//! tokens with the same key as its access tokens and tells them apart only by the `token_type`
//! claim, so a token whose `token_type` is present and is not `access` is refused: a leaked or
//! stored refresh token must not open a socket or call the API.

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::config::{AuthConfig, JwtAlgorithm};
use crate::domain::clock::machine_ms;
use crate::domain::user::{ExternalId, Principal, Role};

/// Clock skew tolerated on `exp` and `nbf`, seconds. Sockets use it too, so a token is good for
/// exactly as long on an open socket as at the door.
pub const LEEWAY_SECS: u64 = 5;

/// The `token_type` SimpleJWT gives access tokens; the only one accepted when the claim is there.
const ACCESS_TOKEN_TYPE: &str = "access";

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token's claims are not usable: {0}")]
    BadClaim(String),
}

/// A verified token: who it speaks for and until when (`exp`, unix seconds). Sockets keep the
/// expiry to close themselves when it passes; HTTP needs only the principal.
#[derive(Debug, Clone)]
pub struct Verified {
    pub principal: Principal,
    pub expires_at: i64,
}

/// Verifies tokens with the configured algorithm and key, and mints dev tokens when allowed.
pub struct Authenticator {
    decoding: DecodingKey,
    validation: Validation,
    user_id_claim: String,
    /// Present only when dev tokens are enabled (HS256 only).
    dev_signer: Option<(EncodingKey, u64)>,
}

impl Authenticator {
    pub fn new(cfg: &AuthConfig) -> Result<Self, String> {
        let (alg, decoding) = match cfg.algorithm {
            JwtAlgorithm::HS256 => (
                Algorithm::HS256,
                DecodingKey::from_secret(cfg.jwt_secret.as_bytes()),
            ),
            JwtAlgorithm::RS256 => (
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(&read_pem(&cfg.jwt_public_key)?)
                    .map_err(|e| format!("auth.jwt_public_key is not an RSA public key: {e}"))?,
            ),
            JwtAlgorithm::EdDSA => (
                Algorithm::EdDSA,
                DecodingKey::from_ed_pem(&read_pem(&cfg.jwt_public_key)?).map_err(|e| {
                    format!("auth.jwt_public_key is not an Ed25519 public key: {e}")
                })?,
            ),
        };
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &cfg.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &cfg.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let dev_signer = cfg.dev_tokens.then(|| {
            (
                EncodingKey::from_secret(cfg.jwt_secret.as_bytes()),
                cfg.dev_token_ttl_secs,
            )
        });
        Ok(Authenticator {
            decoding,
            validation,
            user_id_claim: cfg.user_id_claim.clone(),
            dev_signer,
        })
    }

    /// Verifies a token and reads the claims Switchboard uses. A missing `role` means `customer`;
    /// a missing `name` falls back to the user id.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_with_expiry(token).map(|v| v.principal)
    }

    /// [`Authenticator::verify`], keeping the token's `exp` for a socket that must close when it
    /// passes.
    pub fn verify_with_expiry(&self, token: &str) -> Result<Verified, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &self.validation)
                .map_err(|e| match e.kind() {
                    JwtErrorKind::ExpiredSignature => AuthError::Expired,
                    JwtErrorKind::ImmatureSignature => {
                        AuthError::Invalid("it is not valid yet (nbf)".into())
                    }
                    _ => AuthError::Invalid(e.to_string()),
                })?;
        let claims = data.claims;
        match claims.get("token_type") {
            None => {}
            Some(Value::String(t)) if t == ACCESS_TOKEN_TYPE => {}
            Some(_) => {
                return Err(AuthError::Invalid(
                    "token_type must be `access` (a refresh token cannot be used here)".into(),
                ))
            }
        }
        // Validation required `exp` and checked it is a number; a float is read as its whole
        // seconds (saturating), never trusted to be in range.
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_f64)
            .map(|f| f as i64)
            .ok_or_else(|| AuthError::BadClaim("claim `exp` is missing".into()))?;
        let user_id = match claims.get(&self.user_id_claim) {
            Some(Value::String(s)) => ExternalId::parse(s),
            Some(Value::Number(n)) => ExternalId::parse(&n.to_string()),
            _ => Err(format!("claim `{}` is missing", self.user_id_claim)),
        }
        .map_err(AuthError::BadClaim)?;
        let role = match claims.get("role") {
            None | Some(Value::Null) => Role::Customer,
            Some(v) => serde_json::from_value::<Role>(v.clone()).map_err(|_| {
                AuthError::BadClaim("role must be customer, provider or admin".into())
            })?,
        };
        let name = match claims.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.chars().take(200).collect(),
            _ => user_id.to_string(),
        };
        let email = match claims.get("email") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        Ok(Verified {
            principal: Principal {
                user_id,
                role,
                name,
                email,
            },
            expires_at,
        })
    }

    pub fn dev_tokens_enabled(&self) -> bool {
        self.dev_signer.is_some()
    }

    /// Signs a token for local runs and load tests. `None` when dev tokens are off.
    pub fn mint_dev_token(&self, p: &Principal) -> Option<Result<String, AuthError>> {
        let (key, ttl) = self.dev_signer.as_ref()?;
        let mut claims = Map::new();
        claims.insert(
            self.user_id_claim.clone(),
            Value::String(p.user_id.to_string()),
        );
        claims.insert(
            "role".into(),
            serde_json::to_value(p.role).unwrap_or(Value::Null),
        );
        claims.insert("name".into(), Value::String(p.name.clone()));
        if let Some(email) = &p.email {
            claims.insert("email".into(), Value::String(email.clone()));
        }
        let exp = machine_ms() / 1000 + *ttl as i64;
        claims.insert("exp".into(), Value::from(exp));
        if let Some(iss) = self.validation.iss.as_ref().and_then(|s| s.iter().next()) {
            claims.insert("iss".into(), Value::String(iss.clone()));
        }
        if let Some(aud) = self.validation.aud.as_ref().and_then(|s| s.iter().next()) {
            claims.insert("aud".into(), Value::String(aud.clone()));
        }
        Some(
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
                .map_err(|e| AuthError::Invalid(e.to_string())),
        )
    }
}

/// A PEM key given inline or as a path to a file.
fn read_pem(value: &str) -> Result<Vec<u8>, String> {
    if value.trim_start().starts_with("-----BEGIN") {
        Ok(value.as_bytes().to_vec())
    } else {
        std::fs::read(value)
            .map_err(|e| format!("cannot read auth.jwt_public_key file {value}: {e}"))
    }
}

/// The token in an `Authorization: Bearer ...` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        let mut c = crate::config::Config::default().auth;
        c.jwt_secret = "secret".into();
        c.dev_tokens = true;
        c
    }

    fn sign(claims: Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn verifies_simplejwt_style_tokens_with_a_configured_claim() {
        let mut c = cfg();
        c.user_id_claim = "user_id".into();
        let a = Authenticator::new(&c).unwrap();
        let exp = machine_ms() / 1000 + 60;
        let t = sign(
            serde_json::json!({"user_id": 42, "exp": exp, "role": "provider", "name": "Ann"}),
            "secret",
        );
        let p = a.verify(&t).unwrap();
        assert_eq!(p.user_id.as_str(), "42");
        assert_eq!(p.role, Role::Provider);
        assert_eq!(p.name, "Ann");
    }

    #[test]
    fn rejects_expired_forged_and_claimless_tokens() {
        let a = Authenticator::new(&cfg()).unwrap();
        let past = machine_ms() / 1000 - 3600;
        let future = machine_ms() / 1000 + 3600;
        let expired = sign(serde_json::json!({"sub": "u", "exp": past}), "secret");
        assert!(matches!(a.verify(&expired), Err(AuthError::Expired)));
        let forged = sign(serde_json::json!({"sub": "u", "exp": future}), "other");
        assert!(matches!(a.verify(&forged), Err(AuthError::Invalid(_))));
        let no_exp = sign(serde_json::json!({"sub": "u"}), "secret");
        assert!(matches!(a.verify(&no_exp), Err(AuthError::Invalid(_))));
        let no_sub = sign(serde_json::json!({"exp": future}), "secret");
        assert!(matches!(a.verify(&no_sub), Err(AuthError::BadClaim(_))));
        let bad_role = sign(
            serde_json::json!({"sub": "u", "exp": future, "role": "root"}),
            "secret",
        );
        assert!(matches!(a.verify(&bad_role), Err(AuthError::BadClaim(_))));
        assert!(matches!(a.verify("garbage"), Err(AuthError::Invalid(_))));
        assert!(matches!(a.verify(""), Err(AuthError::Missing)));
    }

    #[test]
    fn refresh_tokens_are_refused_and_access_or_untyped_tokens_pass() {
        let a = Authenticator::new(&cfg()).unwrap();
        let exp = machine_ms() / 1000 + 60;
        for (token_type, ok) in [
            (None, true),
            (Some(serde_json::json!("access")), true),
            (Some(serde_json::json!("refresh")), false),
            (Some(serde_json::json!("")), false),
            (Some(serde_json::json!(null)), false),
            (Some(serde_json::json!(1)), false),
        ] {
            let mut claims = serde_json::json!({"sub": "u", "exp": exp});
            if let Some(t) = &token_type {
                claims["token_type"] = t.clone();
            }
            let got = a.verify(&sign(claims, "secret"));
            match (ok, &got) {
                (true, Ok(_)) | (false, Err(AuthError::Invalid(_))) => {}
                _ => panic!("token_type {token_type:?}: expected ok={ok}, got {got:?}"),
            }
        }
    }

    #[test]
    fn nbf_in_the_future_is_refused_and_in_the_past_accepted() {
        let a = Authenticator::new(&cfg()).unwrap();
        let now = machine_ms() / 1000;
        let later = sign(
            serde_json::json!({"sub": "u", "exp": now + 600, "nbf": now + 300}),
            "secret",
        );
        assert!(
            matches!(a.verify(&later), Err(AuthError::Invalid(ref m)) if m.contains("nbf")),
            "a token not valid yet must be refused"
        );
        let earlier = sign(
            serde_json::json!({"sub": "u", "exp": now + 600, "nbf": now - 10}),
            "secret",
        );
        assert!(a.verify(&earlier).is_ok());
    }

    #[test]
    fn the_expiry_comes_back_with_the_principal() {
        let a = Authenticator::new(&cfg()).unwrap();
        let exp = machine_ms() / 1000 + 77;
        let v = a
            .verify_with_expiry(&sign(serde_json::json!({"sub": "u", "exp": exp}), "secret"))
            .unwrap();
        assert_eq!((v.principal.user_id.as_str(), v.expires_at), ("u", exp));
    }

    #[test]
    fn dev_tokens_round_trip_and_need_the_switch() {
        let a = Authenticator::new(&cfg()).unwrap();
        let p = Principal {
            user_id: ExternalId::parse("c1").unwrap(),
            role: Role::Customer,
            name: "Cy".into(),
            email: None,
        };
        let t = a.mint_dev_token(&p).unwrap().unwrap();
        assert_eq!(a.verify(&t).unwrap().user_id.as_str(), "c1");
        let mut off = cfg();
        off.dev_tokens = false;
        assert!(Authenticator::new(&off)
            .unwrap()
            .mint_dev_token(&p)
            .is_none());
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }
}
