// Phone numbers: the inventory, and association with voice connectors and groups.

import {
  ListPhoneNumbersCommand,
  ListVoiceConnectorsCommand,
  ListVoiceConnectorGroupsCommand,
  AssociatePhoneNumbersWithVoiceConnectorCommand,
  DisassociatePhoneNumbersFromVoiceConnectorCommand,
  AssociatePhoneNumbersWithVoiceConnectorGroupCommand,
  DisassociatePhoneNumbersFromVoiceConnectorGroupCommand,
} from "@aws-sdk/client-chime-sdk-voice";
import { sdk, allPages } from "../api.js";
import { add, h, field, form, table, actionButton } from "../ui.js";

export async function numbersPage(root, _params, go) {
  const { voice } = sdk();
  const [numbers, connectors, groups] = await Promise.all([
    allPages((NextToken) => voice.send(new ListPhoneNumbersCommand({ NextToken, MaxResults: 100 })), (p) => p.PhoneNumbers, (p) => p.NextToken),
    allPages((NextToken) => voice.send(new ListVoiceConnectorsCommand({ NextToken, MaxResults: 99 })), (p) => p.VoiceConnectors, (p) => p.NextToken),
    allPages((NextToken) => voice.send(new ListVoiceConnectorGroupsCommand({ NextToken, MaxResults: 99 })), (p) => p.VoiceConnectorGroups, (p) => p.NextToken),
  ]);
  const names = new Map([
    ...connectors.map((c) => [c.VoiceConnectorId, `connector ${c.Name}`]),
    ...groups.map((g) => [g.VoiceConnectorGroupId, `group ${g.Name}`]),
  ]);
  const reload = () => go("#/numbers", true);
  const disassociate = (n, a) =>
    actionButton(`Disassociate from ${names.get(a.Value) || a.Value}`, async () => {
      const E164PhoneNumbers = [n.E164PhoneNumber];
      if (a.Name === "VoiceConnectorGroupId")
        await voice.send(new DisassociatePhoneNumbersFromVoiceConnectorGroupCommand({ VoiceConnectorGroupId: a.Value, E164PhoneNumbers }));
      else await voice.send(new DisassociatePhoneNumbersFromVoiceConnectorCommand({ VoiceConnectorId: a.Value, E164PhoneNumbers }));
      reload();
    });
  const targets = [
    ["", "Choose…"],
    ...connectors.map((c) => [`vc:${c.VoiceConnectorId}`, `Voice connector ${c.Name}`]),
    ...groups.map((g) => [`group:${g.VoiceConnectorGroupId}`, `Group ${g.Name}`]),
  ];
  add(root,
    h("h2", {}, "Phone numbers"),
    table(
      [
        ["Number", (n) => n.E164PhoneNumber],
        ["Status", (n) => n.Status],
        ["Product type", (n) => n.ProductType],
        ["Associated with", (n) => (n.Associations || []).map((a) => h("div", {}, names.get(a.Value) || a.Value, " ", disassociate(n, a)))],
      ],
      numbers,
      "No phone numbers in the inventory (`voice-connector admin` adds them).",
    ),
    numbers.length > 0 &&
      form({
        title: "Associate a number",
        submit: "Associate",
        fields: [
          field({ label: "Phone number", name: "Number", type: "select", options: numbers.map((n) => [n.E164PhoneNumber, n.E164PhoneNumber]) }),
          field({ label: "With", name: "Target", type: "select", options: targets }),
          field({ label: "Move it if it is associated elsewhere", name: "ForceAssociate", type: "checkbox" }),
        ],
        onsubmit: async (v) => {
          if (!v.Target) throw Object.assign(new Error("Target: choose a voice connector or group"), { name: "Required" });
          const [kind, id] = v.Target.split(":");
          const common = { E164PhoneNumbers: [v.Number], ForceAssociate: v.ForceAssociate };
          const out =
            kind === "group"
              ? await voice.send(new AssociatePhoneNumbersWithVoiceConnectorGroupCommand({ VoiceConnectorGroupId: id, ...common }))
              : await voice.send(new AssociatePhoneNumbersWithVoiceConnectorCommand({ VoiceConnectorId: id, ...common }));
          const errors = out.PhoneNumberErrors || [];
          if (errors.length) throw Object.assign(new Error(errors.map((e) => `${e.PhoneNumberId}: ${e.ErrorMessage}`).join("; ")), { name: errors[0].ErrorCode });
          reload();
        },
      }),
  );
}
