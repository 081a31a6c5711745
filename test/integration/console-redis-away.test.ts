import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { ConsoleSessions } from "../../src/store/console-sessions.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { type RedisProxy, startRedisProxy } from "../support/redis-proxy.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";

/**
 * The console while Redis is away: every page, Bull Board's too, answers at once with the
 * console's own 503 page (Retry-After), not an error of Bull Board's with Redis's message; also
 * when Redis goes away in the middle of a request.
 */

const TOKEN = "admin-token-0123456789";

let pipeline: PipelineHarness | undefined;
let server: RedisServer | undefined;
/** The port of the test's Redis while it is stopped: started again there before cleaning up. */
let downPort: number | undefined;
let proxy: RedisProxy | undefined;
/** The data directory of a test's Redis that keeps its data across a stop (append-only file). */
let dataDir: string | undefined;
afterEach(async () => {
  if (downPort !== undefined) server = await startRedisServer({ port: downPort, ...kept() });
  downPort = undefined;
  await pipeline?.close();
  pipeline = undefined;
  await proxy?.close();
  proxy = undefined;
  await server?.stop();
  server = undefined;
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
  dataDir = undefined;
});

/** A Redis whose data survives a stop: started again on `dataDir`, it has it all back. */
const kept = () =>
  dataDir ? { dir: dataDir, appendonly: true, appendfsync: "always" as const } : {};

it("answers every console page, the queues' too, with its 503 page while Redis is away", async () => {
  server = await startRedisServer({});
  pipeline = await startPipeline("console-redis-away", {
    redisUrl: server.url,
    env: { ADMIN_TOKENS: `dana:${TOKEN}` },
  });
  const p = pipeline;
  const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
  const base = p.worker?.httpAddress ?? "";
  const get = (path: string) =>
    fetch(`${base}${path}`, {
      headers: { cookie: `fu_console=${cookie}` },
      redirect: "manual",
      signal: AbortSignal.timeout(5_000),
    });
  expect((await get("/console/queues")).status).toBe(200);

  downPort = server.port;
  await server.stop();
  for (const path of ["/console", "/console/queues", "/console/queues/api/queues"]) {
    const response = await get(path);
    const body = await response.text();
    expect({
      path,
      status: response.status,
      retryAfter: response.headers.get("retry-after"),
    }).toEqual({ path, status: 503, retryAfter: "5" });
    expect(response.headers.get("content-type")).toContain("text/html");
    expect(body).toContain("Redis is not answering right now. Try again in a few seconds.");
  }
});

it("answers Bull Board with the console's 503 page when Redis goes away while it reads or acts, and serves it again once Redis is back", async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "followups-board-away-"));
  server = await startRedisServer(kept());
  // Redis is stopped when a command of the test's own (its job id, its address) reaches it: the
  // session was read, Bull Board's read or write is under way.
  proxy = await startRedisProxy(server.port);
  pipeline = await startPipeline("console-board-away", {
    redisUrl: proxy.url,
    env: { ADMIN_TOKENS: `dana:${TOKEN}` },
  });
  const p = pipeline;
  const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
  const base = p.worker?.httpAddress ?? "";
  const request = (route: string, init: RequestInit = {}) =>
    fetch(`${base}/console/queues/api/queues/purchase-events/${route}`, {
      ...init,
      headers: { cookie: `fu_console=${cookie}`, origin: base, ...init.headers },
      redirect: "manual",
      signal: AbortSignal.timeout(10_000),
    });
  const awayWhile = async (marker: string, answer: () => Promise<Response>) => {
    const port = (server as RedisServer).port;
    const stopped = proxy?.armed(marker, async () => {
      downPort = port;
      await server?.stop();
    });
    const response = await answer();
    await stopped;
    const body = await response.text();
    expect({
      status: response.status,
      retryAfter: response.headers.get("retry-after"),
      type: response.headers.get("content-type"),
    }).toEqual({ status: 503, retryAfter: "5", type: "text/html; charset=utf-8" });
    expect(body).toContain("Redis is not answering right now. Try again in a few seconds.");
    // Nothing of Redis's error, nor a stack.
    expect(body).not.toMatch(/retries|Connection is closed|\bat .*\.js/);
    server = await startRedisServer({ port, ...kept() });
    downPort = undefined;
  };

  // An event the worker refused, kept with the customer's address in the input queue.
  await p.events.add(
    "purchase.completed",
    {
      type: "purchase.completed",
      id: "evt-board-away",
      customer: { id: "cus-board-away", email: "kept.address@example.com" },
    },
    { jobId: "job-board-away" },
  );
  await eventually(
    async () => ((await p.events.getFailedCount()) === 1 ? true : undefined),
    "the event to be refused",
  );
  expect((await request("job-board-away")).status).toBe(200);

  // Bull Board reads a job (one no one else names): Redis goes away before it answers.
  await awayWhile("job-nobody-names", () => request("job-nobody-names"));
  // The worker runs on, and serves the board again once it has reconnected.
  const served = () =>
    eventually(async () => {
      const response = await request("job-board-away");
      return response.status === 200 ? JSON.stringify(await response.json()) : undefined;
    }, "the board to be served again");
  await expect(served()).resolves.toContain("kept.address@example.com");

  // Bull Board replaces a job's data with an address in it: Redis goes away as it writes.
  await awayWhile("new.address@example.com", () =>
    request("job-board-away/update-data", {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        jobData: { customer: { id: "cus-board-away", email: "new.address@example.com" } },
      }),
    }),
  );
  // Not written, as the 503 said.
  await expect(served()).resolves.toContain("kept.address@example.com");
  // Neither address in the worker's log.
  const logged = JSON.stringify(p.logs);
  expect(logged).toContain("console answered 503: Redis away");
  expect(logged).not.toContain("address@example.com");
  expect(p.logs.filter((line) => line.msg === "console request failed")).toEqual([]);
}, 60_000);
