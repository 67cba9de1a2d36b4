// Voice connectors: the list, creation, and one connector's settings (general,
// termination and its health, credentials, origination routes, logging), each saved with
// its own API call.

import {
  ListVoiceConnectorsCommand,
  CreateVoiceConnectorCommand,
  GetVoiceConnectorCommand,
  UpdateVoiceConnectorCommand,
  DeleteVoiceConnectorCommand,
  GetVoiceConnectorTerminationCommand,
  PutVoiceConnectorTerminationCommand,
  DeleteVoiceConnectorTerminationCommand,
  GetVoiceConnectorTerminationHealthCommand,
  ListVoiceConnectorTerminationCredentialsCommand,
  PutVoiceConnectorTerminationCredentialsCommand,
  DeleteVoiceConnectorTerminationCredentialsCommand,
  GetVoiceConnectorOriginationCommand,
  PutVoiceConnectorOriginationCommand,
  DeleteVoiceConnectorOriginationCommand,
  GetVoiceConnectorLoggingConfigurationCommand,
  PutVoiceConnectorLoggingConfigurationCommand,
} from "@aws-sdk/client-chime-sdk-voice";
import { sdk, allPages } from "../api.js";
import { add, h, field, form, table, errorBox, actionButton, lines } from "../ui.js";

const REGIONS = ["us-east-1", "us-west-2", "ca-central-1", "eu-central-1", "eu-west-1", "eu-west-2", "ap-northeast-1", "ap-southeast-1", "ap-southeast-2"];

export async function listPage(root, _params, go) {
  const { voice } = sdk();
  const connectors = await allPages(
    (NextToken) => voice.send(new ListVoiceConnectorsCommand({ NextToken, MaxResults: 99 })),
    (p) => p.VoiceConnectors,
    (p) => p.NextToken,
  );
  const create = form({
    title: "Create a voice connector",
    submit: "Create",
    fields: [
      field({ label: "Name", name: "Name", required: true, maxlength: 256 }),
      field({ label: "AWS Region", name: "AwsRegion", type: "select", options: REGIONS.map((r) => [r, r]) }),
      field({ label: "Require encryption (TLS and SRTP)", name: "RequireEncryption", type: "checkbox", value: true }),
    ],
    onsubmit: async (v) => {
      const out = await voice.send(new CreateVoiceConnectorCommand(v));
      go(`#/connectors/${out.VoiceConnector.VoiceConnectorId}`);
    },
  });
  add(root,
    h("h2", {}, "Voice connectors"),
    table(
      [
        ["Name", (c) => h("a", { href: `#/connectors/${c.VoiceConnectorId}` }, c.Name)],
        ["ID", (c) => h("code", {}, c.VoiceConnectorId)],
        ["Outbound host name", (c) => h("code", {}, c.OutboundHostName)],
        ["Encryption", (c) => (c.RequireEncryption ? "Required" : "Optional")],
        ["Region", (c) => c.AwsRegion],
      ],
      connectors,
      "No voice connectors yet.",
    ),
    create,
  );
}

