//! Valid domain values in one line, with unique emails so tests never collide.

use specgen_domain::{
    ChatSession, ClientMessageId, Email, FamilyId, Message, MessageId, MessageRole, MessageStatus, Participant,
    ParticipantRole, PasswordHash, PersonName, Profile, RefreshToken, RefreshTokenId, SessionId, SessionTitle,
    TokenHash, User, UserId, time_util,
};
use time::{Duration, OffsetDateTime};

/// Now, at the precision stores keep.
pub fn now() -> OffsetDateTime {
    time_util::to_micros(OffsetDateTime::now_utc())
}

pub fn email(local: &str) -> Email {
    Email::parse(&format!("{local}@example.com")).expect("valid email")
}

/// A user (not yet stored) with the given email and its initial profile.
pub fn user_with_email(email: &str) -> (User, Profile) {
    let at = now();
    let user = User {
        id: UserId::new_v7(),
        email: Email::parse(email).expect("valid email"),
        name: PersonName::parse("Test User").expect("valid name"),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into())
            .expect("phc"),
        created_at: at,
        updated_at: at,
        tokens_valid_after: None,
        deleted_at: None,
    };
    let profile = Profile::initial(&user);
    (user, profile)
}

/// A user with a fresh unique email.
pub fn user() -> (User, Profile) {
    user_with_email(&format!("u{}@example.com", uuid::Uuid::now_v7().simple()))
}

pub fn session(owner: UserId) -> ChatSession {
    let at = now();
    ChatSession {
        id: SessionId::new_v7(),
        title: SessionTitle::parse("A chat").expect("valid title"),
        owner_id: owner,
        system_prompt: None,
        provider: None,
        model: None,
        created_at: at,
        updated_at: at,
        last_message_at: None,
        deleted_at: None,
    }
}

pub fn member(session: SessionId, user: UserId) -> Participant {
    Participant { session_id: session, user_id: user, role: ParticipantRole::Member, joined_at: now() }
}

/// A complete user message created at `at`.
pub fn user_message_at(session: SessionId, sender: UserId, content: &str, at: OffsetDateTime) -> Message {
    Message {
        id: MessageId::new_v7(),
        session_id: session,
        sender_id: Some(sender),
        role: MessageRole::User,
        content: content.to_owned(),
        status: MessageStatus::Complete,
        provider: None,
        model: None,
        usage: None,
        latency_ms: None,
        client_message_id: None,
        reply_to: None,
        error: None,
        created_at: at,
        updated_at: at,
    }
}

pub fn user_message(session: SessionId, sender: UserId, content: &str) -> Message {
    user_message_at(session, sender, content, now())
}

pub fn with_client_id(mut message: Message, key: &str) -> Message {
    message.client_message_id = Some(ClientMessageId::parse(key).expect("valid key"));
    message
}

/// An AI reply to `to`, still streaming.
pub fn streaming_reply(to: &Message, partial: &str) -> Message {
    let at = now();
    Message {
        id: MessageId::new_v7(),
        session_id: to.session_id,
        sender_id: None,
        role: MessageRole::Assistant,
        content: partial.to_owned(),
        status: MessageStatus::Streaming,
        provider: Some("demo".into()),
        model: Some("demo-1".into()),
        usage: None,
        latency_ms: None,
        client_message_id: None,
        reply_to: Some(to.id),
        error: None,
        created_at: at,
        updated_at: at,
    }
}

/// A fresh refresh token of `family`, valid for a week.
pub fn refresh_token(user: UserId, family: FamilyId) -> RefreshToken {
    let at = now();
    let mut hash = [0u8; 32];
    hash[..16].copy_from_slice(uuid::Uuid::now_v7().as_bytes());
    hash[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    RefreshToken {
        id: RefreshTokenId::new_v7(),
        user_id: user,
        family_id: family,
        token_hash: TokenHash(hash),
        device_id: None,
        created_at: at,
        expires_at: at + Duration::days(7),
        spent_at: None,
        revoked_at: None,
    }
}
