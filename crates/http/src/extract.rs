//! Request extractors that answer in the contract's envelope: a JSON body
//! checked for media type, size, syntax, types (field by field) and garde
//! rules before a handler sees it.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures::StreamExt as _;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::json;

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
        // No body is no fields: `{}`, whatever the Content-Type says, since
        // there is no body whose media type could be wrong. A DTO whose
        // fields are all optional then takes its defaults (a client may
        // create a session with a bare POST), and one with required fields
        // answers 422 naming them rather than a 415 about a body never sent.
        if has_no_body(req) {
            return Box::pin(async { Ok(ValidJson(parse_valid(b"{}")?)) });
        }
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
            Ok(ValidJson(parse_valid(&body)?))
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

/// HTTP/1.1 frames a request body with `Content-Length` or
/// `Transfer-Encoding`; without either, or with a length of 0, there is none.
/// (An HTTP/2 body needs neither, so there a body is assumed and read.)
fn has_no_body(req: &HttpRequest) -> bool {
    let headers = req.headers();
    match headers.get(header::CONTENT_LENGTH) {
        Some(length) => length.to_str().is_ok_and(|n| n.trim() == "0"),
        None => !headers.contains_key(header::TRANSFER_ENCODING) && req.version() < actix_web::http::Version::HTTP_2,
    }
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

/// `application/json`, or any `application/*+json`, with optional
/// parameters; a `charset`, if given, must be UTF-8, the only encoding JSON
/// has (RFC 8259), since the body is read as UTF-8 whatever it says.
pub fn check_json_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
                && m.get_param(mime::CHARSET).is_none_or(|charset| charset == mime::UTF_8)
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(())
}

/// A request body: a JSON object of the DTO's fields, which must also pass
/// its garde rules. `details` names every failing field, whether its type or
/// a rule is wrong.
pub fn parse_valid<T>(body: &[u8]) -> Result<T, ApiError>
where
    T: DeserializeOwned + garde::Validate,
    T::Context: Default,
{
    let value = parse_checked(body, |parsed: &T| validate(parsed).err())?;
    validate(&value)?;
    Ok(value)
}

/// A request body: a JSON object of the DTO's fields. Syntax errors are
/// 400; well-formed JSON of the wrong shape is 422 naming every field that
/// is missing or of the wrong type.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    parse_checked(body, |_: &T| None)
}

fn parse_checked<T: DeserializeOwned>(body: &[u8], rules: impl Fn(&T) -> Option<ApiError>) -> Result<T, ApiError> {
    // serde would also fill a struct from an array, by position.
    if body.trim_ascii_start().first() != Some(&b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|_| not_json())?;
        return Err(ApiError::validation("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let first_error = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end().map_err(|_| not_json())?;
            return Ok(value);
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.classify() != serde_json::error::Category::Data {
                return Err(not_json());
            }
            let text = inner.to_string();
            let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
            let field = missing_field(&message).or_else(|| duplicate_field(&message)).unwrap_or(if path == "." {
                "body".to_owned()
            } else {
                path
            });
            FieldError::new(field, readable(&message))
        }
    };
    // serde stops at the first wrong field: look at each field on its own
    // to name them all, and at the rest together for the rules.
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(body) else {
        return Err(not_json());
    };
    let details = diagnose(object, rules);
    Err(ApiError::Validation(if details.is_empty() { vec![first_error] } else { details }))
}

/// Every field of `object` that cannot be of its type, every required field
/// missing, and the rules' failures of the fields that are there and well
/// typed.
fn diagnose<T: DeserializeOwned>(
    object: serde_json::Map<String, serde_json::Value>,
    rules: impl Fn(&T) -> Option<ApiError>,
) -> Vec<FieldError> {
    let mut details = Vec::new();
    let mut filled = serde_json::Map::new();
    for (key, value) in object {
        let alone = serde_json::Map::from_iter([(key.clone(), value)]);
        match field_alone::<T>(&alone) {
            Some(failed) => details.push(failed),
            None => filled.extend(alone),
        }
    }
    // serde names one missing field at a time: name it, stand a value of its
    // type in for it (and for those of the wrong type), and look again, so
    // that every missing field is named and the rules see the rest.
    let mut stand_ins = Vec::new();
    for _ in 0..64 {
        let message = match T::deserialize(serde_json::Value::Object(filled.clone())) {
            Ok(value) => {
                if let Some(ApiError::Validation(failed)) = rules(&value) {
                    let stood_in = |field: &str| {
                        stand_ins.iter().any(|s: &String| {
                            field
                                .strip_prefix(s.as_str())
                                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
                        })
                    };
                    details.extend(failed.into_iter().filter(|f| !stood_in(&f.field)));
                }
                break;
            }
            Err(err) => err.to_string(),
        };
        let Some(field) = missing_field(&message) else { break };
        // Not one already named: it is there, with the wrong type.
        if !details.iter().any(|d| d.field == field) {
            details.push(FieldError::new(field.clone(), message));
        }
        let candidates = [json!(""), json!(0), json!(false), json!({}), json!([])];
        let Some(stand_in) = candidates.into_iter().find(|candidate| {
            field_alone::<T>(&serde_json::Map::from_iter([(field.clone(), candidate.clone())])).is_none()
        }) else {
            break;
        };
        filled.insert(field.clone(), stand_in);
        stand_ins.push(field);
    }
    details
}

