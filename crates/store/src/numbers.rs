//! The operator's pool of numbers and phone-number orders (SearchAvailablePhoneNumbers,
//! CreatePhoneNumberOrder, GetPhoneNumberOrder, ListPhoneNumberOrders). A supertrait of
//! [`Repository`](crate::Repository). The pool holds numbers the account has not ordered
//! yet; an order moves them into the phone-number inventory.

use async_trait::async_trait;
use domain::voice_connector::PhoneNumber;

use crate::StoreError;

/// A number in the operator's pool, with what a search filters by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolNumber {
    pub e164: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// `Local` or `TollFree`.
    pub number_type: String,
    /// The three-digit area code of a North American number (its toll-free prefix when it
    /// is toll-free); empty elsewhere.
    pub area_code: String,
    /// US state (two letters, upper case) the operator gave, or empty.
    pub state: String,
    /// City the operator gave, or empty.
    pub city: String,
}

/// A search of the pool: every filter that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSearch {
    pub country: String,
    pub number_type: Option<String>,
    pub area_code: Option<String>,
    /// Matched without regard to case.
    pub state: Option<String>,
    /// Matched without regard to case.
    pub city: Option<String>,
}

/// The pool and the orders.
#[async_trait]
pub trait NumberOrderRepository: Send + Sync {
    /// Adds a number to the pool. False when it is already in the pool or in the inventory.
    async fn add_pool_number(&self, n: &PoolNumber) -> Result<bool, StoreError>;
    /// Up to `limit` numbers of the pool matching `q`, in E.164 order after `after`.
    async fn search_pool(
        &self,
        q: &PoolSearch,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// The (country, number type) pairs the pool has numbers of, sorted.
    async fn pool_countries(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Moves each number out of the pool into the inventory as the given entry, all in one
    /// transaction. For each entry, whether it moved: one not in the pool, or already in the
    /// inventory, did not.
    async fn take_from_pool(&self, numbers: &[PhoneNumber]) -> Result<Vec<bool>, StoreError>;
    /// Stores an order document (shape `PhoneNumberOrder`), replacing one with the same id.
    async fn put_order(
        &self,
        id: &str,
        created_ms: i64,
        body: &serde_json::Value,
    ) -> Result<(), StoreError>;
    async fn get_order(&self, id: &str) -> Result<Option<serde_json::Value>, StoreError>;
    /// Up to `limit` orders, oldest first, after the order with id `after`.
    async fn list_orders(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError>;
}
