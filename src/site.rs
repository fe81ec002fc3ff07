//! The web site: the booking site at `/` and the admin console at `/admin`, hand-written HTML,
//! CSS and JavaScript modules from `web/`, compiled into the binary (nothing to build, nothing
//! fetched). The pages call only the public REST API, so every process serves the same site and
//! any deployment's gateway can route it (deploy/gateway/routes.conf sends it to booking, whose
//! seat feed the seat map follows).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Compress;
use actix_web::{HttpRequest, HttpResponse, web};
use platform::problem::Problem;

/// The site's files (`web/`), each served at `/assets/<name>`.
const FILES: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("../web/index.html")),
    ("admin.html", include_bytes!("../web/admin.html")),
    ("site.js", include_bytes!("../web/site.js")),
    ("admin.js", include_bytes!("../web/admin.js")),
    ("api.js", include_bytes!("../web/api.js")),
    ("seatmap.js", include_bytes!("../web/seatmap.js")),
    ("style.css", include_bytes!("../web/style.css")),
    ("admin.css", include_bytes!("../web/admin.css")),
];

/// The pages' policy: their own scripts, styles and API only (no inline script or style, no
/// other origin), never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    body: web::Bytes,
    content_type: &'static str,
    etag: String,
}

/// The site's files as served.
pub struct Site {
    assets: HashMap<&'static str, Asset>,
}

impl Site {
    /// `test_cards`: the booking page lists the simulated gateway's test cards (`[demo]`).
    pub fn new(test_cards: bool) -> Self {
        let assets = FILES
            .iter()
            .map(|&(name, body)| {
                let mut body = body.to_vec();
                if name == "index.html" && !test_cards {
                    body = String::from_utf8_lossy(&body)
                        .replace(r#"data-test-cards="true""#, r#"data-test-cards="false""#)
                        .into_bytes();
                }
                let mut hasher = std::hash::DefaultHasher::new();
                body.hash(&mut hasher);
                let asset = Asset {
                    etag: format!("\"{:016x}\"", hasher.finish()),
                    content_type: content_type(name),
                    body: web::Bytes::from(body),
                };
                (name, asset)
            })
            .collect();
        Self { assets }
    }

    fn serve(&self, name: &str, req: &HttpRequest) -> Result<HttpResponse, Problem> {
        let asset = self.assets.get(name).ok_or_else(|| Problem::not_found(format!("no file {name} in the site")))?;
        let fresh = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
        let mut res = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
        // Revalidated on every load (a 304 while unchanged): a new binary's files are used at once.
        res.insert_header((header::ETAG, asset.etag.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")));
        if asset.content_type.starts_with("text/html") {
            res.insert_header((header::CONTENT_SECURITY_POLICY, CSP))
                .insert_header((header::REFERRER_POLICY, "same-origin"));
        }
        if fresh {
            return Ok(res.finish());
        }
        Ok(res.content_type(asset.content_type).body(asset.body.clone()))
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `/` (the booking site), `/admin` (the console) and `/assets/{name}`, gzip-compressed for
/// clients that accept it.
pub fn routes(cfg: &mut web::ServiceConfig, site: web::Data<Site>) {
    async fn page(site: web::Data<Site>, req: HttpRequest) -> Result<HttpResponse, Problem> {
        site.serve(if req.path() == "/admin" { "admin.html" } else { "index.html" }, &req)
    }
    async fn asset(site: web::Data<Site>, name: web::Path<String>, req: HttpRequest) -> Result<HttpResponse, Problem> {
        site.serve(&name, &req)
    }
    for path in ["/", "/admin"] {
        cfg.service(web::resource(path).app_data(site.clone()).wrap(Compress::default()).route(web::get().to(page)));
    }
    cfg.service(web::resource("/assets/{name}").app_data(site).wrap(Compress::default()).route(web::get().to(asset)));
}
