// Test page for browser attendees: the unmodified amazon-chime-sdk-js (npm) joins a
// voice-connector meeting and this script reports, several times a second, everything a
// test wants to assert on: the SDK's session state and stop status, the roster
// (attendee presence), volume indicators, the received audio's tone levels (Goertzel on a
// WebAudio AnalyserNode fed by the meeting's remote stream), WebRTC getStats counters, the
// SDK's log lines and page errors.
//
// URL parameters (all optional):
//   join=<url>      JSON {Meeting, Attendee} as returned by CreateMeeting/CreateAttendee
//                   (default /join)
//   report=<url>    where the reports are POSTed (default /report); a JSON answer
//                   {"commands": ["mute"|"unmute"|"stop"|"camera-on"|"camera-off"|
//                   "send:<topic>:<text>"|"burst:<topic>:<n>"|"unload"|
//                   "content-share:<hz>"|"content-stop", ...]} is carried out
//   tones=440,1000  frequencies (Hz) whose level in the received audio is measured
//   interval=250    milliseconds between reports
//   loglevel=INFO   the SDK's log level (DEBUG, INFO, WARN, ERROR)
//   mic=<deviceId>  audio input device (default: the first listed, Chromium's fake one)
//   topics=a,b      data-message topics to subscribe to (realtimeSubscribeToReceiveDataMessage)

import {
  ConsoleLogger,
  DefaultDeviceController,
  DefaultMeetingSession,
  LogLevel,
  MeetingSessionConfiguration,
  MeetingSessionStatusCode,
  MultiLogger,
  Versioning,
} from 'amazon-chime-sdk-js';

const params = new URLSearchParams(window.location.search);
const JOIN_URL = params.get('join') || '/join';
const REPORT_URL = params.get('report') || '/report';
const TONES = (params.get('tones') || '440,1000')
  .split(',')
  .map(Number)
  .filter((f) => Number.isFinite(f) && f > 0);
const INTERVAL_MS = Math.max(50, Number(params.get('interval')) || 250);
const LOG_LEVEL = LogLevel[(params.get('loglevel') || 'INFO').toUpperCase()] ?? LogLevel.INFO;

/** Analysis block: the AnalyserNode's window, 4096 samples (85 ms at 48 kHz). */
const FFT_SIZE = 4096;
/** A tone counts as present in a block above this level (dB relative to a full-scale sine). */
const PRESENT_DB = -40;
/** Report at most this many new log lines per report (the rest are counted as dropped). */
const MAX_LOG_LINES = 400;

const startedAt = performance.now();
const since = () => Math.round(performance.now() - startedAt) / 1000;

const state = {
  seq: 0,
  sdkVersion: Versioning.sdkVersion,
  userAgent: navigator.userAgent,
  phase: 'loading', // loading | joining | connecting | started | stopped | error
  meetingId: null,
  attendeeId: null,
  externalUserId: null,
  signalingUrl: null,
  audioInput: null,
  observer: { connecting: 0, reconnecting: 0, started: 0, stopped: 0 },
  stopStatus: null, // {code, name, isTerminal, isFailure, at}
  roster: {}, // attendeeId -> {externalUserId, present, dropped}
  presenceEvents: [], // [{attendeeId, present, externalUserId, dropped, at}]
  volumes: {}, // attendeeId -> {volume, muted, signalStrength, updates, maxVolume}
  muted: false,
  audio: {
    contextState: null,
    sampleRate: null,
    streams: 0, // remote streams analysed so far
    blocks: 0, // analysis blocks so far
    rmsDb: null, // last block
    tones: {}, // hz -> {lastDb, maxDb, presentBlocks, absentStreak}
  },
  stats: null, // {inbound: {...}, outbound: {...}, video: {...}, pair: {...}, at}
  camera: { on: false, changes: 0, errors: 0 }, // the local video tile
  // Remote video tiles by tile id: {attendeeId, streamId, active, width, height, frames,
  // decoded} (frames: requestVideoFrameCallback calls; decoded: getVideoPlaybackQuality)
  tiles: {},
  content: { started: 0, stopped: 0 }, // content share observer counts
  dataMessages: [], // received: [{topic, text, senderAttendeeId, senderExternalUserId, timestampMs, throttled, at}]
  dataTopics: [], // topics subscribed to (URL parameter topics=a,b)
  errors: [],
  droppedLogs: 0,
};
for (const hz of TONES) state.audio.tones[hz] = { lastDb: null, maxDb: null, presentBlocks: 0, absentStreak: 0 };

