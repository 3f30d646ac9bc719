use async_trait::async_trait;
use diesel::prelude::*;
use time::OffsetDateTime;

use specgen_domain::{FamilyId, RefreshToken, RefreshTokenId, TokenHash, UserId};
use specgen_ports::{RefreshTokenRepository, RepoError};

use super::SqliteRepos;
use crate::error::StoreError;
use crate::models::{RefreshTokenRow, micros};
use crate::schema::refresh_tokens;

#[async_trait]
impl RefreshTokenRepository for SqliteRepos {
    async fn insert(&self, token: &RefreshToken) -> Result<(), RepoError> {
        let row = RefreshTokenRow::from(token);
        self.db
            .write(move |c| {
                diesel::insert_into(refresh_tokens::table).values(&row).execute(c)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<RefreshToken>, RepoError> {
        let hash = hash.to_hex();
        let row = self
            .db
            .run(move |c| {
                Ok(refresh_tokens::table
                    .filter(refresh_tokens::token_hash.eq(hash))
                    .select(RefreshTokenRow::as_select())
                    .get_result(c)
                    .optional()?)
            })
            .await?;
        Ok(row.map(RefreshToken::try_from).transpose()?)
    }

    async fn rotate(&self, old: RefreshTokenId, spent_at: OffsetDateTime, new: &RefreshToken) -> Result<(), RepoError> {
        let (old, spent_at, new) = (old.to_string(), micros(spent_at), RefreshTokenRow::from(new));
        self.db
            .write(move |c| {
                // Compare-and-set: of concurrent rotations only one sees the
                // token unspent; IMMEDIATE makes them queue for the write lock.
                let spent = diesel::update(refresh_tokens::table)
                    .filter(refresh_tokens::id.eq(&old))
                    .filter(refresh_tokens::spent_at.is_null())
                    .filter(refresh_tokens::revoked_at.is_null())
                    .set(refresh_tokens::spent_at.eq(spent_at))
                    .execute(c)?;
                if spent == 0 {
                    return Err(StoreError::Conflict(format!(
                        "refresh token {old} is unknown, already spent or revoked"
                    )));
                }
                diesel::insert_into(refresh_tokens::table).values(&new).execute(c)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn family_is_live(&self, family: FamilyId, now: OffsetDateTime) -> Result<bool, RepoError> {
        let (family, now) = (family.to_string(), micros(now));
        let live = self
            .db
            .run(move |c| {
                Ok(diesel::select(diesel::dsl::exists(
                    refresh_tokens::table
                        .filter(refresh_tokens::family_id.eq(family))
                        .filter(refresh_tokens::spent_at.is_null())
                        .filter(refresh_tokens::revoked_at.is_null())
                        .filter(refresh_tokens::expires_at.gt(now)),
                ))
                .get_result::<bool>(c)?)
            })
            .await?;
        Ok(live)
    }

    async fn revoke_family(&self, family: FamilyId, at: OffsetDateTime) -> Result<u64, RepoError> {
        let (family, at) = (family.to_string(), micros(at));
        let changed = self
            .db
            .write(move |c| {
                Ok(diesel::update(refresh_tokens::table)
                    .filter(refresh_tokens::family_id.eq(family))
                    .filter(refresh_tokens::revoked_at.is_null())
                    .set(refresh_tokens::revoked_at.eq(at))
                    .execute(c)?)
            })
            .await?;
        Ok(changed as u64)
    }

    async fn revoke_all_for_user(
        &self,
        user: UserId,
        except_family: Option<FamilyId>,
        at: OffsetDateTime,
    ) -> Result<u64, RepoError> {
        let (user, at) = (user.to_string(), micros(at));
        // `NOT IN ()` of an empty list is true: no family is spared.
        let except: Vec<String> = except_family.iter().map(ToString::to_string).collect();
        let changed = self
            .db
            .write(move |c| {
                Ok(diesel::update(refresh_tokens::table)
                    .filter(refresh_tokens::user_id.eq(user))
                    .filter(refresh_tokens::revoked_at.is_null())
                    .filter(refresh_tokens::family_id.ne_all(except))
                    .set(refresh_tokens::revoked_at.eq(at))
                    .execute(c)?)
            })
            .await?;
        Ok(changed as u64)
    }
}
