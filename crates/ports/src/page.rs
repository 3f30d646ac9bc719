//! Cursor pages. A cursor is a position `(at, id)`; pages never overlap and
//! never skip an item that existed when both pages were read.

use specgen_domain::{Cursor, PageLimit};

/// Which way from the cursor a page reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Items before the cursor in the list's natural order: older messages,
    /// or sessions with less recent activity.
    Older,
    /// Items after the cursor: newer messages, more recent sessions.
    Newer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// `None` starts at the newest end (for `Older`) or the oldest (for `Newer`).
    pub cursor: Option<Cursor>,
    pub limit: PageLimit,
    pub direction: Direction,
}

impl PageRequest {
    pub fn first(limit: PageLimit) -> Self {
        Self { cursor: None, limit, direction: Direction::Older }
    }

    pub fn older_than(cursor: Cursor, limit: PageLimit) -> Self {
        Self { cursor: Some(cursor), limit, direction: Direction::Older }
    }

    pub fn newer_than(cursor: Option<Cursor>, limit: PageLimit) -> Self {
        Self { cursor, limit, direction: Direction::Newer }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page in the same direction starts; `None` at the end.
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in reading order
    /// (the extra row only tells whether more exist); `cursor_of` gives the
    /// position of an item.
    pub fn from_overfetch(mut rows: Vec<T>, limit: PageLimit, cursor_of: impl Fn(&T) -> Cursor) -> Self {
        let has_more = rows.len() > limit.get();
        rows.truncate(limit.get());
        let next_cursor = if has_more { rows.last().map(&cursor_of) } else { None };
        Self { items: rows, next_cursor }
    }
}
