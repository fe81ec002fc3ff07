//! The OpenAPI 3 document of the routes this process serves, and its rendering at
//! `/api/docs` (Swagger UI, vendored into the binary: nothing is fetched at build or run time).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

use crate::settings::{Module, Settings};

/// Merges the documents of the served modules under one info block.
pub fn document(settings: &Settings) -> OpenApi {
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
    for module in settings.served() {
        match module {
            #[cfg(feature = "auth")]
            Module::Auth => doc.merge(<auth::http::AuthDoc as utoipa::OpenApi>::openapi()),
            #[cfg(feature = "movie")]
            Module::Movie => doc.merge(<movie::http::MovieDoc as utoipa::OpenApi>::openapi()),
            #[cfg(feature = "booking")]
            Module::Booking => doc.merge(<booking::http::BookingDoc as utoipa::OpenApi>::openapi()),
            #[cfg(feature = "payment")]
            Module::Payment => doc.merge(<payment::http::PaymentDoc as utoipa::OpenApi>::openapi()),
            #[cfg(feature = "notification")]
            Module::Notification => {
                doc.merge(<notification::http::NotificationDoc as utoipa::OpenApi>::openapi());
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    doc
}
