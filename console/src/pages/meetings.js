// Meetings: the list (GET /admin/meetings), creation, and one meeting's attendees, with a
// new attendee's join token and the SIP URI a PBX dials to join; ending a meeting.

import {
  CreateMeetingCommand,
  GetMeetingCommand,
  DeleteMeetingCommand,
  ListAttendeesCommand,
  CreateAttendeeCommand,
  DeleteAttendeeCommand,
} from "@aws-sdk/client-chime-sdk-meetings";
import { ListVoiceConnectorsCommand } from "@aws-sdk/client-chime-sdk-voice";
import { sdk, adminGet, allPages } from "../api.js";
import { add, h, field, form, table, actionButton, copyBox } from "../ui.js";

/** The number dialled in the README's example; any E.164 number reaches the meeting. */
const DIALLED = "+17035550122";

export async function meetingsPage(root, _params, go) {
  const { meetings } = sdk();
  const { Meetings = [], Truncated } = await adminGet("/admin/meetings");
  add(root,
    h("h2", {}, "Meetings"),
    table(
      [
        ["External ID", (m) => h("a", { href: `#/meetings/${m.MeetingId}` }, m.ExternalMeetingId || m.MeetingId)],
        ["Meeting ID", (m) => h("code", {}, m.MeetingId)],
        ["Media region", (m) => m.MediaRegion],
        ["Created", (m) => new Date(m.CreatedTimestamp).toLocaleString()],
      ],
      Meetings,
      "No meetings in progress.",
    ),
    Truncated && h("p", {}, "Only the newest meetings are listed."),
    form({
      title: "Create a meeting",
      submit: "Create meeting",
      fields: [
        field({ label: "External meeting ID", name: "ExternalMeetingId", required: true, maxlength: 64 }),
        field({ label: "Media region", name: "MediaRegion", value: "us-east-1", required: true }),
      ],
      onsubmit: async (v) => {
        const out = await meetings.send(new CreateMeetingCommand({ ...v, ClientRequestToken: crypto.randomUUID() }));
        go(`#/meetings/${out.Meeting.MeetingId}`);
      },
    }),
  );
}

export async function meetingPage(root, { id }, go) {
  const { meetings, voice } = sdk();
  const MeetingId = id;
  const [{ Meeting: m }, attendees, connectors] = await Promise.all([
    meetings.send(new GetMeetingCommand({ MeetingId })),
    allPages((NextToken) => meetings.send(new ListAttendeesCommand({ MeetingId, NextToken, MaxResults: 100 })), (p) => p.Attendees, (p) => p.NextToken),
    allPages((NextToken) => voice.send(new ListVoiceConnectorsCommand({ NextToken, MaxResults: 99 })), (p) => p.VoiceConnectors, (p) => p.NextToken),
  ]);
  const reload = () => go(`#/meetings/${id}`, true);
  const joined = h("div", { class: "joined", "aria-live": "polite" });
  const create = form({
    title: "Add an attendee",
    submit: "Create attendee",
    fields: [
      field({ label: "External user ID", name: "ExternalUserId", required: true, maxlength: 64, hint: "For a phone caller, its E.164 number" }),
      field({
        label: "Voice connector the PBX dials",
        name: "Connector",
        type: "select",
        options: connectors.map((c) => [c.OutboundHostName, `${c.Name} (${c.OutboundHostName})`]),
      }),
    ],
    onsubmit: async (v) => {
      const { Attendee: a } = await meetings.send(new CreateAttendeeCommand({ MeetingId, ExternalUserId: v.ExternalUserId }));
      joined.replaceChildren(
        h("h4", {}, `Attendee ${a.ExternalUserId} created`),
        copyBox("Join token", a.JoinToken, "Copy the join token"),
        v.Connector
          ? copyBox("SIP URI", `sip:${DIALLED}@${v.Connector};transport=tls;X-chime-join-token=${a.JoinToken}`, "Copy the SIP URI")
          : h("p", {}, "Create a voice connector to get a SIP URI to dial."),
        h("button", { type: "button", onclick: reload }, "Refresh attendees"),
      );
    },
  });
  add(root,
    h("p", {}, h("a", { href: "#/meetings" }, "← Meetings")),
    h("h2", {}, `Meeting ${m.ExternalMeetingId || m.MeetingId}`),
    h("dl", { class: "facts" },
      h("dt", {}, "Meeting ID"), h("dd", {}, h("code", {}, m.MeetingId)),
      h("dt", {}, "Media region"), h("dd", {}, m.MediaRegion),
      h("dt", {}, "Audio host"), h("dd", {}, h("code", {}, m.MediaPlacement?.AudioHostUrl || "")),
    ),
    h("h3", {}, "Attendees"),
    table(
      [
        ["External user ID", (a) => a.ExternalUserId],
        ["Attendee ID", (a) => h("code", {}, a.AttendeeId)],
        ["Audio", (a) => a.Capabilities?.Audio || "SendReceive"],
        ["", (a) => actionButton(`Remove ${a.ExternalUserId}`, async () => {
          await meetings.send(new DeleteAttendeeCommand({ MeetingId, AttendeeId: a.AttendeeId }));
          reload();
        })],
      ],
      attendees,
      "No attendees.",
    ),
    create,
    joined,
    h("section", { class: "section danger" },
      h("h3", {}, "End the meeting"),
      actionButton("End meeting", async () => {
        if (!confirm(`End meeting ${m.ExternalMeetingId}? Every call in it is hung up.`)) return;
        await meetings.send(new DeleteMeetingCommand({ MeetingId }));
        go("#/meetings");
      }, { class: "danger" }),
    ),
  );
}
