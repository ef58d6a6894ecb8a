// Bytes of Colyseus's schema patches for the positions bench/views.py moves (it runs this file).
//
// Reads JSON lines on stdin: the first line is the entities' initial [x, y] positions, each next
// line their positions at the next tick (bench/views.py makes them with its seeded generator, so
// this is exactly the motion its pygase rows send). Prints one JSON line of figures at the end.
//
// What a Colyseus 0.16 room does per patch, without its sockets: a state with a MapSchema of
// Entity {x, y} (field type --type: "number", "float32" or "float64") keyed "0", "1", ... and the
// tick's time t (float64, as pygase's state has it); per tick the positions are assigned, and the
// @colyseus/schema Encoder encodes the change patch once (`encode`, prefixed by the room's 1-byte
// ROOM_STATE_PATCH code), which the room broadcasts to every client as it is. With --views the
// map is tagged @view() and each of --clients clients has its own StateView holding the entities
// in the 3 x 3 grid cells (cell 10.5) around its own entity (client i owns entity 12 i, as in
// bench/views.py); entities entering or leaving a client's cells are view.add()ed or
// view.remove()d each tick, and each client gets the shared patch plus its `encodeView` part, as
// @colyseus/core's SchemaSerializer.applyPatches sends them. Clients join (full state, their
// views' encodeAllView) before the first tick; the first --skip ticks are encoded, not counted.
//
// Every patch is also decoded by a Decoder per distinct stream (one per client with --views),
// and at the end each client's decoded entities are compared with the server's (filtered by the
// client's cells): the keys must match, and the largest difference of a value is reported
// ("number" and "float32" send single floats, so it is not zero for them).
//
// The bytes are the WebSocket messages' payloads; "ws" figures add the server-to-client frame
// header (2 bytes up to 125 bytes of payload, 4 up to 65535, 10 above; no mask, no
// compression). TCP/IP headers are not counted, as pygase's figures leave out UDP/IP's.
"use strict";

const readline = require("readline");
const { schema, Encoder, Decoder, StateView } = require("@colyseus/schema");

const ROOM_STATE = 14; // @colyseus/core's Protocol codes, the first byte of a state message
const ROOM_STATE_PATCH = 15;
const CELL = 10.5;
const TICK_RATE = 50;

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

const TYPE = option("type", "number");
const CLIENTS = Number(option("clients", "10"));
const SKIP = Number(option("skip", "0"));
const VIEWS = process.argv.includes("--views");
// The message streams counted: one per client with views, else the one broadcast patch (which
// each client gets as it is, so per client it is that patch).
const STREAMS = VIEWS ? CLIENTS : 1;
if (!["number", "float32", "float64"].includes(TYPE)) {
  throw new Error(`--type must be number, float32 or float64, not ${TYPE}`);
}

// The default 8 KB shared buffer would overflow (and warn, then re-encode) with 40 clients'
// views written after each other in it, as the room does; a room this size would raise it too.
Encoder.BUFFER_SIZE = 1024 * 1024;

const Entity = schema({ x: TYPE, y: TYPE }, "Entity");
const State = schema(
  { entities: VIEWS ? { map: Entity, view: true } : { map: Entity }, t: "float64" }, "State",
);

const cell = (value) => Math.floor(value / CELL);

// The keys client `own` sees: bench/views.py's visible(), entities in the 3 x 3 cells around it.
function visibleKeys(positions, own) {
  const cx = cell(positions[own][0]);
  const cy = cell(positions[own][1]);
  const keys = new Set();
  positions.forEach(([x, y], i) => {
    if (Math.abs(cell(x) - cx) <= 1 && Math.abs(cell(y) - cy) <= 1) keys.add(String(i));
  });
  return keys;
}

const wsHeader = (n) => (n <= 125 ? 2 : n <= 65535 ? 4 : 10);

let state;
let encoder;
let latest;
const clients = [];
const counted = { ticks: 0, bytes: 0, ws: 0, messages: 0, sharedBytes: 0, cpu: 0 };
let joinBytes = 0;

