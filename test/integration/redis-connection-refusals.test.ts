import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterEach, expect, it } from "vitest";
import { channelsFromEnv } from "../../src/channels/channels-from-env.js";
import { readEnv } from "../../src/config/env.js";
import { createLogger } from "../../src/logger.js";
import { EventPublisher } from "../../src/publisher.js";
import { startWorker } from "../../src/worker.js";
import { purchaseInput, SHIPPED_CONFIG_DIR } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { spawnWorker } from "../support/worker-process.js";

let server: RedisServer | undefined;
let silent: Server | undefined;
let pipeline: PipelineHarness | undefined;
const sockets: Socket[] = [];
/** A redis-server a test froze (SIGSTOP), let go on again before it is stopped. */
let frozenPid: number | undefined;
afterEach(async () => {
  if (frozenPid !== undefined) process.kill(frozenPid, "SIGCONT");
  frozenPid = undefined;
  await pipeline?.close();
  pipeline = undefined;
  await server?.stop();
  server = undefined;
  for (const socket of sockets.splice(0)) socket.destroy();
  await new Promise<void>((resolve) => (silent ? silent.close(() => resolve()) : resolve()));
  silent = undefined;
});

/** Runs the CLI as an operator's shell would, with REDIS_URL set (and REDIS_CLUSTER, if given). */
async function cli(
  redisUrl: string,
  args: string[],
  cluster = false,
  more: NodeJS.ProcessEnv = {},
  /** Killed (SIGTERM) after this long, if given: a command that would wait for ever. */
  timeout = 0,
) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL: redisUrl,
    REDIS_CLUSTER: String(cluster),
    ...more,
  };
  const started = Date.now();
  const result = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "src/cli.ts", ...args],
    { encoding: "utf8", env, timeout },
  ).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
  return { ...result, ms: Date.now() - started };
}

it("refuses a database number the Redis does not have, instead of using database 0", async () => {
  // A private Redis with four databases (0 to 3), so that /7 is beyond them.
  server = await startRedisServer({ args: ["--databases", "4"] });
  const schedule = ["schedule", "--json", "--config", SHIPPED_CONFIG_DIR];
  const beyond = await cli(`${server.url}/7`, schedule);
  expect([beyond.code, beyond.stdout]).toEqual([1, ""]);
  expect(beyond.stderr).toBe(
    "the Redis at REDIS_URL has no database 7 (ERR DB index is out of range): name a database it has (its databases setting, 16 by default, numbers them from 0)\n",
  );
  // One it has is used, and a command that only reads writes nothing there.
  const within = await cli(`${server.url}/3`, schedule);
  expect([within.code, within.stdout]).toEqual([0, '{"days":[]}\n']);
  const three = new Redis(`${server.url}/3`);
  try {
    expect(await three.keys("*")).toEqual([]);
  } finally {
    three.disconnect();
  }

  // The publisher other services use throws on publishing, instead of filling database 0.
  const publisher = new EventPublisher({ connection: `${server.url}/7`, onError: () => {} });
  try {
    await expect(
      publisher.publish(purchaseInput({ occurredAt: new Date().toISOString() }) as never),
    ).rejects.toThrow(
      "the publisher's Redis has no database 7 (ERR DB index is out of range): name a database it has",
    );
  } finally {
    await publisher.close();
  }

  // A worker says the same at start and exits, before writing anything to database 0.
  pipeline = await startPipeline("nodatabase", { startWorker: false });
  const worker = spawnWorker({ ...pipeline.envVars, REDIS_URL: `${server.url}/7` });
  expect(await worker.exited()).toBe(1);
  expect(worker.output()).toContain("the Redis at REDIS_URL has no database 7");
  expect(worker.output()).not.toMatch(/^\s+at /m);
  const zero = new Redis(server.url);
  try {
    expect(await zero.dbsize()).toBe(0);
  } finally {
    zero.disconnect();
  }
  // Three commands and a worker started as processes: over 20 s on a busy machine.
}, 60_000);

/** When the proxy stopped its Redis (Date.now()). */
let stoppedAt: number | undefined;

