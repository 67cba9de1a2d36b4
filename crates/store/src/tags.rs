//! Tags by resource ARN (TagResource, UntagResource, ListTagsForResource of both services).
//! A supertrait of [`Repository`](crate::Repository); the API checks that the resource
//! exists before it tags it.

use async_trait::async_trait;

use crate::StoreError;

/// At most this many tags on one resource (AWS's limit for both services).
pub const MAX_TAGS_PER_RESOURCE: u32 = 50;

/// Tags, keyed by resource ARN and tag key.
#[async_trait]
pub trait TagRepository: Send + Sync {
    /// The resource's tags as (key, value), by key.
    async fn list_tags(&self, arn: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// Adds tags, replacing the values of keys already there. Atomic: when the resource would
    /// end up with more than [`MAX_TAGS_PER_RESOURCE`] tags nothing changes and the answer
    /// is `LimitExceeded`.
    async fn tag_resource(&self, arn: &str, tags: &[(String, String)]) -> Result<(), StoreError>;
    /// Removes the tags with these keys (keys it does not have are ignored).
    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), StoreError>;
    /// Removes every tag of the resource: it has been deleted.
    async fn delete_tags(&self, arn: &str) -> Result<(), StoreError>;
}
