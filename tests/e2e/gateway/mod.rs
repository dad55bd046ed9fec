//! The gateway over real identity and membership services: the JSON API
//! (cookies, CSRF, errors, every route), the UI's files, the launcher and
//! the browser tests.

mod browser;
mod session;
mod web;
mod workspace;
