//! Sessions and participants.

use specgen_domain::{
    ChatSession, Email, ModelName, Participant, ParticipantRole, ParticipantView, ProviderName, SessionId,
    SessionTitle, SystemPrompt, UserId,
};
use specgen_ports::{Page, PageRequest, RepoError};

use crate::{App, AppError, AuthContext};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewSession {
    pub title: Option<SessionTitle>,
    pub system_prompt: Option<SystemPrompt>,
    pub provider: Option<ProviderName>,
    pub model: Option<ModelName>,
}

/// Fields to change; the outer `None` leaves a field as it is, `Some(None)`
/// clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPatch {
    pub title: Option<SessionTitle>,
    pub system_prompt: Option<Option<SystemPrompt>>,
    pub provider: Option<Option<ProviderName>>,
    pub model: Option<Option<ModelName>>,
}

/// A session with the people in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub session: ChatSession,
    pub participants: Vec<ParticipantView>,
}

impl App {
    /// The session and the caller's role in it, or `NotFound` when the caller
    /// does not participate (so ids cannot be probed). Served from the cache
    /// when it can be: every message and reply checks access.
    pub(crate) async fn access(
        &self,
        auth: AuthContext,
        id: SessionId,
    ) -> Result<(ChatSession, ParticipantRole), AppError> {
        if let Some(entry) = self.cached_session(id).await
            && let Some(session) = entry.session()
        {
            return entry.role_of(auth.user_id).map(|role| (session, role)).ok_or(AppError::NotFound("session"));
        }
        let (session, role) =
            self.store().sessions.find_for_participant(id, auth.user_id).await?.ok_or(AppError::NotFound("session"))?;
        let participants = self.store().sessions.participants(id).await?;
        let roles: Vec<_> = participants.iter().map(|p| (p.user_id, p.role)).collect();
        self.cache_session(&super::cache::CachedSession::new(&session, &roles)).await;
        Ok((session, role))
    }

    /// `NotFound` unless the caller participates in the session.
    pub async fn check_access(&self, auth: AuthContext, id: SessionId) -> Result<(), AppError> {
        self.access(auth, id).await.map(|_| ())
    }

    /// Forgets a session's cached metadata and its participants' lists.
    pub(crate) async fn invalidate_session(&self, id: SessionId, also: &[UserId]) {
        let mut keys = vec![super::cache::session_key(id)];
        let mut users: Vec<UserId> = also.to_vec();
        match self.store().sessions.participant_ids(id).await {
            Ok(ids) => users.extend(ids),
            Err(e) => tracing::warn!(error = %e, "participants unknown; their session lists expire with their TTL"),
        }
        users.sort();
        users.dedup();
        keys.extend(users.into_iter().map(super::cache::list_key));
        self.invalidate(keys).await;
    }

    async fn owned(&self, auth: AuthContext, id: SessionId) -> Result<ChatSession, AppError> {
        match self.access(auth, id).await? {
            (session, ParticipantRole::Owner) => Ok(session),
            (_, ParticipantRole::Member) => Err(AppError::Forbidden("only the session's owner may do this")),
        }
    }

    pub async fn create_session(&self, auth: AuthContext, new: NewSession) -> Result<ChatSession, AppError> {
        self.check_enabled(new.provider)?;
        let now = self.now();
        let session = ChatSession {
            id: SessionId::new_v7(),
            title: new.title.unwrap_or_else(SessionTitle::default_title),
            owner_id: auth.user_id,
            system_prompt: new.system_prompt,
            provider: new.provider,
            model: new.model,
            created_at: now,
            updated_at: now,
            last_message_at: None,
            deleted_at: None,
        };
        self.store().sessions.create(&session).await?;
        self.invalidate(vec![super::cache::list_key(auth.user_id)]).await;
        Ok(session)
    }

    pub async fn list_sessions(&self, auth: AuthContext, page: PageRequest) -> Result<Page<ChatSession>, AppError> {
        // Only the default first page is cached: it is what every client opens with.
        let cacheable = page == PageRequest::first(specgen_domain::PageLimit::SESSIONS_DEFAULT);
        if cacheable && let Some(cached) = self.cached_first_page(auth.user_id).await {
            return Ok(cached);
        }
        let listed = self.store().sessions.list_for_user(auth.user_id, page).await?;
        if cacheable {
            self.cache_first_page(auth.user_id, &listed).await;
        }
        Ok(listed)
    }

