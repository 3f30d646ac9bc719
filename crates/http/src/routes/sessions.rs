//! `/api/v1/chat/sessions`: sessions and their participants.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Deserializer, Serialize};
use specgen_app::{NewSession, SessionPatch, SessionView};
use specgen_domain::{ChatSession, Cursor, PageLimit, ParticipantView, SessionId, UserId};
use specgen_ports::{Page, PageRequest};
use utoipa::{IntoParams, ToSchema};

use crate::client::AuthUser;
use crate::dto::{Done, rfc3339};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope, FieldError};
use crate::extract::ValidJson;
use crate::rules::{self, field, opt_field};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDto {
    pub id: String,
    pub title: String,
    pub owner_id: String,
    pub system_prompt: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_message_at: Option<String>,
}

impl From<&ChatSession> for SessionDto {
    fn from(s: &ChatSession) -> Self {
        Self {
            id: s.id.to_string(),
            title: s.title.to_string(),
            owner_id: s.owner_id.to_string(),
            system_prompt: s.system_prompt.as_ref().map(ToString::to_string),
            provider: s.provider.map(|p| p.as_str().to_owned()),
            model: s.model.as_ref().map(ToString::to_string),
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
            last_message_at: s.last_message_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantDto {
    pub user_id: String,
    pub name: String,
    /// `owner` or `member`.
    #[schema(value_type = crate::dto::ParticipantRoleSchema)]
    pub role: &'static str,
    pub joined_at: String,
}

impl From<&ParticipantView> for ParticipantDto {
    fn from(p: &ParticipantView) -> Self {
        Self {
            user_id: p.user_id.to_string(),
            name: p.name.to_string(),
            role: p.role.as_str(),
            joined_at: rfc3339(p.joined_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDetailDto {
    #[serde(flatten)]
    pub session: SessionDto,
    pub participants: Vec<ParticipantDto>,
}

impl From<&SessionView> for SessionDetailDto {
    fn from(v: &SessionView) -> Self {
        Self {
            session: SessionDto::from(&v.session),
            participants: v.participants.iter().map(ParticipantDto::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageDto<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

impl<T> PageDto<T> {
    /// `listed` names the list (see [`PageQuery::into_request`]): its cursor
    /// is good for that list only.
    pub fn from_page<U>(page: &Page<U>, listed: &str, map: impl Fn(&U) -> T) -> Self {
        Self { items: page.items.iter().map(map).collect(), next_cursor: page.next_cursor.map(|c| c.encode_in(listed)) }
    }
}

/// A user's list of sessions, as cursors name it.
fn session_list(user: specgen_domain::UserId) -> String {
    format!("sessions of {user}")
}

/// `?limit=&cursor=`, checked into a page request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1..100 (default 20 for sessions, 50 for messages).
    // A string here, an integer in the document: a bad value is then reported
    // as `limit` in a 422, as the contract wants, not as a malformed query.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn from_request(req: &HttpRequest) -> Result<Self, ApiError> {
        web::Query::<PageQuery>::from_query(req.query_string()).map(web::Query::into_inner).map_err(|_| {
            // Both fields are optional strings, so only a repeated one fails
            // here (`?limit=5&limit=6`): a bad `limit`, as far as the client
            // can tell.
            let given: Vec<String> =
                form_urlencoded::parse(req.query_string().as_bytes()).map(|(key, _)| key.into_owned()).collect();
            let mut repeated: Vec<FieldError> = ["limit", "cursor"]
                .into_iter()
                .filter(|name| given.iter().filter(|key| key == name).count() > 1)
                .map(|name| FieldError::new(name, "is given more than once"))
                .collect();
            if repeated.is_empty() {
                repeated.push(FieldError::new("query", "is malformed"));
            }
            ApiError::Validation(repeated)
        })
    }

    /// `listed` names the list being paged: a cursor issued for another is bad.
    pub fn into_request(self, default_limit: PageLimit, listed: &str) -> Result<PageRequest, ApiError> {
        let mut errors = Vec::new();
        let limit = match self.limit.as_deref().map(|l| l.parse::<i64>().ok().and_then(|n| PageLimit::new(n).ok())) {
            None => Some(default_limit),
            Some(Some(limit)) => Some(limit),
            Some(None) => {
                errors.push(FieldError::new("limit", "must be an integer between 1 and 100"));
                None
            }
        };
        let cursor = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => match Cursor::decode_in(raw, listed).filter(issuable) {
                Some(c) => Some(c),
                None => {
                    errors.push(FieldError::new("cursor", "is not a cursor this server issued"));
                    None
                }
            },
        };
        match (limit, errors.is_empty()) {
            (Some(limit), true) => Ok(match cursor {
                Some(cursor) => PageRequest::older_than(cursor, limit),
                None => PageRequest::first(limit),
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// Whether this server could have issued a cursor at this position: cursors
/// are made from stored instants, all taken from the clock, so never before
/// the Unix epoch. `Cursor::decode_in` accepts any instant `time` can hold
/// (back to year -9999), and Postgres refuses a `timestamptz` before 4713 BC
/// with an error that would surface as a 500; such a cursor is a forged one,
/// and the contract answers a bad cursor with 422.
fn issuable(cursor: &Cursor) -> bool {
    cursor.at >= time::OffsetDateTime::UNIX_EPOCH
}

/// A path id: anything that is not one of our ids cannot name a resource.
pub fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("session"))
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionRequest {
    /// 1..200 characters after trimming, no control characters; defaults to "New chat".
    #[garde(custom(rules::opt_session_title))]
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// At most 8,000 characters.
    #[garde(custom(rules::opt_system_prompt))]
    #[schema(max_length = 8000)]
    pub system_prompt: Option<String>,
    #[garde(custom(rules::opt_provider))]
    #[schema(value_type = Option<ProviderSchema>)]
    pub provider: Option<String>,
    /// 1..200 printable characters; any model the provider accepts.
    #[garde(custom(rules::opt_model))]
    #[schema(min_length = 1, max_length = 200)]
    pub model: Option<String>,
}

/// An AI provider: `claude`, `openai` or `demo`.
// Only for the document: the request fields stay strings so that an unknown
// name is reported by the provider rule, with its message, as a 422 naming
// the field, the same way over HTTP and the WebSocket.
#[derive(ToSchema)]
#[schema(as = ProviderName)]
#[allow(dead_code)]
pub enum ProviderSchema {
    #[schema(rename = "claude")]
    Claude,
    #[schema(rename = "openai")]
    Openai,
    #[schema(rename = "demo")]
    Demo,
}

/// Opens a session owned by the caller.
#[utoipa::path(
    operation_id = "create_session",
    tag = "chat",
    request_body(content = Option<CreateSessionRequest>, description = "Optional: no body takes every default"),
    responses((status = 201, body = inline(Envelope<SessionDto>)), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[post("/sessions")]
pub async fn create(
    state: web::Data<AppState>,
    auth: AuthUser,
    ValidJson(body): ValidJson<CreateSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewSession {
        title: opt_field("title", body.title.as_deref(), specgen_domain::SessionTitle::parse)?,
        system_prompt: opt_field("systemPrompt", body.system_prompt.as_deref(), specgen_domain::SystemPrompt::parse)?,
        provider: opt_field("provider", body.provider.as_deref(), specgen_domain::ProviderName::parse)?,
        model: opt_field("model", body.model.as_deref(), specgen_domain::ModelName::parse)?,
    };
    let session = state.app.create_session(auth.0, new).await?;
    Ok(envelope::created(SessionDto::from(&session)))
}

/// Sessions the caller participates in, most recent activity first.
#[utoipa::path(
    operation_id = "list_sessions",
    tag = "chat",
    params(PageQuery),
    responses((status = 200, body = inline(Envelope<PageDto<SessionDto>>)), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/sessions")]
pub async fn list(state: web::Data<AppState>, auth: AuthUser, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let listed = session_list(auth.0.user_id);
    let page = PageQuery::from_request(&req)?.into_request(PageLimit::SESSIONS_DEFAULT, &listed)?;
    let page = state.app.list_sessions(auth.0, page).await?;
    Ok(envelope::ok(PageDto::from_page(&page, &listed, |s| SessionDto::from(s))))
}

/// One session with its participants.
#[utoipa::path(
    operation_id = "get_session",
    tag = "chat",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses((status = 200, body = inline(Envelope<SessionDetailDto>)), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/sessions/{id}")]
pub async fn get(state: web::Data<AppState>, auth: AuthUser, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let view = state.app.get_session(auth.0, session_id(&id)?).await?;
    Ok(envelope::ok(SessionDetailDto::from(&view)))
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSessionRequest {
    /// 1..200 characters after trimming; absent or `null` keeps it.
    #[garde(custom(rules::opt_session_title))]
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// At most 8,000 characters; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[garde(custom(rules::opt_opt_system_prompt))]
    #[schema(value_type = Option<String>, max_length = 8000)]
    pub system_prompt: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[garde(custom(rules::opt_opt_provider))]
    #[schema(value_type = Option<ProviderSchema>)]
    pub provider: Option<Option<String>>,
    /// 1..200 printable characters; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[garde(custom(rules::opt_opt_model))]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    pub model: Option<Option<String>>,
}

fn opt_opt<T>(
    name: &str,
    value: Option<Option<String>>,
    parse: impl Fn(&str) -> Result<T, specgen_domain::InvalidInput>,
) -> Result<Option<Option<T>>, ApiError> {
    value.map(|inner| opt_field(name, inner.as_deref(), &parse)).transpose()
}

/// Changes a session (owner only).
#[utoipa::path(
    operation_id = "update_session",
    tag = "chat",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body(content = Option<UpdateSessionRequest>, description = "Optional: no body changes nothing"),
    responses(
        (status = 200, body = inline(Envelope<SessionDetailDto>)),
        (status = 403, description = "Not the owner", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[patch("/sessions/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthUser,
    id: web::Path<String>,
    ValidJson(body): ValidJson<UpdateSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&id)?;
    let patch = SessionPatch {
        title: opt_field("title", body.title.as_deref(), specgen_domain::SessionTitle::parse)?,
        system_prompt: opt_opt("systemPrompt", body.system_prompt, specgen_domain::SystemPrompt::parse)?,
        provider: opt_opt("provider", body.provider, specgen_domain::ProviderName::parse)?,
        model: opt_opt("model", body.model, specgen_domain::ModelName::parse)?,
    };
    let view = state.app.update_session(auth.0, id, patch).await?;
    Ok(envelope::ok(SessionDetailDto::from(&view)))
}

/// Deletes a session (owner only).
#[utoipa::path(
    operation_id = "delete_session",
    tag = "chat",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses((status = 200, body = inline(Envelope<Done>)), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[delete("/sessions/{id}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.app.delete_session(auth.0, session_id(&id)?).await?;
    Ok(envelope::ok(Done { ok: true }))
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
pub struct AddParticipantRequest {
    #[garde(custom(rules::email))]
    #[schema(format = Email, max_length = 254)]
    pub email: String,
}

/// Adds a registered user to the session by email (owner only).
#[utoipa::path(
    tag = "chat",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body = AddParticipantRequest,
    responses(
        (status = 201, body = inline(Envelope<ParticipantDto>)),
        (status = 403, description = "Not the owner", body = ErrorEnvelope),
        (status = 404, description = "No such session, or no such user", body = ErrorEnvelope),
        (status = 409, description = "Already a participant", body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[post("/sessions/{id}/participants")]
pub async fn add_participant(
    state: web::Data<AppState>,
    auth: AuthUser,
    id: web::Path<String>,
    ValidJson(body): ValidJson<AddParticipantRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = field("email", specgen_domain::Email::parse(&body.email))?;
    let participant = state.app.add_participant(auth.0, session_id(&id)?, email).await?;
    Ok(envelope::created(ParticipantDto::from(&participant)))
}

/// Removes a participant: the owner removes anyone else, a member removes itself.
#[utoipa::path(
    tag = "chat",
    params(("id" = uuid::Uuid, Path, description = "Session id"), ("user_id" = uuid::Uuid, Path, description = "User id")),
    responses(
        (status = 200, body = inline(Envelope<Done>)),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The owner cannot leave", body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[delete("/sessions/{id}/participants/{user_id}")]
pub async fn remove_participant(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, user) = path.into_inner();
    let user: UserId = user.parse().map_err(|_| ApiError::not_found("participant"))?;
    state.app.remove_participant(auth.0, session_id(&id)?, user).await?;
    Ok(envelope::ok(Done { ok: true }))
}
