//! What a model sees: the session's system prompt plus the most recent
//! messages that fit a token budget, oldest dropped first, never half a
//! message.

use specgen_domain::{Message, MessageRole, MessageStatus};
use specgen_ports::{ChatTurn, RecentMessage, TurnRole};

/// Context limits (the seed's defaults: 10 messages, 4,000 tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextBudget {
    pub max_messages: usize,
    pub max_tokens: usize,
}

impl Default for ContextBudget {
    fn default() -> Self {
        Self { max_messages: 10, max_tokens: 4_000 }
    }
}

/// Per-message framing the chat formats add (role markers, separators).
const MESSAGE_OVERHEAD: usize = 4;

/// An estimate of the tokens `text` costs, meant to err high: English runs
/// about four characters per cl100k token, so counting one per three
/// characters (and at least one per word) stays above the real count; the
/// test below checks it against the real tokenizer.
pub fn estimate_tokens(text: &str) -> usize {
    let chars = text.chars().count();
    let words = text.split_whitespace().count();
    chars.div_ceil(3).max(words)
}

/// Builds the turns for a reply to the newest message in `history`
/// (oldest first). Failed or empty replies are left out: a model should not
/// see a half answer as something it said.
pub fn build(system_prompt: Option<&str>, history: &[RecentMessage], budget: ContextBudget) -> Vec<ChatTurn> {
    let mut remaining =
        budget.max_tokens.saturating_sub(system_prompt.map_or(0, |p| estimate_tokens(p) + MESSAGE_OVERHEAD));
    let mut picked = Vec::new();
    for message in history.iter().rev() {
        if picked.len() == budget.max_messages {
            break;
        }
        let role = match (message.role, message.status) {
            (MessageRole::User, _) => TurnRole::User,
            (MessageRole::Assistant, MessageStatus::Complete) if !message.content.is_empty() => TurnRole::Assistant,
            _ => continue,
        };
        let cost = estimate_tokens(&message.content) + MESSAGE_OVERHEAD;
        // Always keep the newest message (the one being answered), even alone.
        if cost > remaining && !picked.is_empty() {
            break;
        }
        remaining = remaining.saturating_sub(cost);
        picked.push(ChatTurn { role, content: message.content.clone() });
    }
    picked.reverse();
    picked
}

/// `history` (oldest first), read beside the insert of `asked` and so
/// holding it or not, with `asked` last exactly once.
pub(crate) fn with_newest(history: Option<Vec<RecentMessage>>, asked: &Message) -> Vec<RecentMessage> {
    let mut history: Vec<RecentMessage> =
        history.unwrap_or_default().into_iter().filter(|m| m.id != asked.id).collect();
    history.push(RecentMessage::from(asked));
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use specgen_domain::{MessageId, SessionId, UserId};

    const ENGLISH: &[&str] = &[
        "The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
        "Spec Gen is a self-hostable chat platform; replies stream token by token into the browser.",
        "When one provider fails before its first token, the next provider in the fallback order answers instead.",
        "Please summarise the meeting notes from Tuesday, including the action items, owners and deadlines.",
        "It's 3:45 pm on a Wednesday in November, and the build has been red since 10 o'clock this morning!",
        "Rust's ownership model guarantees memory safety without a garbage collector, at compile time.",
        "Could you explain, step by step, how a hash map handles collisions with open addressing?",
        "I'd like three ideas for a birthday party for a seven-year-old who loves dinosaurs and space.",
        "The committee approved the budget of $1,250,000 for fiscal year 2027 after a long debate.",
        "Write a haiku about autumn rain falling on an old wooden bridge near the river bank.",
    ];

    #[test]
    fn estimate_never_undercounts_cl100k_by_more_than_ten_percent() {
        let bpe = tiktoken_rs::cl100k_base().unwrap();
        let mut corpus = String::new();
        for sentence in ENGLISH {
            let real = bpe.encode_with_special_tokens(sentence).len();
            let estimate = estimate_tokens(sentence);
            assert!(estimate as f64 >= real as f64 * 0.9, "{sentence}: estimate {estimate} < 90% of {real}");
            corpus.push_str(sentence);
            corpus.push('\n');
        }
        let real = bpe.encode_with_special_tokens(&corpus).len();
        assert!(estimate_tokens(&corpus) as f64 >= real as f64 * 0.9);
    }

    fn message(role: MessageRole, status: MessageStatus, content: &str) -> Message {
        let at = time::OffsetDateTime::UNIX_EPOCH;
        Message {
            id: MessageId::new_v7(),
            session_id: SessionId::new_v7(),
            sender_id: (role == MessageRole::User).then(UserId::new_v7),
            role,
            content: content.into(),
            status,
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

    #[test]
    fn keeps_the_newest_whole_messages_within_budget() {
        let history: Vec<RecentMessage> = (0..30)
            .map(|i| {
                let role = if i % 2 == 0 { MessageRole::User } else { MessageRole::Assistant };
                let m = message(role, MessageStatus::Complete, &format!("message number {i} {}", "word ".repeat(20)));
                RecentMessage::from(&m)
            })
            .collect();
        let turns = build(Some("Be brief."), &history, ContextBudget::default());
        assert_eq!(turns.len(), 10, "message cap");
        assert!(turns.last().unwrap().content.starts_with("message number 29"));
        assert!(turns.first().unwrap().content.starts_with("message number 20"), "oldest dropped first");

        let tight = build(None, &history, ContextBudget { max_messages: 10, max_tokens: 100 });
        assert!(tight.len() < 10 && !tight.is_empty());
        let spent: usize = tight.iter().map(|t| estimate_tokens(&t.content) + MESSAGE_OVERHEAD).sum();
        assert!(spent <= 100, "never over budget: {spent}");
        assert!(tight.iter().all(|t| t.content.ends_with("word ")), "never half a message");
    }

    #[test]
    fn failed_replies_are_left_out_and_the_new_message_always_kept() {
        let history = [
            message(MessageRole::User, MessageStatus::Complete, "first"),
            message(MessageRole::Assistant, MessageStatus::Failed, "half an ans"),
            message(MessageRole::User, MessageStatus::Complete, &"x".repeat(30_000)),
        ]
        .iter()
        .map(RecentMessage::from)
        .collect::<Vec<_>>();
        let turns = build(None, &history, ContextBudget::default());
        assert_eq!(turns.len(), 1, "the huge new message alone");
        assert_eq!(turns[0].role, TurnRole::User);
    }

    #[test]
    fn the_message_being_answered_ends_the_history_once_whenever_it_was_read() {
        let older = message(MessageRole::User, MessageStatus::Complete, "older");
        let asked = message(MessageRole::User, MessageStatus::Complete, "asked");
        let ids = |h: Vec<RecentMessage>| h.into_iter().map(|m| m.id).collect::<Vec<_>>();
        let (older_read, asked_read) = (RecentMessage::from(&older), RecentMessage::from(&asked));
        assert_eq!(
            ids(with_newest(Some(vec![older_read.clone()]), &asked)),
            vec![older.id, asked.id],
            "read before the insert"
        );
        assert_eq!(
            ids(with_newest(Some(vec![older_read, asked_read]), &asked)),
            vec![older.id, asked.id],
            "read after it"
        );
        assert_eq!(ids(with_newest(None, &asked)), vec![asked.id], "store could not say");
    }
}
