use super::*;

const METADATA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
  <datamode>complete</datamode>
  <session session_id="hVpd7YQgRW2nD22h7q60JQ=="/>
  <participant participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <nameID aor="sip:alice@pbx.example.com">
      <name xml:lang="en">Alice &amp; Co</name>
    </nameID>
  </participant>
  <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <nameID aor="sip:+15551230002@carrier.example.net"/>
  </participant>
  <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <label>1</label>
  </stream>
  <stream stream_id="i1Pz3to5hGk8fuXl+PKv0w==" session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <label>2</label>
  </stream>
  <participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <send>UAAMm5GRQKSCMVvLyl4rFw==</send>
    <recv>i1Pz3to5hGk8fuXl+PKv0w==</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <send>i1Pz3to5hGk8fuXl+PKv0w==</send>
    <recv>UAAMm5GRQKSCMVvLyl4rFw==</recv>
  </participantstreamassoc>
</recording>"#;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:1\r\na=sendonly\r\n\
m=audio 6002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:2\r\na=sendonly\r\n";

fn body(boundary: &str, sdp: &str, xml: &str) -> Vec<u8> {
    format!(
        "preamble\r\n--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n\
         --{boundary}\r\nContent-Type: application/rs-metadata+xml\r\n\
         Content-Disposition: recording-session\r\n\r\n{xml}\r\n--{boundary}--\r\n"
    )
    .into_bytes()
}

#[test]
fn a_siprec_offer_gives_its_sdp_labels_and_participants() {
    let offer = parse_offer(
        "OSS-unique-boundary-42",
        &body("OSS-unique-boundary-42", SDP, METADATA),
    )
    .unwrap();
    assert_eq!(offer.sdp, SDP, "the SDP part is kept byte for byte");
    assert_eq!(offer.labels, ["1", "2"]);
    assert_eq!(offer.metadata.raw, METADATA);
    let p = &offer.metadata.participants;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].id, "srfBElmCRp2QB23b7Mpk0w==");
    assert_eq!(p[0].aor.as_deref(), Some("sip:alice@pbx.example.com"));
    assert_eq!(p[0].name.as_deref(), Some("Alice & Co"));
    assert_eq!(p[0].labels, ["1"]);
    assert_eq!(
        p[1].aor.as_deref(),
        Some("sip:+15551230002@carrier.example.net")
    );
    assert_eq!(p[1].name, None);
    assert_eq!(p[1].labels, ["2"]);
    let j = offer.metadata.to_json();
    assert_eq!(
        j["participants"][1]["aor"],
        "sip:+15551230002@carrier.example.net"
    );
    assert_eq!(j["participants"][0]["labels"][0], "1");
    assert_eq!(j["raw"], METADATA);
}

#[test]
fn lf_line_ends_and_prefixed_namespaces_are_read() {
    let xml = METADATA
        .replace("<recording xmlns=", "<rs:recording xmlns:rs=")
        .replace("</recording>", "</rs:recording>");
    let b = String::from_utf8(body("b", &SDP.replace("\r\n", "\n"), &xml))
        .unwrap()
        .replace("\r\n", "\n");
    let offer = parse_offer("b", b.as_bytes()).unwrap();
    assert_eq!(offer.labels, ["1", "2"]);
    assert_eq!(offer.metadata.participants.len(), 2);
}

#[test]
fn a_missing_part_is_named() {
    let only_sdp = format!("--b\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b--\r\n");
    let e = parse_offer("b", only_sdp.as_bytes()).unwrap_err();
    assert_eq!(
        e,
        Error::Multipart("no application/rs-metadata+xml part".into())
    );
    assert!(e.to_string().contains("rs-metadata+xml"));
    let only_xml =
        format!("--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n{METADATA}\r\n--b--\r\n");
    assert_eq!(
        parse_offer("b", only_xml.as_bytes()).unwrap_err(),
        Error::Multipart("no application/sdp part".into())
    );
}