/// What is wrong with the only field of `alone`, other than the fields it
/// leaves missing.
fn field_alone<T: DeserializeOwned>(alone: &serde_json::Map<String, serde_json::Value>) -> Option<FieldError> {
    let key = alone.keys().next()?;
    let err = serde_path_to_error::deserialize::<_, T>(&serde_json::Value::Object(alone.clone())).err()?;
    if missing_field(&err.inner().to_string()).is_some() {
        return None;
    }
    let path = err.path().to_string();
    let field = if path == "." { key.clone() } else { path };
    Some(FieldError::new(field, readable(&err.into_inner().to_string())))
}

/// serde's message without the Rust type it expected ("expected struct
/// CreateSessionRequest" means an object to a client).
fn readable(message: &str) -> String {
    match message.split_once("expected struct ") {
        Some((before, _)) => format!("{before}expected an object"),
        None => message.to_owned(),
    }
}

fn not_json() -> ApiError {
    ApiError::BadRequest("The request body is not valid JSON.".into())
}

/// serde reports a missing field against its parent; name the field itself.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// The same for a field given twice.
fn duplicate_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("duplicate field `")?;
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

    #[test]
    fn every_wrong_field_is_named() {
        assert_eq!(fields(parse_json::<Probe>(br#"{"name": 1, "age": "2"}"#).unwrap_err()), ["age", "name"]);
        assert_eq!(fields(parse_json::<Probe>(br#"{"age": "old"}"#).unwrap_err()), ["age", "name"]);
        // A repeated key: serde's own answer, since each value alone is fine.
        assert_eq!(fields(parse_json::<Probe>(br#"{"name": "a", "name": "b", "age": 1}"#).unwrap_err()), ["name"]);
    }

    #[test]
    fn only_an_object_is_a_body() {
        // By position, serde would take this for a `Probe`.
        let Err(ApiError::Validation(details)) = parse_json::<Probe>(br#"["x", 3]"#) else {
            panic!("an array is not a body");
        };
        assert_eq!((details[0].field.as_str(), details[0].message.as_str()), ("body", "must be a JSON object"));
        for body in [&b"null"[..], b"\"text\"", b"3"] {
            assert_eq!(fields(parse_json::<Probe>(body).unwrap_err()), ["body"]);
        }
        assert_eq!(fields(parse_json::<Probe>(b"[1,").unwrap_err()), ["BAD_REQUEST"]);
    }

    #[derive(Debug, serde::Deserialize, garde::Validate)]
    struct Ruled {
        #[garde(length(min = 1))]
        content: String,
        #[allow(dead_code)]
        #[garde(skip)]
        quick: Option<bool>,
        #[garde(length(min = 1))]
        model: Option<String>,
    }

    #[derive(Debug, serde::Deserialize, garde::Validate)]
    #[serde(rename_all = "camelCase")]
    struct Signup {
        #[garde(contains("@"))]
        email: String,
        #[garde(length(min = 8))]
        password: String,
        #[garde(length(min = 2))]
        display_name: String,
    }

    #[test]
    fn every_missing_field_is_named_with_the_others() {
        let named = |body: &[u8]| {
            let mut named = fields(parse_valid::<Signup>(body).unwrap_err());
            named.sort();
            named
        };
        assert_eq!(named(b"{}"), ["displayName", "email", "password"]);
        assert_eq!(named(br#"{"email": "bad"}"#), ["displayName", "email", "password"]);
        assert_eq!(named(br#"{"email": "bad", "password": "long enough"}"#), ["displayName", "email"]);
        assert_eq!(named(br#"{"email": 5}"#), ["displayName", "email", "password"]);
        // A stand-in for a missing field never fails a rule of its own.
        assert_eq!(named(br#"{"email": "a@example.com", "password": "long enough"}"#), ["displayName"]);
    }

    #[test]
    fn type_errors_and_rule_failures_are_named_together() {
        let body = br#"{"content": "", "model": "", "quick": "yes"}"#;
        let mut named = fields(parse_valid::<Ruled>(body).unwrap_err());
        named.sort();
        assert_eq!(named, ["content", "model", "quick"]);
        assert!(parse_valid::<Ruled>(br#"{"content": "hi", "quick": true}"#).is_ok());
    }
}
