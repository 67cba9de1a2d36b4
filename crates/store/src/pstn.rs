//! The PSTN half of the repository (issue 12): carriers, their keep-alive and registration status, voice
//! connector groups, and where an inbound number routes. Supertraits of
//! [`Repository`](crate::Repository), so every `Arc<dyn Repository>` has them.

use async_trait::async_trait;
use domain::carrier::{Carrier, CarrierRegistration, CarrierStatus};
use domain::group::VoiceConnectorGroup;
use domain::voice_connector::{NumberRoute, PhoneNumber};

use crate::StoreError;

/// Carrier trunks, shared by every node through the database.
#[async_trait]
pub trait CarrierRepository: Send + Sync {
    /// Every carrier, by name. The SIP edge reads this per PSTN INVITE (cached for about a
    /// second by [`CachedRepository`](crate::CachedRepository)).
    async fn list_carriers(&self) -> Result<Vec<Carrier>, StoreError>;
    /// One carrier by name.
    async fn carrier(&self, name: &str) -> Result<Option<Carrier>, StoreError>;
    /// Adds a carrier; Conflict (`CarrierExists`) when the name is taken.
    async fn insert_carrier(&self, c: &Carrier) -> Result<(), StoreError>;
    /// Replaces the carrier of the same name (its id is kept); false when there is none.
    async fn update_carrier(&self, c: &Carrier) -> Result<bool, StoreError>;
    /// Inserts or replaces by name.
    async fn put_carrier(&self, c: &Carrier) -> Result<(), StoreError>;
    /// Removes a carrier and its status; false when there is none.
    async fn delete_carrier(&self, name: &str) -> Result<bool, StoreError>;
    /// Records what the last OPTIONS keep-alive saw (the edge writes it).
    async fn put_carrier_status(&self, s: &CarrierStatus) -> Result<(), StoreError>;
    /// Every carrier's last status (carriers never probed have none).
    async fn list_carrier_status(&self) -> Result<Vec<CarrierStatus>, StoreError>;
    /// Records what the last REGISTER to a carrier got (the edge writes it).
    async fn put_carrier_registration(&self, r: &CarrierRegistration) -> Result<(), StoreError>;
    /// Every carrier's registration (carriers never registered have none).
    async fn list_carrier_registrations(&self) -> Result<Vec<CarrierRegistration>, StoreError>;
}

/// Voice connector groups and the inbound routing of numbers.
#[async_trait]
pub trait GroupRepository: Send + Sync {
    /// Adds a group; NotFound when a member connector does not exist.
    async fn insert_voice_connector_group(
        &self,
        g: &VoiceConnectorGroup,
        created_ms: i64,
    ) -> Result<(), StoreError>;
    async fn get_voice_connector_group(
        &self,
        id: &str,
    ) -> Result<Option<VoiceConnectorGroup>, StoreError>;
    /// Up to `limit` groups with ids after `after`, in id order.
    async fn list_voice_connector_groups(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VoiceConnectorGroup>, StoreError>;
    /// Replaces name and members; false when the group does not exist, NotFound when a
    /// member connector does not.
    async fn update_voice_connector_group(
        &self,
        g: &VoiceConnectorGroup,
    ) -> Result<bool, StoreError>;
    /// Refuses (Conflict `GroupHasNumbers`) while phone numbers are associated; false when
    /// absent.
    async fn delete_voice_connector_group(&self, id: &str) -> Result<bool, StoreError>;
    /// Where an inbound call to `e164` goes: its voice connector or its group. `None` for
    /// a number not in the inventory, unassigned, or in the deletion queue. The SIP edge
    /// calls this per inbound carrier INVITE.
    async fn phone_number_route(&self, e164: &str) -> Result<Option<NumberRoute>, StoreError>;
    /// The phone numbers associated with group `group_id`, in id order after `after`.
    async fn list_group_phone_numbers(
        &self,
        group_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PhoneNumber>, StoreError>;
    /// An account-wide settings document (`phone-number`: the default calling name).
    async fn get_account_setting(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;
    async fn put_account_setting(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), StoreError>;
}
