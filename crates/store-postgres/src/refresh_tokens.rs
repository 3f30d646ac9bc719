use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use specgen_domain::{FamilyId, RefreshToken, RefreshTokenId, TokenHash, UserId};
use specgen_ports::{RefreshTokenRepository, RepoError};
use time::OffsetDateTime;

use crate::error::DbError;
use crate::rows::RefreshTokenRow;
use crate::schema::refresh_tokens;
use crate::store::PgStore;

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[async_trait]
impl RefreshTokenRepository for PgStore {
    async fn insert(&self, token: &RefreshToken) -> Result<(), RepoError> {
        let row = RefreshTokenRow::from_domain(token);
        async {
            let mut conn = self.conn().await?;
            diesel::insert_into(refresh_tokens::table).values(&row).execute(&mut conn).await?;
            Ok(())
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<RefreshToken>, RepoError> {
        let hex = hash.to_hex();
        async {
            let mut conn = self.conn().await?;
            let row = refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(&hex))
                .select(RefreshTokenRow::as_select())
                .first(&mut conn)
                .await
                .optional()?;
            Ok(row.map(RefreshTokenRow::into_domain).transpose()?)
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn rotate(&self, old: RefreshTokenId, spent_at: OffsetDateTime, new: &RefreshToken) -> Result<(), RepoError> {
        let row = RefreshTokenRow::from_domain(new);
        async {
            let mut conn = self.conn().await?;
            conn.transaction::<_, DbError, _>(async |conn| {
                // Compare-and-set: a concurrent rotation blocks on the row
                // lock, then re-checks the condition and matches nothing.
                let spent = diesel::update(refresh_tokens::table)
                    .filter(refresh_tokens::id.eq(old.as_uuid()))
                    .filter(refresh_tokens::spent_at.is_null())
                    .filter(refresh_tokens::revoked_at.is_null())
                    .set(refresh_tokens::spent_at.eq(spent_at))
                    .execute(conn)
                    .await?;
                if spent == 0 {
                    return Err(RepoError::Conflict("refresh token already spent or revoked".into()).into());
                }
                diesel::insert_into(refresh_tokens::table).values(&row).execute(conn).await?;
                Ok(())
            })
            .await
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn family_is_live(&self, family: FamilyId, now: OffsetDateTime) -> Result<bool, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let live = diesel::select(diesel::dsl::exists(
                refresh_tokens::table
                    .filter(refresh_tokens::family_id.eq(family.as_uuid()))
                    .filter(refresh_tokens::spent_at.is_null())
                    .filter(refresh_tokens::revoked_at.is_null())
                    .filter(refresh_tokens::expires_at.gt(now)),
            ))
            .get_result::<bool>(&mut conn)
            .await?;
            Ok(live)
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn revoke_family(&self, family: FamilyId, at: OffsetDateTime) -> Result<u64, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let revoked = diesel::update(refresh_tokens::table)
                .filter(refresh_tokens::family_id.eq(family.as_uuid()))
                .filter(refresh_tokens::revoked_at.is_null())
                .set(refresh_tokens::revoked_at.eq(at))
                .execute(&mut conn)
                .await?;
            Ok(count(revoked))
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn revoke_all_for_user(
        &self,
        user: UserId,
        except_family: Option<FamilyId>,
        at: OffsetDateTime,
    ) -> Result<u64, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let mut query = diesel::update(refresh_tokens::table)
                .filter(refresh_tokens::user_id.eq(user.as_uuid()))
                .filter(refresh_tokens::revoked_at.is_null())
                .into_boxed();
            if let Some(keep) = except_family {
                query = query.filter(refresh_tokens::family_id.ne(keep.as_uuid()));
            }
            let revoked = query.set(refresh_tokens::revoked_at.eq(at)).execute(&mut conn).await?;
            Ok(count(revoked))
        }
        .await
        .map_err(DbError::into_repo)
    }
}
