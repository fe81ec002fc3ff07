//! Paginated lists as the REST contract shapes them (docs/api.md): `?page=1&per_page=20` (per_page at most 100),
//! answered as `{items, page, per_page, total}`. `page` is at most [`MAX_PAGE`], so the row
//! offset stays far inside what SQL `OFFSET` (a signed 64-bit number) takes.

use serde::{Deserialize, Serialize};

use crate::validation::FieldErrors;

pub const DEFAULT_PER_PAGE: u64 = 20;
pub const MAX_PER_PAGE: u64 = 100;
/// No list holds a million pages; a page beyond it is refused, not computed.
pub const MAX_PAGE: u64 = 1_000_000;

/// The requested page, as sent (query parameters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// 1-based page number, at most 1000000 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    pub page: u64,
    pub per_page: u64,
}

impl Pagination {
    /// Rows to skip (saturating: a validated page never comes near the limit).
    pub fn offset(&self) -> u64 {
        self.page.saturating_sub(1).saturating_mul(self.per_page)
    }
}

impl PageRequest {
    /// # Errors
    /// `page` outside 1–[`MAX_PAGE`] or `per_page` outside 1–[`MAX_PER_PAGE`], named.
    pub fn validate(self) -> Result<Pagination, FieldErrors> {
        let mut errors = FieldErrors::new();
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PAGE).contains(&page) {
            errors.add("page", format!("must be between 1 and {MAX_PAGE}"));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            errors.add("per_page", format!("must be between 1 and {MAX_PER_PAGE}"));
        }
        errors.into_result().map(|()| Pagination { page, per_page })
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u64,
    pub per_page: u64,
    /// Items in the whole list.
    pub total: u64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, pagination: Pagination, total: u64) -> Self {
        Self { items, page: pagination.page, per_page: pagination.per_page, total }
    }
}
