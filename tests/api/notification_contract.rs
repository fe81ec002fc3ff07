//! One contract for `NotificationApi`, run against the in-process service and the REST client, so
//! the two implementations cannot drift apart.
//!
//! Both read the notifications a spawned app made of real bookings: the in-process service is
//! built on the app's own storage (its SQLite data directory, or its PostgreSQL schemas), so
//! it reads the same table the app's routes answer from.

use std::sync::Arc;

use boxoffice::settings::Module;
use notification::api::{Channel, DeliveryStatus, Notification, NotificationApi, NotificationError, NotificationKind};
use notification::client::NotificationClient;
use platform::identity::{AuthUser, Role};
use platform::pagination::{Page, PageRequest};
use reqwest::Method;
use serde_json::Value;

use crate::fixtures::{ROW_A, book, screening};
use crate::helpers::{Backend, Callers, TestApp, made_up_caller, spawn_app};
use crate::notification::{NOTIFICATIONS, wait_for_notifications};

on_both_backends!(
    the_service_keeps_the_contract,
    the_rest_client_keeps_the_contract,
    the_route_needs_a_token_and_is_documented,
);

/// A spawned app whose customer `owner` (`callers.customer`) has two notifications, both sent,
/// and `other` (`callers.other`) none.
struct Scene {
    app: TestApp,
    callers: Callers,
    /// The owner's notifications as the app answers them over HTTP (default page).
    listed: Page<Notification>,
}

async fn scene(backend: Backend) -> Scene {
    let app = spawn_app(backend).await;
    let callers = app.callers("owner", "other").await;
    let owner = &callers.customer;
    let screen = screening(&app, ROW_A).await;
    book(&app, &owner.bearer, &screen, &["A1"]).await;
    book(&app, &owner.bearer, &screen, &["A2", "A3"]).await;
    // Sent, so nothing about them changes any more.
    wait_for_notifications(&app, &owner.bearer, |items| {
        items.len() == 2 && items.iter().all(|n| n["status"] == "sent")
    })
    .await;
    let res = app.get_as(NOTIFICATIONS, &owner.bearer).await;
    assert_eq!(res.status(), 200);
    let listed: Page<Notification> = res.json().await.unwrap();
    Scene { app, callers, listed }
}

async fn the_service_keeps_the_contract(backend: Backend) {
    let Scene { app, callers, listed } = scene(backend).await;
    // Notification alone on the app's own settings (the same notification table), reaching the
    // app's auth and movie over REST (it reads them only to write messages, which its delivery
    // worker, not running here, does), on a bus of its own: it takes none of the app's events.
    let mut settings = app.settings.clone();
    settings.modules = Some(vec![boxoffice::settings::Module::Notification]);
    settings.services.set(Module::Auth, app.address.clone());
    settings.services.set(Module::Movie, app.address.clone());
    settings.events.amqp_url = platform::config::Secret::new("");
    let service = crate::helpers::in_process(&settings).await.get::<dyn NotificationApi>().unwrap();
    contract(service.clone(), &callers, &listed).await;

    // The service takes its caller at its word: someone it never wrote to has none.
    let stranger = service.list(&made_up_caller(Role::Customer), PageRequest::default()).await.unwrap();
    assert_eq!((stranger.items, stranger.total), (vec![], 0));
}

