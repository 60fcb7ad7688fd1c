//! Alert delivery inside promgate, the way Alertmanager 0.25 does it and configured the same
//! way: alerts from promgate's own rules and from `POST /api/v2/alerts` are routed through the
//! alertmanager.yml route tree, grouped, inhibited and silenced, and the notifications written
//! to a durable outbox before the `notifiers` integrations deliver them.
//!
//! - [`matcher`]: Alertmanager's label matchers (parse, print, match).
//! - [`config`]: the `route`, `inhibit_rules` and delivery settings, checked at parse time.
//! - [`route`]: the routing tree.
//! - [`alert`]: the alert, its fingerprint and merge rules.
//! - [`inhibit`], [`silence`]: what mutes an alert.

pub mod alert;
pub mod config;
pub mod inhibit;
pub mod matcher;
pub mod route;
pub mod silence;
