//! The two updates every reply runs, as statements diesel keeps prepared.
//!
//! Diesel never caches an `UPDATE` built with `diesel::update`: it cannot
//! know that the `SET` list is the same each time, so it prepares the SQL
//! anew on every run. A reply runs these two several times (the session's
//! activity with each message, the reply's text and status as it ends);
//! preparing them was about a tenth of the writer thread's CPU under load.
//! These nodes write a fixed statement, so diesel caches them by their SQL
//! text; columns are named through the schema, so a renamed column fails to
//! compile rather than at run time.

use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDsl;
use diesel::serialize::ToSql;
use diesel::sql_types::HasSqlType;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::{Column, QueryResult};

use crate::models::MessageRow;
use crate::schema::{chat_sessions, messages};

/// `UPDATE chat_sessions SET last_message_at = ?, last_activity_at = ? WHERE id = ?`.
pub(crate) struct TouchSession<'a> {
    pub(crate) session_id: &'a str,
    pub(crate) at: i64,
}

impl QueryFragment<Sqlite> for TouchSession<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("UPDATE chat_sessions SET ");
        column_is::<BigInt, _>(&mut out, chat_sessions::last_message_at::NAME, &self.at)?;
        out.push_sql(", ");
        column_is::<BigInt, _>(&mut out, chat_sessions::last_activity_at::NAME, &self.at)?;
        out.push_sql(" WHERE ");
        column_is::<Text, _>(&mut out, chat_sessions::id::NAME, self.session_id)
    }
}

/// Writes a message's changing columns (text, status, provider, model,
/// usage, latency, error, `updated_at`), found by id within its session.
pub(crate) struct UpdateMessage<'a>(pub(crate) &'a MessageRow);

impl QueryFragment<Sqlite> for UpdateMessage<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let row = self.0;
        out.push_sql("UPDATE messages SET ");
        column_is::<Text, _>(&mut out, messages::content::NAME, &row.content)?;
        out.push_sql(", ");
        column_is::<Text, _>(&mut out, messages::status::NAME, &row.status)?;
        for (name, value) in [
            (messages::provider::NAME, &row.provider),
            (messages::model::NAME, &row.model),
            (messages::error_code::NAME, &row.error_code),
            (messages::error_message::NAME, &row.error_message),
        ] {
            out.push_sql(", ");
            column_is::<Nullable<Text>, _>(&mut out, name, value)?;
        }
        for (name, value) in [
            (messages::input_tokens::NAME, &row.input_tokens),
            (messages::output_tokens::NAME, &row.output_tokens),
            (messages::latency_ms::NAME, &row.latency_ms),
        ] {
            out.push_sql(", ");
            column_is::<Nullable<BigInt>, _>(&mut out, name, value)?;
        }
        out.push_sql(", ");
        column_is::<BigInt, _>(&mut out, messages::updated_at::NAME, &row.updated_at)?;
        out.push_sql(" WHERE ");
        column_is::<Text, _>(&mut out, messages::id::NAME, &row.id)?;
        out.push_sql(" AND ");
        column_is::<Text, _>(&mut out, messages::session_id::NAME, &row.session_id)
    }
}

/// `"column" = ?`, binding `value` as SQL type `ST`.
fn column_is<'b, ST, U>(out: &mut AstPass<'_, 'b, Sqlite>, column: &str, value: &'b U) -> QueryResult<()>
where
    Sqlite: HasSqlType<ST>,
    U: ToSql<ST, Sqlite> + ?Sized,
{
    out.push_identifier(column)?;
    out.push_sql(" = ");
    out.push_bind_param::<ST, U>(value)
}

// Each node writes one fixed text, so its type identifies the statement:
// the cache finds it without building the SQL first.
pub(crate) struct TouchSessionQuery;
pub(crate) struct UpdateMessageQuery;

impl QueryId for TouchSession<'_> {
    type QueryId = TouchSessionQuery;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryId for UpdateMessage<'_> {
    type QueryId = UpdateMessageQuery;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Conn> RunQueryDsl<Conn> for TouchSession<'_> {}
