//! The offerer side of a [`MediaSession`]: our offers and the answers to them
//! (RFC 3264 §5 and §7).

use super::*;

impl MediaSession {
    /// Makes an offer (RFC 3264 §5): one audio stream with every configured codec,
    /// `telephone-event/8000`, and with SRTP one `a=crypto` line per configured suite.
    /// Keys are fresh, except that the suite in use keeps its current key across
    /// re-offers. The offer stays outstanding until [`accept_answer`](Self::accept_answer)
    /// or [`cancel_offer`](Self::cancel_offer).
    pub fn create_offer(&mut self) -> SessionDescription {
        let srtp = (self.config.offer_srtp || self.config.require_srtp)
            && !self.config.srtp_suites.is_empty();
        let proto = if srtp { "RTP/SAVP" } else { "RTP/AVP" };
        let mut codecs = Vec::new();
        let mut formats = Vec::new();
        let mut attrs = Vec::new();
        for &c in &self.config.codecs {
            let pt = c
                .static_payload_type()
                .unwrap_or(self.config.opus_payload_type);
            if codecs.iter().any(|(_, p)| *p == pt) {
                continue;
            }
            codecs.push((c, pt));
            formats.push(pt.to_string());
            let channels = matches!(c, Codec::Opus(_)).then_some(2);
            let map = RtpMap {
                payload_type: pt,
                encoding: c.name().to_owned(),
                clock_rate: c.rtp_clock_rate(),
                channels,
            };
            attrs.push(Attribute::new("rtpmap", map.to_value()));
            if matches!(c, Codec::Opus(_)) {
                attrs.push(Attribute::new("fmtp", format!("{pt} {}", self.opus_fmtp())));
            }
        }
        let te_pt = self.config.telephone_event_payload_type;
        let telephone_event = (self.config.telephone_event
            && !codecs.iter().any(|(_, p)| *p == te_pt))
        .then_some(te_pt);
        if let Some(pt) = telephone_event {
            formats.push(pt.to_string());
            attrs.push(Attribute::new(
                "rtpmap",
                format!("{pt} telephone-event/8000"),
            ));
            attrs.push(Attribute::new("fmtp", format!("{pt} 0-16")));
        }
        attrs.push(Attribute::new("ptime", self.config.ptime.to_string()));
        attrs.push(Attribute::flag(self.local_direction.as_str()));
        if let Some(port) = self.rtcp_port() {
            attrs.push(Attribute::new("rtcp", port.to_string()));
        }
        if self.config.rtcp_mux {
            attrs.push(Attribute::flag("rtcp-mux"));
        }
        let mut crypto = Vec::new();
        if srtp {
            for (i, &suite) in self.config.srtp_suites.iter().enumerate() {
                let material = match &self.current_keys {
                    Some((s, _, local)) if *s == suite => local.clone(),
                    _ => SrtpKeyMaterial::generate(suite),
                };
                let line = CryptoAttribute {
                    tag: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    suite,
                    keys: vec![KeyParam {
                        material,
                        lifetime: None,
                        mki: None,
                    }],
                    session_params: Vec::new(),
                };
                attrs.push(Attribute::new("crypto", line.to_sdp_value()));
                crypto.push(line);
            }
        }
        let mut m = MediaDescription::new("audio", self.local.rtp_port, proto, formats);
        m.attributes = attrs;
        let sdp = self.finish_local(vec![m], Timing::permanent());
        self.pending = Some(PendingOffer {
            sdp: sdp.clone(),
            codecs,
            telephone_event,
            crypto,
            rtcp_mux: self.config.rtcp_mux,
        });
        sdp
    }

