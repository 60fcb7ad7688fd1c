//! The Prometheus-style HTTP API over the window.

pub mod error;
pub mod meta;
pub mod params;
pub mod query;
pub mod rules;
pub mod series;

use std::sync::Arc;

use crate::app::AppState;
use crate::store::Store;

/// The store, or the 503 every API endpoint answers while promgate is still loading it.
pub fn open_store(state: &AppState) -> Result<Arc<Store>, error::ApiError> {
    state.store().ok_or_else(|| {
        error::ApiError::unavailable("promgate is starting: the store is not open yet")
    })
}
