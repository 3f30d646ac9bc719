use async_trait::async_trait;
use diesel::connection::DefaultLoadingMode;
use diesel::prelude::*;
use time::OffsetDateTime;

use specgen_domain::{
    ClientMessageId, Cursor, Message, MessageError, MessageId, MessageRole, MessageStatus, PageLimit, SessionId,
};
use specgen_ports::{Direction, MessageRepository, Page, PageRequest, RecentMessage, RepoError};

use super::{SqliteRepos, uuid_text};
use crate::cached::{TouchSession, UpdateMessage};
use crate::error::StoreError;
use crate::models::{MessageRow, micros};
use crate::schema::{chat_sessions, messages};

fn cursor_of(m: &Message) -> Cursor {
    Cursor::new(m.created_at, m.id.as_uuid())
}

/// The reply to the message `asked`: if one was ever retried, the latest
/// attempt is the answer.
fn latest_reply(c: &mut SqliteConnection, session: &str, asked: &str) -> Result<Option<MessageRow>, StoreError> {
    Ok(messages::table
        .filter(messages::session_id.eq(session))
        .filter(messages::reply_to.eq(asked))
        .order((messages::created_at.desc(), messages::id.desc()))
        .select(MessageRow::as_select())
        .get_result(c)
        .optional()?)
}

fn decode(rows: Vec<MessageRow>) -> Result<Vec<Message>, StoreError> {
    rows.into_iter().map(Message::try_from).collect()
}

