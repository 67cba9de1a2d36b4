//! The carrier list through the cache: every PSTN INVITE reads it, so it is kept for the
//! cache's time-to-live and dropped by this node's carrier writes. Groups and number routes
//! pass through (one keyed read per inbound call).

use async_trait::async_trait;
use domain::carrier::{Carrier, CarrierRegistration, CarrierStatus};
use domain::group::VoiceConnectorGroup;
use domain::voice_connector::{NumberRoute, PhoneNumber};

use super::{CachedRepository, Key, Value};
use crate::StoreError;
use crate::pstn::{CarrierRepository, GroupRepository};

impl CachedRepository {
    fn carriers_changed(&self) {
        self.invalidate("", Some(&Key::Carriers));
    }
}

#[async_trait]
impl CarrierRepository for CachedRepository {
    async fn list_carriers(&self) -> Result<Vec<Carrier>, StoreError> {
        if let Some(Value::Carriers(v)) = self.lookup(&Key::Carriers) {
            return Ok(v);
        }
        let g = self.generation();
        let v = self.inner.list_carriers().await?;
        self.store(Key::Carriers, Value::Carriers(v.clone()), g);
        Ok(v)
    }

    async fn carrier(&self, name: &str) -> Result<Option<Carrier>, StoreError> {
        self.inner.carrier(name).await
    }

    async fn insert_carrier(&self, c: &Carrier) -> Result<(), StoreError> {
        let r = self.inner.insert_carrier(c).await;
        self.carriers_changed();
        r
    }

    async fn update_carrier(&self, c: &Carrier) -> Result<bool, StoreError> {
        let r = self.inner.update_carrier(c).await;
        self.carriers_changed();
        r
    }

    async fn put_carrier(&self, c: &Carrier) -> Result<(), StoreError> {
        let r = self.inner.put_carrier(c).await;
        self.carriers_changed();
        r
    }

    async fn delete_carrier(&self, name: &str) -> Result<bool, StoreError> {
        let r = self.inner.delete_carrier(name).await;
        self.carriers_changed();
        r
    }

    async fn put_carrier_status(&self, s: &CarrierStatus) -> Result<(), StoreError> {
        self.inner.put_carrier_status(s).await
    }

    async fn list_carrier_status(&self) -> Result<Vec<CarrierStatus>, StoreError> {
        self.inner.list_carrier_status().await
    }

    async fn put_carrier_registration(&self, r: &CarrierRegistration) -> Result<(), StoreError> {
        self.inner.put_carrier_registration(r).await
    }

    async fn list_carrier_registrations(&self) -> Result<Vec<CarrierRegistration>, StoreError> {
        self.inner.list_carrier_registrations().await
    }
}

#[async_trait]
impl GroupRepository for CachedRepository {
    async fn insert_voice_connector_group(
        &self,
        g: &VoiceConnectorGroup,
        created_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.insert_voice_connector_group(g, created_ms).await
    }

    async fn get_voice_connector_group(
        &self,
        id: &str,
    ) -> Result<Option<VoiceConnectorGroup>, StoreError> {
        self.inner.get_voice_connector_group(id).await
    }

    async fn list_voice_connector_groups(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VoiceConnectorGroup>, StoreError> {
        self.inner.list_voice_connector_groups(after, limit).await
    }

    async fn update_voice_connector_group(
        &self,
        g: &VoiceConnectorGroup,
    ) -> Result<bool, StoreError> {
        self.inner.update_voice_connector_group(g).await
    }

    async fn delete_voice_connector_group(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_voice_connector_group(id).await
    }

    async fn phone_number_route(&self, e164: &str) -> Result<Option<NumberRoute>, StoreError> {
        self.inner.phone_number_route(e164).await
    }

    async fn list_group_phone_numbers(
        &self,
        group_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PhoneNumber>, StoreError> {
        self.inner
            .list_group_phone_numbers(group_id, after, limit)
            .await
    }

    async fn get_account_setting(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.inner.get_account_setting(name).await
    }

    async fn put_account_setting(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.inner.put_account_setting(name, body).await
    }
}
