//! Tags are not cached: every call goes to the database.

use async_trait::async_trait;

use super::CachedRepository;
use crate::StoreError;
use crate::tags::TagRepository;

#[async_trait]
impl TagRepository for CachedRepository {
    async fn list_tags(&self, arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.list_tags(arn).await
    }

    async fn tag_resource(&self, arn: &str, tags: &[(String, String)]) -> Result<(), StoreError> {
        self.inner.tag_resource(arn, tags).await
    }

    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), StoreError> {
        self.inner.untag_resource(arn, keys).await
    }

    async fn delete_tags(&self, arn: &str) -> Result<(), StoreError> {
        self.inner.delete_tags(arn).await
    }
}
