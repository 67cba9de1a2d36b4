//! Voice connector groups (service model shape `VoiceConnectorGroup`): several connectors
//! behind one set of phone numbers, tried by priority when a call comes in from a carrier.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Most connectors in one group (AWS's limit).
pub const MAX_GROUP_ITEMS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VoiceConnectorItem {
    pub voice_connector_id: String,
    /// 1 (first) to 99.
    pub priority: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VoiceConnectorGroup {
    pub voice_connector_group_id: String,
    pub name: String,
    #[serde(default)]
    pub voice_connector_items: Vec<VoiceConnectorItem>,
    pub created_timestamp: String,
    pub updated_timestamp: String,
    pub voice_connector_group_arn: String,
}

/// `arn:aws:chime:<region>:000000000000:vcg/<id>`.
pub fn voice_connector_group_arn(region: &str, id: &str) -> String {
    format!("arn:aws:chime:{region}:000000000000:vcg/{id}")
}

impl VoiceConnectorGroup {
    /// What the model does not check: the item count, a connector named twice.
    pub fn validate_items(items: &[VoiceConnectorItem]) -> Result<(), DomainError> {
        if items.len() > MAX_GROUP_ITEMS {
            return Err(DomainError::invalid(
                "VoiceConnectorItems",
                format!(
                    "at most {MAX_GROUP_ITEMS} voice connectors per group, got {}",
                    items.len()
                ),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            if !(1..=99).contains(&item.priority) {
                return Err(DomainError::invalid(
                    format!("VoiceConnectorItems[{i}].Priority"),
                    "must be 1 to 99",
                ));
            }
            if items[..i]
                .iter()
                .any(|o| o.voice_connector_id == item.voice_connector_id)
            {
                return Err(DomainError::invalid(
                    format!("VoiceConnectorItems[{i}].VoiceConnectorId"),
                    format!("{} is listed twice", item.voice_connector_id),
                ));
            }
        }
        Ok(())
    }

    /// Member connector ids in the order calls try them: lowest Priority first, ties in
    /// the order listed.
    pub fn members_in_order(&self) -> Vec<&str> {
        let mut items: Vec<&VoiceConnectorItem> = self.voice_connector_items.iter().collect();
        items.sort_by_key(|i| i.priority);
        items
            .into_iter()
            .map(|i| i.voice_connector_id.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, priority: u32) -> VoiceConnectorItem {
        VoiceConnectorItem {
            voice_connector_id: id.into(),
            priority,
        }
    }

    #[test]
    fn members_by_priority() {
        let g = VoiceConnectorGroup {
            voice_connector_group_id: "g".into(),
            name: "n".into(),
            voice_connector_items: vec![item("b", 2), item("a", 1), item("c", 2)],
            created_timestamp: String::new(),
            updated_timestamp: String::new(),
            voice_connector_group_arn: voice_connector_group_arn("us-east-1", "g"),
        };
        assert_eq!(g.members_in_order(), ["a", "b", "c"]);
        assert!(g.voice_connector_group_arn.ends_with(":vcg/g"));
    }

    #[test]
    fn item_rules_name_the_field() {
        VoiceConnectorGroup::validate_items(&[item("a", 1), item("b", 99)]).expect("valid");
        let err =
            VoiceConnectorGroup::validate_items(&[item("a", 1), item("a", 2)]).expect_err("twice");
        assert!(
            err.to_string()
                .starts_with("VoiceConnectorItems[1].VoiceConnectorId"),
            "{err}"
        );
        let four: Vec<_> = (0..4).map(|i| item(&format!("c{i}"), 1)).collect();
        assert!(VoiceConnectorGroup::validate_items(&four).is_err());
        assert!(VoiceConnectorGroup::validate_items(&[item("a", 0)]).is_err());
    }
}
