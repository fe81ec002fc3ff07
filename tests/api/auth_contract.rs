//! One contract for `AuthApi`, run against the in-process service and the REST client, so
//! the two implementations cannot drift apart.

use std::sync::Arc;

use auth::api::{AuthApi, AuthError, Credentials, Registration};
use auth::client::AuthClient;
use platform::identity::{AuthUser, JwtVerifier};

use platform::config::Secret;

use crate::helpers::{Backend, assert_problem, spawn_app, spawn_app_with, test_settings};

on_both_backends!(the_service_keeps_the_contract, the_rest_client_keeps_the_contract);

async fn the_service_keeps_the_contract(backend: Backend) {
    let data = tempfile::TempDir::new().unwrap();
    let mut settings = test_settings(&backend, data.path());
    settings.sections.auth.login_max_failures_per_account_address = 3;
    settings.sections.auth.login_first_wait_seconds = 600;
    let service = crate::helpers::in_process(&settings).await.get::<dyn auth::api::AuthApi>().unwrap();
    contract(service, &settings.jwt).await;
}

async fn the_rest_client_keeps_the_contract(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.auth.login_max_failures_per_account_address = 3;
        s.sections.auth.login_first_wait_seconds = 600;
        s.services.token = Secret::new(SERVICE_TOKEN);
    })
    .await;
    let client = AuthClient::new(&app.address, reqwest::Client::new(), Secret::new(SERVICE_TOKEN));
    contract(Arc::new(client), &app.settings.jwt).await;

    // The internal route wants the deployment's token: a user's own token, another secret or
    // none are refused, and an auth without a token configured refuses everything.
    let user = app.register("quinn").await;
    let path = format!("/internal/auth/users/{}", user["id"].as_str().unwrap());
    let token = app.customer_token("rhea").await;
    for bearer in [Some(token.as_str()), Some("x".repeat(SERVICE_TOKEN.len()).as_str()), None] {
        let mut rb = app.client.get(app.url(&path));
        if let Some(b) = bearer {
            rb = rb.bearer_auth(b);
        }
        assert_problem(rb.send().await.unwrap(), 401).await;
    }
    let res = app.client.get(app.url(&path)).bearer_auth(SERVICE_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["email"], "quinn@example.com");
    let closed = spawn_app(Backend::Sqlite).await;
    let client = AuthClient::new(&closed.address, reqwest::Client::new(), Secret::new(""));
    let user = closed.register("sid").await;
    let id = platform::identity::UserId(user["id"].as_str().unwrap().parse().unwrap());
    assert!(matches!(client.user(id).await, Err(AuthError::Unauthenticated(_))));
}

const SERVICE_TOKEN: &str = "a-service-token-of-at-least-32-characters";

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
    assert_eq!(api.user(user.id).await.unwrap(), user);
    assert!(matches!(api.user(platform::identity::UserId(uuid::Uuid::new_v4())).await, Err(AuthError::NotFound)));

    // Rotation, then reuse of the rotated token revokes the family.
    let next = api.refresh(&pair.refresh_token).await.unwrap();
    assert!(matches!(api.refresh(&pair.refresh_token).await, Err(AuthError::InvalidRefreshToken)));
    assert!(matches!(api.refresh(&next.refresh_token).await, Err(AuthError::InvalidRefreshToken)));

    // Logout ends a session.
    let session = api.login(credentials("pat", "correct horse"), None).await.unwrap();
    api.logout(&session.refresh_token).await.unwrap();
    assert!(matches!(api.refresh(&session.refresh_token).await, Err(AuthError::InvalidRefreshToken)));
    api.logout("never-issued").await.unwrap();

    // Three failures per account and address pass (the first was before the logins above,
    // which count none); the next attempt must wait.
    assert!(matches!(api.login(credentials("pat", "bad 1 horse"), None).await, Err(AuthError::InvalidCredentials)));
    assert!(matches!(api.login(credentials("pat", "bad 2 horse"), None).await, Err(AuthError::InvalidCredentials)));
    match api.login(credentials("pat", "correct horse"), None).await {
        Err(AuthError::TooManyAttempts { retry_after_seconds }) => assert!(retry_after_seconds > 0),
        other => panic!("expected TooManyAttempts, got {other:?}"),
    }
}
