//! Validating newtypes: one per input rule of the wire contract. A value of
//! one of these types has passed its rule; the core never sees a raw string.

use std::fmt;

use serde::Serialize;
use unicode_normalization::UnicodeNormalization as _;

/// Why a value was refused, worded for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

fn invalid(message: impl Into<String>) -> InvalidInput {
    InvalidInput(message.into())
}

fn char_count(s: &str) -> usize {
    s.chars().count()
}

/// True for control characters other than line feed, carriage return and tab.
fn is_forbidden_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\r' | '\t')
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// An email address, trimmed, in Unicode NFC and lowercased so that
    /// comparison is case-insensitive everywhere and one address typed two
    /// ways (a precomposed `é` or `e` plus an accent) is one account; at
    /// most 254 characters.
    Email
);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let normalised: String = raw.trim().nfc().collect();
        let trimmed = normalised.as_str();
        if trimmed.is_empty() {
            return Err(invalid("email is required"));
        }
        if char_count(trimmed) > Self::MAX_CHARS {
            return Err(invalid("email must be at most 254 characters"));
        }
        let lowered = trimmed.to_lowercase();
        if !email_address::EmailAddress::is_valid(&lowered) || !lowered.contains('@') {
            return Err(invalid("email must be a valid address"));
        }
        // Addresses like `a@b` are valid per RFC but not deliverable; require a dot in the domain.
        let domain = lowered.rsplit('@').next().unwrap_or_default();
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(invalid("email must be a valid address"));
        }
        Ok(Self(lowered))
    }
}