    /// Validates the answer to our outstanding offer (RFC 3264 §6, §7) and returns the
    /// negotiated stream. The codec is the first format in the answer that we offered
    /// (the answerer's preference). On error the offer is consumed and the session keeps
    /// its previous state; the caller ends or re-negotiates the session.
    pub fn accept_answer(
        &mut self,
        answer: &SessionDescription,
    ) -> Result<NegotiatedAudio, AnswerError> {
        let pending = self.pending.take().ok_or(AnswerError::NoPendingOffer)?;
        let mismatch = AnswerError::AnswerMismatch;
        if answer.media.len() != pending.sdp.media.len() {
            return Err(mismatch(AnswerMismatch::MediaCount {
                offered: pending.sdp.media.len(),
                answered: answer.media.len(),
            }));
        }
        let index = 0;
        let (Some(ours), Some(m)) = (pending.sdp.media.first(), answer.media.first()) else {
            return Err(AnswerError::NoAudio);
        };
        if m.port == 0 {
            return Err(mismatch(AnswerMismatch::AudioRejected));
        }
        if !m.is_audio() || !m.proto.eq_ignore_ascii_case(&ours.proto) {
            return Err(mismatch(AnswerMismatch::TransportChanged {
                offered: format!("{} {}", ours.media, ours.proto),
                answered: sanitize_token(&format!("{} {}", m.media, m.proto)),
            }));
        }

        // Codec: the answer's first format that we offered.
        let formats = offered_formats(m);
        let mut pick = None;
        for f in &formats {
            let Some(map) = &f.map else { continue };
            let Some(c) = codec_of(map) else { continue };
            if let Some((ours, recv_pt)) = pending.codecs.iter().find(|(o, _)| codec_kind_eq(*o, c))
            {
                pick = Some((*ours, f.payload_type, *recv_pt, map.clone()));
                break;
            }
        }
        let Some((mut codec, payload_type, recv_payload_type, map)) = pick else {
            return Err(AnswerError::NoCommonCodec {
                offered: formats
                    .iter()
                    .filter(|f| !f.map.as_ref().is_some_and(RtpMap::is_telephone_event))
                    .map(|f| match &f.map {
                        Some(map) => sanitize_token(&map.to_string()),
                        None => format!("PT {}", f.payload_type),
                    })
                    .collect(),
                accepted: self.accepted_codec_names(),
            });
        };
        let format_params = FormatParams::parse(m.fmtp(&payload_type.to_string()).unwrap_or(""));
        if matches!(codec, Codec::Opus(_)) {
            let stereo = self.config.opus_stereo && format_params.get_flag("stereo") == Some(true);
            codec = Codec::Opus(if stereo {
                Channels::Stereo
            } else {
                Channels::Mono
            });
        }
        let telephone_event = pending.telephone_event.and_then(|recv_pt| {
            let te = formats
                .iter()
                .filter_map(|f| f.map.as_ref())
                .find(|e| e.is_telephone_event() && e.clock_rate == 8000)?;
            Some(TelephoneEvent {
                payload_type: te.payload_type,
                recv_payload_type: recv_pt,
                clock_rate: te.clock_rate,
                events: m
                    .fmtp(&te.payload_type.to_string())
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned),
            })
        });

        // Keys: the answer names one of our tags with the same suite (RFC 4568 §7.1.3).
        let srtp = if pending.crypto.is_empty() {
            None
        } else {
            let Some(value) = m.attributes_named("crypto").next() else {
                return Err(mismatch(AnswerMismatch::MissingCrypto));
            };
            let a = CryptoAttribute::parse(value).map_err(|e| {
                mismatch(AnswerMismatch::BadCrypto(CryptoRejectReason::Malformed(e)))
            })?;
            let key = a.usable_key().map_err(|u| {
                mismatch(AnswerMismatch::BadCrypto(CryptoRejectReason::Unsupported(
                    u,
                )))
            })?;
            let ours = pending
                .crypto
                .iter()
                .find(|o| o.tag == a.tag && o.suite == a.suite)
                .ok_or(mismatch(AnswerMismatch::CryptoNotOffered { tag: a.tag }))?;
            let local = ours
                .keys
                .first()
                .map(|k| k.material.clone())
                .ok_or(mismatch(AnswerMismatch::CryptoNotOffered { tag: a.tag }))?;
            Some(SrtpKeys {
                suite: a.suite,
                tag: a.tag,
                remote: key.material.clone(),
                local,
                remote_config: a.srtp_config(),
            })
        };

        let (remote_rtp, remote_rtcp, rtcp_mux, answered_dir) = remote_addresses(answer, index)?;
        let rtcp_mux = rtcp_mux && pending.rtcp_mux;
        let remote_rtcp = if rtcp_mux { None } else { remote_rtcp };
        let direction = answered_dir.reversed().intersect(self.local_direction);

        self.current_keys = srtp
            .as_ref()
            .map(|k| (k.suite, k.remote.clone(), k.local.clone()));
        let audio = NegotiatedAudio {
            media_index: index,
            codec,
            payload_type,
            recv_payload_type,
            clock_rate: map.clock_rate,
            channels: map.channels.unwrap_or(1),
            opus: matches!(codec, Codec::Opus(_)).then(|| OpusParams::from_fmtp(&format_params)),
            format_params,
            telephone_event,
            remote_rtp,
            remote_rtcp,
            rtcp_mux,
            direction,
            srtp,
            ptime: self.config.ptime,
            remote_ptime: m.ptime(),
        };
        self.current = Some(audio.clone());
        Ok(audio)
    }
}
