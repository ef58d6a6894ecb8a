// The bench's Colyseus server: the same scenario as bench/server.py, in a Colyseus 0.16 room.
//
// 100 entities (float64 x and y in a schema) bounce in a box and all move every tick, 50 ticks a
// second; the state carries the tick's time in seconds since the bench's epoch ("t") and, per
// bot, the newest input event number it has sent ("echo"), exactly as bench/server.py does for
// pygase. Patches go out every 20 ms (patchRate 20), each right after the tick it carries.
//
// It speaks the orchestrator's protocol of bench/server.py over stdin and stdout: it prints
// "READY <port>", answers "mark LABEL" with "MARK LABEL {json}" (its CPU time from Node, the
// bytes its TCP sockets wrote and read, ticks) and ends on "quit". Colyseus speaks WebSocket
// over TCP, so the bytes are TCP payload: WebSocket frames, not datagrams.
"use strict";

const http = require("http");
const readline = require("readline");
const { Server, Room, matchMaker } = require("@colyseus/core");
const { WebSocketTransport } = require("@colyseus/ws-transport");
const { Schema, MapSchema, defineTypes } = require("@colyseus/schema");
const { pack } = require("@colyseus/msgpackr");
const { performance } = require("perf_hooks");

const wall = () => (performance.timeOrigin + performance.now()) / 1000;

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

const EPOCH = Number(option("epoch", String(Date.now() / 1000)));
const ENTITIES = Number(option("entities", "100"));
const TICK_RATE = Number(option("tick-rate", "50"));
const HOST = option("host", "127.0.0.1");
const SIZE = 100.0;

class Entity extends Schema {}
defineTypes(Entity, { x: "float64", y: "float64" });

class BenchState extends Schema {}
defineTypes(BenchState, { entities: { map: Entity }, t: "float64", echo: { map: "number" } });

// The same seeded world as bench/server.py would need Python's generator; a small LCG is
// enough here: what matters is that every entity moves every tick.
function generator(seed) {
  let value = seed >>> 0;
  return () => {
    value = (Math.imul(value, 1664525) + 1013904223) >>> 0;
    return value / 4294967296;
  };
}

const counters = { ticks: 0, changeBytes: 0, changeSamples: 0 };

class BenchRoom extends Room {
  onCreate() {
    this.maxClients = 1000;
    this.autoDispose = false;
    const random = generator(3);
    const state = new BenchState();
    state.entities = new MapSchema();
    state.echo = new MapSchema();
    state.t = 0;
    this.velocities = [];
    for (let i = 0; i < ENTITIES; i++) {
      const entity = new Entity();
      entity.x = random() * SIZE;
      entity.y = random() * SIZE;
      state.entities.set(String(i), entity);
      this.velocities.push([random() * 40 - 20, random() * 40 - 20]);
    }
    this.setState(state);
    this.echoes = new Map();
    this.onMessage("input", (_client, message) => {
      const [bot, sequence] = message;
      this.echoes.set(bot, Math.max(sequence, this.echoes.get(bot) || 0));
    });
    this.previous = process.hrtime.bigint();
    this.patchRate = 1000 / TICK_RATE;
  }

  // The tick runs right before each patch, so a patch carries the state of that very moment
  // (as pygase sends a state the moment it is pushed), not one up to a patch interval old.
  onBeforePatch() {
    this.tick();
  }

  tick() {
    const now = process.hrtime.bigint();
    const dt = Number(now - this.previous) / 1e9;
    this.previous = now;
    const state = this.state;
    const moved = {};
    for (let i = 0; i < ENTITIES; i++) {
      const entity = state.entities.get(String(i));
      const velocity = this.velocities[i];
      let x = entity.x + velocity[0] * dt;
      let y = entity.y + velocity[1] * dt;
      if (x < 0 || x > SIZE) { velocity[0] = -velocity[0]; x = Math.min(Math.max(x, 0), SIZE); }
      if (y < 0 || y > SIZE) { velocity[1] = -velocity[1]; y = Math.min(Math.max(y, 0), SIZE); }
      entity.x = x;
      entity.y = y;
      moved[i] = [x, y];
    }
    state.t = wall() - EPOCH;
    for (const [bot, sequence] of this.echoes) state.echo.set(String(bot), sequence);
    this.echoes.clear();
    counters.ticks += 1;
    if (counters.ticks % 10 === 0) {  // the msgpack size of one tick's changes, sampled
      counters.changeBytes += pack({ entities: moved, t: state.t }).length;
      counters.changeSamples += 1;
    }
  }
}

// Every TCP socket of the server, to add up what they wrote and read.
const sockets = new Set();
const closed = { written: 0, read: 0 };
const httpServer = http.createServer();
httpServer.on("connection", (socket) => {
  sockets.add(socket);
  socket.on("close", () => {
    closed.written += socket.bytesWritten;
    closed.read += socket.bytesRead;
    sockets.delete(socket);
  });
});

function reading() {
  let written = closed.written;
  let read = closed.read;
  for (const socket of sockets) {
    written += socket.bytesWritten;
    read += socket.bytesRead;
  }
  const cpu = process.cpuUsage();
  let connections = 0;
  for (const room of rooms) connections += room.clients.length;
  return {
    wall: wall(),
    cpu: (cpu.user + cpu.system) / 1e6,
    bytes_out: written,
    datagrams_out: 0,
    bytes_in: read,
    datagrams_in: 0,
    ticks: counters.ticks,
    late_sum: 0,
    late_max: 0,
    change_bytes: counters.changeBytes,
    change_samples: counters.changeSamples,
    connections,
  };
}

const rooms = new Set();
class TrackedRoom extends BenchRoom {
  onCreate(options) { rooms.add(this); super.onCreate(options); }
  onDispose() { rooms.delete(this); }
}

async function main() {
  const gameServer = new Server({
    transport: new WebSocketTransport({ server: httpServer }),
    greet: false,
  });
  gameServer.define("bench", TrackedRoom);
  await gameServer.listen(0, HOST);
  await matchMaker.createRoom("bench", {});  // the game runs from the start, as bench/server.py's
  process.stdout.write(`READY ${httpServer.address().port}\n`);
  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const [command, label] = line.trim().split(" ", 2);
    if (command === "mark") {
      process.stdout.write(`MARK ${label} ${JSON.stringify(reading())}\n`);
    } else if (command === "quit") {
      process.exit(0);
    }
  });
  lines.on("close", () => process.exit(0));
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
