//! Accounts: registration, sign-in on many devices, token rotation,
//! profiles, password changes and deletion.

pub mod passwords;
pub(crate) mod pseudonyms;
pub mod tokens;

use std::net::IpAddr;

use specgen_domain::{
    Bio, DeviceId, Email, FamilyId, Password, PasswordAttempt, PersonName, Preferences, Profile, RefreshToken,
    RefreshTokenId, Timezone, User, UserId,
};
use specgen_ports::{RateDecision, RepoError};
use time::OffsetDateTime;

use crate::{App, AppError};
use tokens::AccessTokenError;

/// Who is calling, as proven by a valid access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthContext {
    pub user_id: UserId,
    /// The login (device) the token belongs to.
    pub family_id: FamilyId,
}

/// Tokens handed to a client after login, registration or refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSession {
    pub user: User,
    pub tokens: IssuedTokens,
}

/// Profile fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    pub display_name: Option<PersonName>,
    pub bio: Option<Bio>,
    pub timezone: Option<Timezone>,
    pub preferences: Option<Preferences>,
}

fn rate_limited(decisions: &[RateDecision]) -> Option<AppError> {
    decisions.iter().filter(|d| !d.allowed).max_by_key(|d| d.reset_after).map(|d| AppError::RateLimited(*d))
}

impl App {
    fn limiter_unavailable(e: specgen_ports::RateLimitError) -> AppError {
        AppError::Unavailable(e.to_string())
    }

    /// Creates an account and signs it in on a new login family.
    pub async fn register(
        &self,
        email: Email,
        password: Password,
        name: PersonName,
        client: IpAddr,
    ) -> Result<AuthSession, AppError> {
        let decision = self
            .inner
            .ports
            .rate_limiter
            .hit(&format!("register:{client}"), self.inner.limits.register)
            .await
            .map_err(Self::limiter_unavailable)?;
        if let Some(limited) = rate_limited(&[decision]) {
            return Err(limited);
        }
        if passwords::is_common(&password) {
            return Err(AppError::Invalid {
                field: "password",
                message: "this password is too common; choose another".into(),
            });
        }
        let password_hash = self.inner.passwords.hash(&password).await?;
        let now = self.now();
        let user = User {
            id: UserId::new_v7(),
            email,
            name,
            password_hash,
            created_at: now,
            updated_at: now,
            tokens_valid_after: None,
            deleted_at: None,
        };
        let profile = Profile::initial(&user);
        match self.store().users.register(&user, &profile).await {
            Ok(()) => {}
            Err(RepoError::Conflict(_)) => {
                return Err(AppError::Conflict("this email is already registered".into()));
            }
            Err(e) => return Err(e.into()),
        }
        let tokens = self.start_login(user.id, None).await?;
        Ok(AuthSession { user, tokens })
    }

    /// Signs in. Failed attempts are limited per (account, address) and per
    /// account, checked before any hashing; an unknown email costs the same
    /// as a wrong password and gets the same answer.
    pub async fn login(
        &self,
        email: Email,
        attempt: PasswordAttempt,
        device: Option<DeviceId>,
        client: IpAddr,
    ) -> Result<AuthSession, AppError> {
        let limiter = &self.inner.ports.rate_limiter;
        let limits = self.inner.limits;
        let named = self.inner.pseudonyms.of(&email);
        let pair_key = format!("login:pair:{named}:{client}");
        let account_key = format!("login:account:{named}");
        let pair = limiter.peek(&pair_key, limits.login_pair).await.map_err(Self::limiter_unavailable)?;
        let account = limiter.peek(&account_key, limits.login_account).await.map_err(Self::limiter_unavailable)?;
        if let Some(limited) = rate_limited(&[pair, account]) {
            return Err(limited);
        }

        let user = self.store().users.find_by_email(&email).await?;
        let verified = match &user {
            Some(user) => self.inner.passwords.verify(&attempt, &user.password_hash).await?,
            None => self.inner.passwords.verify_dummy(&attempt).await?,
        };
        let Some(user) = user.filter(|_| verified) else {
            limiter.hit(&pair_key, limits.login_pair).await.map_err(Self::limiter_unavailable)?;
            limiter.hit(&account_key, limits.login_account).await.map_err(Self::limiter_unavailable)?;
            return Err(AppError::InvalidCredentials);
        };
        let tokens = self.start_login(user.id, device).await?;
        Ok(AuthSession { user, tokens })
    }

