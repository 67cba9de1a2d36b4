//! Which way a participant's audio may flow: its attendee's audio capability
//! (`SendReceive`, `Send`, `Receive`, `None`), apart from its own mute.

use super::*;

impl Mixer {
    /// Whether the participant's audio may reach the others (`send`) and theirs may reach
    /// it (`receive`). One that may not send is in nobody's mix; one that may not receive
    /// gets a frame of silence every tick (its prompts still play), so its RTP goes on.
    /// Takes effect at the next tick; a [`Mixer::reconfigure`] keeps it.
    pub fn set_flow(
        &mut self,
        id: ParticipantId,
        send: bool,
        receive: bool,
    ) -> Result<(), MixerError> {
        let p = self
            .participants
            .get_mut(id)
            .ok_or(MixerError::UnknownParticipant(id))?;
        p.may_send = send;
        p.may_receive = receive;
        Ok(())
    }

    /// The participant's (send, receive) flow.
    pub fn flow(&self, id: ParticipantId) -> Result<(bool, bool), MixerError> {
        self.participants
            .get(id)
            .map(|p| (p.may_send, p.may_receive))
            .ok_or(MixerError::UnknownParticipant(id))
    }
}
