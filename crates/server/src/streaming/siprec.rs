//! SIPREC (RFC 7866) offers, without any I/O: a recording client's (a PBX's or SBC's)
//! multipart INVITE body split into its SDP and its recording metadata (RFC 7865), and the
//! metadata's participants read for a stream's start message (`siprecMetadata`).
//!
//! Everything is bounded: the body, the number of parts, the metadata's size, its
//! participants and streams, and each value kept. Bad input gets an [`Error`] naming the
//! part at fault, for the 400's Warning.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Value, json};

/// The largest multipart body read.
pub const MAX_BODY: usize = 64 * 1024;
/// The most parts a body may have.
pub const MAX_PARTS: usize = 8;
/// The largest metadata document read.
pub const MAX_METADATA: usize = 32 * 1024;
/// The most participants, and the most streams, kept from the metadata.
pub const MAX_PARTICIPANTS: usize = 32;
pub const MAX_STREAMS: usize = 16;
/// The longest value (an AOR, a name, an id, a label) kept from the metadata.
pub const MAX_VALUE: usize = 256;
/// The deepest element nesting the metadata may have.
const MAX_DEPTH: usize = 16;

/// The media type of the recording metadata part (RFC 7865 §9).
pub const METADATA_TYPE: &str = "application/rs-metadata+xml";

/// Why an offer was refused; the text names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("multipart body: {0}")]
    Multipart(String),
    #[error("application/sdp part: {0}")]
    Sdp(String),
    #[error("application/rs-metadata+xml part: {0}")]
    Metadata(String),
}

/// A SIPREC offer's two parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The SDP part.
    pub sdp: String,
    /// The `a=label` of each of the SDP's `m=audio` sections, in order.
    pub labels: Vec<String>,
    pub metadata: Metadata,
}

/// The recording metadata, as far as a stream's consumer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The document as sent.
    pub raw: String,
    pub participants: Vec<Participant>,
}

/// One `<participant>` of the metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participant {
    /// Its `participant_id` attribute.
    pub id: String,
    /// Its `<nameID aor="…">`.
    pub aor: Option<String>,
    /// The `<name>` inside its `<nameID>`.
    pub name: Option<String>,
    /// The SDP labels of the streams it sends (its `<participantstreamassoc>`'s `<send>`
    /// stream ids, resolved through the `<stream>` elements).
    pub labels: Vec<String>,
}

impl Metadata {
    /// The start message's `siprecMetadata`: the document as sent and its participants.
    pub fn to_json(&self) -> Value {
        let participants: Vec<Value> = self
            .participants
            .iter()
            .map(|p| {
                json!({
                    "participantId": p.id,
                    "aor": p.aor,
                    "name": p.name,
                    "labels": p.labels,
                })
            })
            .collect();
        json!({ "raw": self.raw, "participants": participants })
    }
}

/// Reads a SIPREC INVITE body: `boundary` is the Content-Type's boundary parameter.
/// It must hold one `application/sdp` part with at least one labelled `m=audio` section,
/// and one `application/rs-metadata+xml` part.
pub fn parse_offer(boundary: &str, body: &[u8]) -> Result<Offer, Error> {
    let mut sdp = None;
    let mut metadata = None;
    for part in split_multipart(boundary, body)? {
        let slot = match part.content_type.as_str() {
            "application/sdp" => &mut sdp,
            METADATA_TYPE => &mut metadata,
            _ => continue,
        };
        if slot.replace(part.body).is_some() {
            return Err(Error::Multipart(format!(
                "more than one {} part",
                part.content_type
            )));
        }
    }
    let sdp = sdp.ok_or_else(|| Error::Multipart("no application/sdp part".into()))?;
    let metadata = metadata.ok_or_else(|| Error::Multipart(format!("no {METADATA_TYPE} part")))?;
    let sdp = std::str::from_utf8(sdp)
        .map_err(|_| Error::Sdp("not UTF-8".into()))?
        .to_string();
    let labels = audio_labels(&sdp)?;
    let metadata = std::str::from_utf8(metadata)
        .map_err(|_| Error::Metadata("not UTF-8".into()))
        .and_then(parse_metadata)?;
    Ok(Offer {
        sdp,
        labels,
        metadata,
    })
}

/// One part of a multipart body.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// Its Content-Type's media type, lower case, without parameters (`text/plain` when
    /// the part has none, RFC 2046 §5.1).
    pub content_type: String,
    pub body: &'a [u8],
}

