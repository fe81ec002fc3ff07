//! Validated forms of what users type: email addresses, usernames, passwords.

use platform::validation::FieldErrors;

use crate::api::Registration;

/// Lower-cased, trimmed address with one `@`, a non-empty local part and a dotted domain.
pub fn email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return Err("must be an email address");
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local
            .contains(|c: char| c.is_whitespace() || c.is_control() || c == '@' || c == '"' || c == '<' || c == '>');
    if !(domain_ok && local_ok) || email.len() > 254 {
        return Err("must be an email address");
    }
    Ok(email)
}

/// 3–32 of `[A-Za-z0-9_.-]`, kept as typed.
pub fn username(raw: &str) -> Result<String, &'static str> {
    let ok = (3..=32).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok { Ok(raw.to_owned()) } else { Err("must be 3-32 characters of letters, digits, '_', '.' or '-'") }
}

/// Passwords of 8 to 1024 characters (the upper bound caps the hashing work of one request).
pub fn password(raw: &str) -> Result<String, &'static str> {
    match raw.chars().count() {
        0..8 => Err("must be at least 8 characters"),
        8..=1024 => Ok(raw.to_owned()),
        _ => Err("must be at most 1024 characters"),
    }
}

/// A registration whose every field is valid.
pub struct ValidRegistration {
    pub email: String,
    pub username: String,
    pub password: String,
}

/// # Errors
/// Every invalid field, named.
pub fn registration(r: &Registration) -> Result<ValidRegistration, FieldErrors> {
    let mut errors = FieldErrors::new();
    let email = errors.check("email", email(&r.email));
    let username = errors.check("username", username(&r.username));
    let password = errors.check("password", password(&r.password));
    match (email, username, password) {
        (Some(email), Some(username), Some(password)) => Ok(ValidRegistration { email, username, password }),
        _ => Err(errors),
    }
}
