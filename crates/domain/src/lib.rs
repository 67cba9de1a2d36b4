//! Domain model and policy: voice connectors, termination, origination, carriers (PSTN
//! trunks), meetings, attendees, join tokens.
//!
//! The types serialize to the JSON shapes of AWS's `chime-sdk-voice` and `chime-sdk-meetings`
//! service models (PascalCase members), so the API layer returns them as they are and the
//! store keeps them as documents. Validation beyond what the service model expresses (CIDR
//! syntax, calling regions, route limits) lives here, as pure functions.
#![forbid(unsafe_code)]

pub mod call_record;
pub mod carrier;
pub mod emergency;
pub mod error;
pub mod group;
pub mod ids;
pub mod meeting;
pub mod policy;
pub mod quality;
pub mod sma;
pub mod timestamp;
pub mod token;
pub mod voice_connector;
pub mod weighted;

pub use error::{ConflictReason, DomainError};
