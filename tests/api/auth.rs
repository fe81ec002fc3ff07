//! The auth routes, black-box: register, token, refresh, logout, me, jwks.

use serde_json::{Value, json};

use crate::helpers::{Backend, assert_problem, spawn_app, spawn_app_with};

on_both_backends!(
    register_returns_the_new_customer,
    register_names_every_invalid_field,
    register_refuses_a_taken_email_or_username_whatever_the_case,
    token_accepts_form_and_json_with_username_or_email,
    unknown_user_and_wrong_password_get_the_same_401,
    token_rejects_missing_fields_and_other_grant_types,
    failed_logins_are_slowed_per_account_and_address,
    failed_logins_are_limited_per_address,
    refresh_rotates_and_reuse_revokes_the_whole_family,
    concurrent_refreshes_with_one_token_yield_one_pair,
    logout_stops_the_refresh_token,
    me_returns_the_caller,
    sql_looking_strings_are_only_data,
    configured_admin_gets_the_admin_role,
);

async fn register_returns_the_new_customer(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = app
        .post_json(
            "/api/auth/register",
            &json!({"email": "Ada@Example.COM", "username": "Ada.L", "password": "correct horse"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["username"], "Ada.L");
    assert_eq!(body["role"], "customer");
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
}

async fn register_names_every_invalid_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (json!({"email": "not-an-email", "username": "bob", "password": "long enough"}), vec!["email"]),
        (json!({"email": "bob@example.com", "username": "bo", "password": "long enough"}), vec!["username"]),
        (json!({"email": "bob@example.com", "username": "b o b", "password": "long enough"}), vec!["username"]),
        (json!({"email": "bob@example.com", "username": "x".repeat(33), "password": "long enough"}), vec!["username"]),
        (json!({"email": "bob@example.com", "username": "bob", "password": "short"}), vec!["password"]),
        (json!({"email": "@", "username": "b!", "password": ""}), vec!["email", "username", "password"]),
    ];
    for (body, fields) in cases {
        let problem = assert_problem(app.post_json("/api/auth/register", &body).await, 422).await;
        let named: Vec<&str> =
            problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(named, fields, "{body}");
        for field in fields {
            assert!(problem["detail"].as_str().unwrap().contains(field));
        }
    }
    // Nothing was created: the valid form of the same account registers fine.
    app.register("bob").await;
}

async fn register_refuses_a_taken_email_or_username_whatever_the_case(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("carol").await;
    let same_email = app
        .post_json(
            "/api/auth/register",
            &json!({"email": "CAROL@example.com", "username": "carol2", "password": "correct horse"}),
        )
        .await;
    let problem = assert_problem(same_email, 409).await;
    assert_eq!(problem["type"], "/problems/email-taken");
    let same_name = app
        .post_json(
            "/api/auth/register",
            &json!({"email": "other@example.com", "username": "CaRoL", "password": "correct horse"}),
        )
        .await;
    let problem = assert_problem(same_name, 409).await;
    assert_eq!(problem["type"], "/problems/username-taken");
}

async fn token_accepts_form_and_json_with_username_or_email(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("dave").await;
    let form = app.login("dave", "correct horse").await;
    assert_eq!(form.status(), 200);
    assert_eq!(form.headers()["cache-control"], "no-store");
    let pair: Value = form.json().await.unwrap();
    assert_eq!(pair["token_type"], "bearer");
    assert_eq!(pair["expires_in"], 900);
    assert!(pair["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(pair["refresh_token"].as_str().unwrap().len() >= 43);

    let by_email = app.login("DAVE@example.com", "correct horse").await;
    assert_eq!(by_email.status(), 200);
    let json = app.post_json("/api/auth/token", &json!({"username": "dave", "password": "correct horse"})).await;
    assert_eq!(json.status(), 200);
    let with_grant = app
        .client
        .post(app.url("/api/auth/token"))
        .form(&[("grant_type", "password"), ("username", "dave"), ("password", "correct horse")])
        .send()
        .await
        .unwrap();
    assert_eq!(with_grant.status(), 200);
}

async fn unknown_user_and_wrong_password_get_the_same_401(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("erin").await;
    let wrong = assert_problem(app.login("erin", "wrong horse").await, 401).await;
    let unknown = assert_problem(app.login("nobody", "correct horse").await, 401).await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["type"], "/problems/invalid-credentials");
}

async fn token_rejects_missing_fields_and_other_grant_types(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app.client.post(app.url("/api/auth/token")).form(&[("username", "x")]).send().await.unwrap();
    assert_problem(missing, 422).await;
    let missing_json = app.post_json("/api/auth/token", &json!({"password": "x"})).await;
    assert_problem(missing_json, 422).await;
    let grant = app
        .client
        .post(app.url("/api/auth/token"))
        .form(&[("grant_type", "client_credentials"), ("username", "x"), ("password", "y")])
        .send()
        .await
        .unwrap();
    let problem = assert_problem(grant, 400).await;
    assert_eq!(problem["error"], "unsupported_grant_type");
    let text = app
        .client
        .post(app.url("/api/auth/token"))
        .body("username=x")
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_problem(text, 415).await;
}

async fn failed_logins_are_slowed_per_account_and_address(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.auth.login_max_failures_per_account_address = 3;
        s.sections.auth.login_first_wait_seconds = 600;
    })
    .await;
    app.register("frank").await;
    // Username and email name the same account, and count together.
    for name in ["frank", "frank@example.com", "FRANK"] {
        assert_problem(app.login(name, "wrong horse").await, 401).await;
    }
    // From this address even the right password now waits (see auth_limits for the owner's
    // own address while an attacker guesses elsewhere).
    let limited = app.login("FRANK", "correct horse").await;
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 600, "{retry_after}");
    assert_problem(limited, 429).await;
    // Other accounts are not affected.
    app.register("grace").await;
    assert_eq!(app.login("grace", "correct horse").await.status(), 200);
}

