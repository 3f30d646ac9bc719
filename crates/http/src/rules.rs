//! garde rules that defer to the domain's constructors, so each input rule
//! of the contract is written once (in `specgen-domain`) and reported field
//! by field here; and the conversion of checked fields into domain values.

use specgen_domain::InvalidInput;

use crate::error::ApiError;

fn check<T>(parsed: Result<T, InvalidInput>) -> garde::Result {
    parsed.map(|_| ()).map_err(|e| garde::Error::new(e.0))
}

macro_rules! rule {
    ($name:ident, $opt:ident, $parse:path) => {
        pub fn $name(value: &str, _: &()) -> garde::Result {
            check($parse(value))
        }

        #[allow(dead_code)]
        pub fn $opt(value: &Option<String>, _: &()) -> garde::Result {
            value.as_deref().map_or(Ok(()), |v| check($parse(v)))
        }
    };
}

rule!(email, opt_email, specgen_domain::Email::parse);
rule!(password, opt_password, specgen_domain::Password::parse);
rule!(password_attempt, opt_password_attempt, specgen_domain::PasswordAttempt::parse);
rule!(person_name, opt_person_name, specgen_domain::PersonName::parse);
rule!(bio, opt_bio, specgen_domain::Bio::parse);
rule!(timezone, opt_timezone, specgen_domain::Timezone::parse);
rule!(device_id, opt_device_id, specgen_domain::DeviceId::parse);

rule!(session_title, opt_session_title, specgen_domain::SessionTitle::parse);
rule!(system_prompt, opt_system_prompt, specgen_domain::SystemPrompt::parse);
rule!(provider, opt_provider, specgen_domain::ProviderName::parse);
rule!(model, opt_model, specgen_domain::ModelName::parse);
rule!(message_content, opt_message_content, specgen_domain::MessageContent::parse);
rule!(client_message_id, opt_client_message_id, specgen_domain::ClientMessageId::parse);

macro_rules! clearable_rule {
    ($name:ident, $parse:path) => {
        /// A field that may be absent, `null` (clear it) or a value.
        pub fn $name(value: &Option<Option<String>>, _: &()) -> garde::Result {
            value.as_ref().and_then(Option::as_deref).map_or(Ok(()), |v| check($parse(v)))
        }
    };
}

clearable_rule!(opt_opt_system_prompt, specgen_domain::SystemPrompt::parse);
clearable_rule!(opt_opt_provider, specgen_domain::ProviderName::parse);
clearable_rule!(opt_opt_model, specgen_domain::ModelName::parse);

pub fn opt_preferences(value: &Option<serde_json::Value>, _: &()) -> garde::Result {
    value.as_ref().map_or(Ok(()), |v| check(specgen_domain::Preferences::parse(v.clone())))
}

/// Turns a checked field into its domain value; a failure here means the
/// garde rule and the constructor disagree, still reported as the field's error.
pub fn field<T>(name: &str, parsed: Result<T, InvalidInput>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::validation(name, e.0))
}

pub fn opt_field<T>(
    name: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, InvalidInput>,
) -> Result<Option<T>, ApiError> {
    value.map(|v| field(name, parse(v))).transpose()
}
