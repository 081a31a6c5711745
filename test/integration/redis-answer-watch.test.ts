import { type Cluster, Redis } from "ioredis";
import { afterEach, expect, it, onTestFinished } from "vitest";
import { createLogger } from "../../src/logger.js";
import { logRedisAway, watchRedisAnswers } from "../../src/queue/redis-away-log.js";
import {
  createRedisClient,
  dropConnection,
  type RedisClient,
} from "../../src/store/redis-client.js";
import { eventually } from "../support/pipeline-harness.js";
import { type RedisCluster, startRedisCluster } from "../support/redis-cluster.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";

// The worker's watch of a Redis that holds its connections open and answers nothing, on a
// private redis-server (or a private cluster of three masters), with a PING every EVERY_MS
// instead of every 5 s.
const EVERY_MS = 500;
const LOST = /^Redis connection lost/;

let server: RedisServer | undefined;
let cluster: RedisCluster | undefined;
const connections: RedisClient[] = [];
let stopWatch: (() => void) | undefined;

afterEach(async () => {
  stopWatch?.();
  stopWatch = undefined;
  for (const connection of connections.splice(0)) dropConnection(connection);
  await server?.stop();
  server = undefined;
  await cluster?.stop();
  cluster = undefined;
});

/** The outage log, its lines kept. */
function awayLog() {
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    pretty: false,
    destination: { write: (line: string) => void logs.push(JSON.parse(line)) },
  });
  return { logs, away: logRedisAway({ logger, now: Date.now }) };
}

