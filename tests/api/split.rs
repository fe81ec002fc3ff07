//! The split face: a process without auth verifies auth's tokens with keys fetched from
//! auth's JWKS and reaches auth through the REST client.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use auth::api::AuthApi;
use boxoffice::settings::Module;
use platform::identity::AuthUser;
use platform::problem::Problem;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_problem, spawn_app, start, test_settings};

on_both_backends!(a_process_without_auth_accepts_auth_tokens_and_rejects_forged_ones);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_clients_forward_the_request_id() {
    async fn echo(req: actix_web::HttpRequest) -> HttpResponse {
        let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("none").to_owned();
        HttpResponse::Ok().json(json!({"received": id}))
    }
    async fn relay(target: web::Data<String>) -> Result<HttpResponse, Problem> {
        let rest = platform::rest::RestClient::new(&target, reqwest::Client::new());
        let answer: Value = rest.json(rest.request(reqwest::Method::GET, "/echo", None)).await?;
        Ok(HttpResponse::Ok().json(answer))
    }
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let echo_app = start(
        test_settings(&Backend::Sqlite, data.path()),
        data.clone(),
        Arc::new(|cfg: &mut web::ServiceConfig| {
            cfg.route("/echo", web::get().to(echo));
        }),
    )
    .await;
    let target = echo_app.address.clone();
    let data2 = Arc::new(tempfile::TempDir::new().unwrap());
    let relay_app = start(
        test_settings(&Backend::Sqlite, data2.path()),
        data2,
        Arc::new(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::new(target.clone())).route("/relay", web::get().to(relay));
        }),
    )
    .await;
    let res = relay_app.client.get(relay_app.url("/relay")).header("x-request-id", "chain-42").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "chain-42");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["received"], "chain-42");
}

/// What a module of the second process would do: require a caller, and ask auth about it.
async fn probe(caller: AuthUser, auth: web::Data<dyn AuthApi>) -> Result<HttpResponse, Problem> {
    let me = auth.me(&caller).await?;
    Ok(HttpResponse::Ok().json(json!({"caller": caller.id, "role": caller.role, "email": me.email})))
}

/// A process serving no module, reaching auth at `auth_url`.
async fn without_auth(backend: Backend, auth_url: &str) -> TestApp {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let mut settings = test_settings(&backend, data.path());
    settings.modules = Some(vec![]);
    settings.services.set(Module::Auth, auth_url.to_owned());
    // The auth client a module of this process would be given.
    let auth: Arc<dyn AuthApi> =
        Arc::new(auth::client::AuthClient::new(auth_url, reqwest::Client::new(), settings.services.token.clone()));
    start(
        settings,
        data,
        Arc::new(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::from(auth.clone())).route("/probe", web::get().to(probe));
        }),
    )
    .await
}

async fn a_process_without_auth_accepts_auth_tokens_and_rejects_forged_ones(backend: Backend) {
    let auth = spawn_app(backend.clone()).await;
    let other = without_auth(backend.clone(), &auth.address).await;

    // The second process does not serve auth's routes.
    assert_problem(other.post_json("/api/auth/register", &json!({})).await, 404).await;

    let user = auth.register("sybil").await;
    let pair = auth.login("sybil", "correct horse").await.json::<Value>().await.unwrap();
    let token = pair["access_token"].as_str().unwrap();
    let res = other.get_as("/probe", token).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["caller"], user["id"]);
    assert_eq!(body["email"], "sybil@example.com");

    // A token from another auth instance (another key) is refused, even though that
    // instance's kid is unknown and makes the verifier refetch auth's JWKS.
    let impostor = spawn_app(backend.clone()).await;
    impostor.register("sybil").await;
    let forged = impostor.login("sybil", "correct horse").await.json::<Value>().await.unwrap();
    assert_problem(other.get_as("/probe", forged["access_token"].as_str().unwrap()).await, 401).await;
    assert_problem(other.get_as("/probe", "a.b.c").await, 401).await;
    assert_eq!(other.get_as("/probe", token).await.status(), 200);

    // With auth unreachable, a process that has no keys yet cannot verify: 503, not 401.
    let orphan = without_auth(backend, "http://127.0.0.1:9").await;
    let res = orphan.get_as("/probe", token).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503).await;
}
