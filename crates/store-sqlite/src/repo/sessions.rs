use async_trait::async_trait;
use diesel::prelude::*;
use time::OffsetDateTime;

use specgen_domain::{ChatSession, Cursor, Participant, ParticipantRole, ParticipantView, SessionId, UserId, trusted};
use specgen_ports::{Direction, Page, PageRequest, RepoError, SessionRepository};

use super::{SqliteRepos, uuid_text};
use crate::error::StoreError;
use crate::models::{ParticipantRow, SessionRow, id, instant, micros, participant_role};
use crate::schema::{chat_sessions, session_participants, users};

fn cursor_of(s: &ChatSession) -> Cursor {
    Cursor::new(s.last_activity_at(), s.id.as_uuid())
}

#[async_trait]
impl SessionRepository for SqliteRepos {
    async fn create(&self, session: &ChatSession) -> Result<(), RepoError> {
        let row = SessionRow::from(session);
        let owner = ParticipantRow {
            session_id: row.id.clone(),
            user_id: row.owner_id.clone(),
            role: ParticipantRole::Owner.as_str().to_owned(),
            joined_at: row.created_at,
        };
        self.db
            .write(move |c| {
                diesel::insert_into(chat_sessions::table).values(&row).execute(c)?;
                diesel::insert_into(session_participants::table).values(&owner).execute(c)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn find_for_participant(
        &self,
        id: SessionId,
        user: UserId,
    ) -> Result<Option<(ChatSession, ParticipantRole)>, RepoError> {
        let (id, user) = (id.to_string(), user.to_string());
        let found = self
            .db
            .run(move |c| {
                Ok(chat_sessions::table
                    .inner_join(session_participants::table)
                    .filter(chat_sessions::id.eq(id))
                    .filter(chat_sessions::deleted_at.is_null())
                    .filter(session_participants::user_id.eq(user))
                    .select((SessionRow::as_select(), session_participants::role))
                    .first::<(SessionRow, String)>(c)
                    .optional()?)
            })
            .await?;
        Ok(found
            .map(|(row, role)| Ok::<_, StoreError>((ChatSession::try_from(row)?, participant_role(&role)?)))
            .transpose()?)
    }

    async fn list_for_user(&self, user: UserId, page: PageRequest) -> Result<Page<ChatSession>, RepoError> {
        let user = user.to_string();
        let fetch = i64::try_from(page.limit.get() + 1).unwrap_or(i64::MAX);
        let rows = self
            .db
            .run(move |c| {
                use chat_sessions::{id, last_activity_at};
                let mut query = chat_sessions::table
                    .inner_join(session_participants::table)
                    .filter(session_participants::user_id.eq(user))
                    .filter(chat_sessions::deleted_at.is_null())
                    .select(SessionRow::as_select())
                    .limit(fetch)
                    .into_boxed();
                // Keyset pagination on (last_activity_at, id), strictly past
                // the cursor, read in the direction's order. The leading
                // `<=` / `>=` lets the index bound the scan; the rest breaks ties.
                if let Some(cursor) = page.cursor {
                    let (at, cid) = (micros(cursor.at), uuid_text(cursor.id));
                    query = match page.direction {
                        Direction::Older => {
                            query.filter(last_activity_at.le(at).and(last_activity_at.lt(at).or(id.lt(cid))))
                        }
                        Direction::Newer => {
                            query.filter(last_activity_at.ge(at).and(last_activity_at.gt(at).or(id.gt(cid))))
                        }
                    };
                }
                query = match page.direction {
                    Direction::Older => query.order((last_activity_at.desc(), id.desc())),
                    Direction::Newer => query.order((last_activity_at.asc(), id.asc())),
                };
                Ok(query.load::<SessionRow>(c)?)
            })
            .await?;
        let sessions = rows.into_iter().map(ChatSession::try_from).collect::<Result<Vec<_>, _>>()?;
        // Items stay in reading order: most recent first for `Older`.
        Ok(Page::from_overfetch(sessions, page.limit, cursor_of))
    }

    async fn update(&self, session: &ChatSession) -> Result<(), RepoError> {
        let row = SessionRow::from(session);
        self.db
            .write(move |c| {
                let changed = diesel::update(chat_sessions::table)
                    .filter(chat_sessions::id.eq(row.id))
                    .filter(chat_sessions::deleted_at.is_null())
                    .set((
                        chat_sessions::title.eq(row.title),
                        chat_sessions::system_prompt.eq(row.system_prompt),
                        chat_sessions::provider.eq(row.provider),
                        chat_sessions::model.eq(row.model),
                        chat_sessions::updated_at.eq(row.updated_at),
                    ))
                    .execute(c)?;
                if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            })
            .await?;
        Ok(())
    }

    async fn soft_delete(&self, id: SessionId, at: OffsetDateTime) -> Result<(), RepoError> {
        let (id, at) = (id.to_string(), micros(at));
        self.db
            .write(move |c| {
                let changed = diesel::update(chat_sessions::table)
                    .filter(chat_sessions::id.eq(id))
                    .filter(chat_sessions::deleted_at.is_null())
                    .set(chat_sessions::deleted_at.eq(at))
                    .execute(c)?;
                if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            })
            .await?;
        Ok(())
    }

    async fn add_participant(&self, participant: &Participant) -> Result<(), RepoError> {
        let row = ParticipantRow {
            session_id: participant.session_id.to_string(),
            user_id: participant.user_id.to_string(),
            role: participant.role.as_str().to_owned(),
            joined_at: micros(participant.joined_at),
        };
        self.db
            .write(move |c| {
                // Foreign keys only see rows, not soft deletion: check both
                // ends are live before inserting.
                let session_live: bool = diesel::select(diesel::dsl::exists(
                    chat_sessions::table
                        .filter(chat_sessions::id.eq(&row.session_id))
                        .filter(chat_sessions::deleted_at.is_null()),
                ))
                .get_result(c)?;
                let user_live: bool = diesel::select(diesel::dsl::exists(
                    users::table.filter(users::id.eq(&row.user_id)).filter(users::deleted_at.is_null()),
                ))
                .get_result(c)?;
                if !(session_live && user_live) {
                    return Err(StoreError::NotFound);
                }
                // The primary key raises the Conflict for a second join.
                diesel::insert_into(session_participants::table).values(&row).execute(c)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn remove_participant(&self, id: SessionId, user: UserId) -> Result<(), RepoError> {
        let (id, user) = (id.to_string(), user.to_string());
        self.db
            .write(move |c| {
                let removed = diesel::delete(session_participants::table)
                    .filter(session_participants::session_id.eq(id))
                    .filter(session_participants::user_id.eq(user))
                    .execute(c)?;
                if removed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            })
            .await?;
        Ok(())
    }

    async fn participants(&self, id: SessionId) -> Result<Vec<ParticipantView>, RepoError> {
        let rows = self.db.run(move |c| load_participants(c, id)).await?;
        rows.into_iter()
            .map(|(row, name)| {
                Ok(ParticipantView {
                    user_id: id_of(&row.user_id)?,
                    name: trusted::person_name(name),
                    role: participant_role(&row.role)?,
                    joined_at: instant(row.joined_at)?,
                })
            })
            .collect::<Result<_, StoreError>>()
            .map_err(RepoError::from)
    }

    async fn participant_ids(&self, id: SessionId) -> Result<Vec<UserId>, RepoError> {
        let rows = self.db.run(move |c| load_participants(c, id)).await?;
        rows.iter().map(|(row, _)| id_of(&row.user_id)).collect::<Result<_, StoreError>>().map_err(RepoError::from)
    }
}

fn id_of(raw: &str) -> Result<UserId, StoreError> {
    id(raw)
}

/// Participants with their names: owner first, then by joining time (ties by
/// user id, so the order is total).
fn load_participants(
    c: &mut SqliteConnection,
    session: SessionId,
) -> Result<Vec<(ParticipantRow, String)>, StoreError> {
    Ok(session_participants::table
        .inner_join(users::table)
        .filter(session_participants::session_id.eq(session.to_string()))
        .order((
            session_participants::role.eq(ParticipantRole::Owner.as_str()).desc(),
            session_participants::joined_at.asc(),
            session_participants::user_id.asc(),
        ))
        .select((ParticipantRow::as_select(), users::name))
        .load(c)?)
}
