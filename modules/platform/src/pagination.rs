//! Paginated lists as api.md shapes them: `?page=1&per_page=20` (per_page at most 100),
//! answered as `{items, page, per_page, total}`.

use serde::{Deserialize, Serialize};

use crate::validation::FieldErrors;

pub const DEFAULT_PER_PAGE: u64 = 20;
pub const MAX_PER_PAGE: u64 = 100;

/// The requested page, as sent (query parameters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// 1-based page number (default 1).
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    pub per_page: Option<u64>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    pub page: u64,
    pub per_page: u64,
}

impl Pagination {
    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page - 1) * self.per_page
    }
}

impl PageRequest {
    /// # Errors
    /// `page` below 1 or `per_page` outside 1–100, named.
    pub fn validate(self) -> Result<Pagination, FieldErrors> {
        let mut errors = FieldErrors::new();
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page == 0 {
            errors.add("page", "must be at least 1");
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
