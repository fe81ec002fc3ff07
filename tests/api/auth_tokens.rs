//! Access-token verification: only tokens signed by auth's key, with EdDSA, for our issuer
//! and audience, and not expired, are accepted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_problem, spawn_app};

on_both_backends!(
    jwks_publishes_the_key_tokens_are_signed_with,
    only_genuine_unexpired_tokens_are_accepted,
    expired_sessions_are_purged_and_live_ones_kept,
);

fn auth_key(app: &TestApp) -> EncodingKey {
    let pem = std::fs::read_to_string(app.data_dir.join(auth::service::KEY_FILE)).unwrap();
    let key = SigningKey::from_pkcs8_pem(&pem).unwrap();
    EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes())
}

fn other_key() -> EncodingKey {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes())
}

fn sign(claims: &Value, kid: &str, key: &EncodingKey) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn claims(sub: &str, overrides: &Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({"sub": sub, "role": "admin", "iss": "boxoffice", "aud": "boxoffice", "iat": now, "exp": now + 600, "jti": uuid::Uuid::new_v4()});
    for (k, v) in overrides.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

async fn jwks_publishes_the_key_tokens_are_signed_with(backend: Backend) {
    let app = spawn_app(backend).await;
    let jwks: Value = app.client.get(app.url("/api/auth/jwks")).send().await.unwrap().json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"), Some("sig"))
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap().len(), 32);

    let pair = app.customer("mallory").await;
    let header = jsonwebtoken::decode_header(pair["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(pair["access_token"].as_str().unwrap().split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    for claim in ["sub", "role", "iss", "aud", "exp", "iat", "jti"] {
        assert!(payload.get(claim).is_some(), "claim {claim} missing from {payload}");
    }
    assert_eq!(payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(), 900);
    assert_eq!(payload["role"], "customer");

    // The generated private key is readable by its owner only.
    let key_file = std::fs::metadata(app.data_dir.join(auth::service::KEY_FILE)).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_file.permissions()) & 0o777, 0o600);
}

async fn only_genuine_unexpired_tokens_are_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("trent").await;
    let sub = user["id"].as_str().unwrap();
    let jwks: Value = app.client.get(app.url("/api/auth/jwks")).send().await.unwrap().json().await.unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    let key = auth_key(&app);

    // Control: a token we make with auth's real key and correct claims is accepted.
    let good = sign(&claims(sub, &json!({})), kid, &key);
    assert_eq!(app.get_as("/api/auth/me", &good).await.status(), 200);

    let now = chrono::Utc::now().timestamp();
    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims(sub, &json!({})).to_string());
    let hs256 = jsonwebtoken::encode(
        &Header { kid: Some(kid.to_owned()), ..Header::new(Algorithm::HS256) },
        &claims(sub, &json!({})),
        &EncodingKey::from_secret(jwks["keys"][0]["x"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(claims(sub, &json!({"sub": uuid::Uuid::new_v4()})).to_string());
        parts.join(".")
    };
    let rejected = [
        ("expired", sign(&claims(sub, &json!({"iat": now - 7200, "exp": now - 3600})), kid, &key)),
        ("wrong issuer", sign(&claims(sub, &json!({"iss": "someone-else"})), kid, &key)),
        ("wrong audience", sign(&claims(sub, &json!({"aud": "other-app"})), kid, &key)),
        (
            "no exp",
            sign(
                &json!({"sub": sub, "role": "customer", "iss": "boxoffice", "aud": "boxoffice", "iat": now, "jti": uuid::Uuid::new_v4()}),
                kid,
                &key,
            ),
        ),
        ("forged with another key", sign(&claims(sub, &json!({})), kid, &other_key())),
        ("unknown kid", sign(&claims(sub, &json!({})), "no-such-kid", &other_key())),
        ("alg none", format!("{header_none}.{body}.")),
        ("HS256 keyed with the public key", hs256),
        ("tampered payload", tampered),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in rejected {
        let res = app.get_as("/api/auth/me", &token).await;
        assert_eq!(res.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"), "{what}");
        let problem = assert_problem(res, 401).await;
        assert_eq!(problem["type"], "/problems/unauthorized", "{what}");
    }
    let missing = app.client.get(app.url("/api/auth/me")).send().await.unwrap();
    assert_problem(missing, 401).await;
    let basic =
        app.client.get(app.url("/api/auth/me")).basic_auth("trent", Some("correct horse")).send().await.unwrap();
    assert_problem(basic, 401).await;
}

async fn expired_sessions_are_purged_and_live_ones_kept(backend: Backend) {
    use auth::api::{AuthApi, Credentials, Registration};

    let data = tempfile::TempDir::new().unwrap();
    let mut settings = crate::helpers::test_settings(&backend, data.path());
    settings.sections.auth.refresh_token_ttl_seconds = 1;
    let auth = crate::helpers::in_process(&settings).await.get::<auth::service::AuthService>().unwrap();
    let registration = Registration {
        email: "sam@example.com".to_owned(),
        username: "sam".to_owned(),
        password: "correct horse".to_owned(),
    };
    auth.register(registration).await.unwrap();
    let login = || {
        let credentials = Credentials { username: "sam".to_owned(), password: "correct horse".to_owned() };
        auth.login(credentials, None)
    };
    let old = login().await.unwrap();
    let used = auth.refresh(&old.refresh_token).await.unwrap();
    // Both tokens were issued by now, with a one-second lifetime.
    let both_expired = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(auth.purge_expired_sessions().await.unwrap(), 0, "nothing has expired yet");
    crate::helpers::wait_past(both_expired).await;
    let live = login().await.unwrap();
    // The used token and the one it was exchanged for have expired; the new session has not.
    assert_eq!(auth.purge_expired_sessions().await.unwrap(), 2);
    assert_eq!(auth.purge_expired_sessions().await.unwrap(), 0);
    assert!(auth.refresh(&used.refresh_token).await.is_err());
    auth.refresh(&live.refresh_token).await.unwrap();
}
