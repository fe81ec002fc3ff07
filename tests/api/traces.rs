//! Traces across processes: every process of a split deployment exports its spans to an OTLP
//! receiver of the test's own (HTTP/protobuf, as Jaeger or an OpenTelemetry collector takes
//! them), and one booking — booked and paid by a client that sends a `traceparent` — must
//! come back as one trace: every span's parent received, and the expected chain from
//! `POST /book` through payment to the confirmation email.

use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

use crate::fixtures::{GOOD, ROWS_A_AND_B, book, card, customer, pay_ok, screening, wait_for_status};
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Api, id};
use crate::notification::{all_sent, kinds, wait_for_notifications};
use crate::process::Server;

/// One received span, as far as the test looks at it.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root.
    pub parent: String,
    pub name: String,
    pub start: u64,
}

/// An OTLP/HTTP receiver on a port of its own, keeping every span it is sent.
pub struct Receiver {
    pub url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn export(spans: web::Data<Mutex<Vec<Span>>>, body: web::Bytes) -> HttpResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut received = spans.lock().unwrap();
    for batch in request.resource_spans {
        let service = batch
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for span in batch.scope_spans.into_iter().flat_map(|s| s.spans) {
            received.push(Span {
                service: service.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                name: span.name,
                start: span.start_time_unix_nano,
            });
        }
    }
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .body(ExportTraceServiceResponse::default().encode_to_vec())
}

impl Receiver {
    pub fn start() -> Receiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let data = web::Data::from(Arc::clone(&spans));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 << 20))
                .route("/v1/traces", web::post().to(export))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver { url, spans, handle }
    }

    /// The spans of `trace_id` once `done` holds of them (spans arrive in batches, each
    /// process on its own schedule).
    pub async fn trace(&self, trace_id: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + StdDuration::from_secs(30);
        loop {
            let mut spans: Vec<Span> =
                self.spans.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect();
            spans.sort_by_key(|s| s.start);
            if done(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "trace {trace_id} incomplete:\n{}", tree(&spans, ""));
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
    }
}

/// The spans under `parent` as an indented tree, in start order.
pub fn tree(spans: &[Span], parent: &str) -> String {
    fn walk(spans: &[Span], parent: &str, depth: usize, out: &mut String) {
        for s in spans.iter().filter(|s| s.parent == parent) {
            out.push_str(&format!("{}{}  [{}]\n", "  ".repeat(depth), s.name, s.service));
            walk(spans, &s.span_id, depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(spans, parent, 0, &mut out);
    out
}

/// The spans whose parent is neither `root` nor among `spans`.
fn orphans<'a>(spans: &'a [Span], root: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.parent != root && !spans.iter().any(|p| p.span_id == s.parent)).collect()
}

/// Whether `span` descends from `ancestor`.
fn descends(spans: &[Span], span: &Span, ancestor: &Span) -> bool {
    let mut parent = span.parent.as_str();
    while let Some(up) = spans.iter().find(|s| s.span_id == parent) {
        if up.span_id == ancestor.span_id {
            return true;
        }
        parent = &up.parent;
    }
    parent == ancestor.span_id
}

/// The one span named `name` of `service` somewhere under `ancestor` (spans of the code's
/// own, like `book`, may sit between).
fn under<'a>(spans: &'a [Span], ancestor: &Span, name: &str, service: &str) -> &'a Span {
    let found: Vec<&Span> =
        spans.iter().filter(|s| s.name == name && s.service == service && descends(spans, s, ancestor)).collect();
    assert_eq!(
        found.len(),
        1,
        "one {name:?} [{service}] under {:?}:\n{}",
        ancestor.name,
        tree(spans, &ancestor.parent)
    );
    found[0]
}

/// Checks that a span named `name` of `service` is among `span`'s ancestors (where several
/// consumers of one process take the same event, the one that led to `span`).
fn through(spans: &[Span], span: &Span, name: &str, service: &str) {
    let mut parent = span.parent.as_str();
    while let Some(up) = spans.iter().find(|s| s.span_id == parent) {
        if up.name == name && up.service == service {
            return;
        }
        parent = &up.parent;
    }
    panic!("{:?} is not under {name:?} [{service}]:\n{}", span.name, tree(spans, parent));
}

/// The spans [`assert_one_booking`] looks for.
pub const EXPECTED: &[&str] = &[
    "POST /api/bookings/book",
    "transaction book",
    "booking.created publish",
    "booking.created process",
    "send booking_created",
    "POST /api/payments/pay",
    "payment.completed publish",
    "payment.completed process",
    "booking.confirmed publish",
    "booking.confirmed process",
    "send booking_confirmed",
];

