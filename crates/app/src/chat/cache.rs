//! Session metadata and session lists through the cache port (Redis or
//! in-process). An optimisation only: every cache failure is a miss, and
//! every write that changes a cached value deletes it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use specgen_domain::validation::trusted;
use specgen_domain::{ChatSession, ParticipantRole, ProviderName, SessionId, UserId, time_util};
use specgen_ports::Page;

use crate::App;

/// The seed's TTLs: session metadata 1 h, a user's session list 30 min.
const SESSION_TTL: Duration = Duration::from_secs(60 * 60);
const LIST_TTL: Duration = Duration::from_secs(30 * 60);

pub(crate) fn session_key(id: SessionId) -> String {
    format!("session:{id}")
}

pub(crate) fn list_key(user: UserId) -> String {
    format!("sessions:{user}:first")
}

/// A session and who is in it, as cached for access checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedSession {
    id: uuid::Uuid,
    title: String,
    owner_id: uuid::Uuid,
    system_prompt: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    created_at: i64,
    updated_at: i64,
    last_message_at: Option<i64>,
    pub(crate) participants: Vec<(uuid::Uuid, String)>,
}

impl CachedSession {
    pub(crate) fn new(session: &ChatSession, participants: &[(UserId, ParticipantRole)]) -> Self {
        Self {
            id: session.id.as_uuid(),
            title: session.title.to_string(),
            owner_id: session.owner_id.as_uuid(),
            system_prompt: session.system_prompt.as_ref().map(ToString::to_string),
            provider: session.provider.map(|p| p.as_str().to_owned()),
            model: session.model.as_ref().map(ToString::to_string),
            created_at: time_util::unix_micros(session.created_at),
            updated_at: time_util::unix_micros(session.updated_at),
            last_message_at: session.last_message_at.map(time_util::unix_micros),
            participants: participants.iter().map(|(u, r)| (u.as_uuid(), r.as_str().to_owned())).collect(),
        }
    }

    pub(crate) fn session(&self) -> Option<ChatSession> {
        Some(ChatSession {
            id: SessionId::from_uuid(self.id),
            title: trusted::session_title(self.title.clone()),
            owner_id: UserId::from_uuid(self.owner_id),
            system_prompt: self.system_prompt.clone().map(trusted::system_prompt),
            provider: match &self.provider {
                Some(p) => Some(ProviderName::parse(p).ok()?),
                None => None,
            },
            model: self.model.clone().map(trusted::model_name),
            created_at: time_util::from_unix_micros(self.created_at)?,
            updated_at: time_util::from_unix_micros(self.updated_at)?,
            last_message_at: match self.last_message_at {
                Some(at) => Some(time_util::from_unix_micros(at)?),
                None => None,
            },
            deleted_at: None,
        })
    }

    pub(crate) fn role_of(&self, user: UserId) -> Option<ParticipantRole> {
        self.participants.iter().find(|(u, _)| *u == user.as_uuid()).and_then(|(_, r)| ParticipantRole::from_db(r))
    }

    pub(crate) fn participant_ids(&self) -> Vec<UserId> {
        self.participants.iter().map(|(u, _)| UserId::from_uuid(*u)).collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedList {
    sessions: Vec<CachedSession>,
    next_cursor: Option<(i64, uuid::Uuid)>,
}

impl App {
    async fn cache_get<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Option<T> {
        match self.inner.ports.cache.get(key).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(error = %e, "cache miss (unavailable)");
                None
            }
        }
    }

    async fn cache_set<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        if let Ok(bytes) = serde_json::to_vec(value)
            && let Err(e) = self.inner.ports.cache.set(key, &bytes, ttl).await
        {
            tracing::debug!(error = %e, "cache write skipped (unavailable)");
        }
    }

    /// Deletes cached values a write made stale. A failure is logged: the
    /// value then lives out its TTL, the price of a cache outage.
    pub(crate) async fn invalidate(&self, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        if let Err(e) = self.inner.ports.cache.delete(&keys).await {
            tracing::warn!(error = %e, "cache invalidation failed; stale entries expire with their TTL");
        }
    }

    pub(crate) async fn cached_session(&self, id: SessionId) -> Option<CachedSession> {
        self.cache_get(&session_key(id)).await
    }

    pub(crate) async fn cache_session(&self, entry: &CachedSession) {
        self.cache_set(&session_key(SessionId::from_uuid(entry.id)), entry, SESSION_TTL).await;
    }

    /// The cached first page of a user's sessions, if any.
    pub(crate) async fn cached_first_page(&self, user: UserId) -> Option<Page<ChatSession>> {
        let cached: CachedList = self.cache_get(&list_key(user)).await?;
        let items = cached.sessions.iter().map(CachedSession::session).collect::<Option<Vec<_>>>()?;
        let next_cursor = match cached.next_cursor {
            Some((at, id)) => Some(specgen_domain::Cursor::new(time_util::from_unix_micros(at)?, id)),
            None => None,
        };
        Some(Page { items, next_cursor })
    }

    pub(crate) async fn cache_first_page(&self, user: UserId, page: &Page<ChatSession>) {
        let list = CachedList {
            sessions: page.items.iter().map(|s| CachedSession::new(s, &[])).collect(),
            next_cursor: page.next_cursor.map(|c| (time_util::unix_micros(c.at), c.id)),
        };
        self.cache_set(&list_key(user), &list, LIST_TTL).await;
    }
}