impl<Conn> RunQueryDsl<Conn> for UpdateMessage<'_> {}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection as _};
    use diesel::prelude::*;
    use diesel_migrations::MigrationHarness as _;

    use super::*;

    /// A migrated in-memory database holding one user, one session and one
    /// message, and the SQL of every statement it puts in its cache.
    fn database() -> (SqliteConnection, Arc<Mutex<Vec<String>>>) {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(crate::store::MIGRATIONS).unwrap();
        conn.batch_execute(
            "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) VALUES ('u', 'a@b.c', 'Al', 'x', 1, 1);
             INSERT INTO chat_sessions (id, title, owner_id, created_at, updated_at, last_activity_at) VALUES ('s', 't', 'u', 1, 1, 1);
             INSERT INTO messages (id, session_id, role, content, status, created_at, updated_at) VALUES ('m', 's', 'assistant', 'Hel', 'streaming', 1, 1);",
        )
        .unwrap();
        let cached = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&cached);
        let recorder = move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_owned());
            }
        };
        conn.set_instrumentation(Box::new(recorder) as Box<dyn Instrumentation>);
        (conn, cached)
    }

    /// Message `m` as a reply would write it.
    fn row(content: &str, status: &str, output_tokens: Option<i64>) -> MessageRow {
        MessageRow {
            id: "m".into(),
            session_id: "s".into(),
            sender_id: None,
            role: "assistant".into(),
            content: content.into(),
            status: status.into(),
            provider: Some("claude".into()),
            model: Some("claude-test".into()),
            input_tokens: output_tokens.map(|_| 3),
            output_tokens,
            latency_ms: None,
            client_message_id: None,
            reply_to: None,
            error_code: None,
            error_message: None,
            created_at: 999,
            updated_at: 2,
        }
    }

    #[test]
    fn each_update_is_prepared_once_then_reused_and_writes_its_values() {
        let (mut conn, cached) = database();
        for (i, at) in [10_i64, 20, 30].into_iter().enumerate() {
            assert_eq!(TouchSession { session_id: "s", at }.execute(&mut conn).unwrap(), 1);
            let mut row = row("Hello", if i == 2 { "complete" } else { "streaming" }, (i == 2).then_some(7));
            row.updated_at = at;
            assert_eq!(UpdateMessage(&row).execute(&mut conn).unwrap(), 1);
        }
        let cached = cached.lock().unwrap().clone();
        assert_eq!(cached.len(), 2, "one cache entry per statement: {cached:?}");

        let session: (Option<i64>, i64) = chat_sessions::table
            .find("s")
            .select((chat_sessions::last_message_at, chat_sessions::last_activity_at))
            .first(&mut conn)
            .unwrap();
        assert_eq!(session, (Some(30), 30));
        let stored = messages::table.find("m").select(MessageRow::as_select()).first(&mut conn).unwrap();
        assert_eq!(
            (stored.content.as_str(), stored.status.as_str(), stored.output_tokens, stored.updated_at),
            ("Hello", "complete", Some(7), 30)
        );
        assert_eq!(stored.created_at, 1, "only the changing columns are written");
    }

    #[test]
    fn an_update_of_another_session_changes_nothing() {
        let (mut conn, _) = database();
        let mut other = row("stolen", "complete", None);
        other.session_id = "elsewhere".into();
        assert_eq!(UpdateMessage(&other).execute(&mut conn).unwrap(), 0);
        let stored: String = messages::table.find("m").select(messages::content).first(&mut conn).unwrap();
        assert_eq!(stored, "Hel");
    }

    /// Why these nodes exist: diesel's own update is never cached.
    #[test]
    fn diesel_alone_never_caches_an_update() {
        let (mut conn, cached) = database();
        for at in [10_i64, 20] {
            diesel::update(chat_sessions::table.find("s"))
                .set(chat_sessions::last_activity_at.eq(at))
                .execute(&mut conn)
                .unwrap();
        }
        assert!(cached.lock().unwrap().is_empty());
    }
}
