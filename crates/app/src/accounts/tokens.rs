//! Access tokens (HS256 JWTs) and refresh tokens (opaque, hashed at rest).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use specgen_domain::{FamilyId, TokenHash, UserId, time_util};

const ISSUER: &str = "specgen";
const AUDIENCE: &str = "specgen-api";
const ACCESS_TYPE: &str = "access";

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    aud: String,
    sub: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    /// Explicit token type, so no other kind of token passes as an access token.
    typ: String,
    /// The login family this token belongs to.
    fam: String,
    /// Issue instant in microseconds: `iat` is whole seconds, too coarse to
    /// order a token against a logout-all in the same second.
    iat_us: i64,
    jti: String,
}

/// What a valid access token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAccess {
    pub user_id: UserId,
    pub family_id: FamilyId,
    pub issued_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
}

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl TokenService {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        // Only HS256 is accepted, whatever the token's header claims.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // Time is checked against the application clock below, so tests can move it.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn issue_access(&self, user: UserId, family: FamilyId, now: OffsetDateTime) -> anyhow::Result<String> {
        let iat = now.unix_timestamp();
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.to_string(),
            iat,
            nbf: iat,
            exp: iat + i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX / 2),
            typ: ACCESS_TYPE.into(),
            fam: family.to_string(),
            iat_us: time_util::unix_micros(now),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| anyhow::anyhow!("signing an access token: {e}"))
    }

    pub fn verify_access(&self, token: &str, now: OffsetDateTime) -> Result<VerifiedAccess, AccessTokenError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| AccessTokenError::Invalid)?;
        let claims = data.claims;
        if claims.typ != ACCESS_TYPE {
            return Err(AccessTokenError::Invalid);
        }
        let now_secs = now.unix_timestamp();
        if claims.nbf > now_secs {
            return Err(AccessTokenError::Invalid);
        }
        if claims.exp <= now_secs {
            return Err(AccessTokenError::Expired);
        }
        let user_id = claims.sub.parse().map_err(|_| AccessTokenError::Invalid)?;
        let family_id = claims.fam.parse().map_err(|_| AccessTokenError::Invalid)?;
        let issued_at = time_util::from_unix_micros(claims.iat_us).ok_or(AccessTokenError::Invalid)?;
        Ok(VerifiedAccess { user_id, family_id, issued_at })
    }
}

/// A new refresh token: 256 random bits, base64url; only its hash is stored.
pub fn new_refresh_token() -> (String, TokenHash) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let plain = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&plain);
    (plain, hash)
}

pub fn hash_refresh_token(plain: &str) -> TokenHash {
    TokenHash(Sha256::digest(plain.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(secret: &[u8]) -> TokenService {
        TokenService::new(secret, Duration::from_secs(900), Duration::from_secs(3600))
    }

    #[test]
    fn round_trip_and_rejections() {
        let tokens = service(b"0123456789abcdef0123456789abcdef");
        let now = time_util::to_micros(OffsetDateTime::now_utc());
        let (user, family) = (UserId::new_v7(), FamilyId::new_v7());
        let token = tokens.issue_access(user, family, now).unwrap();
        let verified = tokens.verify_access(&token, now).unwrap();
        assert_eq!((verified.user_id, verified.family_id, verified.issued_at), (user, family, now));

        let later = now + time::Duration::seconds(900);
        assert_eq!(tokens.verify_access(&token, later), Err(AccessTokenError::Expired));
        let other_key = service(b"another-key-another-key-another-key!");
        assert_eq!(other_key.verify_access(&token, now), Err(AccessTokenError::Invalid));
        assert_eq!(tokens.verify_access("not.a.jwt", now), Err(AccessTokenError::Invalid));

        // alg "none" with the same claims.
        let payload = token.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(tokens.verify_access(&format!("{none_header}.{payload}."), now), Err(AccessTokenError::Invalid));
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, hash_a) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_refresh_token(&a), hash_a);
    }
}
