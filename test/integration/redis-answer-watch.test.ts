import { Redis } from "ioredis";
import { afterEach, expect, it } from "vitest";
import { createLogger } from "../../src/logger.js";
import { logRedisAway, watchRedisAnswers } from "../../src/queue/redis-away-log.js";
import { eventually } from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";

// The worker's watch of a Redis that holds its connections open and answers nothing, on a
// private redis-server, with a PING every EVERY_MS instead of every 5 s.
const EVERY_MS = 200;
const LOST = /^Redis connection lost/;

let server: RedisServer | undefined;
const connections: Redis[] = [];
let stopWatch: (() => void) | undefined;

afterEach(async () => {
  stopWatch?.();
  stopWatch = undefined;
  for (const connection of connections.splice(0)) connection.disconnect();
  await server?.stop();
  server = undefined;
});

async function watched() {
  server = await startRedisServer();
  const connect = () => {
    const connection = new Redis(server?.url ?? "", { maxRetriesPerRequest: null });
    connections.push(connection);
    return connection;
  };
  const redis = connect();
  await redis.ping();
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    pretty: false,
    destination: { write: (line: string) => void logs.push(JSON.parse(line)) },
  });
  const away = logRedisAway({ logger, now: Date.now });
  return { redis, connect, logs, away };
}

/** Holds the event loop (a big batch of synchronous work) for `ms`. */
function holdEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy
  }
}

it("does not take a PING answered while the event loop was held up for an unanswered one", async () => {
  const { redis, connect, logs, away } = await watched();
  const other = connect();
  await other.ping();
  // Once, as a PING is written: Redis runs a script of 2 probe periods' length first (so the answer
  // comes while the worker is busy), and the worker is then busy (a big batch) for 3 periods:
  // the answer waits on the socket as the timer falls due.
  const ping = redis.ping.bind(redis);
  let pings = 0;
  let script: Promise<unknown> | undefined;
  redis.ping = (() => {
    pings += 1;
    if (pings === 1)
      script = other.eval(
        `local t = redis.call('TIME'); local stop = t[1] * 1e6 + t[2] + ${2 * EVERY_MS * 1000}
         repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= stop`,
        0,
      );
    const answer = ping();
    if (pings === 1) setImmediate(() => holdEventLoop(3 * EVERY_MS));
    return answer;
  }) as typeof redis.ping;
  stopWatch = watchRedisAnswers({ redis, away, now: Date.now, everyMs: EVERY_MS }).stop;
  await eventually(async () => (pings >= 4 ? true : undefined), "four PINGs");
  expect(await script).toBeNull();
  expect(logs.filter((line) => LOST.test(String(line.msg)))).toEqual([]);
});

it("ends the outage of an unanswered PING answered with an error (BUSY) at the next answer", async () => {
  const { redis, connect, logs, away } = await watched();
  // A script running longer than this is answered BUSY to other clients' commands.
  await redis.config("SET", "busy-reply-threshold", String(3 * EVERY_MS));
  // Connected before the script: a connection made during it is refused BUSY.
  const scripting = connect();
  const killing = connect();
  await Promise.all([scripting.ping(), killing.ping()]);
  stopWatch = watchRedisAnswers({ redis, away, now: Date.now, everyMs: EVERY_MS }).stop;
  const script = scripting.eval("while true do end", 0).catch((error: Error) => error);
  const lost = await eventually(
    async () => logs.find((line) => LOST.test(String(line.msg))),
    "Redis logged as away while a script runs",
  );
  expect(lost).toMatchObject({ level: 50 });
  // The PING in flight is answered BUSY, then the script is killed and Redis answers again.
  await new Promise((resolve) => setTimeout(resolve, 4 * EVERY_MS));
  await killing.script("KILL");
  expect(String(await script)).toMatch(/killed/i);
  const back = await eventually(
    async () => logs.find((line) => line.msg === "Redis reachable again"),
    "Redis logged as back once a PING is answered",
  );
  expect(back).toMatchObject({ level: 30 });
});