async fn failed_logins_are_limited_per_address(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.auth.login_max_failures_per_account_address = 100;
        s.sections.auth.login_max_failures_per_account = 100;
        s.sections.auth.login_max_failures_per_address = 4;
        s.sections.auth.login_first_wait_seconds = 600;
    })
    .await;
    app.register("heidi").await;
    for name in ["a1", "a2", "a3", "a4"] {
        assert_problem(app.login(name, "guess guess").await, 401).await;
    }
    let limited = app.login("heidi", "correct horse").await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, 429).await;
}

async fn refresh_rotates_and_reuse_revokes_the_whole_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.customer("ivan").await;
    let old = first["refresh_token"].as_str().unwrap();
    let res = app.post_json("/api/auth/refresh", &json!({"refresh_token": old})).await;
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(old, new);
    assert_eq!(app.get_as("/api/auth/me", second["access_token"].as_str().unwrap()).await.status(), 200);

    // Reusing the rotated token fails, and takes the token it was rotated into down with it.
    let reuse = assert_problem(app.post_json("/api/auth/refresh", &json!({"refresh_token": old})).await, 401).await;
    assert_eq!(reuse["type"], "/problems/invalid-refresh-token");
    assert_problem(app.post_json("/api/auth/refresh", &json!({"refresh_token": new})).await, 401).await;

    // Another login starts a new, unaffected family.
    let other = app.login("ivan", "correct horse").await.json::<Value>().await.unwrap();
    let res = app.post_json("/api/auth/refresh", &json!({"refresh_token": other["refresh_token"]})).await;
    assert_eq!(res.status(), 200);
    assert_problem(app.post_json("/api/auth/refresh", &json!({"refresh_token": "made-up"})).await, 401).await;
}

async fn concurrent_refreshes_with_one_token_yield_one_pair(backend: Backend) {
    let app = spawn_app(backend).await;
    let pair = app.customer("judy").await;
    let token = pair["refresh_token"].as_str().unwrap().to_owned();
    let attempts = (0..8).map(|_| {
        let app = &app;
        let token = token.clone();
        async move { app.post_json("/api/auth/refresh", &json!({"refresh_token": token})).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "exactly one refresh wins: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "{statuses:?}");
}

async fn logout_stops_the_refresh_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let pair = app.customer("ken").await;
    let res = app.post_json("/api/auth/logout", &json!({"refresh_token": pair["refresh_token"]})).await;
    assert_eq!(res.status(), 204);
    assert_problem(app.post_json("/api/auth/refresh", &json!({"refresh_token": pair["refresh_token"]})).await, 401)
        .await;
    // Logging out twice, or with an unknown token, is harmless.
    assert_eq!(app.post_json("/api/auth/logout", &json!({"refresh_token": pair["refresh_token"]})).await.status(), 204);
}

async fn me_returns_the_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("leo").await;
    let pair = app.login("leo", "correct horse").await.json::<Value>().await.unwrap();
    let res = app.get_as("/api/auth/me", pair["access_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me, user);
}

async fn sql_looking_strings_are_only_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let injection = "x' OR '1'='1";
    assert_problem(app.login(injection, injection).await, 401).await;
    let res = app
        .post_json(
            "/api/auth/register",
            &json!({"email": "o'brien@example.com", "username": "obrien", "password": "'; DROP TABLE users; --"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(app.login("o'brien@example.com", "'; DROP TABLE users; --").await.status(), 200);
    let bad = app
        .post_json("/api/auth/register", &json!({"email": "a@b.co", "username": "a'; --", "password": "correct horse"}))
        .await;
    assert_problem(bad, 422).await;
    // The table is still there and still answers.
    app.register("after").await;
}

async fn configured_admin_gets_the_admin_role(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.auth.admin_email = "root@example.com".to_owned();
        s.sections.auth.admin_password = platform::config::Secret::new("admin password");
    })
    .await;
    let pair = app.login("root@example.com", "admin password").await.json::<Value>().await.unwrap();
    let me: Value = app.get_as("/api/auth/me", pair["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["username"], "root");
    // The public route never makes admins.
    let res = app
        .post_json(
            "/api/auth/register",
            &json!({"email": "x@example.com", "username": "xx_", "password": "correct horse", "role": "admin"}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["role"], "customer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_gateway_the_address_is_the_one_the_gateway_appended() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.trust_forwarded_for = true;
        s.sections.auth.login_max_failures_per_address = 2;
        s.sections.auth.login_first_wait_seconds = 600;
    })
    .await;
    let attempt = |forwarded: &'static str, name: &'static str| {
        app.client
            .post(app.url("/api/auth/token"))
            .header("x-forwarded-for", forwarded)
            .form(&[("username", name), ("password", "guess guess")])
            .send()
    };
    // The client forges the first entries; the gateway's own (last) entry decides.
    assert_problem(attempt("1.1.1.1, 10.0.0.7", "n1").await.unwrap(), 401).await;
    assert_problem(attempt("2.2.2.2, 10.0.0.7", "n2").await.unwrap(), 401).await;
    assert_problem(attempt("3.3.3.3, 10.0.0.7", "n3").await.unwrap(), 429).await;
    assert_problem(attempt("3.3.3.3, 10.0.0.8", "n3").await.unwrap(), 401).await;
}