/// A password that meets the policy. Never printed: `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let count = char_count(raw);
        if count < Self::MIN_CHARS {
            return Err(invalid("password must be at least 8 characters"));
        }
        if count > Self::MAX_CHARS {
            return Err(invalid("password must be at most 128 characters"));
        }
        if !raw.chars().any(|c| c.is_lowercase()) {
            return Err(invalid("password must contain a lowercase letter"));
        }
        if !raw.chars().any(|c| c.is_uppercase()) {
            return Err(invalid("password must contain an uppercase letter"));
        }
        if !raw.chars().any(|c| c.is_ascii_digit()) {
            return Err(invalid("password must contain a digit"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A password as it was submitted for verification (login, confirmation):
/// only bounded in length, so an old password that predates a policy change
/// can still be checked. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordAttempt(String);

impl PasswordAttempt {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() {
            return Err(invalid("password is required"));
        }
        // Capped before any hashing so a huge body cannot buy CPU time.
        if char_count(raw) > Password::MAX_CHARS {
            return Err(invalid("password must be at most 128 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordAttempt(<redacted>)")
    }
}

string_newtype!(
    /// An argon2 PHC string (`$argon2id$v=19$...`).
    PasswordHash
);

impl PasswordHash {
    pub fn from_phc(phc: String) -> Result<Self, InvalidInput> {
        if phc.starts_with("$argon2") { Ok(Self(phc)) } else { Err(invalid("not an argon2 PHC string")) }
    }
}

string_newtype!(
    /// A person's name or display name: 2..50 characters after trimming,
    /// stored trimmed.
    PersonName
);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let trimmed = raw.trim();
        let count = char_count(trimmed);
        if !(2..=50).contains(&count) {
            return Err(invalid("must be 2 to 50 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

string_newtype!(
    /// A profile biography, at most 500 characters (may be empty).
    Bio
);

impl Bio {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if char_count(raw) > 500 {
            return Err(invalid("must be at most 500 characters"));
        }
        if raw.chars().any(is_forbidden_control) {
            return Err(invalid("must not contain control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn empty() -> Self {
        Self(String::new())
    }
}

string_newtype!(
    /// An IANA time zone name such as `Europe/Paris` or `UTC`.
    Timezone
);

impl Timezone {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        match raw.parse::<chrono_tz::Tz>() {
            Ok(zone) => Ok(Self(zone.name().to_owned())),
            Err(_) => Err(invalid("must be an IANA time zone name, e.g. Europe/Paris")),
        }
    }

    pub fn utc() -> Self {
        Self("UTC".to_owned())
    }
}

/// Free-form client preferences: a JSON object of at most 16 KiB, with no
/// NUL character (U+0000) in any key or string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Preferences(serde_json::Value);

impl Preferences {
    pub const MAX_BYTES: usize = 16 * 1024;

    pub fn parse(value: serde_json::Value) -> Result<Self, InvalidInput> {
        if !value.is_object() {
            return Err(invalid("must be a JSON object"));
        }
        if value.to_string().len() > Self::MAX_BYTES {
            return Err(invalid("must be at most 16 KiB"));
        }
        // Postgres keeps preferences as `jsonb`, which cannot hold U+0000
        // (nor can any of its text types): letting one through would fail the
        // write with a 500 on one store and succeed on the other. Every text
        // field of the contract already refuses NUL; so do preferences.
        if has_nul(&value) {
            return Err(invalid("must not contain the NUL character (\\u0000)"));
        }
        // Postgres keeps numbers exactly and writes them back in full
        // decimal; the largest doubles (near 1.8e308) then read back as out
        // of range, which would make the profile unreadable on one store.
        if has_huge_number(&value) {
            return Err(invalid("numbers must be between -1e308 and 1e308"));
        }
        Ok(Self(value))
    }

    pub fn empty() -> Self {
        Self(serde_json::Value::Object(serde_json::Map::new()))
    }

    pub fn as_value(&self) -> &serde_json::Value {
        &self.0
    }
}

/// Whether a number of magnitude 1e308 or more appears in `value`.
fn has_huge_number(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|x| x.abs() >= 1e308),
        serde_json::Value::Array(items) => items.iter().any(has_huge_number),
        serde_json::Value::Object(map) => map.values().any(has_huge_number),
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::String(_) => false,
    }
}

/// Whether a NUL character appears in any key or string of `value`.
fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => false,
    }
}

string_newtype!(
    /// The text of a user's message: 1..10,000 Unicode scalar values after
    /// trimming, no control characters but `\n`, `\r`, `\t`. Stored exactly
    /// as sent: trimming only decides emptiness and length.
    MessageContent
);

impl MessageContent {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.chars().any(is_forbidden_control) {
            return Err(invalid("must not contain control characters other than newline, carriage return and tab"));
        }
        let count = char_count(raw.trim());
        if count == 0 {
            return Err(invalid("must not be empty"));
        }
        if count > Self::MAX_CHARS {
            return Err(invalid("must be at most 10000 characters"));
        }
        Ok(Self(raw.to_owned()))
    }
}

string_newtype!(
    /// A session title: 1..200 characters after trimming, stored trimmed.
    SessionTitle
);

impl SessionTitle {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let trimmed = raw.trim();
        let count = char_count(trimmed);
        if count == 0 {
            return Err(invalid("must not be empty"));
        }
        if count > 200 {
            return Err(invalid("must be at most 200 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The title a session gets when its creator gives none.
    pub fn default_title() -> Self {
        Self("New chat".to_owned())
    }
}

string_newtype!(
    /// A session's system prompt, at most 8,000 characters.
    SystemPrompt
);

impl SystemPrompt {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if char_count(raw) > 8_000 {
            return Err(invalid("must be at most 8000 characters"));
        }
        if raw.chars().any(is_forbidden_control) {
            return Err(invalid("must not contain control characters"));
        }
        Ok(Self(raw.to_owned()))
    }
}

/// The AI providers Spec Gen knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Claude,
    Openai,
    Demo,
}

impl ProviderName {
    pub const ALL: [ProviderName; 3] = [Self::Claude, Self::Openai, Self::Demo];

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        match raw.trim() {
            "claude" => Ok(Self::Claude),
            "openai" => Ok(Self::Openai),
            "demo" => Ok(Self::Demo),
            _ => Err(invalid("must be one of claude, openai, demo")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Claude => "claude",
            Self::Openai => "openai",
            Self::Demo => "demo",
        }
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

string_newtype!(
    /// A model name as the provider spells it: 1..200 printable characters.
    ModelName
);

impl ModelName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let trimmed = raw.trim();
        let count = char_count(trimmed);
        if !(1..=200).contains(&count) || trimmed.chars().any(char::is_control) {
            return Err(invalid("must be 1 to 200 printable characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

string_newtype!(
    /// A client's idempotency key for a message: 1..128 printable characters.
    ClientMessageId
);

impl ClientMessageId {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let count = char_count(raw);
        if !(1..=128).contains(&count) || raw.chars().any(char::is_control) {
            return Err(invalid("must be 1 to 128 printable characters"));
        }
        Ok(Self(raw.to_owned()))
    }
}

string_newtype!(
    /// A client-chosen device label bound to a login, 1..128 printable characters.
    DeviceId
);

impl DeviceId {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let count = char_count(raw);
        if !(1..=128).contains(&count) || raw.chars().any(char::is_control) {
            return Err(invalid("must be 1 to 128 printable characters"));
        }
        Ok(Self(raw.to_owned()))
    }
}

/// A page size: 1..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u16);

impl PageLimit {
    pub const MAX: u16 = 100;
    pub const SESSIONS_DEFAULT: PageLimit = PageLimit(20);
    pub const MESSAGES_DEFAULT: PageLimit = PageLimit(50);

    pub fn new(limit: i64) -> Result<Self, InvalidInput> {
        match u16::try_from(limit) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(invalid("must be between 1 and 100")),
        }
    }

    pub fn get(&self) -> usize {
        usize::from(self.0)
    }
}

/// Lets values be rebuilt from storage without re-running input rules that
/// may have changed since they were written. Adapters only.
pub mod trusted {
    use super::*;

    pub fn email(s: String) -> Email {
        Email(s)
    }
    pub fn password_hash(s: String) -> PasswordHash {
        PasswordHash(s)
    }
    pub fn person_name(s: String) -> PersonName {
        PersonName(s)
    }
    pub fn bio(s: String) -> Bio {
        Bio(s)
    }
    pub fn timezone(s: String) -> Timezone {
        Timezone(s)
    }
    pub fn preferences(v: serde_json::Value) -> Preferences {
        Preferences(v)
    }
    pub fn session_title(s: String) -> SessionTitle {
        SessionTitle(s)
    }
    pub fn system_prompt(s: String) -> SystemPrompt {
        SystemPrompt(s)
    }
    pub fn model_name(s: String) -> ModelName {
        ModelName(s)
    }
    pub fn client_message_id(s: String) -> ClientMessageId {
        ClientMessageId(s)
    }
    pub fn device_id(s: String) -> DeviceId {
        DeviceId(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_lowercased_and_checked() {
        assert_eq!(Email::parse(" Ada@Example.COM ").map(|e| e.into_inner()), Ok("ada@example.com".into()));
        // NFD (e + combining acute) and NFC (precomposed) spell one address.
        let decomposed = Email::parse("Rene\u{301}@example.com").map(|e| e.into_inner());
        assert_eq!(decomposed, Ok("ren\u{e9}@example.com".into()));
        assert_eq!(decomposed, Email::parse("REN\u{c9}@example.com").map(|e| e.into_inner()));
        for bad in ["", "plain", "a@", "@b.c", "a@b", "a b@c.d", &format!("{}@x.io", "a".repeat(250))] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_policy() {
        assert!(Password::parse("Abcdefg1").is_ok());
        for bad in ["Abcdef1", "abcdefg1", "ABCDEFG1", "Abcdefgh", &format!("Aa1{}", "x".repeat(126))] {
            assert!(Password::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{:?}", Password::parse("Abcdefg1")), "Ok(Password(<redacted>))");
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(PersonName::parse("  Ada ").map(|n| n.into_inner()), Ok("Ada".into()));
        assert!(PersonName::parse(" A ").is_err());
        assert!(PersonName::parse(&"x".repeat(51)).is_err());
        assert!(PersonName::parse(&"é".repeat(50)).is_ok());
    }

    #[test]
    fn message_content_is_kept_exactly() {
        let raw = "  a < b <div>\n\t ";
        assert_eq!(MessageContent::parse(raw).map(|c| c.into_inner()), Ok(raw.to_owned()));
        assert!(MessageContent::parse(" \n\t ").is_err());
        assert!(MessageContent::parse("a\u{0}b").is_err());
        assert!(MessageContent::parse("a\u{7}b").is_err());
        assert!(MessageContent::parse(&"é".repeat(10_000)).is_ok());
        assert!(MessageContent::parse(&"é".repeat(10_001)).is_err());
        assert!(MessageContent::parse(&format!("  {}  ", "x".repeat(10_000))).is_ok());
    }

    #[test]
    fn timezones_and_preferences() {
        assert!(Timezone::parse("Europe/Paris").is_ok());
        assert!(Timezone::parse("Mars/Olympus").is_err());
        assert!(Preferences::parse(serde_json::json!({"theme": "dark"})).is_ok());
        assert!(Preferences::parse(serde_json::json!([1])).is_err());
        assert!(Preferences::parse(serde_json::json!({"x": "y".repeat(17_000)})).is_err());
        for bad in [
            serde_json::json!({"a": "x\u{0}y"}),
            serde_json::json!({"a\u{0}": 1}),
            serde_json::json!({"a": [{"b": ["\u{0}"]}]}),
        ] {
            assert!(Preferences::parse(bad.clone()).is_err(), "{bad}");
        }
        // Other control characters are fine in jsonb and stay allowed.
        assert!(Preferences::parse(serde_json::json!({"a": "tab\there\u{1}"})).is_ok());
        // Numbers Postgres would hand back out of a double's range.
        assert!(Preferences::parse(serde_json::json!({"n": f64::MAX})).is_err());
        assert!(Preferences::parse(serde_json::json!({"n": [-1.0e308]})).is_err());
        assert!(Preferences::parse(serde_json::json!({"n": 1.5e307, "m": -3, "tiny": 5e-324})).is_ok());
    }

    #[test]
    fn titles_prompts_limits() {
        assert!(SessionTitle::parse("   ").is_err());
        assert!(SessionTitle::parse(&"t".repeat(200)).is_ok());
        assert!(SessionTitle::parse(&"t".repeat(201)).is_err());
        assert!(SystemPrompt::parse(&"p".repeat(8_001)).is_err());
        assert!(PageLimit::new(0).is_err());
        assert!(PageLimit::new(101).is_err());
        assert_eq!(PageLimit::new(100).map(|l| l.get()), Ok(100));
    }
}
