import { readdir } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, expect, it } from "vitest";
import { quietRedisErrors } from "../faults/fault-support.js";
import { type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { postTwilioAt } from "../support/webhooks.js";
import { spawnWorker, startedLine, type WorkerProcess } from "../support/worker-process.js";

/**
 * A `followups worker` process with HTTP and the console on, whose Redis crashed (SIGKILL) and
 * stayed away while it tried to reconnect, gets a SIGTERM: it stops without waiting for Redis
 * (SHUTDOWN_TIMEOUT_MS is set far beyond the test's patience, so a cut-off would be said in the
 * log, not guessed from a stopwatch), and every line it writes is a JSON log line.
 */

let server: RedisServer | undefined;
let pipeline: PipelineHarness | undefined;
let child: WorkerProcess | undefined;
afterEach(async () => {
  await child?.kill9();
  child = undefined;
  // The harness cleans up through Redis: one on the same port, empty.
  if (server) server = await startRedisServer({ port: server.port });
  await pipeline?.close();
  pipeline = undefined;
  await server?.stop();
  server = undefined;
});

/** Far longer than the clean stop takes: reaching it would be logged as a cut-off. */
const SHUTDOWN_TIMEOUT_MS = 60_000;
const ADMIN_TOKENS = "dana:admin-token-0123456789";

it("a worker with HTTP and the console whose Redis is gone stops on SIGTERM without timing out, writing only JSON lines", {
  timeout: SHUTDOWN_TIMEOUT_MS + 60_000,
}, async () => {
  server = await startRedisServer();
  pipeline = await startPipeline("shutdown-redis-gone", {
    redisUrl: server.url,
    startWorker: false,
    env: { SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS), ADMIN_TOKENS },
  });
  const p = pipeline;
  // The harness's own connections have no error listeners; they reconnect by themselves.
  quietRedisErrors(p);
  const worker = spawnWorker({ ...p.envVars, LOG_LEVEL: "info" });
  child = worker;
  const started = await startedLine(worker, 50_000);
  const httpAddress = JSON.parse(started).http as string;
  expect(httpAddress).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

  // A crash, not a shutdown: connections refused from now on.
  await server.kill();
  // Twilio's status callback while Redis is gone is kept in the spool (answered 204).
  const status = await postTwilioAt(httpAddress, p, "/webhooks/twilio/status", {
    MessageSid: "SM-gone",
    MessageStatus: "delivered",
  });
  expect(status.status).toBe(204);
  const spoolDir = p.envVars.WEBHOOK_SPOOL_DIR ?? "";
  const spooled = (await readdir(spoolDir)).filter((name) => name.endsWith(".json"));
  expect(spooled.length).toBeGreaterThanOrEqual(1);
  // Several reconnect attempts fail meanwhile.
  await sleep(5_000);

  worker.child.kill("SIGTERM");
  const code = await worker.exited();
  const output = worker.output();
  const lines = output.split("\n").filter((line) => line.trim() !== "");
  const notJson = lines.filter((line) => {
    try {
      return typeof JSON.parse(line) !== "object";
    } catch {
      return true;
    }
  });
  expect(notJson, "every line the worker wrote is a JSON log line").toEqual([]);
  const logged = lines.map((line) => JSON.parse(line) as { msg?: unknown; ms?: unknown });
  const messages = logged.map((line) => String(line.msg));
  const stopped = logged.find((line) => line.msg === "followups worker stopped");
  const shutDown = messages.slice(messages.indexOf("shutting down"));
  console.log(`SIGTERM with Redis gone: stopped after ${stopped?.ms} ms; ${shutDown.join(" | ")}`);
  expect(code, output.slice(-2_000)).toBe(0);
  expect(messages).toContain("followups worker stopped");
  // Nothing was cut off by SHUTDOWN_TIMEOUT_MS: each cut-off says "… in time".
  expect(messages.filter((msg) => msg.includes("in time"))).toEqual([]);
  // The outage is logged once, not once per reconnect attempt.
  expect(messages.filter((msg) => msg.startsWith("Redis connection lost")).length).toBe(1);
  // The webhook Redis never saw stays on disk, replayed by the next worker.
  const left = (await readdir(spoolDir)).filter((name) => name.endsWith(".json"));
  expect(left).toEqual(expect.arrayContaining(spooled));
});