/// Splits a `multipart/*` body (RFC 2046 §5.1.1) at `boundary`. Lines may end in CRLF or
/// LF; the preamble and epilogue are ignored.
pub fn split_multipart<'a>(boundary: &str, body: &'a [u8]) -> Result<Vec<Part<'a>>, Error> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(Error::Multipart(
            "the boundary must be 1 to 70 characters".into(),
        ));
    }
    if body.len() > MAX_BODY {
        return Err(Error::Multipart(format!("longer than {MAX_BODY} bytes")));
    }
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let starts = delimiter_lines(body, delimiter);
    let mut parts = Vec::new();
    let mut closed = false;
    for (i, &start) in starts.iter().enumerate() {
        let after = &body[start + delimiter.len()..];
        if after.starts_with(b"--") {
            closed = true;
            break;
        }
        let Some(eol) = after.iter().position(|&b| b == b'\n') else {
            break;
        };
        let content_start = start + delimiter.len() + eol + 1;
        let Some(&next) = starts.get(i + 1) else {
            break;
        };
        let mut content_end = next;
        // The line break before a delimiter belongs to the delimiter.
        if content_end > content_start && body[content_end - 1] == b'\n' {
            content_end -= 1;
            if content_end > content_start && body[content_end - 1] == b'\r' {
                content_end -= 1;
            }
        }
        if parts.len() == MAX_PARTS {
            return Err(Error::Multipart(format!("more than {MAX_PARTS} parts")));
        }
        parts.push(part(&body[content_start..content_end.max(content_start)])?);
    }
    if !closed {
        return Err(Error::Multipart(format!(
            "no closing delimiter --{boundary}--"
        )));
    }
    if parts.is_empty() {
        return Err(Error::Multipart("no parts".into()));
    }
    Ok(parts)
}

/// Where each line that begins with `delimiter` starts.
fn delimiter_lines(body: &[u8], delimiter: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut line = 0;
    while line < body.len() {
        if body[line..].starts_with(delimiter) {
            out.push(line);
        }
        match body[line..].iter().position(|&b| b == b'\n') {
            Some(n) => line += n + 1,
            None => break,
        }
    }
    out
}

/// One part: its headers up to the first empty line, then its body.
fn part(bytes: &[u8]) -> Result<Part<'_>, Error> {
    let mut content_type = "text/plain".to_string();
    let mut at = 0;
    loop {
        let rest = &bytes[at..];
        let eol = rest.iter().position(|&b| b == b'\n');
        let line = &rest[..eol.unwrap_or(rest.len())];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at += eol.map_or(rest.len(), |n| n + 1);
        if line.is_empty() {
            break;
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| Error::Multipart("a part's header is not UTF-8".into()))?;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| Error::Multipart(format!("a part's header has no colon: {line:.64}")))?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("c") {
            content_type = value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
        }
        if eol.is_none() {
            break;
        }
    }
    Ok(Part {
        content_type,
        body: &bytes[at.min(bytes.len())..],
    })
}

/// The `a=label` of each `m=audio` section of `sdp` (RFC 4574); every audio section must
/// have one, and there must be at least one.
pub fn audio_labels(sdp: &str) -> Result<Vec<String>, Error> {
    let mut labels: Vec<Option<String>> = Vec::new();
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio ");
            if in_audio {
                if labels.len() == MAX_STREAMS {
                    return Err(Error::Sdp(format!("more than {MAX_STREAMS} audio streams")));
                }
                labels.push(None);
            }
        } else if let (true, Some(label)) = (in_audio, line.strip_prefix("a=label:"))
            && let Some(slot) = labels.last_mut()
        {
            *slot = Some(bounded(label.trim()));
        }
    }
    if labels.is_empty() {
        return Err(Error::Sdp("no m=audio stream".into()));
    }
    labels
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            l.ok_or_else(|| Error::Sdp(format!("m=audio stream {} has no a=label", i + 1)))
        })
        .collect()
}