    /// A new login family with its first refresh token and an access token.
    async fn start_login(&self, user: UserId, device: Option<DeviceId>) -> Result<IssuedTokens, AppError> {
        let now = self.now();
        let family = FamilyId::new_v7();
        let (plain, record) = self.new_refresh_record(user, family, device, now);
        self.store().refresh_tokens.insert(&record).await?;
        self.issue(user, family, plain, now)
    }

    fn new_refresh_record(
        &self,
        user: UserId,
        family: FamilyId,
        device: Option<DeviceId>,
        now: OffsetDateTime,
    ) -> (String, RefreshToken) {
        let (plain, token_hash) = tokens::new_refresh_token();
        let ttl = time::Duration::try_from(self.inner.tokens.refresh_ttl).unwrap_or(time::Duration::days(7));
        let record = RefreshToken {
            id: RefreshTokenId::new_v7(),
            user_id: user,
            family_id: family,
            token_hash,
            device_id: device,
            created_at: now,
            expires_at: now + ttl,
            spent_at: None,
            revoked_at: None,
        };
        (plain, record)
    }

    fn issue(
        &self,
        user: UserId,
        family: FamilyId,
        refresh: String,
        now: OffsetDateTime,
    ) -> Result<IssuedTokens, AppError> {
        let access_token = self.inner.tokens.issue_access(user, family, now)?;
        Ok(IssuedTokens {
            access_token,
            refresh_token: refresh,
            expires_in: self.inner.tokens.access_ttl.as_secs(),
            refresh_expires_in: self.inner.tokens.refresh_ttl.as_secs(),
        })
    }

