use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use specgen_domain::{Email, ParticipantRole, PasswordHash, Profile, User, UserId};
use specgen_ports::{RepoError, UserRepository};
use time::OffsetDateTime;

use crate::error::DbError;
use crate::rows::{ProfileRow, UserRow};
use crate::schema::{chat_sessions, profiles, refresh_tokens, session_participants, users};
use crate::store::PgStore;

/// `NotFound` when an update touched no row.
fn require_row(changed: usize) -> Result<(), DbError> {
    if changed == 0 { Err(RepoError::NotFound.into()) } else { Ok(()) }
}

#[async_trait]
impl UserRepository for PgStore {
    async fn register(&self, user: &User, profile: &Profile) -> Result<(), RepoError> {
        let user_row = UserRow::from_domain(user);
        let profile_row = ProfileRow::from_domain(profile);
        async {
            let mut conn = self.conn().await?;
            conn.transaction::<_, DbError, _>(async |conn| {
                diesel::insert_into(users::table).values(&user_row).execute(conn).await?;
                diesel::insert_into(profiles::table).values(&profile_row).execute(conn).await?;
                Ok(())
            })
            .await
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        let email = email.as_str().to_lowercase();
        async {
            let mut conn = self.conn().await?;
            let row = users::table
                .filter(users::email.eq(&email))
                .filter(users::deleted_at.is_null())
                .select(UserRow::as_select())
                .first(&mut conn)
                .await
                .optional()?;
            Ok(row.map(UserRow::into_domain))
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let row = users::table
                .filter(users::id.eq(id.as_uuid()))
                .filter(users::deleted_at.is_null())
                .select(UserRow::as_select())
                .first(&mut conn)
                .await
                .optional()?;
            Ok(row.map(UserRow::into_domain))
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn profile(&self, id: UserId) -> Result<Option<Profile>, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let row = profiles::table
                .inner_join(users::table)
                .filter(profiles::user_id.eq(id.as_uuid()))
                .filter(users::deleted_at.is_null())
                .select(ProfileRow::as_select())
                .first(&mut conn)
                .await
                .optional()?;
            Ok(row.map(ProfileRow::into_domain))
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn update_profile(&self, profile: &Profile) -> Result<(), RepoError> {
        let row = ProfileRow::from_domain(profile);
        async {
            let mut conn = self.conn().await?;
            let live_user = users::table.filter(users::id.eq(row.user_id)).filter(users::deleted_at.is_null());
            let changed = diesel::update(profiles::table)
                .filter(profiles::user_id.eq(row.user_id))
                .filter(diesel::dsl::exists(live_user))
                .set(&row)
                .execute(&mut conn)
                .await?;
            require_row(changed)
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn update_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        tokens_valid_after: OffsetDateTime,
    ) -> Result<(), RepoError> {
        async {
            let mut conn = self.conn().await?;
            let changed = diesel::update(users::table)
                .filter(users::id.eq(id.as_uuid()))
                .filter(users::deleted_at.is_null())
                .set((
                    users::password_hash.eq(hash.as_str()),
                    users::tokens_valid_after.eq(tokens_valid_after),
                    // The caller's "now": the instant the account changed.
                    users::updated_at.eq(tokens_valid_after),
                ))
                .execute(&mut conn)
                .await?;
            require_row(changed)
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn set_tokens_valid_after(&self, id: UserId, at: OffsetDateTime) -> Result<(), RepoError> {
        async {
            let mut conn = self.conn().await?;
            let changed = diesel::update(users::table)
                .filter(users::id.eq(id.as_uuid()))
                .filter(users::deleted_at.is_null())
                .set(users::tokens_valid_after.eq(at))
                .execute(&mut conn)
                .await?;
            require_row(changed)
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn soft_delete(&self, id: UserId, at: OffsetDateTime) -> Result<(), RepoError> {
        let id = id.as_uuid();
        async {
            let mut conn = self.conn().await?;
            conn.transaction::<_, DbError, _>(async |conn| {
                // First, so that a concurrent second delete waits on the row
                // lock and then finds nothing to do.
                let changed = diesel::update(users::table)
                    .filter(users::id.eq(id))
                    .filter(users::deleted_at.is_null())
                    .set((users::deleted_at.eq(at), users::tokens_valid_after.eq(at), users::updated_at.eq(at)))
                    .execute(conn)
                    .await?;
                require_row(changed)?;
                diesel::update(refresh_tokens::table)
                    .filter(refresh_tokens::user_id.eq(id))
                    .filter(refresh_tokens::revoked_at.is_null())
                    .set(refresh_tokens::revoked_at.eq(at))
                    .execute(conn)
                    .await?;
                diesel::update(chat_sessions::table)
                    .filter(chat_sessions::owner_id.eq(id))
                    .filter(chat_sessions::deleted_at.is_null())
                    .set(chat_sessions::deleted_at.eq(at))
                    .execute(conn)
                    .await?;
                // Owner rows stay with the (now deleted) owned sessions.
                diesel::delete(session_participants::table)
                    .filter(session_participants::user_id.eq(id))
                    .filter(session_participants::role.ne(ParticipantRole::Owner.as_str()))
                    .execute(conn)
                    .await?;
                Ok(())
            })
            .await
        }
        .await
        .map_err(DbError::into_repo)
    }
}
