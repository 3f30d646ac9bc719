//! Content negotiation: what a request's `Accept` header takes.

use actix_web::HttpRequest;
use actix_web::http::header::{Accept, Header as _, Quality};

/// The media ranges of a request's `Accept` (none without a valid header).
pub(crate) struct MediaRanges(Accept);

impl MediaRanges {
    pub(crate) fn of(req: &HttpRequest) -> Self {
        Self(Accept::parse(req).unwrap_or_else(|_| Accept(Vec::new())))
    }

    /// The quality of the range `type_/subtype` itself, as written (media
    /// types compare case-insensitively).
    pub(crate) fn exact(&self, type_: &str, subtype: &str) -> Option<Quality> {
        self.0
            .iter()
            .filter(|range| range.item.type_() == type_ && range.item.subtype() == subtype)
            .map(|r| r.quality)
            .max()
    }

    /// The quality given to `type_/subtype` by its most specific range:
    /// `type_/subtype`, then `type_/*`, then `*/*`.
    pub(crate) fn quality(&self, type_: &str, subtype: &str) -> Option<Quality> {
        self.exact(type_, subtype).or_else(|| self.exact(type_, "*")).or_else(|| self.exact("*", "*"))
    }

    /// Whether `type_/subtype` is acceptable (a quality above zero).
    pub(crate) fn takes(&self, type_: &str, subtype: &str) -> bool {
        self.quality(type_, subtype).is_some_and(|q| q > Quality::ZERO)
    }
}
