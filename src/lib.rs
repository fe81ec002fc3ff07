//! boxoffice: a movie-ticket booking system that runs as one binary or as split services.
//!
//! `main.rs` parses the command line; [`settings`] loads the configuration; [`startup`] is
//! the composition root that decides, per module, in-process service or REST client and
//! builds the HTTP server; [`openapi`] assembles the API document of what a process serves;
//! [`site`] serves the web site.

pub mod modules;
pub mod openapi;
pub mod settings;
pub mod site;
pub mod startup;
