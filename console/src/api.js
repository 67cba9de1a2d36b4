// The console's access to this server: the AWS SDK's chime-sdk-voice and chime-sdk-meetings
// clients pointed at the page's own origin, and SigV4-signed requests for the admin endpoints.
// The keys live in sessionStorage only: gone when the tab closes.

import { ChimeSDKVoiceClient } from "@aws-sdk/client-chime-sdk-voice";
import { ChimeSDKMeetingsClient } from "@aws-sdk/client-chime-sdk-meetings";
import { SignatureV4 } from "@smithy/signature-v4";
import { HttpRequest } from "@smithy/protocol-http";
import { Sha256 } from "@aws-crypto/sha256-js";

const KEY = "vc-console-credentials";

/** The signed-in keys ({accessKeyId, secretAccessKey, region}), or null. */
export function session() {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function saveSession(s) {
  sessionStorage.setItem(KEY, JSON.stringify(s));
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  clients = null;
}

let clients = null;

/** {voice, meetings}: SDK clients signed with the session's keys. */
export function sdk(s = session()) {
  if (clients && clients.session === s) return clients;
  const config = {
    region: s.region || "us-east-1",
    endpoint: location.origin,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
    // Errors are shown as the API wrote them, at once: no retries behind the user's back.
    maxAttempts: 1,
  };
  clients = {
    session: s,
    voice: new ChimeSDKVoiceClient(config),
    meetings: new ChimeSDKMeetingsClient(config),
  };
  return clients;
}

/** An API error as the API wrote it: its AWS error code and message. */
export function describeError(e) {
  const code = e?.name || e?.Code || "Error";
  const message = e?.message || e?.Message || String(e);
  const status = e?.$metadata?.httpStatusCode;
  return { code, message, status, text: `${code}: ${message}` };
}

/** A SigV4-signed GET of an admin endpoint (`path` with `query` parameters) as JSON; an
 * error answer is thrown as {name, message} from its AWS error body. */
export function adminGet(path, query = {}, s = session()) {
  return adminCall("GET", path, query, undefined, s);
}

/** A SigV4-signed `method` request of an admin endpoint, with `body` (an object, sent as
 * JSON) if given; its JSON answer, or its AWS error thrown as {name, message}. */
export async function adminCall(method, path, query = {}, body = undefined, s = session()) {
  const signer = new SignatureV4({
    service: "chime",
    region: s.region || "us-east-1",
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
    sha256: Sha256,
  });
  const clean = {};
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") clean[k] = String(v);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers = { host: location.host };
  if (payload !== undefined) headers["content-type"] = "application/json";
  const request = new HttpRequest({
    method,
    protocol: location.protocol,
    hostname: location.hostname,
    port: location.port ? Number(location.port) : undefined,
    path,
    query: clean,
    headers,
    body: payload,
  });
  const signed = await signer.sign(request);
  const sent = { ...signed.headers };
  delete sent.host; // the browser sends it, with the same value
  const qs = new URLSearchParams(clean).toString();
  const resp = await fetch(path + (qs ? `?${qs}` : ""), { method, headers: sent, body: payload });
  const text = await resp.text();
  let answer = null;
  try {
    answer = text ? JSON.parse(text) : null;
  } catch {
    answer = null;
  }
  if (!resp.ok) {
    const err = new Error(answer?.Message || answer?.message || text || resp.statusText);
    err.name = resp.headers.get("x-amzn-errortype")?.split(":")[0] || answer?.Code || `HTTP ${resp.status}`;
    err.$metadata = { httpStatusCode: resp.status };
    throw err;
  }
  return answer;
}

/** Every page of a paginated SDK list: `call(token)` returns one page, `items(page)` its
 * rows, `next(page)` its token; at most `maxPages` pages. */
export async function allPages(call, items, next, maxPages = 50) {
  const out = [];
  let token;
  for (let i = 0; i < maxPages; i++) {
    const page = await call(token);
    out.push(...(items(page) || []));
    token = next(page);
    if (!token) break;
  }
  return out;
}
