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

/// Access tokens whose signature and claims were found valid, by their exact
/// text: every authenticated request presents one, and checking the HMAC and
/// decoding the claims anew each time was most of what authenticating cost.
/// Only tokens that passed are kept, so garbage cannot fill it; the time
/// checks (`nbf`, `exp`) run again on every use, and the revocation checks
/// (logout-all, password change, deletion) are the caller's, also on every
/// use.
const VERIFIED_TOKENS_KEPT: u64 = 10_000;

/// A token that passed the signature and claim checks, with its time bounds.
#[derive(Debug, Clone, Copy)]
struct Verified {
    access: VerifiedAccess,
    not_before: i64,
    expires: i64,
}

impl Verified {
    fn at(&self, now: OffsetDateTime) -> Result<VerifiedAccess, AccessTokenError> {
        let now_secs = now.unix_timestamp();
        if self.not_before > now_secs {
            return Err(AccessTokenError::Invalid);
        }
        if self.expires <= now_secs {
            return Err(AccessTokenError::Expired);
        }
        Ok(self.access)
    }
}

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    verified: moka::sync::Cache<Box<str>, Verified>,
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
            // An entry outlives its use only until the token would have expired.
            verified: moka::sync::Cache::builder().max_capacity(VERIFIED_TOKENS_KEPT).time_to_live(access_ttl).build(),
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
        if let Some(verified) = self.verified.get(token) {
            return verified.at(now);
        }
        let verified = self.check_signature_and_claims(token)?;
        self.verified.insert(token.into(), verified);
        verified.at(now)
    }

    fn check_signature_and_claims(&self, token: &str) -> Result<Verified, AccessTokenError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| AccessTokenError::Invalid)?;
        let claims = data.claims;
        if claims.typ != ACCESS_TYPE {
            return Err(AccessTokenError::Invalid);
        }
        let user_id = claims.sub.parse().map_err(|_| AccessTokenError::Invalid)?;
        let family_id = claims.fam.parse().map_err(|_| AccessTokenError::Invalid)?;
        let issued_at = time_util::from_unix_micros(claims.iat_us).ok_or(AccessTokenError::Invalid)?;
        Ok(Verified {
            access: VerifiedAccess { user_id, family_id, issued_at },
            not_before: claims.nbf,
            expires: claims.exp,
        })
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

    /// A token verified once is taken from the cache afterwards, where its
    /// time bounds still apply; a token differing from it in any byte is
    /// checked on its own, and a rejected one is never kept.
    #[test]
    fn verified_tokens_are_kept_with_their_time_bounds() {
        let tokens = service(b"0123456789abcdef0123456789abcdef");
        let now = time_util::to_micros(OffsetDateTime::now_utc());
        let (user, family) = (UserId::new_v7(), FamilyId::new_v7());
        let token = tokens.issue_access(user, family, now).unwrap();
        assert!(!tokens.verified.contains_key(token.as_str()));
        assert_eq!(tokens.verify_access(&token, now).unwrap().user_id, user);
        assert!(tokens.verified.contains_key(token.as_str()), "a verified token is kept");
        assert_eq!(tokens.verify_access(&token, now).unwrap().user_id, user, "and read back");

        let before = now - time::Duration::seconds(1);
        assert_eq!(tokens.verify_access(&token, before), Err(AccessTokenError::Invalid), "not before its nbf");
        let later = now + time::Duration::seconds(900);
        assert_eq!(tokens.verify_access(&token, later), Err(AccessTokenError::Expired), "expired from the cache too");

        // The same header and claims under another signature.
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let forged = format!("{signed}.{flipped}{}", &signature[1..]);
        assert_eq!(tokens.verify_access(&forged, now), Err(AccessTokenError::Invalid));
        assert!(!tokens.verified.contains_key(forged.as_str()), "a rejected token is not kept");
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