#[test]
fn a_body_without_its_closing_delimiter_is_refused() {
    let mut b = body("b", SDP, METADATA);
    let cut = b.len() - "--b--\r\n".len();
    b.truncate(cut);
    let e = parse_offer("b", &b).unwrap_err();
    assert!(
        matches!(e, Error::Multipart(ref m) if m.contains("closing")),
        "{e}"
    );
    assert!(parse_offer("other", &body("b", SDP, METADATA)).is_err());
}

#[test]
fn size_and_count_caps_hold() {
    let big = vec![b'x'; MAX_BODY + 1];
    assert!(matches!(parse_offer("b", &big), Err(Error::Multipart(m)) if m.contains("longer")));
    let mut many = String::new();
    for _ in 0..=MAX_PARTS {
        many.push_str("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
    }
    many.push_str("--b--\r\n");
    assert!(
        matches!(split_multipart("b", many.as_bytes()), Err(Error::Multipart(m)) if m.contains("parts"))
    );
    assert!(split_multipart(&"b".repeat(71), b"").is_err());
    let long = format!(
        "<recording>{}</recording>",
        "<participant participant_id='p'/>".repeat(MAX_PARTICIPANTS + 1)
    );
    assert!(matches!(parse_metadata(&long), Err(Error::Metadata(m)) if m.contains("participants")));
    let deep = format!("<recording>{}", "<a>".repeat(MAX_DEPTH + 1));
    assert!(parse_metadata(&deep).is_err());
    let huge_aor = format!(
        "<recording><participant participant_id='p'><nameID aor='sip:{}@x'/></participant></recording>",
        "a".repeat(1000)
    );
    let m = parse_metadata(&huge_aor).unwrap();
    assert_eq!(m.participants[0].aor.as_ref().unwrap().len(), MAX_VALUE);
}

#[test]
fn bad_sdp_is_named() {
    let no_label = SDP.replace("a=label:2\r\n", "");
    let e = parse_offer("b", &body("b", &no_label, METADATA)).unwrap_err();
    assert_eq!(e, Error::Sdp("m=audio stream 2 has no a=label".into()));
    assert!(e.to_string().starts_with("application/sdp part"));
    let video = "v=0\r\nm=video 5000 RTP/AVP 96\r\na=label:1\r\n";
    assert_eq!(
        parse_offer("b", &body("b", video, METADATA)).unwrap_err(),
        Error::Sdp("no m=audio stream".into())
    );
}

#[test]
fn bad_metadata_is_named() {
    for (xml, want) in [
        ("<recording><participant>", "not closed"),
        ("<recording></participant>", "not well-formed"),
        ("<other/>", "not <recording>"),
        ("", "no <recording>"),
        ("<!DOCTYPE r [<!ENTITY x 'y'>]><recording/>", "DOCTYPE"),
        (
            "<recording><participant participant_id='&x;'/></recording>",
            "participant_id",
        ),
        ("<recording><x>&x;</x></recording>", "unknown entity"),
    ] {
        let e = parse_metadata(xml).unwrap_err();
        assert!(
            matches!(e, Error::Metadata(ref m) if m.contains(want)),
            "{xml}: {e}"
        );
        assert!(
            e.to_string()
                .starts_with("application/rs-metadata+xml part")
        );
    }
    assert!(parse_metadata(&"x".repeat(MAX_METADATA + 1)).is_err());
}

#[test]
fn a_part_without_headers_is_text_plain() {
    let parts = split_multipart("b", b"--b\r\n\r\nhello\r\n--b--").unwrap();
    assert_eq!(
        parts,
        [Part {
            content_type: "text/plain".into(),
            body: b"hello"
        }]
    );
    let e = split_multipart("b", b"--b\r\nno colon here\r\n\r\nx\r\n--b--").unwrap_err();
    assert!(e.to_string().contains("no colon"), "{e}");
}
