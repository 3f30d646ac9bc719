use async_trait::async_trait;
use diesel::prelude::*;
use time::OffsetDateTime;

use specgen_domain::{Email, PasswordHash, Profile, User, UserId};
use specgen_ports::{RepoError, UserRepository};

use super::SqliteRepos;
use crate::error::StoreError;
use crate::models::{ProfileRow, UserRow, micros};
use crate::schema::{chat_sessions, profiles, refresh_tokens, session_participants, users};

#[async_trait]
impl UserRepository for SqliteRepos {
    async fn register(&self, user: &User, profile: &Profile) -> Result<(), RepoError> {
        let (user, profile) = (UserRow::from(user), ProfileRow::from(profile));
        self.db
            .write(move |c| {
                // The partial unique index on live emails raises the Conflict.
                diesel::insert_into(users::table).values(&user).execute(c)?;
                diesel::insert_into(profiles::table).values(&profile).execute(c)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        let email = email.as_str().to_owned();
        let row = self
            .db
            .run(move |c| {
                Ok(users::table
                    .filter(users::email.eq(email))
                    .filter(users::deleted_at.is_null())
                    .select(UserRow::as_select())
                    .get_result(c)
                    .optional()?)
            })
            .await?;
        Ok(row.map(User::try_from).transpose()?)
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepoError> {
        let id = id.to_string();
        let row = self
            .db
            .run(move |c| {
                Ok(users::table
                    .filter(users::id.eq(id))
                    .filter(users::deleted_at.is_null())
                    .select(UserRow::as_select())
                    .get_result(c)
                    .optional()?)
            })
            .await?;
        Ok(row.map(User::try_from).transpose()?)
    }

    async fn profile(&self, id: UserId) -> Result<Option<Profile>, RepoError> {
        let id = id.to_string();
        let row = self
            .db
            .run(move |c| {
                Ok(profiles::table
                    .inner_join(users::table)
                    .filter(users::id.eq(id))
                    .filter(users::deleted_at.is_null())
                    .select(ProfileRow::as_select())
                    .get_result(c)
                    .optional()?)
            })
            .await?;
        Ok(row.map(Profile::try_from).transpose()?)
    }

    async fn update_profile(&self, profile: &Profile) -> Result<(), RepoError> {
        let row = ProfileRow::from(profile);
        self.db
            .write(move |c| {
                // One statement: the liveness check and the write cannot race.
                let live = users::table
                    .filter(users::id.eq(row.user_id.clone()))
                    .filter(users::deleted_at.is_null())
                    .select(users::id);
                let changed =
                    diesel::update(profiles::table).filter(profiles::user_id.eq_any(live)).set(&row).execute(c)?;
                if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            })
            .await?;
        Ok(())
    }

    async fn update_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        tokens_valid_after: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let (id, hash, after) = (id.to_string(), hash.as_str().to_owned(), micros(tokens_valid_after));
        self.db
            .write(move |c| {
                let changed = diesel::update(users::table)
                    .filter(users::id.eq(id))
                    .filter(users::deleted_at.is_null())
                    .set((users::password_hash.eq(hash), users::tokens_valid_after.eq(after)))
                    .execute(c)?;
                if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            })
            .await?;
        Ok(())
    }

    async fn set_tokens_valid_after(&self, id: UserId, at: OffsetDateTime) -> Result<(), RepoError> {
        let (id, at) = (id.to_string(), micros(at));
        self.db
            .write(move |c| {
                let changed = diesel::update(users::table)
                    .filter(users::id.eq(id))
                    .filter(users::deleted_at.is_null())
                    .set(users::tokens_valid_after.eq(at))
                    .execute(c)?;
                if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            })
            .await?;
        Ok(())
    }

    async fn soft_delete(&self, id: UserId, at: OffsetDateTime) -> Result<(), RepoError> {
        let (id, at) = (id.to_string(), micros(at));
        self.db
            .write(move |c| {
                let changed = diesel::update(users::table)
                    .filter(users::id.eq(&id))
                    .filter(users::deleted_at.is_null())
                    .set((users::deleted_at.eq(at), users::tokens_valid_after.eq(at)))
                    .execute(c)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                diesel::update(refresh_tokens::table)
                    .filter(refresh_tokens::user_id.eq(&id))
                    .filter(refresh_tokens::revoked_at.is_null())
                    .set(refresh_tokens::revoked_at.eq(at))
                    .execute(c)?;
                diesel::update(chat_sessions::table)
                    .filter(chat_sessions::owner_id.eq(&id))
                    .filter(chat_sessions::deleted_at.is_null())
                    .set(chat_sessions::deleted_at.eq(at))
                    .execute(c)?;
                // Owned sessions keep their owner row (they are deleted with
                // it); the user leaves everyone else's sessions.
                diesel::delete(session_participants::table)
                    .filter(session_participants::user_id.eq(&id))
                    .filter(session_participants::role.ne("owner"))
                    .execute(c)?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}
