//! Stream targets are not cached: a call reads its connector's once, when it starts.

use async_trait::async_trait;

use super::CachedRepository;
use crate::StoreError;
use crate::sql::streaming::{StreamTarget, StreamingRepository};

#[async_trait]
impl StreamingRepository for CachedRepository {
    async fn put_stream_target(
        &self,
        vc_id: &str,
        target: &StreamTarget,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.put_stream_target(vc_id, target, now_ms).await
    }

    async fn get_stream_target(&self, vc_id: &str) -> Result<Option<StreamTarget>, StoreError> {
        self.inner.get_stream_target(vc_id).await
    }

    async fn delete_stream_target(&self, vc_id: &str) -> Result<bool, StoreError> {
        self.inner.delete_stream_target(vc_id).await
    }
}