let pendingLogs = [];
let session = null;

function logLine(level, text) {
  if (pendingLogs.length >= MAX_LOG_LINES) {
    state.droppedLogs += 1;
    return;
  }
  pendingLogs.push(`${since().toFixed(3)} ${level} ${text}`);
}

function recordError(where, err) {
  const text = `${where}: ${err && err.stack ? err.stack : String(err)}`;
  state.errors.push(text);
  logLine('PAGE-ERROR', text);
}

window.addEventListener('error', (e) => recordError('window.onerror', e.error || e.message));
window.addEventListener('unhandledrejection', (e) => recordError('unhandledrejection', e.reason));

/** A Logger (the SDK's interface) that keeps the lines for the next report. */
class CaptureLogger {
  constructor(level) {
    this.level = level;
  }
  info(msg) {
    if (this.level <= LogLevel.INFO) logLine('INFO', msg);
  }
  warn(msg) {
    if (this.level <= LogLevel.WARN) logLine('WARN', msg);
  }
  error(msg) {
    if (this.level <= LogLevel.ERROR) logLine('ERROR', msg);
  }
  debug(debugFunction) {
    if (this.level <= LogLevel.DEBUG) {
      logLine('DEBUG', typeof debugFunction === 'function' ? debugFunction() : debugFunction);
    }
  }
  setLogLevel(level) {
    this.level = level;
  }
  getLogLevel() {
    return this.level;
  }
}

// ---------------------------------------------------------------------------------------
// Reports

let posting = false;
let postAgain = false;

async function report() {
  if (posting) {
    postAgain = true;
    return;
  }
  posting = true;
  try {
    do {
      postAgain = false;
      state.seq += 1;
      state.at = since();
      const logs = pendingLogs;
      pendingLogs = [];
      let response;
      try {
        response = await fetch(REPORT_URL, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ state, logs }),
        });
      } catch (e) {
        // The test's server is gone (the test ended): nothing to report to.
        pendingLogs = logs.concat(pendingLogs).slice(-MAX_LOG_LINES);
        return;
      }
      if (response.ok) {
        const answer = await response.json().catch(() => ({}));
        for (const command of answer.commands || []) runCommand(command);
      }
    } while (postAgain);
  } finally {
    posting = false;
  }
}

function runCommand(command) {
  logLine('COMMAND', command);
  if (!session) return;
  const av = session.audioVideo;
  try {
    if (command === 'mute') av.realtimeMuteLocalAudio();
    else if (command === 'unmute') av.realtimeUnmuteLocalAudio();
    else if (command === 'stop') av.stop();
    else if (command === 'unload') window.location.replace('about:blank'); // pagehide: the SDK beacons
    else if (command.startsWith('content-share:')) contentShare(Number(command.split(':')[1]));
    else if (command === 'content-stop') av.stopContentShare();
    else if (command === 'camera-on') camera(true);
    else if (command === 'camera-off') camera(false);
    else if (command.startsWith('send:')) {
      // send:<topic>:<text> (the text may hold colons)
      const [, topic, ...text] = command.split(':');
      av.realtimeSendDataMessage(topic, text.join(':'), 0);
    } else if (command.startsWith('burst:')) {
      // burst:<topic>:<n> sends n messages "burst <i>" at once
      const [, topic, n] = command.split(':');
      for (let i = 0; i < Number(n); i++) av.realtimeSendDataMessage(topic, `burst ${i}`, 0);
    } else recordError('command', `unknown command ${command}`);
    state.muted = av.realtimeIsLocalAudioMuted();
  } catch (e) {
    recordError(`command ${command}`, e);
  }
}

/** Turns the camera (Chromium's fake one) on or off: the local video tile and its input,
 * which makes the SDK renegotiate its peer connection (a new SUBSCRIBE). */
async function camera(on) {
  const av = session.audioVideo;
  try {
    if (on) {
      const cameras = await av.listVideoInputDevices();
      if (cameras.length === 0) throw new Error('no video input device');
      await av.startVideoInput(cameras[0].deviceId);
      av.startLocalVideoTile();
    } else {
      av.stopLocalVideoTile();
      await av.stopVideoInput();
    }
    state.camera.on = on;
    state.camera.changes += 1;
    logLine('PAGE', `camera ${on ? 'on' : 'off'}`);
  } catch (e) {
    state.camera.errors += 1;
    recordError(`camera ${on ? 'on' : 'off'}`, e);
  }
}

