use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use specgen_domain::{ChatSession, Cursor, Participant, ParticipantRole, ParticipantView, SessionId, UserId, trusted};
use specgen_ports::{Direction, Page, PageRequest, RepoError, SessionRepository};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{DbError, ForeignKey};
use crate::rows::{ParticipantRow, SessionRow, participant_role};
use crate::schema::{chat_sessions, session_participants, users};
use crate::store::PgStore;

/// `limit + 1` rows: the extra one only says whether another page exists.
pub(crate) fn overfetch(limit: specgen_domain::PageLimit) -> i64 {
    i64::try_from(limit.get() + 1).unwrap_or(i64::MAX)
}

#[async_trait]
impl SessionRepository for PgStore {
    async fn create(&self, session: &ChatSession) -> Result<(), RepoError> {
        let row = SessionRow::from_domain(session);
        let owner = ParticipantRow::from_domain(&Participant {
            session_id: session.id,
            user_id: session.owner_id,
            role: ParticipantRole::Owner,
            joined_at: session.created_at,
        });
        async {
            let mut conn = self.conn().await?;
            conn.transaction::<_, DbError, _>(async |conn| {
                diesel::insert_into(chat_sessions::table).values(&row).execute(conn).await?;
                diesel::insert_into(session_participants::table).values(&owner).execute(conn).await?;
                Ok(())
            })
            .await
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn find_for_participant(
        &self,
        id: SessionId,
        user: UserId,
    ) -> Result<Option<(ChatSession, ParticipantRole)>, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let row = chat_sessions::table
                .inner_join(session_participants::table)
                .filter(chat_sessions::id.eq(id.as_uuid()))
                .filter(chat_sessions::deleted_at.is_null())
                .filter(session_participants::user_id.eq(user.as_uuid()))
                .select((SessionRow::as_select(), session_participants::role))
                .first::<(SessionRow, String)>(&mut conn)
                .await
                .optional()?;
            match row {
                Some((session, role)) => Ok(Some((session.into_domain()?, participant_role(&role)?))),
                None => Ok(None),
            }
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn list_for_user(&self, user: UserId, page: PageRequest) -> Result<Page<ChatSession>, RepoError> {
        use chat_sessions::{id, last_activity_at as at};
        async {
            let mut conn = self.conn().await?;
            let mut query = chat_sessions::table
                .inner_join(session_participants::table)
                .filter(session_participants::user_id.eq(user.as_uuid()))
                .filter(chat_sessions::deleted_at.is_null())
                .select(SessionRow::as_select())
                .limit(overfetch(page.limit))
                .into_boxed();
            // (at, id) < / > (cursor.at, cursor.id), spelled so the planner
            // can still use the (last_activity_at, id) index: the leading
            // `<=` / `>=` bounds the scan, the rest breaks the tie.
            query = match page.direction {
                Direction::Older => {
                    if let Some(c) = page.cursor {
                        query = query.filter(at.le(c.at).and(at.lt(c.at).or(id.lt(c.id))));
                    }
                    query.order((at.desc(), id.desc()))
                }
                Direction::Newer => {
                    if let Some(c) = page.cursor {
                        query = query.filter(at.ge(c.at).and(at.gt(c.at).or(id.gt(c.id))));
                    }
                    query.order((at.asc(), id.asc()))
                }
            };
            let rows = query.load::<SessionRow>(&mut conn).await?;
            let sessions = rows.into_iter().map(SessionRow::into_domain).collect::<Result<Vec<_>, _>>()?;
            Ok(Page::from_overfetch(sessions, page.limit, |s| Cursor::new(s.last_activity_at(), s.id.as_uuid())))
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn update(&self, session: &ChatSession) -> Result<(), RepoError> {
        let row = SessionRow::from_domain(session);
        async {
            let mut conn = self.conn().await?;
            let changed = diesel::update(chat_sessions::table)
                .filter(chat_sessions::id.eq(row.id))
                .filter(chat_sessions::deleted_at.is_null())
                .set((
                    chat_sessions::title.eq(&row.title),
                    chat_sessions::system_prompt.eq(&row.system_prompt),
                    chat_sessions::provider.eq(&row.provider),
                    chat_sessions::model.eq(&row.model),
                    chat_sessions::updated_at.eq(row.updated_at),
                ))
                .execute(&mut conn)
                .await?;
            if changed == 0 {
                return Err(RepoError::NotFound.into());
            }
            Ok(())
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn soft_delete(&self, id: SessionId, at: OffsetDateTime) -> Result<(), RepoError> {
        async {
            let mut conn = self.conn().await?;
            let changed = diesel::update(chat_sessions::table)
                .filter(chat_sessions::id.eq(id.as_uuid()))
                .filter(chat_sessions::deleted_at.is_null())
                .set(chat_sessions::deleted_at.eq(at))
                .execute(&mut conn)
                .await?;
            if changed == 0 {
                return Err(RepoError::NotFound.into());
            }
            Ok(())
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn add_participant(&self, participant: &Participant) -> Result<(), RepoError> {
        let row = ParticipantRow::from_domain(participant);
        async {
            let mut conn = self.conn().await?;
            conn.transaction::<_, DbError, _>(async |conn| {
                // FOR SHARE holds off a concurrent soft delete of either row
                // until this transaction ends, so no member joins a session
                // (or as a user) that is being deleted.
                let session_live = chat_sessions::table
                    .filter(chat_sessions::id.eq(row.session_id))
                    .filter(chat_sessions::deleted_at.is_null())
                    .select(chat_sessions::id)
                    .for_share()
                    .first::<Uuid>(conn)
                    .await
                    .optional()?
                    .is_some();
                let user_live = users::table
                    .filter(users::id.eq(row.user_id))
                    .filter(users::deleted_at.is_null())
                    .select(users::id)
                    .for_share()
                    .first::<Uuid>(conn)
                    .await
                    .optional()?
                    .is_some();
                if !session_live || !user_live {
                    return Err(RepoError::NotFound.into());
                }
                diesel::insert_into(session_participants::table).values(&row).execute(conn).await?;
                Ok(())
            })
            .await
        }
        .await
        .map_err(|e| e.translate(ForeignKey::NotFound))
    }

    async fn remove_participant(&self, id: SessionId, user: UserId) -> Result<(), RepoError> {
        async {
            let mut conn = self.conn().await?;
            let removed = diesel::delete(session_participants::table)
                .filter(session_participants::session_id.eq(id.as_uuid()))
                .filter(session_participants::user_id.eq(user.as_uuid()))
                .execute(&mut conn)
                .await?;
            if removed == 0 {
                return Err(RepoError::NotFound.into());
            }
            Ok(())
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn participants(&self, id: SessionId) -> Result<Vec<ParticipantView>, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let rows = session_participants::table
                .inner_join(users::table)
                .filter(session_participants::session_id.eq(id.as_uuid()))
                .select((users::id, users::name, session_participants::role, session_participants::joined_at))
                // Owner first (true sorts after false, hence DESC), then by
                // joining time; the id makes the order total.
                .order((
                    session_participants::role.eq(ParticipantRole::Owner.as_str()).desc(),
                    session_participants::joined_at.asc(),
                    users::id.asc(),
                ))
                .load::<(Uuid, String, String, OffsetDateTime)>(&mut conn)
                .await?;
            let views = rows
                .into_iter()
                .map(|(user_id, name, role, joined_at)| {
                    Ok(ParticipantView {
                        user_id: UserId::from_uuid(user_id),
                        name: trusted::person_name(name),
                        role: participant_role(&role)?,
                        joined_at,
                    })
                })
                .collect::<Result<Vec<_>, RepoError>>()?;
            Ok(views)
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn participant_ids(&self, id: SessionId) -> Result<Vec<UserId>, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let ids = session_participants::table
                .filter(session_participants::session_id.eq(id.as_uuid()))
                .select(session_participants::user_id)
                .order((session_participants::joined_at.asc(), session_participants::user_id.asc()))
                .load::<Uuid>(&mut conn)
                .await?;
            Ok(ids.into_iter().map(UserId::from_uuid).collect())
        }
        .await
        .map_err(DbError::into_repo)
    }
}