async fn the_rest_client_keeps_the_contract(backend: Backend) {
    let Scene { app, callers, listed } = scene(backend).await;
    let client = Arc::new(NotificationClient::new(&app.address, reqwest::Client::new()));
    contract(client.clone(), &callers, &listed).await;

    // Over REST the token says who calls, whatever id the caller carries.
    let owner = &callers.customer;
    let pretender = AuthUser { id: owner.id, role: Role::Customer, bearer: callers.other.bearer.clone() };
    let theirs = client.list(&pretender, PageRequest::default()).await.unwrap();
    assert_eq!((theirs.items, theirs.total), (vec![], 0), "the other customer's token lists theirs");
    let forged = AuthUser { bearer: "not.a.token".to_owned(), ..owner.clone() };
    match client.list(&forged, PageRequest::default()).await {
        Err(NotificationError::Unauthenticated(_)) => {}
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
}

/// The fields a `Validation` names, sorted.
fn invalid_fields<T: std::fmt::Debug>(result: Result<T, NotificationError>) -> Vec<String> {
    match result {
        Err(NotificationError::Validation(errors)) => {
            let mut fields: Vec<String> = errors.as_slice().iter().map(|e| e.field.clone()).collect();
            fields.sort();
            fields
        }
        other => panic!("expected Validation, got {other:?}"),
    }
}

fn page(page: Option<u64>, per_page: Option<u64>) -> PageRequest {
    PageRequest { page, per_page }
}

/// `(page, per_page, total)` of a page.
fn shape<T>(p: &Page<T>) -> (u64, u64, u64) {
    (p.page, p.per_page, p.total)
}

async fn contract(api: Arc<dyn NotificationApi>, callers: &Callers, listed: &Page<Notification>) {
    let Callers { admin, customer: owner, other } = callers;

    // The owner's: what the app answered over HTTP, on the default page.
    let all = api.list(owner, PageRequest::default()).await.unwrap();
    assert_eq!(&all, listed, "the implementation lists what the app answered over HTTP");
    assert_eq!((shape(&all), all.items.len()), ((1, 20, 2), 2), "{all:#?}");
    for n in &all.items {
        assert_eq!(
            (n.kind, n.channel, n.status),
            (NotificationKind::BookingCreated, Channel::Email, DeliveryStatus::Sent)
        );
        assert!(n.subject.contains("Booked Solid"), "{n:?}");
        assert!(n.sent_at.is_some_and(|sent| sent >= n.created_at), "{n:?}");
    }
    // Newest first (ties broken by id, newest first too).
    assert!((all.items[0].created_at, all.items[0].id) > (all.items[1].created_at, all.items[1].id), "{all:#?}");

    // Pages of one: the same items in the same order; past the end, none.
    let first = api.list(owner, page(None, Some(1))).await.unwrap();
    assert_eq!((shape(&first), first.items.as_slice()), ((1, 1, 2), &all.items[..1]));
    let second = api.list(owner, page(Some(2), Some(1))).await.unwrap();
    assert_eq!((shape(&second), second.items.as_slice()), ((2, 1, 2), &all.items[1..]));
    assert_ne!(first.items[0].id, second.items[0].id);
    let past = api.list(owner, page(Some(3), Some(1))).await.unwrap();
    assert_eq!((shape(&past), past.items.len()), ((3, 1, 2), 0));
    let past = api.list(owner, page(Some(2), None)).await.unwrap();
    assert_eq!((shape(&past), past.items.len()), ((2, 20, 2), 0));
    // The bounds themselves are valid.
    let widest = api.list(owner, page(Some(1), Some(100))).await.unwrap();
    assert_eq!((shape(&widest), widest.items), ((1, 100, 2), all.items.clone()));

    // Another customer has none, and so has the admin (who sees only their own).
    let theirs = api.list(other, PageRequest::default()).await.unwrap();
    assert_eq!((shape(&theirs), theirs.items), ((1, 20, 0), vec![]));
    let admins = api.list(admin, PageRequest::default()).await.unwrap();
    assert_eq!((admins.total, admins.items), (0, vec![]), "an admin lists their own");

    // Bad page requests, each field named.
    assert_eq!(invalid_fields(api.list(owner, page(None, Some(0))).await), ["per_page"]);
    assert_eq!(invalid_fields(api.list(owner, page(None, Some(101))).await), ["per_page"]);
    assert_eq!(invalid_fields(api.list(owner, page(Some(0), None)).await), ["page"]);
    assert_eq!(invalid_fields(api.list(owner, page(Some(0), Some(0))).await), ["page", "per_page"]);
    assert_eq!(invalid_fields(api.list(other, page(Some(0), Some(101))).await), ["page", "per_page"]);
}

async fn the_route_needs_a_token_and_is_documented(backend: Backend) {
    let app = spawn_app(backend).await;
    app.assert_routes_need_a_token(vec![(Method::GET, NOTIFICATIONS.to_owned(), None)], |request| request).await;

    let doc: Value = app.client.get(app.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let list = &doc["paths"][NOTIFICATIONS]["get"];
    assert!(list.is_object(), "GET {NOTIFICATIONS} is not documented: {}", doc["paths"]);
    assert_eq!(list["tags"], serde_json::json!(["notifications"]), "{list}");
    let mut params: Vec<&str> =
        list["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    params.sort_unstable();
    assert_eq!(params, ["page", "per_page"], "{list}");
    assert!(list["security"].as_array().unwrap().iter().any(|s| s.get("bearer").is_some()), "{list}");
    for status in ["200", "401", "422"] {
        assert!(list["responses"].get(status).is_some(), "{status} missing: {list}");
    }
    assert!(doc["components"]["schemas"]["Notification"].is_object(), "{}", doc["components"]);
}
