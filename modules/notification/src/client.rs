//! [`NotificationApi`] over REST, for processes where notification runs elsewhere.

use async_trait::async_trait;
use platform::identity::AuthUser;
use platform::pagination::{Page, PageRequest};
use platform::rest::RestClient;
use reqwest::Method;

use crate::api::{Notification, NotificationApi, NotificationError};

pub struct NotificationClient {
    rest: RestClient,
}

impl NotificationClient {
    /// `base_url` is where notification serves `/api/notifications` (e.g. `http://notification:8005`).
    pub fn new(base_url: &str, http: reqwest::Client) -> Self {
        Self { rest: RestClient::new(base_url, http) }
    }
}

#[async_trait]
impl NotificationApi for NotificationClient {
    async fn list(&self, caller: &AuthUser, page: PageRequest) -> Result<Page<Notification>, NotificationError> {
        let rb = self.rest.request(Method::GET, "/api/notifications/notifications", Some(&caller.bearer)).query(&page);
        Ok(self.rest.json(rb).await?)
    }
}