export async function detailPage(root, { id }, go) {
  const { voice } = sdk();
  const VoiceConnectorId = id;
  const { VoiceConnector: vc } = await voice.send(new GetVoiceConnectorCommand({ VoiceConnectorId }));
  add(root,
    h("p", {}, h("a", { href: "#/connectors" }, "← Voice connectors")),
    h("h2", {}, `Voice connector ${vc.Name}`),
    h("dl", { class: "facts" },
      h("dt", {}, "ID"), h("dd", {}, h("code", {}, vc.VoiceConnectorId)),
      h("dt", {}, "Outbound host name"), h("dd", {}, h("code", {}, vc.OutboundHostName)),
      h("dt", {}, "ARN"), h("dd", {}, h("code", {}, vc.VoiceConnectorArn || "")),
    ),
  );
  const reload = () => go(`#/connectors/${id}`, true);
  add(root,
    form({
      title: "General",
      submit: "Save general settings",
      fields: [
        field({ label: "Name", name: "Name", value: vc.Name, required: true }),
        field({ label: "Require encryption (TLS and SRTP)", name: "RequireEncryption", type: "checkbox", value: vc.RequireEncryption }),
      ],
      onsubmit: async (v) => {
        await voice.send(new UpdateVoiceConnectorCommand({ VoiceConnectorId, ...v }));
        reload();
      },
    }),
  );
  const sections = [termination, credentials, origination, logging];
  for (const section of sections) {
    const box = h("section", { class: "section" });
    add(root, box);
    try {
      await section(box, voice, VoiceConnectorId, reload);
    } catch (e) {
      add(box, errorBox(e));
    }
  }
  add(root,
    h("section", { class: "section danger" },
      h("h3", {}, "Delete"),
      actionButton("Delete this voice connector", async () => {
        if (!confirm(`Delete voice connector ${vc.Name}?`)) return;
        await voice.send(new DeleteVoiceConnectorCommand({ VoiceConnectorId }));
        go("#/connectors");
      }, { class: "danger" }),
    ),
  );
}

/** The stored value of a Get*, or `fallback` when there is none (NotFound). */
async function getOr(voice, command, key, fallback) {
  try {
    return (await voice.send(command))[key] ?? fallback;
  } catch (e) {
    if (e.name === "NotFoundException") return fallback;
    throw e;
  }
}

async function termination(box, voice, VoiceConnectorId, reload) {
  const t = await getOr(voice, new GetVoiceConnectorTerminationCommand({ VoiceConnectorId }), "Termination", null);
  const cur = t || {};
  add(box,
    form({
      title: "Termination",
      submit: t ? "Save termination" : "Enable termination",
      fields: [
        field({ label: "Allowed source CIDRs (one per line)", name: "CidrAllowedList", type: "textarea", value: (cur.CidrAllowedList || []).join("\n") }),
        field({ label: "Calling regions (comma-separated ISO codes)", name: "CallingRegions", value: (cur.CallingRegions || ["US"]).join(", ") }),
        field({ label: "Calls per second limit", name: "CpsLimit", type: "number", min: 1, value: cur.CpsLimit ?? 1 }),
        field({ label: "Default phone number (E.164)", name: "DefaultPhoneNumber", value: cur.DefaultPhoneNumber || "" }),
        field({ label: "Disabled", name: "Disabled", type: "checkbox", value: cur.Disabled }),
      ],
      onsubmit: async (v) => {
        const Termination = {
          CidrAllowedList: lines(v.CidrAllowedList),
          CallingRegions: lines(v.CallingRegions),
          CpsLimit: v.CpsLimit === "" ? undefined : Number(v.CpsLimit),
          DefaultPhoneNumber: v.DefaultPhoneNumber || undefined,
          Disabled: v.Disabled,
        };
        await voice.send(new PutVoiceConnectorTerminationCommand({ VoiceConnectorId, Termination }));
        reload();
      },
    }),
  );
  if (!t) return;
  add(box, actionButton("Delete termination", async () => {
    await voice.send(new DeleteVoiceConnectorTerminationCommand({ VoiceConnectorId }));
    reload();
  }));
  const health = await getOr(voice, new GetVoiceConnectorTerminationHealthCommand({ VoiceConnectorId }), "TerminationHealth", null);
  add(box,
    h("h4", {}, "Termination health"),
    health && health.Timestamp
      ? h("p", { class: "health" }, `Last OPTIONS from ${health.Source} at ${new Date(health.Timestamp).toLocaleString()}`)
      : h("p", { class: "health" }, "No SIP OPTIONS received from an allowed source yet."),
  );
}

