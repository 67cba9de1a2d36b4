#!/usr/bin/env python3
"""Writes crates/api/model/unserved.json: every operation of botocore's chime-sdk-voice and
chime-sdk-meetings models that crates/api/model/{voice,meetings}.json do not serve, with its
HTTP route and a reason in plain words. The server answers such a request with a clear
"not served" error naming the operation instead of a bare unknown-route error. Run it after
scripts/extract-api-model.py whenever the served set changes:

    python3 scripts/extract-unserved-ops.py
"""
import importlib.util
import json
import os

# botocore's model loader, shared with extract-api-model.py.
_spec = importlib.util.spec_from_file_location(
    "extract_api_model", os.path.join(os.path.dirname(__file__), "extract-api-model.py"))
_extract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_extract)
load = _extract.load

SERVICES = {
    "voice": "chime-sdk-voice/2022-08-03",
    "meetings": "chime-sdk-meetings/2021-07-15",
}

# Why a family of operations is not served, by name fragment (first match wins).
REASONS = [
    ("Proxy", "proxy sessions (number masking) are not implemented"),
    ("VoiceProfile", "voice profiles need Amazon's speaker search service, which has no self-hosted equivalent here"),
    ("SpeakerSearch", "speaker search needs Amazon's voice analytics service, which has no self-hosted equivalent here"),
    ("VoiceToneAnalysis", "tone analysis needs Amazon's voice analytics service, which has no self-hosted equivalent here"),
    ("MeetingTranscription", "meeting transcription needs Amazon Transcribe, which has no self-hosted equivalent here"),
    ("E911", "E911 address validation needs a carrier's emergency database"),
]
DEFAULT_REASON = "not implemented yet"


def reason(name):
    return next((r for frag, r in REASONS if frag in name), DEFAULT_REASON)


def main():
    model_dir = os.path.join(os.path.dirname(__file__), "..", "crates", "api", "model")
    out = {}
    for short, rel in SERVICES.items():
        botocore_ops = load(rel)["operations"]
        with open(os.path.join(model_dir, f"{short}.json")) as f:
            served = set(json.load(f)["operations"])
        out[short] = {
            name: {
                "method": op["http"]["method"],
                "requestUri": op["http"]["requestUri"],
                "reason": reason(name),
            }
            for name, op in sorted(botocore_ops.items())
            if name not in served
        }
    path = os.path.join(model_dir, "unserved.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{path}: " + ", ".join(f"{k} {len(v)} not served" for k, v in out.items()))


if __name__ == "__main__":
    main()
