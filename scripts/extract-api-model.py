#!/usr/bin/env python3
"""Writes crates/api/model/{voice,meetings}.json: the operations this server implements and
the shapes they reference, taken from botocore's service models (the API contract), with the
documentation strings stripped. Run it again after upgrading botocore to pick up changes:

    python3 scripts/extract-api-model.py
"""
import gzip, json, os, sys
import botocore

OPS = {
    "voice": ("chime-sdk-voice/2022-08-03", [
        "CreateVoiceConnector", "GetVoiceConnector", "ListVoiceConnectors", "UpdateVoiceConnector",
        "DeleteVoiceConnector", "PutVoiceConnectorTermination", "GetVoiceConnectorTermination",
        "DeleteVoiceConnectorTermination", "PutVoiceConnectorTerminationCredentials",
        "ListVoiceConnectorTerminationCredentials", "DeleteVoiceConnectorTerminationCredentials",
        "GetVoiceConnectorTerminationHealth", "PutVoiceConnectorOrigination",
        "GetVoiceConnectorOrigination", "DeleteVoiceConnectorOrigination",
        "PutVoiceConnectorLoggingConfiguration", "GetVoiceConnectorLoggingConfiguration",
        "AssociatePhoneNumbersWithVoiceConnector", "DisassociatePhoneNumbersFromVoiceConnector",
        "GetPhoneNumber", "ListPhoneNumbers",
        "CreateVoiceConnectorGroup", "GetVoiceConnectorGroup", "ListVoiceConnectorGroups",
        "UpdateVoiceConnectorGroup", "DeleteVoiceConnectorGroup",
        "AssociatePhoneNumbersWithVoiceConnectorGroup",
        "DisassociatePhoneNumbersFromVoiceConnectorGroup", "UpdatePhoneNumber",
        "BatchUpdatePhoneNumber", "DeletePhoneNumber", "BatchDeletePhoneNumber",
        "RestorePhoneNumber",
        "GetPhoneNumberSettings", "UpdatePhoneNumberSettings",
        "SearchAvailablePhoneNumbers", "CreatePhoneNumberOrder", "GetPhoneNumberOrder",
        "ListPhoneNumberOrders", "ListSupportedPhoneNumberCountries",
        "CreateSipMediaApplication", "GetSipMediaApplication", "ListSipMediaApplications",
        "UpdateSipMediaApplication", "DeleteSipMediaApplication",
        "PutSipMediaApplicationLoggingConfiguration", "GetSipMediaApplicationLoggingConfiguration",
        "PutSipMediaApplicationAlexaSkillConfiguration",
        "GetSipMediaApplicationAlexaSkillConfiguration",
        "CreateSipMediaApplicationCall", "UpdateSipMediaApplicationCall",
        "CreateSipRule", "GetSipRule", "ListSipRules", "UpdateSipRule", "DeleteSipRule",
        "TagResource", "UntagResource", "ListTagsForResource",
        "ListAvailableVoiceConnectorRegions", "GetGlobalSettings", "UpdateGlobalSettings",
        "PutVoiceConnectorExternalSystemsConfiguration",
        "GetVoiceConnectorExternalSystemsConfiguration",
        "DeleteVoiceConnectorExternalSystemsConfiguration",
        "PutVoiceConnectorEmergencyCallingConfiguration",
        "GetVoiceConnectorEmergencyCallingConfiguration",
        "DeleteVoiceConnectorEmergencyCallingConfiguration",
        "PutVoiceConnectorStreamingConfiguration", "GetVoiceConnectorStreamingConfiguration",
        "DeleteVoiceConnectorStreamingConfiguration",
    ]),
    "meetings": ("chime-sdk-meetings/2021-07-15", [
        "CreateMeeting", "CreateMeetingWithAttendees", "GetMeeting", "DeleteMeeting",
        "CreateAttendee", "BatchCreateAttendee", "GetAttendee", "ListAttendees", "DeleteAttendee",
        "UpdateAttendeeCapabilities", "BatchUpdateAttendeeCapabilitiesExcept",
        "TagResource", "UntagResource", "ListTagsForResource",
    ]),
}
KEEP_OP = ("name", "http", "input", "output", "errors")
KEEP_SHAPE = ("type", "required", "members", "member", "key", "value", "enum", "min", "max",
              "pattern", "error", "exception", "timestampFormat", "sensitive")
KEEP_MEMBER = ("shape", "location", "locationName")

def load(rel):
    base = os.path.join(os.path.dirname(botocore.__file__), "data", rel)
    for name in ("service-2.json", "service-2.json.gz"):
        p = os.path.join(base, name)
        if os.path.exists(p):
            opener = gzip.open if p.endswith(".gz") else open
            with opener(p, "rt") as f:
                return json.load(f)
    sys.exit(f"botocore has no model at {base}")

def main():
    out_dir = os.path.join(os.path.dirname(__file__), "..", "crates", "api", "model")
    for short, (rel, ops) in OPS.items():
        model = load(rel)
        shapes, todo = {}, []
        out_ops = {}
        for op in ops:
            o = model["operations"][op]
            out_ops[op] = {k: o[k] for k in KEEP_OP if k in o}
            for k in ("input", "output"):
                if k in o:
                    todo.append(o[k]["shape"])
            todo += [e["shape"] for e in o.get("errors", [])]
        while todo:
            name = todo.pop()
            if name in shapes:
                continue
            s = model["shapes"][name]
            shapes[name] = {k: s[k] for k in KEEP_SHAPE if k in s}
            if "members" in s:
                shapes[name]["members"] = {
                    m: {k: v for k, v in mv.items() if k in KEEP_MEMBER} for m, mv in s["members"].items()}
                todo += [mv["shape"] for mv in s["members"].values()]
            for k in ("member", "key", "value"):
                if k in s:
                    shapes[name][k] = {"shape": s[k]["shape"]}
                    todo.append(s[k]["shape"])
        meta = {k: model["metadata"][k] for k in ("apiVersion", "endpointPrefix", "protocol", "serviceId", "signingName")}
        with open(os.path.join(out_dir, f"{short}.json"), "w") as f:
            json.dump({"metadata": meta, "operations": out_ops, "shapes": dict(sorted(shapes.items()))}, f, indent=1, sort_keys=False)
            f.write("\n")
        print(f"{short}: {len(out_ops)} operations, {len(shapes)} shapes")

if __name__ == "__main__":
    main()
