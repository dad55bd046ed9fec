mod accounts;
mod events;
mod service;
mod sessions;
mod throttle;
mod totp;
