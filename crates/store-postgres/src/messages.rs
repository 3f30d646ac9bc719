use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use specgen_domain::{
    ClientMessageId, Cursor, Message, MessageError, MessageId, MessageRole, MessageStatus, PageLimit, SessionId,
};
use specgen_ports::{Direction, MessageRepository, Page, PageRequest, RecentMessage, RepoError};
use time::OffsetDateTime;

use crate::error::{DbError, ForeignKey};
use crate::rows::{MessageChanges, MessageRow, corrupt};
use crate::schema::{chat_sessions, messages};
use crate::sessions::overfetch;
use crate::store::PgStore;

diesel::define_sql_function! {
    /// Postgres' GREATEST: the later instant, ignoring a NULL `a`.
    fn greatest(a: Nullable<Timestamptz>, b: Timestamptz) -> Timestamptz;
}

/// The reply to the message `asked`: the latest, should a retry ever have
/// produced two.
async fn latest_reply(
    conn: &mut crate::store::PooledConn,
    session: SessionId,
    asked: uuid::Uuid,
) -> Result<Option<MessageRow>, DbError> {
    Ok(messages::table
        .filter(messages::session_id.eq(session.as_uuid()))
        .filter(messages::reply_to.eq(asked))
        .select(MessageRow::as_select())
        .order((messages::created_at.desc(), messages::id.desc()))
        .first(conn)
        .await
        .optional()?)
}

#[async_trait]
impl MessageRepository for PgStore {
    async fn insert(&self, message: &Message) -> Result<(), RepoError> {
        let row = MessageRow::from_domain(message);
        async {
            let mut conn = self.conn().await?;
            conn.transaction::<_, DbError, _>(async |conn| {
                // The session first: it must be live, and its row lock
                // orders concurrent inserts into one session. GREATEST keeps
                // the activity time from moving back when an older message
                // commits after a newer one (it ignores the initial NULL).
                let latest = greatest(chat_sessions::last_message_at, row.created_at);
                let touched = diesel::update(chat_sessions::table)
                    .filter(chat_sessions::id.eq(row.session_id))
                    .filter(chat_sessions::deleted_at.is_null())
                    // Both from the old last_message_at: SET sees the old row.
                    .set((
                        chat_sessions::last_message_at.eq(latest.nullable()),
                        chat_sessions::last_activity_at.eq(latest),
                    ))
                    .execute(conn)
                    .await?;
                if touched == 0 {
                    return Err(RepoError::NotFound.into());
                }
                diesel::insert_into(messages::table).values(&row).execute(conn).await?;
                Ok(())
            })
            .await
        }
        .await
        // A missing sender or replied-to message is a missing referenced row too.
        .map_err(|e| e.translate(ForeignKey::NotFound))
    }

    async fn find(&self, session: SessionId, id: MessageId) -> Result<Option<Message>, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let row = messages::table
                .filter(messages::session_id.eq(session.as_uuid()))
                .filter(messages::id.eq(id.as_uuid()))
                .select(MessageRow::as_select())
                .first(&mut conn)
                .await
                .optional()?;
            Ok(row.map(MessageRow::into_domain).transpose()?)
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn find_by_client_id(
        &self,
        session: SessionId,
        client_id: &ClientMessageId,
    ) -> Result<Option<(Message, Option<Message>)>, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let asked = messages::table
                .filter(messages::session_id.eq(session.as_uuid()))
                .filter(messages::client_message_id.eq(client_id.as_str()))
                .select(MessageRow::as_select())
                .first(&mut conn)
                .await
                .optional()?;
            let Some(asked) = asked else {
                return Ok(None);
            };
            let reply = latest_reply(&mut conn, session, asked.id).await?;
            Ok(Some((asked.into_domain()?, reply.map(MessageRow::into_domain).transpose()?)))
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn reply_to(&self, session: SessionId, asked: MessageId) -> Result<Option<Message>, RepoError> {
        async {
            let mut conn = self.conn().await?;
            let reply = latest_reply(&mut conn, session, asked.as_uuid()).await?;
            Ok::<_, DbError>(reply.map(MessageRow::into_domain).transpose()?)
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn page(&self, session: SessionId, page: PageRequest) -> Result<Page<Message>, RepoError> {
        use messages::{created_at as at, id};
        async {
            let mut conn = self.conn().await?;
            let mut query = messages::table
                .filter(messages::session_id.eq(session.as_uuid()))
                .select(MessageRow::as_select())
                .limit(overfetch(page.limit))
                .into_boxed();
            // Row-value comparison (at, id) < / > cursor, with a leading
            // `<=` / `>=` on `at` so the (session_id, created_at, id) index
            // bounds the scan.
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
            let rows = query.load::<MessageRow>(&mut conn).await?;
            let found = rows.into_iter().map(MessageRow::into_domain).collect::<Result<Vec<_>, _>>()?;
            // Built in reading order (the cursor is the last item read), then
            // shown oldest first whatever the direction.
            let mut built = Page::from_overfetch(found, page.limit, |m| Cursor::new(m.created_at, m.id.as_uuid()));
            if page.direction == Direction::Older {
                built.items.reverse();
            }
            Ok(built)
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn recent(&self, session: SessionId, limit: PageLimit) -> Result<Vec<RecentMessage>, RepoError> {
        use messages::{content, created_at, id, role, session_id, status};
        async {
            let mut conn = self.conn().await?;
            let rows: Vec<(uuid::Uuid, String, String, String)> = messages::table
                .filter(session_id.eq(session.as_uuid()))
                .order((created_at.desc(), id.desc()))
                .select((id, role, status, content))
                .limit(i64::try_from(limit.get()).unwrap_or(i64::MAX))
                .load(&mut conn)
                .await?;
            let recent = rows.into_iter().rev().map(|(message_id, role_text, status_text, text)| {
                Ok::<_, RepoError>(RecentMessage {
                    id: MessageId::from_uuid(message_id),
                    role: MessageRole::from_db(&role_text).ok_or_else(|| corrupt("message role", &role_text))?,
                    status: MessageStatus::from_db(&status_text)
                        .ok_or_else(|| corrupt("message status", &status_text))?,
                    content: text,
                })
            });
            Ok(recent.collect::<Result<Vec<_>, _>>()?)
        }
        .await
        .map_err(DbError::into_repo)
    }

    async fn update(&self, message: &Message) -> Result<(), RepoError> {
        let changes = MessageChanges::from_domain(message);
        async {
            let mut conn = self.conn().await?;
            let changed = diesel::update(messages::table)
                .filter(messages::id.eq(message.id.as_uuid()))
                .filter(messages::session_id.eq(message.session_id.as_uuid()))
                .set(&changes)
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

    async fn fail_streaming(
        &self,
        error: &MessageError,
        stale_before: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<Vec<Message>, RepoError> {
        async {
            let mut conn = self.conn().await?;
            // One statement: instances sweeping at once each get the rows
            // they changed, and no row twice.
            let failed: Vec<MessageRow> = diesel::update(messages::table)
                .filter(messages::status.eq(MessageStatus::Streaming.as_str()))
                .filter(messages::updated_at.lt(stale_before))
                .set((
                    messages::status.eq(MessageStatus::Failed.as_str()),
                    messages::error_code.eq(&error.code),
                    messages::error_message.eq(&error.message),
                    messages::updated_at.eq(at),
                ))
                .returning(MessageRow::as_returning())
                .get_results(&mut conn)
                .await?;
            Ok(failed.into_iter().map(MessageRow::into_domain).collect::<Result<Vec<_>, _>>()?)
        }
        .await
        .map_err(DbError::into_repo)
    }
}