/**
 * A loopback proxy to the test's Redis that stops it with `signal` (SIGSTOP: frozen, its
 * connections open and nothing answered; SIGKILL: gone) just before passing on the first command
 * that names `marker` (by default one that reads the deployment's shard count: a one-shot command
 * is connected by then, and waits for that answer). Its URL.
 */
async function stoppingProxy(
  redis: RedisServer,
  signal: "SIGSTOP" | "SIGKILL",
  marker = ":fu:shards",
): Promise<string> {
  stoppedAt = undefined;
  const probe = new Redis(redis.url);
  const pid = Number((await probe.info("server")).match(/process_id:(\d+)/)?.[1]);
  probe.disconnect();
  let stopped = false;
  const proxy = createServer((client) => {
    const upstream = connect(redis.port, "127.0.0.1");
    sockets.push(client, upstream);
    client.on("data", (chunk: Buffer) => {
      if (!stopped && chunk.includes(marker)) {
        stopped = true;
        if (signal === "SIGSTOP") frozenPid = pid;
        process.kill(pid, signal);
        stoppedAt = Date.now();
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on("close", () => to.destroy());
      from.on("error", () => to.destroy());
    }
  });
  silent = proxy;
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return `redis://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
}

/** Closes the proxy and its connections; lets a frozen Redis go on, and stops it. */
async function closeProxyAndRedis(): Promise<void> {
  for (const socket of sockets.splice(0)) socket.destroy();
  await new Promise<void>((resolve) => (silent ? silent.close(() => resolve()) : resolve()));
  silent = undefined;
  if (frozenPid !== undefined) process.kill(frozenPid, "SIGCONT");
  frozenPid = undefined;
  await server?.stop();
  server = undefined;
}

/** That `command` ended as one the Redis at `url` left unanswered for `seconds`: one line, exit 1. */
function expectGaveUp(
  command: readonly string[],
  result: { code: number; stdout: string; stderr: string },
  url: string,
  seconds: string,
): void {
  expect({ command, code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
    command,
    code: 1,
    stdout: "",
    stderr: `followups: Redis at ${url} (REDIS_URL) did not answer within ${seconds} s; the command stopped there: run it again once Redis answers (REDIS_COMMAND_TIMEOUT_MS sets the wait)\n`,
  });
}

// A Redis that froze after the command connected (SIGSTOP, or DEBUG SLEEP) held `schedule`,
// `failed` and `replan --dry-run` for ever: each waited for an answer that never came.
it("gives up on a Redis that stops answering mid-command, in one line naming it", async () => {
  const bounds = { REDIS_COMMAND_TIMEOUT_MS: "1000", REDIS_WAIT_TIMEOUT_MS: "100" };
  const commands = [
    ["schedule", "--config", SHIPPED_CONFIG_DIR],
    ["failed", "--config", SHIPPED_CONFIG_DIR],
    ["replan", "--dry-run", "--config", SHIPPED_CONFIG_DIR],
  ];
  for (const command of commands) {
    server = await startRedisServer();
    const url = await stoppingProxy(server, "SIGSTOP");
    const result = await cli(url, command, false, bounds, 60_000);
    expectGaveUp(command, result, url, "1.1");
    expect(frozenPid).toBeDefined();
    await closeProxyAndRedis();
  }
}, 150_000);

// `report` and `schedule` passed over each shard's queue that Redis did not answer (the
// postponed follow-ups' corrections), waiting out the command timeout once per shard and per job:
// a Redis frozen as they read the queues held them for several timeouts (4 shards: over 8 s for
// a 2 s timeout), and `schedule` then printed a schedule without the corrections and exited 0.
it("gives up within about one command timeout when Redis freezes as `report` or `schedule` reads the shards' queues", async () => {
  const timeoutMs = 2_000;
  const bounds = {
    REDIS_COMMAND_TIMEOUT_MS: String(timeoutMs),
    REDIS_WAIT_TIMEOUT_MS: "100",
    FOLLOW_UP_SHARDS: "4",
    // The queues' keys the proxy looks for.
    QUEUE_PREFIX: "followups",
  };
  const commands = [
    ["report", "--config", SHIPPED_CONFIG_DIR],
    ["schedule", "--config", SHIPPED_CONFIG_DIR],
  ];
  for (const command of commands) {
    server = await startRedisServer();
    // The read of shard 1's follow-ups queue, sent once shard 0's was answered: every read sent
    // before it on the connection (the ledger's) has been answered by then.
    const url = await stoppingProxy(server, "SIGSTOP", "{followups:1}:follow-ups:");
    const result = await cli(url, command, false, bounds, 60_000);
    const ended = Date.now();
    expectGaveUp(command, result, url, "2");
    expect(stoppedAt).toBeDefined();
    // From the freeze to the process's end: one timeout, with room for a second and a margin.
    expect(ended - (stoppedAt ?? 0), command[0]).toBeLessThan(2 * timeoutMs + 1_000);
    await closeProxyAndRedis();
  }
}, 120_000);

// BullMQ printed each of the command's queues' errors, stack and all, before the command's line.
it("says once, without a stack trace, that Redis went away mid-command", async () => {
  server = await startRedisServer();
  const url = await stoppingProxy(server, "SIGKILL");
  const result = await cli(url, ["failed", "--config", SHIPPED_CONFIG_DIR], false, {}, 60_000);
  expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
    code: 1,
    stdout: "",
    stderr:
      "followups: Redis stopped answering during the command (Connection is closed.); it stopped there: run it again once Redis answers\n",
  });
}, 60_000);

/**
 * A loopback server that is not Redis: it accepts connections, writes `greeting` (if any) and
 * never answers. Its port.
 */
async function silentServer(greeting?: string): Promise<number> {
  silent = createServer((socket) => {
    sockets.push(socket);
    if (greeting) socket.write(greeting);
  });
  await new Promise<void>((resolve) => silent?.listen(0, "127.0.0.1", resolve));
  return (silent.address() as AddressInfo).port;
}

/** `schedule` against the loopback port `port`: its exit code, stdout, stderr and time taken. */
function scheduleAt(port: number) {
  return cli(`redis://127.0.0.1:${port}`, ["schedule", "--config", SHIPPED_CONFIG_DIR]);
}

/** `schedule` against a silentServer: exit 1, nothing on stdout; its stderr. */
async function scheduleAgainst(greeting?: string) {
  const result = await scheduleAt(await silentServer(greeting));
  expect([result.code, result.stdout]).toEqual([1, ""]);
  return { stderr: result.stderr };
}

it("gives up on a Redis that accepts connections but never answers, in one line", async () => {
  // Something listening that never replies: a stopped or overloaded Redis looks like this.
  const port = await silentServer();
  // The command and a worker at once, each against its own bound (10 s for the command to give
  // up, 5 s for the worker to say it waits), on top of starting a process (3 to 4 s each on a
  // quiet machine, far more on a busy one). One after the other they took 23 to 25 s here, and 29
  // to 33 s on a busy machine, against this test's 40 s.
  const command = scheduleAt(port);

  // A worker waits for such a Redis (it may be loading its data), but says that it is waiting.
  pipeline = await startPipeline("silent-redis", { startWorker: false });
  const worker = spawnWorker({
    ...pipeline.envVars,
    REDIS_URL: `redis://127.0.0.1:${port}`,
    LOG_LEVEL: "info",
  });
  try {
    // Five seconds after it starts; a worker starting on a busy machine took over 15 s.
    await eventually(
      async () => worker.output().includes("has not answered yet") || undefined,
      "the worker to say it waits for Redis",
      30_000,
    );
    expect(worker.output()).toContain(
      "Redis at REDIS_URL has not answered yet (stopped, overloaded, loading its data, or a cluster not ready): waiting for it",
    );
    // A SIGHUP meanwhile (a deploy tool's reload) is kept for when it runs; it used to end it
    // (its default action, taken before any later signal). A SIGTERM after it finds the worker
    // still starting: it stops cleanly, for the SIGTERM, at once. It used to take 2 s: the
    // connection was ended and kept open until Redis closed its side, which this one never does.
    const signalledAt = Date.now();
    worker.child.kill("SIGHUP");
    worker.child.kill("SIGTERM");
    expect(await worker.exited()).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(1_500);
    expect(worker.output()).toContain('"msg":"stopped while starting; nothing left running"');
    expect(worker.output()).toContain('"signal":"SIGTERM"');
  } finally {
    await worker.kill9();
    await command;
  }

  const { code, stdout, stderr, ms } = await command;
  expect([code, stdout]).toEqual([1, ""]);
  expect(stderr).toBe("cannot reach Redis at REDIS_URL: no ready answer within 10 s\n");
  expect(ms).toBeLessThan(25_000);
}, 40_000);

it("says so when what answers is not Redis", async () => {
  // A mail server's port given by mistake: it greets in its own protocol and waits.
  const { stderr } = await scheduleAgainst("220 mail.shop.example ESMTP ready\r\n");
  expect(stderr).toBe(
    "cannot reach Redis at REDIS_URL: what answers there does not speak the Redis protocol (an HTTP server, say): check the host and port\n",
  );
});

it("says so when what answers is not Redis and hangs up before its answer is read", async () => {
  // An HTTP server answers ioredis's first command with a 400 and hangs up; the commands ioredis
  // wrote after it fail with EPIPE, often before the 400 is read: the command then said only
  // "write EPIPE" (4 runs in 6 against a node:http server). This server hangs up on the first
  // connection before answering, as that race ends, and answers later ones as HTTP does.
  let connections = 0;
  silent = createServer((socket) => {
    sockets.push(socket);
    const first = connections++ === 0;
    socket.once("data", () => {
      if (first) socket.resetAndDestroy();
      else socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    });
  });
  await new Promise<void>((resolve) => silent?.listen(0, "127.0.0.1", resolve));
  const result = await scheduleAt((silent.address() as AddressInfo).port);
  expect([result.code, result.stdout]).toEqual([1, ""]);
  expect(result.stderr).toBe(
    "cannot reach Redis at REDIS_URL: what answers there does not speak the Redis protocol (an HTTP server, say): check the host and port\n",
  );
});

/**
 * A one-node Redis Cluster (every slot on it, as a managed cluster of one shard) that asks for
 * `password`, set once the cluster is ok (the test servers are started without one). It announces
 * its address: a node never joined to another does not know it, and would tell clients to go to "".
 */
async function oneNodeCluster(
  password?: string,
  args: readonly string[] = ["--cluster-announce-ip", "127.0.0.1"],
): Promise<RedisServer> {
  const node = await startRedisServer({ args: ["--cluster-enabled", "yes", ...args] });
  const admin = new Redis(node.port, { lazyConnect: true });
  try {
    await admin.connect();
    await admin.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
    const deadline = Date.now() + 10_000;
    while (!/cluster_state:ok/.test(String(await admin.call("CLUSTER", "INFO")))) {
      if (Date.now() > deadline) throw new Error("the one-node cluster never became ok");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (password) await admin.config("SET", "requirepass", password);
  } finally {
    admin.disconnect();
  }
  return node;
}

it("names a password a Redis Cluster refuses, instead of ioredis's 'Failed to refresh slots cache'", async () => {
  server = await oneNodeCluster("S3cret-pw");
  const port = server.port;
  const schedule = ["schedule", "--json", "--config", SHIPPED_CONFIG_DIR];
  // Right password: the command works.
  const right = await cli(`redis://:S3cret-pw@127.0.0.1:${port}`, schedule, true);
  expect([right.code, right.stderr, right.stdout]).toEqual([0, "", '{"days":[]}\n']);

  // No password, a wrong one, or the password only on a later seed (the first one's is used).
  for (const url of [
    `redis://127.0.0.1:${port}`,
    `redis://:wrong@127.0.0.1:${port}`,
    `redis://127.0.0.1:${port},redis://:S3cret-pw@127.0.0.1:${port}`,
  ]) {
    const refused = await cli(url, schedule, true);
    expect([refused.code, refused.stdout]).toEqual([1, ""]);
    expect(refused.stderr).toMatch(
      /^cannot reach Redis at REDIS_URL: (NOAUTH|WRONGPASS) .*\(on a Redis Cluster, the username and password of the first URL are used for every node\)\n$/,
    );
    expect(refused.stderr).not.toContain("slots cache");
    expect(refused.stderr).not.toContain("S3cret-pw");
  }

  // The worker says the same at start.
  const env = readEnv({
    REDIS_URL: `redis://:wrong@127.0.0.1:${port}`,
    REDIS_CLUSTER: "true",
    QUEUE_PREFIX: "cluster-password",
  });
  if (!env.ok) throw new Error(env.problems.join("; "));
  await expect(
    startWorker({
      env: env.env,
      logger: createLogger({ level: "silent", pretty: false }),
      channels: channelsFromEnv(env.env),
      watchConfig: false,
    }),
  ).rejects.toThrow(/^cannot reach Redis at REDIS_URL: WRONGPASS /);
}, 60_000);

it("hints at TLS when rediss:// meets a port without TLS, on one Redis and on a cluster", async () => {
  server = await startRedisServer();
  const single = await cli(`rediss://127.0.0.1:${server.port}`, ["schedule"]);
  expect([single.code, single.stdout]).toEqual([1, ""]);
  expect(single.stderr).toBe(
    "cannot reach Redis at REDIS_URL: no ready answer within 10 s (the URL asks for TLS with rediss://: does that port serve TLS?)\n",
  );
  // A worker waits (the Redis may be loading its data), and says what else it may be.
  pipeline = await startPipeline("tls-plain", { startWorker: false });
  const worker = spawnWorker({
    ...pipeline.envVars,
    REDIS_URL: `rediss://127.0.0.1:${server.port}`,
  });
  try {
    // Five seconds after it starts; a worker starting on a busy machine took over 15 s.
    await eventually(
      async () => worker.output().includes("has not answered yet") || undefined,
      "the worker to say it waits for Redis",
      45_000,
    );
    expect(worker.output()).toContain(
      "or the URL asks for TLS with rediss:// of a port that does not serve TLS): waiting for it",
    );
  } finally {
    await worker.kill9();
  }
  await server.stop();

  server = await oneNodeCluster("S3cret-pw");
  const cluster = await cli(`rediss://:S3cret-pw@127.0.0.1:${server.port}`, ["schedule"], true);
  expect([cluster.code, cluster.stdout]).toEqual([1, ""]);
  expect(cluster.stderr).toMatch(
    /^cannot reach Redis at REDIS_URL: .*\(the URL asks for TLS with rediss:\/\/: does that port serve TLS\?\)\n$/,
  );
}, 90_000);

it("says so when the publisher's cluster mode does not match the Redis, instead of CROSSSLOT or waiting for ever", async () => {
  const publishAt = async (options: ConstructorParameters<typeof EventPublisher>[0]) => {
    const publisher = new EventPublisher({ ...options, onError: () => {} });
    try {
      return await Promise.race([
        publisher.publish(purchaseInput({ occurredAt: new Date().toISOString() }) as never).then(
          () => "published",
          (error: Error) => error.message,
        ),
        new Promise<string>((resolve) =>
          setTimeout(() => resolve("still waiting after 10 s"), 10_000),
        ),
      ]);
    } finally {
      await Promise.race([publisher.close(), new Promise((resolve) => setTimeout(resolve, 1_000))]);
    }
  };
  // A cluster node without cluster mode: the queue's keys have no hash tag, and Redis answered
  // "CROSSSLOT Keys in request don't hash to the same slot" (or MOVED) to every publish.
  server = await oneNodeCluster();
  const clusterNode = `redis://127.0.0.1:${server.port}`;
  const asSingle =
    "the publisher's Redis is a Redis Cluster node: give the publisher cluster: true (or an ioredis Cluster as its connection)";
  expect(await publishAt({ connection: clusterNode })).toBe(asSingle);
  const given = new Redis(clusterNode);
  try {
    expect(await publishAt({ connection: given })).toBe(asSingle);
  } finally {
    given.disconnect();
  }
  const node = new Redis(clusterNode);
  try {
    expect(await node.keys("*purchase-events*")).toEqual([]);
  } finally {
    node.disconnect();
  }
  await server.stop();

  // cluster: true against a single Redis waited for a cluster for ever.
  server = await startRedisServer();
  expect(await publishAt({ connection: server.url, cluster: true })).toMatch(
    /^cluster: true, but the Redis at the publisher's URL is not a Redis Cluster node: leave out cluster: true/,
  );
}, 60_000);

/** A free loopback port. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

it("connects to a TLS cluster (rediss://) whose certificate names its host, as managed clusters have", async () => {
  // A private CA, and a certificate for "localhost" only (no IP address in it).
  const dir = await mkdtemp(path.join(tmpdir(), "followups-tls-"));
  const openssl = (...args: string[]) => promisify(execFile)("openssl", args, { cwd: dir });
  try {
    await openssl(
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt"],
      ...["-days", "2", "-subj", "/CN=followups test CA"],
    );
    await openssl(
      ...["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr"],
      ...["-subj", "/CN=localhost"],
    );
    await writeFile(path.join(dir, "san.ext"), "subjectAltName=DNS:localhost\n");
    await openssl(
      ...["x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key"],
      ...["-CAcreateserial", "-out", "node.crt", "-days", "2", "-extfile", "san.ext"],
    );
    const tlsPort = await freePort();
    // Clients are told the node's host name (cluster-preferred-endpoint-type hostname).
    server = await oneNodeCluster(undefined, [
      ...["--tls-port", String(tlsPort), "--tls-cluster", "yes", "--tls-auth-clients", "no"],
      ...[
        "--tls-cert-file",
        path.join(dir, "node.crt"),
        "--tls-key-file",
        path.join(dir, "node.key"),
      ],
      ...["--tls-ca-cert-file", path.join(dir, "ca.crt")],
      ...[
        "--cluster-announce-hostname",
        "localhost",
        "--cluster-preferred-endpoint-type",
        "hostname",
      ],
    ]);
    const schedule = await cli(
      `rediss://localhost:${tlsPort}`,
      ["schedule", "--json", "--config", SHIPPED_CONFIG_DIR],
      true,
      { NODE_EXTRA_CA_CERTS: path.join(dir, "ca.crt") },
    );
    // ioredis looked the seed's name up and connected to 127.0.0.1, which the certificate does
    // not name: "Failed to refresh slots cache."
    expect([schedule.code, schedule.stderr, schedule.stdout]).toEqual([0, "", '{"days":[]}\n']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);

it("a publisher whose Redis refuses its first check for a moment checks again, instead of calling the database missing", async () => {
  server = await startRedisServer();
  const admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
  const busy = new Redis(server.url, { maxRetriesPerRequest: 1 });
  const publisher = new EventPublisher({ connection: `${server.url}/3`, onError: () => {} });
  const event = () => purchaseInput({ occurredAt: new Date().toISOString() }) as never;
  try {
    // A script that runs until killed: after 100 ms Redis answers every other command BUSY.
    await admin.config("SET", "busy-reply-threshold", "100");
    // The publisher's connection is up in database 3 before Redis gets busy.
    await eventually(
      async () => (/ db=3 /.test(String(await admin.client("LIST"))) ? true : undefined),
      "the publisher to connect",
    );
    void busy.eval("while true do end", 0).catch(() => undefined);
    await eventually(
      () =>
        admin.ping().then(
          () => undefined,
          (error: Error) => error.message,
        ),
      "Redis to answer BUSY",
    );
    // The first publish meets the busy Redis: it fails saying so, not that database 3 is missing.
    const refused = await publisher.publish(event()).then(
      () => undefined,
      (error: Error) => error.message,
    );
    await admin.call("SCRIPT", "KILL");
    await eventually(
      () =>
        admin.ping().then(
          () => true,
          () => undefined,
        ),
      "Redis to answer again",
    );
    // Once Redis answers again, the next publish checks again and enqueues the event there.
    const next = await publisher.publish(event()).then(
      ({ jobId }) => jobId,
      (error: Error) => error.message,
    );
    expect([refused?.replace(/ Redis is busy.*/, ""), next]).toEqual(["BUSY", "evt-1"]);
    const three = new Redis(`${server.url}/3`);
    try {
      expect(await three.exists("followups:purchase-events:evt-1")).toBe(1);
    } finally {
      three.disconnect();
    }
  } finally {
    await admin.call("SCRIPT", "KILL").catch(() => undefined);
    await publisher.close();
    admin.disconnect();
    busy.disconnect();
  }
});