/// Reads the recording metadata (RFC 7865 §6): its `<participant>`s with their
/// `<nameID aor>` and `<name>`, and which `<stream>` labels each sends.
pub fn parse_metadata(xml: &str) -> Result<Metadata, Error> {
    if xml.len() > MAX_METADATA {
        return Err(Error::Metadata(format!("longer than {MAX_METADATA} bytes")));
    }
    let bad = |e: &dyn std::fmt::Display| Error::Metadata(format!("not well-formed XML: {e}"));
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut participants: Vec<Participant> = Vec::new();
    // stream_id → label
    let mut streams: Vec<(String, String)> = Vec::new();
    // participant_id → the stream ids it sends
    let mut sends: Vec<(String, Vec<String>)> = Vec::new();
    let mut saw_recording = false;
    // The text of the element being read, up to its next tag.
    let mut text = String::new();
    loop {
        let event = reader.read_event().map_err(|e| bad(&e))?;
        if matches!(
            event,
            Event::Start(_) | Event::Empty(_) | Event::End(_) | Event::Eof
        ) {
            let text = std::mem::take(&mut text);
            let text = text.trim();
            let tail: Vec<&str> = path.iter().rev().take(2).map(String::as_str).collect();
            match (text.is_empty(), tail.as_slice()) {
                (false, ["name", "nameID"]) => {
                    if let Some(p) = participants.last_mut() {
                        p.name = Some(bounded(text));
                    }
                }
                (false, ["label", "stream"]) => {
                    if let Some(s) = streams.last_mut() {
                        s.1 = bounded(text);
                    }
                }
                (false, ["send", "participantstreamassoc"]) => {
                    if let Some((_, ids)) = sends.last_mut()
                        && ids.len() < MAX_STREAMS
                    {
                        ids.push(bounded(text));
                    }
                }
                _ => {}
            }
        }
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = local(e);
                if path.is_empty() {
                    if name != "recording" {
                        return Err(Error::Metadata(format!(
                            "the root element is <{name:.32}>, not <recording>"
                        )));
                    }
                    saw_recording = true;
                }
                match (path.last().map(String::as_str), name.as_str()) {
                    (Some("recording"), "participant") => {
                        room(participants.len(), MAX_PARTICIPANTS, "participants")?;
                        participants.push(Participant {
                            id: attr(e, "participant_id")?.unwrap_or_default(),
                            ..Participant::default()
                        });
                    }
                    (Some("participant"), "nameID") => {
                        if let Some(p) = participants.last_mut() {
                            p.aor = attr(e, "aor")?;
                        }
                    }
                    (Some("recording"), "stream") => {
                        room(streams.len(), MAX_STREAMS, "streams")?;
                        let id = attr(e, "stream_id")?.unwrap_or_default();
                        streams.push((id, String::new()));
                    }
                    (Some("recording"), "participantstreamassoc") => {
                        room(sends.len(), MAX_PARTICIPANTS, "participantstreamassoc")?;
                        let id = attr(e, "participant_id")?.unwrap_or_default();
                        sends.push((id, Vec::new()));
                    }
                    _ => {}
                }
                if matches!(event, Event::Start(_)) {
                    if path.len() == MAX_DEPTH {
                        return Err(Error::Metadata(format!("nested deeper than {MAX_DEPTH}")));
                    }
                    path.push(name);
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let t = t.decode().map_err(|e| bad(&e))?;
                push_text(&mut text, &t);
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| bad(&e))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| Error::Metadata(format!("unknown entity &{name:.32};")))?
                            .to_string()
                    }
                };
                push_text(&mut text, &resolved);
            }
            Event::DocType(_) => {
                return Err(Error::Metadata("a DOCTYPE is not allowed".into()));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_recording {
        return Err(Error::Metadata("no <recording> element".into()));
    }
    if !path.is_empty() {
        return Err(Error::Metadata(format!(
            "<{:.32}> is not closed",
            path[path.len() - 1]
        )));
    }
    for (pid, ids) in &sends {
        let Some(p) = participants.iter_mut().find(|p| &p.id == pid) else {
            continue;
        };
        for id in ids {
            if let Some((_, label)) = streams.iter().find(|(s, _)| s == id)
                && !label.is_empty()
                && !p.labels.contains(label)
            {
                p.labels.push(label.clone());
            }
        }
    }
    Ok(Metadata {
        raw: xml.to_string(),
        participants,
    })
}

/// An error when a list of `len` items, at most `max`, is full.
fn room(len: usize, max: usize, what: &str) -> Result<(), Error> {
    if len >= max {
        return Err(Error::Metadata(format!("more than {max} {what}")));
    }
    Ok(())
}

/// Adds to an element's text, keeping at most [`MAX_VALUE`] bytes.
fn push_text(text: &mut String, more: &str) {
    if text.len() < MAX_VALUE {
        text.push_str(more);
    }
}

/// An element's name without its namespace prefix.
fn local(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

/// An attribute's unescaped value, bounded.
fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, Error> {
    for a in e.attributes() {
        let a = a.map_err(|e| Error::Metadata(format!("a bad attribute: {e}")))?;
        if a.key.local_name().as_ref() == name.as_bytes() {
            let v = a
                .normalized_value(quick_xml::XmlVersion::default())
                .map_err(|e| Error::Metadata(format!("attribute {name}: {e}")))?;
            return Ok(Some(bounded(v.trim())));
        }
    }
    Ok(None)
}

/// `s` cut to at most [`MAX_VALUE`] bytes at a character boundary.
fn bounded(s: &str) -> String {
    let mut cut = s.len().min(MAX_VALUE);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
}

#[cfg(test)]
#[path = "siprec_tests.rs"]
mod tests;
