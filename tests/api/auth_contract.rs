//! One contract for `AuthApi`, run against the in-process service and the REST client, so
//! the two implementations cannot drift apart.

use std::sync::Arc;

use auth::api::{AuthApi, AuthError, Credentials, Registration};
use auth::client::AuthClient;
use platform::health::Readiness;
use platform::identity::{AuthUser, JwtVerifier};

use crate::helpers::{Backend, spawn_app_with, test_settings};

on_both_backends!(the_service_keeps_the_contract, the_rest_client_keeps_the_contract);

async fn the_service_keeps_the_contract(backend: Backend) {
    let data = tempfile::TempDir::new().unwrap();
    let mut settings = test_settings(&backend, data.path());
    settings.auth.login_max_failures_per_account = 2;
    let mut readiness = Readiness::default();
    let kv = boxoffice::startup::key_value(&settings, &mut readiness).unwrap();
    let service = boxoffice::startup::auth_service(&settings, kv, &mut readiness).await.unwrap();
    contract(service, &settings.jwt).await;
}

async fn the_rest_client_keeps_the_contract(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.auth.login_max_failures_per_account = 2).await;
    let client = AuthClient::new(&app.address, reqwest::Client::new());
    contract(Arc::new(client), &app.settings.jwt).await;
}

fn registration(email: &str, username: &str, password: &str) -> Registration {
    Registration { email: email.to_owned(), username: username.to_owned(), password: password.to_owned() }
}

fn credentials(username: &str, password: &str) -> Credentials {
    Credentials { username: username.to_owned(), password: password.to_owned() }
}

async fn contract(api: Arc<dyn AuthApi>, jwt: &platform::config::JwtSettings) {
    let user = api.register(registration("Pat@Example.com", "pat", "correct horse")).await.unwrap();
    assert_eq!(user.email, "pat@example.com");
    assert!(matches!(
        api.register(registration("pat@example.com", "pat2", "correct horse")).await,
        Err(AuthError::EmailTaken)
    ));
    assert!(matches!(
        api.register(registration("pat2@example.com", "PAT", "correct horse")).await,
        Err(AuthError::UsernameTaken)
    ));
    match api.register(registration("nope", "okname", "short")).await {
        Err(AuthError::Validation(errors)) => {
            let fields: Vec<&str> = errors.as_slice().iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["email", "password"]);
        }
        other => panic!("expected Validation, got {other:?}"),
    }

    assert!(matches!(api.login(credentials("pat", "wrong horse"), None).await, Err(AuthError::InvalidCredentials)));
    assert!(matches!(api.login(credentials("nobody", "wrong horse"), None).await, Err(AuthError::InvalidCredentials)));
    let pair = api.login(credentials("pat@example.com", "correct horse"), None).await.unwrap();
    assert_eq!(pair.token_type, "bearer");

    // The published keys verify the issued token, and it names the user.
    let verifier = JwtVerifier::with_keys(jwt, &api.jwks().await.unwrap());
    let claims = verifier.verify(&pair.access_token).await.unwrap();
    assert_eq!(claims.sub, user.id);
    let caller = AuthUser { id: claims.sub, role: claims.role, bearer: pair.access_token.clone() };
    assert_eq!(api.me(&caller).await.unwrap(), user);

    // Rotation, then reuse of the rotated token revokes the family.
    let next = api.refresh(&pair.refresh_token).await.unwrap();
    assert!(matches!(api.refresh(&pair.refresh_token).await, Err(AuthError::InvalidRefreshToken)));
    assert!(matches!(api.refresh(&next.refresh_token).await, Err(AuthError::InvalidRefreshToken)));

    // Logout ends a session.
    let session = api.login(credentials("pat", "correct horse"), None).await.unwrap();
    api.logout(&session.refresh_token).await.unwrap();
    assert!(matches!(api.refresh(&session.refresh_token).await, Err(AuthError::InvalidRefreshToken)));
    api.logout("never-issued").await.unwrap();

    // Two failures per account are allowed; the third attempt is refused.
    assert!(matches!(api.login(credentials("pat", "bad 1 horse"), None).await, Err(AuthError::InvalidCredentials)));
    assert!(matches!(api.login(credentials("pat", "bad 2 horse"), None).await, Err(AuthError::InvalidCredentials)));
    match api.login(credentials("pat", "correct horse"), None).await {
        Err(AuthError::TooManyAttempts { retry_after_seconds }) => assert!(retry_after_seconds > 0),
        other => panic!("expected TooManyAttempts, got {other:?}"),
    }
}