/// Checks that `spans` are one booking's trace under the client's span `root`: connected
/// (every parent received but the client's), and the chain from booking to both emails.
pub fn assert_one_booking(spans: &[Span], root: &str, booking: &str, payment: &str, notification: &str) {
    let orphans = orphans(spans, root);
    assert!(orphans.is_empty(), "spans whose parent never arrived: {orphans:#?}\n{}", tree(spans, root));
    let client = Span {
        service: "client".into(),
        trace_id: String::new(),
        span_id: root.into(),
        parent: String::new(),
        name: "client".into(),
        start: 0,
    };
    let tops: Vec<&str> = spans.iter().filter(|s| s.parent == root).map(|s| s.name.as_str()).collect();
    assert_eq!(tops, ["POST /api/bookings/book", "POST /api/payments/pay"], "{}", tree(spans, root));

    let book = under(spans, &client, "POST /api/bookings/book", booking);
    under(spans, book, "transaction book", booking);
    let created = under(spans, book, "booking.created publish", booking);
    let sent = under(spans, created, "send booking_created", notification);
    through(spans, sent, "booking.created process", notification);

    let pay = under(spans, &client, "POST /api/payments/pay", payment);
    let completed = under(spans, pay, "payment.completed publish", payment);
    let confirm = under(spans, completed, "payment.completed process", booking);
    let confirmed = under(spans, confirm, "booking.confirmed publish", booking);
    let sent = under(spans, confirmed, "send booking_confirmed", notification);
    through(spans, sent, "booking.confirmed process", notification);
}

/// Books and pays one seat through `api` as a client that sends a `traceparent`, waits for
/// both emails, and returns the trace's id, the client's span id, and the trace's spans.
async fn one_traced_booking(api: &Api, receiver: &Receiver) -> (String, String, Vec<Span>) {
    let screen = screening(api, ROWS_A_AND_B).await;
    let ada = customer(api, &format!("traced{}", &uuid::Uuid::new_v4().simple().to_string()[..8])).await;

    // The client's own span: what a browser or app with OpenTelemetry would send.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let root = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let traced = api.with_header("traceparent", &format!("00-{trace_id}-{root}-01"));
    let booking = book(&traced, &ada.token, &screen, &["A1"]).await;
    pay_ok(&traced, &ada.token, &card(&booking, GOOD)).await;
    wait_for_status(api, &ada.token, id(&booking), "confirmed", StdDuration::from_secs(30)).await;
    let mail = ["booking_created", "booking_confirmed"];
    wait_for_notifications(api, &ada.token, |items| mail.iter().all(|k| kinds(items).contains(k)) && all_sent(items))
        .await;

    // A parent ends after its children, so it may come in a later batch than they do.
    let complete = |spans: &[Span]| {
        EXPECTED.iter().all(|n| spans.iter().any(|s| s.name == *n)) && orphans(spans, &root).is_empty()
    };
    let spans = receiver.trace(&trace_id, complete).await;
    println!("trace {trace_id}, {} spans:\n{}", spans.len(), tree(&spans, &root));
    (trace_id, root, spans)
}

/// The single binary: the same trace, every span from one process, the bus in process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_booking_is_one_trace_in_the_single_binary() {
    let receiver = Receiver::start();
    let (data, logs) = (tempfile::TempDir::new().unwrap(), tempfile::TempDir::new().unwrap());
    let mut server = Server::start_with(
        data.path(),
        logs.path(),
        &[
            ("BOXOFFICE__AUTH__ADMIN_EMAIL", ADMIN_EMAIL),
            ("BOXOFFICE__AUTH__ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("BOXOFFICE__TRACES__OTLP_ENDPOINT", &receiver.url),
            ("BOXOFFICE__TRACES__EXPORT_DELAY_MS", "100"),
        ],
    );
    let api = Api::new(server.base.clone());
    server.wait_ready(&api.client).await;
    let (trace_id, root, spans) = one_traced_booking(&api, &receiver).await;
    assert_one_booking(&spans, &root, "boxoffice", "boxoffice", "boxoffice");

    // The log lines of the booking's request carry its trace id and request id.
    let output = server.output();
    let line = output
        .lines()
        .find(|l| l.contains(&trace_id) && l.contains("request_id"))
        .unwrap_or_else(|| panic!("no log line names trace {trace_id}:\n{}", server.tail()));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(line["spans"].as_array().unwrap().iter().any(|s| s["trace_id"] == trace_id.as_str()), "{line}");
}

mod gateway {
    use super::*;
    use crate::split_script::Split;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_booking_is_one_trace_across_the_split() {
        let receiver = Receiver::start();
        let split = Split::up_with(
            "split",
            &[("BOXOFFICE__TRACES__OTLP_ENDPOINT", &receiver.url), ("BOXOFFICE__TRACES__EXPORT_DELAY_MS", "100")],
        );
        let (_, root, spans) = one_traced_booking(&split.api, &receiver).await;
        assert_one_booking(&spans, &root, "boxoffice-booking", "boxoffice-payment", "boxoffice-notification");
    }
}