/** A remote video tile: bound to its own <video> element, whose decoded frames are
 * counted (requestVideoFrameCallback) and whose size is reported. */
function bindRemoteTile(av, tile) {
  const id = tile.tileId;
  let el = document.getElementById(`tile-${id}`);
  if (!el) {
    el = document.createElement('video');
    el.id = `tile-${id}`;
    el.muted = true;
    el.autoplay = true;
    el.playsInline = true;
    document.body.appendChild(el);
    const t = { attendeeId: null, streamId: null, active: false, width: 0, height: 0, frames: 0, decoded: 0 };
    state.tiles[id] = t;
    const onFrame = (_now, meta) => {
      t.frames += 1;
      t.width = meta.width;
      t.height = meta.height;
      const q = el.getVideoPlaybackQuality ? el.getVideoPlaybackQuality() : null;
      if (q) t.decoded = q.totalVideoFrames;
      el.requestVideoFrameCallback(onFrame);
    };
    el.requestVideoFrameCallback(onFrame);
  }
  const t = state.tiles[id];
  t.attendeeId = tile.boundAttendeeId;
  t.externalUserId = tile.boundExternalUserId;
  t.streamId = tile.streamId ?? null;
  t.active = !!tile.active;
  t.isContent = !!tile.isContent;
  av.bindVideoElement(id, el);
  logLine('PAGE', `remote tile ${id} for ${tile.boundAttendeeId} (stream ${tile.streamId})`);
  report();
}

/** Shares content: a generated stream of a steady `hz` tone (WebAudio oscillator) and a
 * canvas that changes every frame, as the SDK's second (`#content`) session. */
function contentShare(hz) {
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = hz;
    const gain = ctx.createGain();
    gain.gain.value = 0.5;
    const dest = ctx.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 180;
    const g = canvas.getContext('2d');
    let frame = 0;
    setInterval(() => {
      g.fillStyle = `hsl(${(frame += 7) % 360}, 80%, 50%)`;
      g.fillRect(0, 0, canvas.width, canvas.height);
    }, 100);
    const stream = new MediaStream([...canvas.captureStream(10).getVideoTracks(), ...dest.stream.getAudioTracks()]);
    session.audioVideo.startContentShare(stream).catch((e) => recordError('startContentShare', e));
    logLine('PAGE', `content share of ${hz} Hz started`);
  } catch (e) {
    recordError('contentShare', e);
  }
}

// ---------------------------------------------------------------------------------------
// Received audio: tone levels with the Goertzel algorithm on the analyser's window.

let audioContext = null;
let analysedStream = null;
let analyser = null;
let sourceNode = null;
const block = new Float32Array(FFT_SIZE);
const hann = new Float32Array(FFT_SIZE);
let hannSum = 0;
for (let i = 0; i < FFT_SIZE; i++) {
  hann[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (FFT_SIZE - 1));
  hannSum += hann[i];
}

/** Level of `hz` in `x` (Hann-windowed), in dB relative to a full-scale sine. */
function goertzelDb(x, sampleRate, hz) {
  const w = (2 * Math.PI * hz) / sampleRate;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < x.length; i++) {
    const s0 = x[i] * hann[i] + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  // A sine of amplitude A gives |X| = A * sum(w) / 2.
  const amplitude = Math.sqrt(Math.max(power, 0)) / (hannSum / 2);
  return amplitude > 0 ? 20 * Math.log10(amplitude) : -200;
}

function attachAnalyser(stream) {
  try {
    if (!audioContext) audioContext = new AudioContext();
    if (audioContext.state === 'suspended') audioContext.resume().catch((e) => recordError('AudioContext.resume', e));
    if (sourceNode) sourceNode.disconnect();
    sourceNode = audioContext.createMediaStreamSource(stream);
    analyser = audioContext.createAnalyser();
    analyser.fftSize = FFT_SIZE;
    analyser.smoothingTimeConstant = 0;
    sourceNode.connect(analyser);
    analysedStream = stream;
    state.audio.streams += 1;
    state.audio.sampleRate = audioContext.sampleRate;
    logLine('PAGE', `analysing remote stream ${stream.id} (${stream.getAudioTracks().length} audio tracks)`);
  } catch (e) {
    recordError('attachAnalyser', e);
  }
}