function join(positions) {
  state = new State();
  positions.forEach(([x, y], i) => state.entities.set(String(i), new Entity({ x, y })));
  state.t = 0;
  encoder = new Encoder(state);
  encoder.discardChanges(); // the room's patches before anyone joined went to no one
  for (let i = 0; i < STREAMS; i++) {
    const client = { own: i * 12, decoder: new Decoder(new State()), keys: new Set() };
    if (VIEWS) {
      client.view = new StateView();
      for (const key of visibleKeys(positions, client.own)) {
        client.view.add(state.entities.get(key));
        client.keys.add(key);
      }
    }
    clients.push(client);
  }
  // SchemaSerializer.getFullState: encodeAll once, then each client's encodeAllView part.
  const buffer = Buffer.allocUnsafe(Encoder.BUFFER_SIZE);
  buffer[0] = ROOM_STATE;
  const shared = { offset: 1 };
  const full = Buffer.from(encoder.encodeAll(shared, buffer));
  for (const client of clients) {
    const bytes = VIEWS
      ? encoder.encodeAllView(client.view, shared.offset, { ...shared }, buffer)
      : full;
    joinBytes += bytes.length;
    client.decoder.decode(bytes, { offset: 1 });
  }
  joinBytes /= clients.length;
}

function tick(positions, index) {
  const started = process.cpuUsage();
  positions.forEach(([x, y], i) => {
    const entity = state.entities.get(String(i));
    entity.x = x;
    entity.y = y;
  });
  state.t = index / TICK_RATE;
  const messages = [];
  if (VIEWS) {
    for (const client of clients) {
      const keys = visibleKeys(positions, client.own);
      for (const key of client.keys) {
        if (!keys.has(key)) client.view.remove(state.entities.get(key));
      }
      for (const key of keys) {
        if (!client.keys.has(key)) client.view.add(state.entities.get(key));
      }
      client.keys = keys;
    }
  }
  // SchemaSerializer.applyPatches: the shared patch, then (with views) each client's view part.
  const it = { offset: 1 };
  encoder.sharedBuffer[0] = ROOM_STATE_PATCH;
  const patch = encoder.encode(it);
  const sharedBytes = patch.length;
  if (VIEWS) {
    const shared = it.offset;
    for (const client of clients) messages.push(encoder.encodeView(client.view, shared, it));
  } else {
    messages.push(Buffer.from(patch));
  }
  encoder.discardChanges();
  const spent = process.cpuUsage(started);
  messages.forEach((bytes, i) => clients[i].decoder.decode(bytes, { offset: 1 }));
  if (index <= SKIP) return;
  counted.ticks += 1;
  counted.cpu += (spent.user + spent.system) / 1000;
  counted.sharedBytes += sharedBytes;
  for (const bytes of messages) {
    counted.bytes += bytes.length;
    counted.ws += bytes.length + wsHeader(bytes.length);
    counted.messages += 1;
  }
}

// Whether each client's decoded entities are the server's within its cells, and by how much.
function check(positions) {
  let keysMatch = true;
  let maxError = 0;
  for (const client of clients) {
    const expected = VIEWS ? visibleKeys(positions, client.own) : null;
    const held = client.decoder.state.entities;
    const size = expected ? expected.size : positions.length;
    if (held.size !== size) keysMatch = false;
    held.forEach((entity, key) => {
      const position = positions[Number(key)];
      if (position === undefined || (expected && !expected.has(key))) {
        keysMatch = false;
        return;
      }
      maxError = Math.max(maxError, Math.abs(entity.x - position[0]), Math.abs(entity.y - position[1]));
    });
  }
  return { keysMatch, maxError };
}

let index = -1;
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const positions = JSON.parse(line);
  index += 1;
  latest = positions;
  if (index === 0) join(positions);
  else tick(positions, index);
});
lines.on("close", () => {
  const perClientTick = counted.bytes / STREAMS / Math.max(counted.ticks, 1);
  const wsPerClientTick = counted.ws / STREAMS / Math.max(counted.ticks, 1);
  const { keysMatch, maxError } = check(latest);
  process.stdout.write(JSON.stringify({
    type: TYPE,
    views: VIEWS,
    entities: latest.length,
    clients: CLIENTS,
    ticks: counted.ticks,
    join_bytes_per_client: Math.round(joinBytes),
    bytes_per_client_tick: Math.round(perClientTick),
    bytes_per_client_s: Math.round(perClientTick * TICK_RATE),
    ws_bytes_per_client_s: Math.round(wsPerClientTick * TICK_RATE),
    shared_bytes_per_tick: Math.round(counted.sharedBytes / Math.max(counted.ticks, 1)),
    messages_per_client_tick: counted.messages / STREAMS / Math.max(counted.ticks, 1),
    encode_cpu_ms_per_tick: Number((counted.cpu / Math.max(counted.ticks, 1)).toFixed(3)),
    keys_match: keysMatch,
    max_error: maxError,
  }) + "\n");
});
