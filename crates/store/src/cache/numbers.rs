//! The pool and the orders are not cached: every call goes to the database.

use async_trait::async_trait;
use domain::voice_connector::PhoneNumber;

use super::CachedRepository;
use crate::StoreError;
use crate::numbers::{NumberOrderRepository, PoolNumber, PoolSearch};

#[async_trait]
impl NumberOrderRepository for CachedRepository {
    async fn add_pool_number(&self, n: &PoolNumber) -> Result<bool, StoreError> {
        self.inner.add_pool_number(n).await
    }

    async fn search_pool(
        &self,
        q: &PoolSearch,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.search_pool(q, after, limit).await
    }

    async fn pool_countries(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.pool_countries().await
    }

    async fn take_from_pool(&self, numbers: &[PhoneNumber]) -> Result<Vec<bool>, StoreError> {
        self.inner.take_from_pool(numbers).await
    }

    async fn put_order(
        &self,
        id: &str,
        created_ms: i64,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.inner.put_order(id, created_ms, body).await
    }

    async fn get_order(&self, id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.inner.get_order(id).await
    }

    async fn list_orders(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        self.inner.list_orders(after, limit).await
    }
}