function analyse(audioElement) {
  const stream = audioElement.srcObject;
  if (stream instanceof MediaStream && stream !== analysedStream && stream.getAudioTracks().length > 0) {
    attachAnalyser(stream);
  }
  if (!analyser || !audioContext) return;
  state.audio.contextState = audioContext.state;
  if (audioContext.state !== 'running') return;
  analyser.getFloatTimeDomainData(block);
  let energy = 0;
  for (let i = 0; i < block.length; i++) energy += block[i] * block[i];
  const rms = Math.sqrt(energy / block.length);
  state.audio.rmsDb = rms > 0 ? 20 * Math.log10(rms) : -200;
  state.audio.blocks += 1;
  for (const hz of TONES) {
    const db = goertzelDb(block, audioContext.sampleRate, hz);
    const t = state.audio.tones[hz];
    t.lastDb = db;
    t.maxDb = t.maxDb === null ? db : Math.max(t.maxDb, db);
    if (db > PRESENT_DB) {
      t.presentBlocks += 1;
      t.absentStreak = 0;
    } else {
      t.absentStreak += 1; // consecutive blocks without the tone
    }
  }
}

// ---------------------------------------------------------------------------------------
// WebRTC statistics

async function collectStats() {
  if (!session) return;
  let report;
  try {
    report = await session.audioVideo.getRTCPeerConnectionStats();
  } catch (e) {
    return; // no peer connection yet (or any more)
  }
  if (!report) return;
  const out = { inbound: null, outbound: null, pair: null, at: since() };
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out.inbound = {
        packetsReceived: s.packetsReceived,
        packetsLost: s.packetsLost,
        bytesReceived: s.bytesReceived,
        jitter: s.jitter,
        audioLevel: s.audioLevel,
        totalAudioEnergy: s.totalAudioEnergy,
        totalSamplesDuration: s.totalSamplesDuration,
        concealedSamples: s.concealedSamples,
        totalSamplesReceived: s.totalSamplesReceived,
        codecId: s.codecId,
      };
    } else if (s.type === 'outbound-rtp' && s.kind === 'audio') {
      out.outbound = { packetsSent: s.packetsSent, bytesSent: s.bytesSent };
    } else if (s.type === 'outbound-rtp' && s.kind === 'video') {
      const v = out.video || (out.video = { packetsSent: 0, framesEncoded: 0, keyFramesEncoded: 0, pliCount: 0, firCount: 0 });
      v.packetsSent += s.packetsSent || 0;
      v.framesEncoded += s.framesEncoded || 0;
      v.keyFramesEncoded += s.keyFramesEncoded || 0;
      v.pliCount += s.pliCount || 0; // keyframe requests that reached this sender
      v.firCount += s.firCount || 0;
    } else if (s.type === 'inbound-rtp' && s.kind === 'video') {
      const v = out.videoIn || (out.videoIn = { packetsReceived: 0, framesDecoded: 0, pliCount: 0 });
      v.packetsReceived += s.packetsReceived || 0;
      v.framesDecoded += s.framesDecoded || 0;
      v.pliCount += s.pliCount || 0; // keyframe requests this receiver sent
    } else if (s.type === 'candidate-pair' && s.nominated) {
      out.pair = { state: s.state, bytesSent: s.bytesSent, bytesReceived: s.bytesReceived };
      // The browser's side of the pair: host, srflx, or relay (TURN, over relayProtocol).
      const local = report.get(s.localCandidateId);
      if (local) {
        out.pair.localType = local.candidateType;
        out.pair.relayProtocol = local.relayProtocol ?? null;
      }
    } else if (s.type === 'transport') {
      out.transport = { dtlsState: s.dtlsState, iceState: s.iceState, srtpCipher: s.srtpCipher };
    }
  });
  state.stats = out;
}

// ---------------------------------------------------------------------------------------
// The meeting session

function statusName(code) {
  return MeetingSessionStatusCode[code] ?? String(code);
}