#[async_trait]
impl MessageRepository for SqliteRepos {
    async fn insert(&self, message: &Message) -> Result<(), RepoError> {
        let row = MessageRow::from(message);
        self.db
            .write(move |c| {
                let last: Option<Option<i64>> = chat_sessions::table
                    .filter(chat_sessions::id.eq(&row.session_id))
                    .filter(chat_sessions::deleted_at.is_null())
                    .select(chat_sessions::last_message_at)
                    .get_result(c)
                    .optional()?;
                let Some(last) = last else {
                    return Err(StoreError::NotFound);
                };
                diesel::insert_into(messages::table).values(&row).execute(c)?;
                // Never move activity backwards: concurrent senders may commit
                // out of creation order. Activity is the last message from now on.
                let latest = last.map_or(row.created_at, |last| last.max(row.created_at));
                TouchSession { session_id: &row.session_id, at: latest }.execute(c)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn find(&self, session: SessionId, id: MessageId) -> Result<Option<Message>, RepoError> {
        let (session, id) = (session.to_string(), id.to_string());
        let row = self
            .db
            .run(move |c| {
                Ok(messages::table
                    .filter(messages::id.eq(id))
                    .filter(messages::session_id.eq(session))
                    .select(MessageRow::as_select())
                    .get_result(c)
                    .optional()?)
            })
            .await?;
        Ok(row.map(Message::try_from).transpose()?)
    }

    async fn find_by_client_id(
        &self,
        session: SessionId,
        client_id: &ClientMessageId,
    ) -> Result<Option<(Message, Option<Message>)>, RepoError> {
        let (session, client_id) = (session.to_string(), client_id.as_str().to_owned());
        let found = self
            .db
            .read(move |c| {
                let asked = messages::table
                    .filter(messages::session_id.eq(&session))
                    .filter(messages::client_message_id.eq(client_id))
                    .select(MessageRow::as_select())
                    .get_result(c)
                    .optional()?;
                let Some(asked) = asked else { return Ok(None) };
                let reply = latest_reply(c, &session, &asked.id)?;
                Ok(Some((asked, reply)))
            })
            .await?;
        let Some((asked, reply)) = found else {
            return Ok(None);
        };
        Ok(Some((Message::try_from(asked)?, reply.map(Message::try_from).transpose()?)))
    }

    async fn reply_to(&self, session: SessionId, asked: MessageId) -> Result<Option<Message>, RepoError> {
        let (session, asked) = (session.to_string(), asked.to_string());
        let reply = self.db.read(move |c| latest_reply(c, &session, &asked)).await?;
        Ok(reply.map(Message::try_from).transpose()?)
    }

    async fn page(&self, session: SessionId, page: PageRequest) -> Result<Page<Message>, RepoError> {
        let session = session.to_string();
        let fetch = page.limit.get() + 1;
        let rows = self
            .db
            .run(move |c| {
                use messages::{created_at, id};
                let mut query = messages::table
                    .filter(messages::session_id.eq(session))
                    .select(MessageRow::as_select())
                    .into_boxed();
                // Keyset pagination on (created_at, id), strictly past the
                // cursor, read in the direction's order. The leading `<=` /
                // `>=` lets the index bound the scan; the rest breaks ties.
                if let Some(cursor) = page.cursor {
                    let (at, cid) = (micros(cursor.at), uuid_text(cursor.id));
                    query = match page.direction {
                        Direction::Older => query.filter(created_at.le(at).and(created_at.lt(at).or(id.lt(cid)))),
                        Direction::Newer => query.filter(created_at.ge(at).and(created_at.gt(at).or(id.gt(cid)))),
                    };
                }
                query = match page.direction {
                    Direction::Older => query.order((created_at.desc(), id.desc())),
                    Direction::Newer => query.order((created_at.asc(), id.asc())),
                };
                // The index yields rows in this order, so stepping stops
                // after `fetch` rows without a LIMIT: a bound LIMIT makes
                // SQLite prepare the statement again on every run.
                let rows = query.load_iter::<MessageRow, DefaultLoadingMode>(c)?.take(fetch);
                Ok(rows.collect::<QueryResult<Vec<_>>>()?)
            })
            .await?;
        let mut built = Page::from_overfetch(decode(rows)?, page.limit, cursor_of);
        // The cursor was taken in reading order; items are shown oldest first.
        if page.direction == Direction::Older {
            built.items.reverse();
        }
        Ok(built)
    }

    async fn recent(&self, session: SessionId, limit: PageLimit) -> Result<Vec<RecentMessage>, RepoError> {
        let session = session.to_text();
        let wanted = limit.get();
        let rows = self
            .db
            .run(move |c| {
                use messages::{content, created_at, id, role, session_id, status};
                // A query of fixed shape (its statement stays cached), four
                // columns, and no LIMIT (see `page`): newest first from the
                // index, stepping stops after `wanted` rows.
                let rows = messages::table
                    .filter(session_id.eq(session))
                    .order((created_at.desc(), id.desc()))
                    .select((id, role, status, content))
                    .load_iter::<(String, String, String, String), DefaultLoadingMode>(c)?
                    .take(wanted);
                Ok(rows.collect::<QueryResult<Vec<_>>>()?)
            })
            .await?;
        let recent = rows.into_iter().rev().map(|(message_id, role, status, content)| {
            Ok::<_, StoreError>(RecentMessage {
                id: crate::models::id(&message_id)?,
                role: MessageRole::from_db(&role)
                    .ok_or_else(|| StoreError::corrupt(format!("message role {role:?}")))?,
                status: MessageStatus::from_db(&status)
                    .ok_or_else(|| StoreError::corrupt(format!("message status {status:?}")))?,
                content,
            })
        });
        Ok(recent.collect::<Result<Vec<_>, _>>()?)
    }

    async fn update(&self, message: &Message) -> Result<(), RepoError> {
        let row = MessageRow::from(message);
        self.db
            .write(move |c| {
                let changed = UpdateMessage(&row).execute(c)?;
                if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
            })
            .await?;
        Ok(())
    }

    async fn fail_streaming(
        &self,
        error: &MessageError,
        stale_before: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<Vec<Message>, RepoError> {
        let (code, text, at, stale_before) =
            (error.code.clone(), error.message.clone(), micros(at), micros(stale_before));
        let failed = self
            .db
            .write(move |c| {
                // Read and changed in one write transaction: the writer is
                // the only one, so nothing changes between the two.
                let stale = messages::table
                    .filter(messages::status.eq(MessageStatus::Streaming.as_str()))
                    .filter(messages::updated_at.lt(stale_before));
                let ids: Vec<String> = stale.select(messages::id).load(c)?;
                diesel::update(messages::table.filter(messages::id.eq_any(&ids)))
                    .set((
                        messages::status.eq(MessageStatus::Failed.as_str()),
                        messages::error_code.eq(code),
                        messages::error_message.eq(text),
                        messages::updated_at.eq(at),
                    ))
                    .execute(c)?;
                Ok(messages::table
                    .filter(messages::id.eq_any(&ids))
                    .order((messages::created_at, messages::id))
                    .select(MessageRow::as_select())
                    .load(c)?)
            })
            .await?;
        Ok(decode(failed)?)
    }
}
