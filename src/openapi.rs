//! The OpenAPI 3 document of the routes this process serves, and its rendering at
//! `/api/docs` (Swagger UI, vendored into the binary: nothing is fetched at build or run time).
//! `GET /api/openapi.json?scope=deployment` answers the document of every compiled-in module
//! instead: a split service knows the whole API, so a gateway in front serves one document
//! (and the docs page, which reads `/api/openapi.json` from the server it was loaded from)
//! without merging anything itself.
//!
//! Each route declares the answers of its own logic; the answers every route of a kind can
//! give (the extractors' 400/413/415/422, 401 for a token, 404 for a path id that does not
//! parse, the budget's 429, 503 when a dependency is down, the panic guard's 500) are added
//! here once, so that the document lists every status a client (or a fuzzer) can meet.

use actix_web::{HttpResponse, web};
use platform::extract::Query;
use serde::Deserialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_swagger_ui::{Config, SwaggerUi};

const DOCUMENT_PATH: &str = "/api/openapi.json";

/// The two documents a process answers, serialized once at start.
pub struct Documents {
    /// The routes this process serves.
    served: web::Bytes,
    /// The routes of every compiled-in module: the deployment's whole API.
    deployment: web::Bytes,
}

impl Documents {
    /// # Errors
    /// A document does not serialize (a bug in a module's description).
    pub fn new(served: &OpenApi, deployment: &OpenApi) -> serde_json::Result<Self> {
        Ok(Self { served: serde_json::to_vec(served)?.into(), deployment: serde_json::to_vec(deployment)?.into() })
    }
}

/// Which document `GET /api/openapi.json` answers.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Scope {
    /// The routes this process serves (the default).
    #[default]
    Process,
    /// Every compiled-in module's routes, served here or not.
    Deployment,
}

#[derive(Debug, Deserialize)]
struct DocumentQuery {
    #[serde(default)]
    scope: Scope,
}

/// `GET /api/openapi.json[?scope=process|deployment]` and the Swagger UI reading it.
pub fn routes(cfg: &mut web::ServiceConfig, documents: web::Data<Documents>) {
    cfg.app_data(documents)
        .service(web::resource(DOCUMENT_PATH).route(web::get().to(document_json)))
        .service(SwaggerUi::new("/api/docs/{_:.*}").config(Config::new([DOCUMENT_PATH])));
}

async fn document_json(documents: web::Data<Documents>, query: Query<DocumentQuery>) -> HttpResponse {
    let body = match query.into_inner().scope {
        Scope::Process => documents.served.clone(),
        Scope::Deployment => documents.deployment.clone(),
    };
    HttpResponse::Ok().content_type("application/json").body(body)
}

/// Merges the documents of the served modules (`modules`) under one info block.
pub fn document(modules: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("boxoffice")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Movie-ticket booking. Errors are RFC 7807 problem documents (application/problem+json).",
                ))
                .build(),
        )
        .build();
    doc.merge(<platform::http::OpsDoc as utoipa::OpenApi>::openapi());
    doc.merge(<platform::dead_letters::DeadLettersDoc as utoipa::OpenApi>::openapi());
    for module in modules {
        doc.merge(module);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    for (path, item) in &mut doc.paths.paths {
        let operational = !path.starts_with("/api/");
        for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
            add_common_responses(operation, path, operational);
        }
    }
    doc
}

/// Adds, where the route did not describe them itself, the problem answers every route of
/// its kind can give.
fn add_common_responses(operation: &mut Operation, path: &str, operational: bool) {
    let has_body = operation.request_body.is_some();
    let has_query = operation.parameters.iter().flatten().any(|p| match p {
        RefOr::T(p) => matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query),
        RefOr::Ref(_) => false,
    });
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut common: Vec<(&str, &str)> = Vec::new();
    if has_body {
        common.push(("400", "Malformed body (not JSON, or not the declared form)"));
        common.push(("413", "Body larger than server.body_limit_bytes"));
        common.push(("415", "Body of another media type"));
    }
    if has_body || has_query {
        common.push((
            "422",
            "A value out of range or of the wrong type, or text with control characters (named in `errors`)",
        ));
    }
    if secured {
        common.push(("401", "Missing, expired or invalid bearer token"));
    }
    if path.contains('{') {
        common.push(("404", "Not found (also for an id that is not a UUID)"));
    }
    if !operational {
        common.push(("429", "Request budget of this client spent (see Retry-After)"));
        common.push(("503", "A dependency (database, cache, another module) is down (see Retry-After)"));
    }
    common.push(("500", "A bug; quote the X-Request-Id (also in `request_id`) when reporting it"));
    for (status, description) in common {
        operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/problem+json", Content::new(Some(Ref::from_schema_name("ProblemDocument"))))
                    .build(),
            )
        });
    }
}