async function join(audioElement) {
  state.phase = 'joining';
  const response = await fetch(JOIN_URL);
  if (!response.ok) throw new Error(`GET ${JOIN_URL}: HTTP ${response.status}`);
  const joinInfo = await response.json();
  const configuration = new MeetingSessionConfiguration(joinInfo.Meeting, joinInfo.Attendee);
  state.meetingId = configuration.meetingId;
  state.attendeeId = configuration.credentials.attendeeId;
  state.externalUserId = configuration.credentials.externalUserId;
  state.signalingUrl = configuration.urls.signalingURL;

  const logger = new MultiLogger(new ConsoleLogger('chime-sdk', LOG_LEVEL), new CaptureLogger(LOG_LEVEL));
  const deviceController = new DefaultDeviceController(logger);
  session = new DefaultMeetingSession(configuration, logger, deviceController);
  const av = session.audioVideo;

  av.addObserver({
    audioVideoDidStartConnecting(reconnecting) {
      state.observer.connecting += 1;
      if (reconnecting) state.observer.reconnecting += 1;
      state.phase = 'connecting';
      report();
    },
    audioVideoDidStart() {
      state.observer.started += 1;
      state.phase = 'started';
      report();
    },
    videoTileDidUpdate(tile) {
      if (tile.localTile || !tile.boundAttendeeId) return;
      bindRemoteTile(av, tile);
    },
    videoTileWasRemoved(tileId) {
      const t = state.tiles[tileId];
      if (t) t.removed = true;
      report();
    },
    audioVideoDidStop(status) {
      state.observer.stopped += 1;
      state.phase = 'stopped';
      const code = status.statusCode();
      state.stopStatus = {
        code,
        name: statusName(code),
        isTerminal: status.isTerminal(),
        isFailure: status.isFailure(),
        at: since(),
      };
      logLine('PAGE', `audioVideoDidStop ${statusName(code)} (${code})`);
      report();
    },
  });

  av.addContentShareObserver({
    contentShareDidStart() {
      state.content.started += 1;
      report();
    },
    contentShareDidStop() {
      state.content.stopped += 1;
      report();
    },
  });

  const subscribed = new Set();
  av.realtimeSubscribeToAttendeeIdPresence((attendeeId, present, externalUserId, dropped) => {
    state.roster[attendeeId] = { externalUserId: externalUserId ?? null, present, dropped: !!dropped };
    state.presenceEvents.push({ attendeeId, present, externalUserId: externalUserId ?? null, dropped: !!dropped, at: since() });
    if (present && !subscribed.has(attendeeId)) {
      subscribed.add(attendeeId);
      av.realtimeSubscribeToVolumeIndicator(attendeeId, (id, volume, muted, signalStrength) => {
        const v = state.volumes[id] || (state.volumes[id] = { volume: null, muted: null, signalStrength: null, updates: 0, maxVolume: null });
        if (volume !== null) {
          v.volume = volume;
          v.maxVolume = v.maxVolume === null ? volume : Math.max(v.maxVolume, volume);
        }
        if (muted !== null) v.muted = muted;
        if (signalStrength !== null) v.signalStrength = signalStrength;
        v.updates += 1;
      });
    }
    report();
  });

  for (const topic of (params.get('topics') || '').split(',').filter((t) => t)) {
    state.dataTopics.push(topic);
    av.realtimeSubscribeToReceiveDataMessage(topic, (m) => {
      state.dataMessages.push({
        topic: m.topic,
        text: m.text(),
        senderAttendeeId: m.senderAttendeeId,
        senderExternalUserId: m.senderExternalUserId,
        timestampMs: m.timestampMs,
        throttled: m.throttled,
        at: since(),
      });
      report();
    });
  }

  const wanted = params.get('mic');
  const inputs = await av.listAudioInputDevices();
  const input = wanted || (inputs.length > 0 ? inputs[0].deviceId : 'default');
  state.audioInput = { deviceId: input, labels: inputs.map((d) => d.label) };
  await av.startAudioInput(input);
  await av.bindAudioElement(audioElement);
  av.start();
}

function main() {
  const audioElement = document.getElementById('meeting-audio');
  setInterval(() => analyse(audioElement), 100);
  setInterval(async () => {
    await collectStats();
    report();
  }, INTERVAL_MS);
  join(audioElement).catch((e) => {
    state.phase = 'error';
    recordError('join', e);
    report();
  });
}

main();
