// The bench's Colyseus bots: clients of colyseus.js 0.16 in one Node process, read like pygase's.
//
// Every bot joins the one "bench" room, reads its state at 60 frames a second and sends 5 input
// events a second, as pygase_core.tools.bots.BotSwarm does. At each frame inside the window a bot
// records the state's age (its clock minus the state's stamp "t") and, for its events, the time
// from sending to the first frame that shows the server's echo. It prints one line,
// "RESULT {json}", in the format of bench/swarm.py, so bench/run.py computes the same figures.
"use strict";

const { Client } = require("colyseus.js");

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

const HOST = option("host", "127.0.0.1");
const PORT = Number(option("port"));
const COUNT = Number(option("count", "1"));
const FIRST = Number(option("first-id", "0"));
const RATE = Number(option("rate", "5"));
const FRAME_RATE = Number(option("frame-rate", "60"));
const EPOCH = Number(option("epoch"));
const START_AT = Number(option("start-at"));
const END_AT = Number(option("end-at"));

const { performance } = require("perf_hooks");
const wall = () => (performance.timeOrigin + performance.now()) / 1000;
const monotonic = () => Number(process.hrtime.bigint()) / 1e9;

class Bot {
  constructor(id) {
    this.id = id;
    this.room = null;
    this.recording = false;
    this.ages = [];
    this.roundTrips = [];
    this.frames = 0;
    this.framesWithoutTime = 0;
    this.versions = 0;
    this.states = 0;
    this.eventsSent = 0;
    this.eventsEchoed = 0;
    this.sequence = 0;
    this.pending = new Map();
    this.changed = false;
  }

  observe(wallNow, now) {
    if (!this.recording || this.room === null) return;
    const state = this.room.state;
    this.frames += 1;
    if (this.changed) {  // Colyseus has no version number: a patch since the last frame is one
      this.changed = false;
      this.versions += 1;
    }
    if (typeof state.t === "number") this.ages.push(wallNow - EPOCH - state.t);
    else this.framesWithoutTime += 1;
    if (this.pending.size > 0 && state.echo) {
      const echoed = state.echo.get(String(this.id));
      if (typeof echoed === "number") {
        for (const [sequence, sent] of this.pending) {
          if (sequence <= echoed) {
            this.roundTrips.push(now - sent);
            this.eventsEchoed += 1;
            this.pending.delete(sequence);
          }
        }
      }
    }
  }

  send(now) {
    if (this.room === null) return;
    this.sequence += 1;
    if (this.recording) {
      this.pending.set(this.sequence, now);
      this.eventsSent += 1;
    }
    this.room.send("input", [this.id, this.sequence]);
  }

  data() {
    const round = (value) => Math.round(value * 1e6) / 1e6;
    return {
      bot_id: this.id,
      ages: this.ages.map(round),
      round_trips: this.roundTrips.map(round),
      frames: this.frames,
      frames_without_time: this.framesWithoutTime,
      versions: this.versions,
      states: this.states,
      events_sent: this.eventsSent,
      events_echoed: this.eventsEchoed,
    };
  }
}

async function main() {
  const client = new Client(`ws://${HOST}:${PORT}`);
  const bots = [];
  const errors = [];
  for (let i = 0; i < COUNT; i++) bots.push(new Bot(FIRST + i));
  await Promise.all(bots.map(async (bot) => {
    try {
      bot.room = await client.joinOrCreate("bench");
      bot.room.onStateChange(() => {
        bot.changed = true;
        if (bot.recording) bot.states += 1;
      });
    } catch (error) {
      errors.push(String(error && error.message ? error.message : error));
    }
  }));
  // Events leave at RATE per bot-second, each bot at its own phase.
  const sendTimers = bots.map((bot, index) => setTimeout(() => {
    bot.send(monotonic());
    bot.timer = setInterval(() => bot.send(monotonic()), 1000 / RATE);
  }, (1000 / RATE) * (index / Math.max(COUNT, 1))));
  const frames = setInterval(() => {
    const wallNow = wall();
    const now = monotonic();
    for (const bot of bots) bot.observe(wallNow, now);
  }, 1000 / FRAME_RATE);
  let cpuStart = null;
  let windowStart = null;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, (START_AT - wall()) * 1000)));
  cpuStart = process.cpuUsage();
  windowStart = wall();
  for (const bot of bots) bot.recording = true;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, (END_AT - wall()) * 1000)));
  for (const bot of bots) { bot.recording = false; bot.pending.clear(); }
  const cpu = process.cpuUsage(cpuStart);
  const window = wall() - windowStart;
  clearInterval(frames);
  for (const timer of sendTimers) clearTimeout(timer);
  for (const bot of bots) clearInterval(bot.timer);
  const result = {
    connected: bots.filter((bot) => bot.room !== null).length,
    errors,
    window,
    cpu: (cpu.user + cpu.system) / 1e6,
    probes: bots.map((bot) => bot.data()),
  };
  const leaving = Promise.all(bots.map((bot) => (bot.room ? bot.room.leave().catch(() => {}) : null)));
  await Promise.race([leaving, new Promise((resolve) => setTimeout(resolve, 2000))]);
  // A pipe takes a long line in pieces: exit only once all of it is written.
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