    /// Rotates a refresh token. A spent one presented again revokes its whole
    /// family (RFC 9700 section 4.14.2) and answers `TokenReused`; so does the
    /// loser of two simultaneous refreshes of one token.
    pub async fn refresh(&self, presented: &str) -> Result<IssuedTokens, AppError> {
        let now = self.now();
        let hash = tokens::hash_refresh_token(presented);
        let Some(current) = self.store().refresh_tokens.find_by_hash(&hash).await? else {
            return Err(AppError::Unauthenticated);
        };
        // A spent token presented again is a reuse however often it comes
        // back, even once its family is revoked (by the first reuse, or a
        // logout): revoking again changes nothing.
        if current.spent_at.is_some() {
            self.store().refresh_tokens.revoke_family(current.family_id, now).await?;
            tracing::warn!(user_id = %current.user_id, family_id = %current.family_id, "refresh token reuse: family revoked");
            return Err(AppError::TokenReused);
        }
        if current.revoked_at.is_some() {
            return Err(AppError::Unauthenticated);
        }
        if current.expires_at <= now {
            return Err(AppError::Unauthenticated);
        }
        if self.store().users.find_by_id(current.user_id).await?.is_none() {
            return Err(AppError::Unauthenticated);
        }
        let (plain, next) = self.new_refresh_record(current.user_id, current.family_id, current.device_id.clone(), now);
        match self.store().refresh_tokens.rotate(current.id, now, &next).await {
            Ok(()) => self.issue(current.user_id, current.family_id, plain, now),
            Err(RepoError::Conflict(_)) => {
                self.store().refresh_tokens.revoke_family(current.family_id, now).await?;
                Err(AppError::TokenReused)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks an access token: signature, claims, expiry, and that neither a
    /// logout-all, a password change nor a deletion came after it.
    pub async fn authenticate(&self, access_token: &str) -> Result<AuthContext, AppError> {
        let now = self.now();
        let verified = self.inner.tokens.verify_access(access_token, now).map_err(|e| match e {
            AccessTokenError::Expired => AppError::TokenExpired,
            AccessTokenError::Invalid => AppError::Unauthenticated,
        })?;
        let Some(user) = self.store().users.find_by_id(verified.user_id).await? else {
            return Err(AppError::Unauthenticated);
        };
        if let Some(valid_after) = user.tokens_valid_after {
            // Older tokens survive only for a login a password change kept,
            // which is exactly a family that still has a usable refresh token.
            // `<=`: a token minted in the very instant of a logout-all is as old as it.
            if verified.issued_at <= valid_after
                && !self.store().refresh_tokens.family_is_live(verified.family_id, now).await?
            {
                return Err(AppError::Unauthenticated);
            }
        }
        Ok(AuthContext { user_id: verified.user_id, family_id: verified.family_id })
    }

    /// Ends one login: the given refresh token's family, or the caller's own.
    /// The access token lives out its short life.
    pub async fn logout(&self, auth: AuthContext, refresh_token: Option<&str>) -> Result<(), AppError> {
        let now = self.now();
        let family = match refresh_token {
            Some(plain) => {
                let hash = tokens::hash_refresh_token(plain);
                match self.store().refresh_tokens.find_by_hash(&hash).await? {
                    // Someone else's token is not the caller's to revoke.
                    Some(token) if token.user_id == auth.user_id => token.family_id,
                    _ => return Err(AppError::Unauthenticated),
                }
            }
            None => auth.family_id,
        };
        self.store().refresh_tokens.revoke_family(family, now).await?;
        Ok(())
    }

    /// Ends every login of the user and refuses every access token issued so far.
    pub async fn logout_all(&self, auth: AuthContext) -> Result<(), AppError> {
        let now = self.now();
        self.store().refresh_tokens.revoke_all_for_user(auth.user_id, None, now).await?;
        self.store().users.set_tokens_valid_after(auth.user_id, now).await?;
        Ok(())
    }

    pub async fn me(&self, auth: AuthContext) -> Result<(User, Profile), AppError> {
        let user = self.store().users.find_by_id(auth.user_id).await?.ok_or(AppError::Unauthenticated)?;
        let profile = self.store().users.profile(auth.user_id).await?.ok_or(AppError::Unauthenticated)?;
        Ok((user, profile))
    }

    pub async fn update_profile(&self, auth: AuthContext, patch: ProfilePatch) -> Result<Profile, AppError> {
        let mut profile = self.store().users.profile(auth.user_id).await?.ok_or(AppError::Unauthenticated)?;
        let before = profile.clone();
        if let Some(display_name) = patch.display_name {
            profile.display_name = display_name;
        }
        if let Some(bio) = patch.bio {
            profile.bio = bio;
        }
        if let Some(timezone) = patch.timezone {
            profile.timezone = timezone;
        }
        if let Some(preferences) = patch.preferences {
            profile.preferences = preferences;
        }
        // As for sessions: nothing changed, nothing written, `updatedAt` kept.
        if profile != before {
            profile.updated_at = self.now();
            self.store().users.update_profile(&profile).await?;
        }
        Ok(profile)
    }

    /// Changes the password. Every other login is ended (its refresh tokens
    /// revoked, its access tokens refused); the caller's own login stays.
    pub async fn change_password(
        &self,
        auth: AuthContext,
        current: PasswordAttempt,
        new: Password,
    ) -> Result<(), AppError> {
        let user = self.store().users.find_by_id(auth.user_id).await?.ok_or(AppError::Unauthenticated)?;
        if !self.inner.passwords.verify(&current, &user.password_hash).await? {
            return Err(AppError::InvalidCredentials);
        }
        if passwords::is_common(&new) {
            return Err(AppError::Invalid {
                field: "newPassword",
                message: "this password is too common; choose another".into(),
            });
        }
        let hash = self.inner.passwords.hash(&new).await?;
        let now = self.now();
        self.store().refresh_tokens.revoke_all_for_user(auth.user_id, Some(auth.family_id), now).await?;
        self.store().users.update_password(auth.user_id, &hash, now).await?;
        Ok(())
    }

    /// Soft-deletes the account after checking its password; its tokens stop
    /// working and its email may register again.
    pub async fn delete_account(&self, auth: AuthContext, password: PasswordAttempt) -> Result<(), AppError> {
        let user = self.store().users.find_by_id(auth.user_id).await?.ok_or(AppError::Unauthenticated)?;
        if !self.inner.passwords.verify(&password, &user.password_hash).await? {
            return Err(AppError::InvalidCredentials);
        }
        // The sessions it owns go and it leaves the others: every cached copy
        // of them, and the lists they appear in, must go too, and every open
        // connection must stop hearing them (everyone's, for the sessions
        // it owned; its own, for the others).
        let mut members = Vec::new();
        let mut page = specgen_ports::PageRequest::first(specgen_domain::PageLimit::MESSAGES_DEFAULT);
        loop {
            let listed = self.store().sessions.list_for_user(auth.user_id, page).await?;
            for session in &listed.items {
                let owned = session.owner_id == auth.user_id;
                members.push((session.id, owned, self.store().sessions.participant_ids(session.id).await?));
            }
            match listed.next_cursor {
                Some(cursor) => page = specgen_ports::PageRequest::older_than(cursor, page.limit),
                None => break,
            }
        }
        self.store().users.soft_delete(auth.user_id, self.now()).await?;
        for (id, owned, users) in members {
            self.invalidate_session(id, &users).await;
            self.inner.ports.feed.access_revoked(id, (!owned).then_some(auth.user_id)).await;
            if owned {
                self.stop_replies_in(id).await;
            }
        }
        Ok(())
    }
}