async function watched() {
  server = await startRedisServer();
  const connect = () => {
    const connection = new Redis(server?.url ?? "", { maxRetriesPerRequest: null });
    connections.push(connection);
    return connection;
  };
  const redis = connect();
  await redis.ping();
  return { redis, connect, ...awayLog() };
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
  const watch = watchRedisAnswers({ redis, away, now: Date.now, everyMs: EVERY_MS });
  stopWatch = watch.stop;
  // The PINGs go on the watch's own connection.
  const probe = watch.connection as Redis;
  // Once, as a PING is written: Redis runs a script of 2 probe periods' length first (so the answer
  // comes while the worker is busy), and the worker is then busy (a big batch) for 3 periods:
  // the answer waits on the socket as the timer falls due.
  const ping = probe.ping.bind(probe);
  let pings = 0;
  let script: Promise<unknown> | undefined;
  probe.ping = (() => {
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
  }) as typeof probe.ping;
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
  const watch = watchRedisAnswers({ redis, away, now: Date.now, everyMs: EVERY_MS });
  stopWatch = watch.stop;
  // The watch's own connection too.
  await eventually(
    async () => (watch.connection.status === "ready" ? true : undefined),
    "the watch connected",
  );
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

it("does not take a command holding the worker's own connection (a blocking one) for an outage", async () => {
  const { redis, connect, logs, away } = await watched();
  const other = connect();
  const pingsAnswered = async () =>
    Number(/cmdstat_ping:calls=(\d+)/.exec(await other.info("commandstats"))?.[1] ?? 0);
  stopWatch = watchRedisAnswers({ redis, away, now: Date.now, everyMs: EVERY_MS }).stop;
  const before = await pingsAnswered();
  // The worker's connection waits 10 probe periods for a list nobody writes: only that
  // connection waits, Redis answers everyone else meanwhile.
  const waited = await redis.blpop("{watch}:nobody-writes", (10 * EVERY_MS) / 1000);
  expect(waited).toBeNull();
  // The watch PINGed meanwhile, answered at once.
  expect((await pingsAnswered()) - before).toBeGreaterThanOrEqual(5);
  // Two periods more: a PING queued behind the BLPOP would have been found out by now.
  await new Promise((resolve) => setTimeout(resolve, 2 * EVERY_MS));
  expect(logs.filter((line) => LOST.test(String(line.msg)))).toEqual([]);
});

it("still finds a frozen Redis (SIGSTOP) on its own connection, and its return", async () => {
  const { redis, logs, away } = await watched();
  stopWatch = watchRedisAnswers({ redis, away, now: Date.now, everyMs: EVERY_MS }).stop;
  // The watch's PINGs answered for a while first (its connection is up).
  await new Promise((resolve) => setTimeout(resolve, 3 * EVERY_MS));
  const frozen = server;
  if (!frozen) throw new Error("no server");
  frozen.freeze();
  onTestFinished(() => frozen.thaw());
  const lost = await eventually(
    async () => logs.find((line) => LOST.test(String(line.msg))),
    "Redis logged as away while frozen",
  );
  expect(lost).toMatchObject({ level: 50, probe: "PING" });
  expect(String((lost.err as { message?: string } | undefined)?.message)).toMatch(
    /Redis has not answered for \d+ s/,
  );
  frozen.thaw();
  const back = await eventually(
    async () => logs.find((line) => line.msg === "Redis reachable again"),
    "Redis logged as back once thawed",
  );
  expect(back).toMatchObject({ level: 30 });
  expect(redis.status).toBe("ready");
});

/** A private cluster (three masters, a replica each unless `replicas: 0`), watched. */
async function watchedCluster(replicas: 0 | 1) {
  const running = await startRedisCluster({ replicas });
  cluster = running;
  const client = createRedisClient(running.url, true, { maxRetriesPerRequest: null }) as Cluster;
  connections.push(client);
  client.on("error", () => {});
  await client.ping();
  const { logs, away } = awayLog();
  const watch = watchRedisAnswers({ redis: client, away, now: Date.now, everyMs: EVERY_MS });
  stopWatch = watch.stop;
  // Watching: its connection up and a few rounds of PINGs answered.
  await eventually(
    async () => (watch.connection.status === "ready" ? true : undefined),
    "the watch connected",
  );
  await new Promise((resolve) => setTimeout(resolve, 3 * EVERY_MS));
  /** Freezes the master at `port` (SIGSTOP) and waits for the watch to log it away. */
  const freezeMaster = async (port: number | undefined) => {
    const frozen = running.nodes.find((node) => node.port === port);
    if (!frozen) throw new Error(`no node at ${port}`);
    frozen.freeze();
    onTestFinished(() => frozen.thaw());
    const lost = await eventually(
      async () => logs.find((line) => LOST.test(String(line.msg))),
      "the frozen master logged as away",
    );
    expect(lost).toMatchObject({ level: 50, probe: "PING", node: `127.0.0.1:${frozen.port}` });
    return frozen;
  };
  return { running, client, logs, freezeMaster };
}

it("finds one frozen master of a cluster, names it, and logs its return", {
  timeout: 60_000,
}, async () => {
  // Every master is PINGed, not one node at random.
  const { running, logs, freezeMaster } = await watchedCluster(0);
  // Every master answers: no outage.
  expect(logs.filter((line) => LOST.test(String(line.msg)))).toEqual([]);

  // The last master frozen (SIGSTOP): its connections stay open, it answers nothing.
  const frozen = await freezeMaster(running.nodes[2]?.port);
  frozen.thaw();
  const back = await eventually(
    async () => logs.find((line) => line.msg === "Redis reachable again"),
    "Redis logged as back once the master answers",
    20_000,
  );
  expect(back).toMatchObject({ level: 30 });
  // Only the frozen master was blamed.
  const blamed = new Set(logs.filter((line) => LOST.test(String(line.msg))).map((l) => l.node));
  expect([...blamed]).toEqual([`127.0.0.1:${frozen.port}`]);
});

it("logs Redis back once a frozen master's replica has taken over, the master still frozen", {
  timeout: 90_000,
}, async () => {
  const { client, logs, freezeMaster } = await watchedCluster(1);
  const frozen = await freezeMaster(client.nodes("master")[0]?.options.port);
  // Its replica is elected after cluster-node-timeout (2 s here); the old master stays frozen.
  const back = await eventually(
    async () => logs.find((line) => line.msg === "Redis reachable again"),
    "Redis logged as back once the replica took over",
    40_000,
  );
  expect(back).toMatchObject({ level: 30 });
  // The old master's PING, still unanswered, no longer counts: its connection, dropped by the
  // failover, stays open up to ioredis's 2 s disconnectTimeout (the frozen node never closes its
  // side), and no outage of it is logged again meanwhile.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const after = logs.slice(logs.indexOf(back) + 1);
  expect(after.filter((line) => line.node === `127.0.0.1:${frozen.port}`)).toEqual([]);
});
