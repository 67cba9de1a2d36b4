//! Emergency numbers at admission (issue 18): a PBX's call to its country's emergency or
//! test number goes on to the routing provider's number of the connector's
//! EmergencyCallingConfiguration ([`domain::emergency`]), or is refused saying what is missing.
//! The store is read only when the number dialled is an emergency number somewhere, so
//! ordinary calls cost nothing more.

use domain::emergency::{self, EmergencyCallingConfiguration, EmergencyRoute};
use domain::policy::Refusal;
use store::SettingKind;

use super::{Admission, RouteError};

impl Admission {
    /// `Ok(Ok(None))`: `dialled` is no emergency number for this caller.
    pub(super) async fn emergency_route(
        &self,
        vc_id: &str,
        dialled: &str,
        from_user: &str,
        caller_id: Option<&str>,
    ) -> Result<Result<Option<EmergencyRoute>, Refusal>, RouteError> {
        let country = emergency::caller_country(from_user, caller_id);
        let maybe = match &country {
            Some(c) => emergency::classify(dialled, c).is_some(),
            None => emergency::is_short_code_anywhere(dialled),
        };
        if !maybe {
            return Ok(Ok(None));
        }
        let config: Option<EmergencyCallingConfiguration> = self
            .repo
            .get_setting(vc_id, SettingKind::EmergencyCalling)
            .await?
            .and_then(|d| serde_json::from_value(d).ok());
        Ok(
            emergency::route(vc_id, config.as_ref(), dialled, country.as_deref())
                .map_err(Refusal::from),
        )
    }
}
