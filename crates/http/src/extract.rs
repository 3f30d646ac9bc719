//! Request extractors that answer in the contract's envelope: a JSON body
//! checked for media type, size, syntax, types (field by field) and garde
//! rules before a handler sees it.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures::StreamExt as _;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::HttpConfig;
use crate::error::{ApiError, FieldError};

/// A JSON body that parsed and passed its garde rules.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<T> FromRequest for ValidJson<T>
where
    T: DeserializeOwned + garde::Validate + 'static,
    T::Context: Default,
{
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<web::Data<HttpConfig>>().map_or(64 * 1024, |c| c.body_limit);
        let checked = check_headers(req, limit);
        let mut payload = payload.take();
        Box::pin(async move {
            checked?;
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            let value: T = parse_json(&body)?;
            validate(&value)?;
            Ok(ValidJson(value))
        })
    }
}

/// garde's report as the contract's field-level details.
pub fn validate<T>(value: &T) -> Result<(), ApiError>
where
    T: garde::Validate,
    T::Context: Default,
{
    value.validate().map_err(|report| {
        ApiError::Validation(
            report.iter().map(|(path, error)| FieldError::new(wire_name(&path.to_string()), error.message())).collect(),
        )
    })
}

/// garde names a field by its Rust identifier (`display_name`), but a
/// client matches `details[].field` against the JSON it sent, whose names are
/// camelCase everywhere (the contract's convention, and every DTO's
/// `rename_all`). Converting here, once, keeps a new DTO from leaking a
/// snake_case name the web client cannot place next to its input.
fn wire_name(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars().peekable();
    let mut previous: Option<char> = None;
    while let Some(c) = chars.next() {
        let joins_words = c == '_'
            && previous.is_some_and(|p| p.is_ascii_alphanumeric())
            && chars.peek().is_some_and(|n| n.is_ascii_alphanumeric());
        if joins_words {
            if let Some(next) = chars.next() {
                out.push(next.to_ascii_uppercase());
                previous = Some(next);
            }
            continue;
        }
        out.push(c);
        previous = Some(c);
    }
    out
}

fn check_headers(req: &HttpRequest, limit: usize) -> Result<(), ApiError> {
    check_json_content_type(req)?;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    Ok(())
}

/// `application/json`, or any `application/*+json`, with optional parameters.
pub fn check_json_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(())
}

/// Syntax errors are 400; well-formed JSON of the wrong shape is 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let text = inner.to_string();
                let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
                let field = missing_field(&message).unwrap_or(if path == "." { "body".to_owned() } else { path });
                ApiError::Validation(vec![FieldError::new(field, message)])
            }
            _ => not_json(),
        }
    })?;
    de.end().map_err(|_| not_json())?;
    Ok(value)
}

fn not_json() -> ApiError {
    ApiError::BadRequest("The request body is not valid JSON.".into())
}

/// serde reports a missing field against its parent; name the field itself.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Probe {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        age: u8,
    }

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation(d) => d.into_iter().map(|f| f.field).collect(),
            other => vec![other.code().to_owned()],
        }
    }

    #[test]
    fn field_names_are_the_wire_names() {
        assert_eq!(wire_name("display_name"), "displayName");
        assert_eq!(wire_name("client_message_id"), "clientMessageId");
        assert_eq!(wire_name("email"), "email");
        assert_eq!(wire_name("items[0].system_prompt"), "items[0].systemPrompt");
        // Not between two word characters: not a separator, left alone.
        assert_eq!(wire_name("_private"), "_private");
        assert_eq!(wire_name("trailing_"), "trailing_");
    }

    #[derive(Debug, garde::Validate)]
    struct TwoWords {
        #[garde(length(min = 1))]
        refresh_token: String,
    }

    #[test]
    fn garde_failures_name_the_wire_field() {
        let Err(ApiError::Validation(details)) = validate(&TwoWords { refresh_token: String::new() }) else {
            panic!("an empty token must fail");
        };
        assert_eq!(details.iter().map(|d| d.field.as_str()).collect::<Vec<_>>(), ["refreshToken"]);
    }

    #[test]
    fn classifies_json_failures() {
        assert_eq!(fields(parse_json::<Probe>(b"{not json").unwrap_err()), ["BAD_REQUEST"]);
        assert_eq!(fields(parse_json::<Probe>(b"{\"name\":\"a\",\"age\":1} trailing").unwrap_err()), ["BAD_REQUEST"]);
        assert_eq!(fields(parse_json::<Probe>(br#"{"name": 1, "age": 2}"#).unwrap_err()), ["name"]);
        assert_eq!(fields(parse_json::<Probe>(br#"{"name": "x"}"#).unwrap_err()), ["age"]);
        assert_eq!(fields(parse_json::<Probe>(b"[]").unwrap_err()), ["body"]);
        assert!(parse_json::<Probe>(br#"{"name": "x", "age": 3, "extra": true}"#).is_ok());
    }
}