async function credentials(box, voice, VoiceConnectorId, reload) {
  const { Usernames = [] } = await voice.send(new ListVoiceConnectorTerminationCredentialsCommand({ VoiceConnectorId }));
  add(box,
    h("h3", {}, "Termination credentials"),
    table(
      [
        ["User name", (u) => u],
        ["", (u) => actionButton(`Delete ${u}`, async () => {
          await voice.send(new DeleteVoiceConnectorTerminationCredentialsCommand({ VoiceConnectorId, Usernames: [u] }));
          reload();
        })],
      ],
      Usernames,
      "No credentials: digest authentication is off.",
    ),
    form({
      title: "Add credentials",
      submit: "Add credentials",
      fields: [
        field({ label: "User name", name: "Username", required: true, autocomplete: "off" }),
        field({ label: "Password", name: "Password", type: "password", required: true, autocomplete: "new-password" }),
      ],
      onsubmit: async (v) => {
        await voice.send(new PutVoiceConnectorTerminationCredentialsCommand({ VoiceConnectorId, Credentials: [v] }));
        reload();
      },
    }),
  );
}

async function origination(box, voice, VoiceConnectorId, reload) {
  const o = await getOr(voice, new GetVoiceConnectorOriginationCommand({ VoiceConnectorId }), "Origination", null);
  const routes = o?.Routes || [];
  const save = (Routes, Disabled = o?.Disabled ?? false) =>
    voice.send(new PutVoiceConnectorOriginationCommand({ VoiceConnectorId, Origination: { Routes, Disabled } }));
  add(box,
    h("h3", {}, "Origination"),
    o && h("p", {}, o.Disabled ? "Origination is disabled." : "Origination is enabled."),
    table(
      [
        ["Host", (r) => h("code", {}, r.Host)],
        ["Port", (r) => r.Port],
        ["Protocol", (r) => r.Protocol],
        ["Priority", (r) => r.Priority],
        ["Weight", (r) => r.Weight],
        ["", (r) => actionButton(`Remove ${r.Host}`, async () => {
          const rest = routes.filter((x) => x !== r);
          if (rest.length) await save(rest);
          else await voice.send(new DeleteVoiceConnectorOriginationCommand({ VoiceConnectorId }));
          reload();
        })],
      ],
      routes,
      "No origination routes.",
    ),
    form({
      title: "Add an origination route",
      submit: "Add route",
      fields: [
        field({ label: "Host (name or IPv4 address)", name: "Host", required: true }),
        field({ label: "Port", name: "Port", type: "number", min: 0, max: 65535, value: 5060 }),
        field({ label: "Protocol", name: "Protocol", type: "select", options: [["UDP", "UDP"], ["TCP", "TCP"]] }),
        field({ label: "Priority (1 is tried first)", name: "Priority", type: "number", min: 1, max: 100, value: 1 }),
        field({ label: "Weight", name: "Weight", type: "number", min: 1, max: 100, value: 1 }),
      ],
      onsubmit: async (v) => {
        const route = { Host: v.Host, Port: Number(v.Port), Protocol: v.Protocol, Priority: Number(v.Priority), Weight: Number(v.Weight) };
        await save([...routes, route]);
        reload();
      },
    }),
    o && actionButton(o.Disabled ? "Enable origination" : "Disable origination", async () => {
      await save(routes, !o.Disabled);
      reload();
    }),
  );
}

async function logging(box, voice, VoiceConnectorId, reload) {
  const l = await getOr(voice, new GetVoiceConnectorLoggingConfigurationCommand({ VoiceConnectorId }), "LoggingConfiguration", {});
  add(box,
    form({
      title: "Logging",
      submit: "Save logging",
      fields: [
        field({ label: "SIP message logs", name: "EnableSIPLogs", type: "checkbox", value: l.EnableSIPLogs }),
        field({ label: "Media metric logs", name: "EnableMediaMetricLogs", type: "checkbox", value: l.EnableMediaMetricLogs }),
      ],
      onsubmit: async (v) => {
        await voice.send(new PutVoiceConnectorLoggingConfigurationCommand({ VoiceConnectorId, LoggingConfiguration: v }));
        reload();
      },
    }),
  );
}
