//! The answerer side of a [`MediaSession`]: choosing one audio stream, codec and SRTP suite
//! from an offer (RFC 3264 §6, RFC 4568 §7).

use super::*;

impl MediaSession {
    /// Answers an offer (initial or re-offer) per RFC 3264 §6: accepts the first usable
    /// audio stream with one codec plus telephone-event, rejects every other stream with
    /// port 0 in the same order, and returns the negotiated stream with the answer SDP.
    ///
    /// On error nothing changes: a refused re-offer leaves the current session as it was
    /// (RFC 3261 §14.2). An outstanding offer of ours is discarded (glare is the SIP
    /// layer's business, RFC 3261 §14.1).
    pub fn answer(&mut self, offer: &SessionDescription) -> Result<Answer, AnswerError> {
        let mut chosen: Option<(usize, AudioChoice)> = None;
        let mut first_error: Option<AnswerError> = None;
        for (i, m) in offer.media.iter().enumerate() {
            if chosen.is_some() || !m.is_audio() || m.port == 0 {
                continue;
            }
            match self.choose_audio(offer, i) {
                Ok(c) => chosen = Some((i, c)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some((index, choice)) = chosen else {
            return Err(first_error.unwrap_or(AnswerError::NoAudio));
        };
        self.pending = None;

        // Our key: kept while the peer keeps its key and suite, fresh otherwise.
        let srtp = choice.crypto.as_ref().map(|(offered, remote)| {
            let local = match &self.current_keys {
                Some((suite, r, l)) if *suite == offered.suite && r == remote => l.clone(),
                _ => SrtpKeyMaterial::generate(offered.suite),
            };
            SrtpKeys {
                suite: offered.suite,
                tag: offered.tag,
                remote: remote.clone(),
                local,
                remote_config: offered.srtp_config(),
            }
        });

        let mut media = Vec::with_capacity(offer.media.len());
        for (i, m) in offer.media.iter().enumerate() {
            if i == index {
                media.push(self.answer_media(m, &choice, srtp.as_ref()));
            } else {
                media.push(m.rejected());
            }
        }
        let timing = offer
            .timings
            .first()
            .map(|t| Timing {
                start: t.start,
                stop: t.stop,
                repeats: Vec::new(),
            })
            .unwrap_or_else(Timing::permanent);
        let sdp = self.finish_local(media, timing);

        self.current_keys = srtp
            .as_ref()
            .map(|k| (k.suite, k.remote.clone(), k.local.clone()));
        let audio = NegotiatedAudio {
            media_index: index,
            codec: choice.codec,
            payload_type: choice.payload_type,
            recv_payload_type: choice.payload_type,
            clock_rate: choice.map.clock_rate,
            channels: choice.map.channels.unwrap_or(1),
            opus: matches!(choice.codec, Codec::Opus(_))
                .then(|| OpusParams::from_fmtp(&choice.format_params)),
            format_params: choice.format_params,
            telephone_event: choice.telephone_event.map(|(map, events)| TelephoneEvent {
                payload_type: map.payload_type,
                recv_payload_type: map.payload_type,
                clock_rate: map.clock_rate,
                events,
            }),
            remote_rtp: choice.remote_rtp,
            remote_rtcp: choice.remote_rtcp,
            rtcp_mux: choice.rtcp_mux,
            direction: choice.direction,
            srtp,
            ptime: self.config.ptime,
            remote_ptime: choice.remote_ptime,
        };
        self.current = Some(audio.clone());
        Ok(Answer { audio, sdp })
    }

    /// Chooses transport, keys, codec, direction and addresses for offered stream `index`.
    fn choose_audio(
        &self,
        offer: &SessionDescription,
        index: usize,
    ) -> Result<AudioChoice, AnswerError> {
        let m = &offer.media[index];
        let profile = profile_of(&m.proto).ok_or_else(|| AnswerError::UnsupportedTransport {
            proto: m.proto.chars().take(40).collect(),
        })?;

        // Transport security (RFC 4568 §7.1.2 answerer behaviour).
        let crypto = match profile {
            Profile::Savp => Some(self.choose_crypto(m)?),
            Profile::Avp if m.has_attribute("crypto") && self.config.srtp_on_avp => {
                match self.choose_crypto(m) {
                    Ok(c) => Some(c),
                    Err(e) if self.config.require_srtp => return Err(e),
                    Err(_) => None,
                }
            }
            Profile::Avp => {
                if self.config.require_srtp {
                    return Err(AnswerError::SrtpRequired {
                        proto: m.proto.chars().take(40).collect(),
                    });
                }
                None
            }
        };

        // Codec: our preference among what was offered (RFC 3264 §6.1).
        let formats = offered_formats(m);
        let mut pick = None;
        'pref: for want in &self.config.codecs {
            for f in &formats {
                if let Some(map) = &f.map
                    && let Some(c) = codec_of(map)
                    && codec_kind_eq(c, *want)
                {
                    pick = Some((c, f.payload_type, map.clone()));
                    break 'pref;
                }
            }
        }
        let Some((mut codec, payload_type, map)) = pick else {
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

        // telephone-event at the codec's clock rate, else 8000 (RFC 4733 §2.1).
        let telephone_event = if self.config.telephone_event {
            let events: Vec<RtpMap> = formats
                .iter()
                .filter_map(|f| f.map.clone())
                .filter(RtpMap::is_telephone_event)
                .collect();
            events
                .iter()
                .find(|e| e.clock_rate == map.clock_rate)
                .or_else(|| events.iter().find(|e| e.clock_rate == 8000))
                .map(|e| {
                    let fmtp = m
                        .fmtp(&e.payload_type.to_string())
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned);
                    (e.clone(), fmtp)
                })
        } else {
            None
        };

        let (remote_rtp, remote_rtcp, rtcp_mux, offered_dir) = remote_addresses(offer, index)?;
        let rtcp_mux = rtcp_mux && self.config.rtcp_mux;
        let remote_rtcp = if rtcp_mux { None } else { remote_rtcp };
        let direction = offered_dir.reversed().intersect(self.local_direction);

        Ok(AudioChoice {
            codec,
            payload_type,
            map,
            format_params,
            telephone_event,
            crypto,
            remote_rtp,
            remote_rtcp,
            rtcp_mux,
            direction,
            remote_ptime: m.ptime(),
        })
    }

    /// The strongest offered `a=crypto` line we can honour, by our suite order.
    fn choose_crypto(
        &self,
        m: &MediaDescription,
    ) -> Result<(CryptoAttribute, SrtpKeyMaterial), AnswerError> {
        let mut usable = Vec::new();
        let mut reasons = Vec::new();
        for value in m.attributes_named("crypto") {
            let (tag, suite) = crypto_line_parts(value);
            let rejection = |reason| CryptoRejection {
                tag,
                suite: sanitize_token(&suite),
                reason,
            };
            match CryptoAttribute::parse(value) {
                Err(e) => reasons.push(rejection(CryptoRejectReason::Malformed(e))),
                Ok(a) => match a.usable_key() {
                    Err(u) => reasons.push(rejection(CryptoRejectReason::Unsupported(u))),
                    Ok(_) if !self.config.srtp_suites.contains(&a.suite) => {
                        reasons.push(rejection(CryptoRejectReason::SuiteNotEnabled));
                    }
                    Ok(key) => {
                        let material = key.material.clone();
                        usable.push((a, material));
                    }
                },
            }
        }
        for suite in &self.config.srtp_suites {
            if let Some(pos) = usable.iter().position(|(a, _)| a.suite == *suite) {
                return Ok(usable.swap_remove(pos));
            }
        }
        Err(AnswerError::NoUsableCrypto {
            reasons,
            accepted: self.accepted_suite_names(),
        })
    }

    fn answer_media(
        &self,
        offered: &MediaDescription,
        choice: &AudioChoice,
        srtp: Option<&SrtpKeys>,
    ) -> MediaDescription {
        let mut formats = vec![choice.payload_type.to_string()];
        if let Some((te, _)) = &choice.telephone_event {
            formats.push(te.payload_type.to_string());
        }
        let mut m = MediaDescription::new("audio", self.local.rtp_port, &offered.proto, formats);
        m.media.clone_from(&offered.media);
        let a = &mut m.attributes;
        a.push(Attribute::new("rtpmap", choice.map.to_value()));
        if matches!(choice.codec, Codec::Opus(_)) {
            a.push(Attribute::new(
                "fmtp",
                format!("{} {}", choice.payload_type, self.opus_fmtp()),
            ));
        }
        if let Some((te, events)) = &choice.telephone_event {
            a.push(Attribute::new("rtpmap", te.to_value()));
            if let Some(ev) = events {
                a.push(Attribute::new("fmtp", format!("{} {ev}", te.payload_type)));
            }
        }
        a.push(Attribute::new("ptime", self.config.ptime.to_string()));
        a.push(Attribute::flag(choice.direction.as_str()));
        if choice.rtcp_mux {
            a.push(Attribute::flag("rtcp-mux"));
        } else if let Some(port) = self.rtcp_port() {
            a.push(Attribute::new("rtcp", port.to_string()));
        }
        if let Some(k) = srtp {
            let line = CryptoAttribute {
                tag: k.tag,
                suite: k.suite,
                keys: vec![KeyParam {
                    material: k.local.clone(),
                    lifetime: None,
                    mki: None,
                }],
                session_params: Vec::new(),
            };
            a.push(Attribute::new("crypto", line.to_sdp_value()));
        }
        m
    }

    /// Our Opus format parameters (RFC 7587 §6.1): we always ask for in-band FEC.
    pub(super) fn opus_fmtp(&self) -> String {
        let mut p = String::from("useinbandfec=1");
        if self.config.opus_stereo {
            p.push_str(";stereo=1;sprop-stereo=1");
        }
        if let Some(rate) = self.config.opus_max_playback_rate {
            p.push_str(&format!(";maxplaybackrate={rate}"));
        }
        p
    }
}