    pub async fn get_session(&self, auth: AuthContext, id: SessionId) -> Result<SessionView, AppError> {
        // Read through to the store: the cached copy's last activity lags.
        let (session, _) =
            self.store().sessions.find_for_participant(id, auth.user_id).await?.ok_or(AppError::NotFound("session"))?;
        let participants = self.store().sessions.participants(id).await?;
        Ok(SessionView { session, participants })
    }

    pub async fn update_session(
        &self,
        auth: AuthContext,
        id: SessionId,
        patch: SessionPatch,
    ) -> Result<SessionView, AppError> {
        let mut session = self.owned(auth, id).await?;
        self.check_enabled(patch.provider.flatten())?;
        let before = session.clone();
        if let Some(title) = patch.title {
            session.title = title;
        }
        if let Some(system_prompt) = patch.system_prompt {
            session.system_prompt = system_prompt;
        }
        if let Some(provider) = patch.provider {
            session.provider = provider;
        }
        if let Some(model) = patch.model {
            session.model = model;
        }
        // A patch that changes nothing (`{}`, or the values already there)
        // writes nothing: `updatedAt` says when the session last changed.
        if session != before {
            session.updated_at = self.now();
            self.store().sessions.update(&session).await.map_err(not_found_as("session"))?;
            self.invalidate_session(id, &[]).await;
        }
        let participants = self.store().sessions.participants(id).await?;
        Ok(SessionView { session, participants })
    }

    pub async fn delete_session(&self, auth: AuthContext, id: SessionId) -> Result<(), AppError> {
        self.owned(auth, id).await?;
        let members = self.store().sessions.participant_ids(id).await?;
        self.store().sessions.soft_delete(id, self.now()).await.map_err(not_found_as("session"))?;
        self.invalidate_session(id, &members).await;
        self.inner.ports.feed.access_revoked(id, None).await;
        self.stop_replies_in(id).await;
        Ok(())
    }

    /// The owner adds someone by email: unknown email `NotFound`, already in `Conflict`.
    pub async fn add_participant(
        &self,
        auth: AuthContext,
        id: SessionId,
        email: Email,
    ) -> Result<ParticipantView, AppError> {
        self.owned(auth, id).await?;
        let user = self.store().users.find_by_email(&email).await?.ok_or(AppError::NotFound("user"))?;
        let participant =
            Participant { session_id: id, user_id: user.id, role: ParticipantRole::Member, joined_at: self.now() };
        match self.store().sessions.add_participant(&participant).await {
            Ok(()) => {
                self.invalidate_session(id, &[]).await;
                Ok(ParticipantView {
                    user_id: user.id,
                    name: user.name,
                    role: participant.role,
                    joined_at: participant.joined_at,
                })
            }
            Err(RepoError::Conflict(_)) => Err(AppError::Conflict("this user is already a participant".into())),
            Err(RepoError::NotFound) => Err(AppError::NotFound("session")),
            Err(e) => Err(e.into()),
        }
    }

    /// The owner removes a member, or a member leaves. The owner cannot leave.
    pub async fn remove_participant(&self, auth: AuthContext, id: SessionId, user: UserId) -> Result<(), AppError> {
        let (session, role) = self.access(auth, id).await?;
        // A member may only leave: removing anyone else, the owner included,
        // is not theirs to do.
        if role != ParticipantRole::Owner && user != auth.user_id {
            return Err(AppError::Forbidden("only the owner may remove other participants"));
        }
        if user == session.owner_id {
            return Err(AppError::Conflict("the owner cannot leave their own session; delete it instead".into()));
        }
        self.store().sessions.remove_participant(id, user).await.map_err(not_found_as("participant"))?;
        self.invalidate_session(id, &[user]).await;
        self.inner.ports.feed.access_revoked(id, Some(user)).await;
        Ok(())
    }
}

fn not_found_as(what: &'static str) -> impl Fn(RepoError) -> AppError {
    move |e| match e {
        RepoError::NotFound => AppError::NotFound(what),
        other => other.into(),
    }
}
