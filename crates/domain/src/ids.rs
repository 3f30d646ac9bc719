//! Typed identifiers, all UUIDv7 so that ids sort by creation time.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered identifier.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The text `Display` writes (lowercase, hyphenated) in one
            /// exact-size allocation; `to_string` goes through the
            /// formatting machinery and regrows its buffer, and ids are
            /// turned into text on every chunk of a reply.
            pub fn to_text(&self) -> String {
                self.0.hyphenated().encode_lower(&mut Uuid::encode_buffer()).to_owned()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A user account.
    UserId
);
uuid_id!(
    /// A chat session.
    SessionId
);
uuid_id!(
    /// A message in a chat session.
    MessageId
);
uuid_id!(
    /// One refresh token (one link of a rotation chain).
    RefreshTokenId
);
uuid_id!(
    /// A login: every refresh token rotated from one sign-in shares it.
    FamilyId
);

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn to_text_is_what_display_writes() {
        for _ in 0..3 {
            let id = MessageId::new_v7();
            assert_eq!(id.to_text(), id.to_string());
            assert_eq!(id.to_text().len(), 36);
        }
    }
}
