import { readdir } from "node:fs/promises";
import { Redis } from "ioredis";
import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { postTwilio } from "../support/webhooks.js";

/**
 * Twilio's webhooks are answered on a Redis connection of their own: what the jobs' connection
 * waits for (here a WAIT for a replica that is not there, REDIS_WAIT_REPLICAS) does not hold up
 * a customer's STOP.
 */

let pipeline: PipelineHarness | undefined;
let server: RedisServer | undefined;
let watcher: Redis | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
  watcher?.disconnect();
  watcher = undefined;
  await server?.stop();
  server = undefined;
});

/** Clients of the Redis blocked in a WAIT now (CLIENT LIST), by id. */
async function waitingClients(redis: Redis): Promise<string[]> {
  const list = (await redis.call("CLIENT", "LIST")) as string;
  return list
    .split("\n")
    .filter((line) => / cmd=wait /.test(line))
    .map((line) => /^id=(\d+)/.exec(line)?.[1] ?? "");
}

it("an SMS STOP is handled at once while a job's write waits for a replica on the jobs' connection", {
  timeout: 60_000,
}, async () => {
  // A Redis without a replica: a job's wait for one lasts its whole REDIS_WAIT_TIMEOUT_MS.
  server = await startRedisServer();
  pipeline = await startPipeline("webhook-connection", {
    redisUrl: server.url,
    cluster: false,
    env: { REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: "20000" },
  });
  const p = pipeline;
  watcher = new Redis(server.url, { maxRetriesPerRequest: 1 });
  const w = watcher;

  // Intake plans a purchase; its schedule is waited for (a replica that never confirms).
  await p.publisher.publish(
    purchaseInput({
      id: "evt-blocking",
      orderId: "ord-blocking",
      occurredAt:
        DateTime.utc()
          .minus({ hours: 1 })
          .startOf("second")
          .toISO({ suppressMilliseconds: true }) ?? "",
      items: [item("televisions", "700.00")],
    }) as never,
  );
  const [blocked] = await eventually(
    async () => {
      const ids = await waitingClients(w);
      return ids.length > 0 ? ids : undefined;
    },
    "a job's write to wait for a replica",
    10_000,
  );

  const phone = "+442079460111";
  const started = Date.now();
  const answer = await postTwilio(p, "/webhooks/twilio/inbound", {
    From: phone,
    Body: "STOP",
    MessageSid: "SMstop-while-waiting",
  });
  const tookMs = Date.now() - started;
  expect(answer.status).toBe(200);
  // The opt-out is stored while the job's wait still holds its connection.
  expect(await new SuppressionList(w, p.prefix).isSuppressed("sms", { address: phone })).toBe(true);
  expect(await waitingClients(w)).toContain(blocked);
  // Handled, not cut off after the 2 s an answer may take and spooled for later.
  expect(tookMs).toBeLessThan(2_000);
  expect(await readdir(p.envVars.WEBHOOK_SPOOL_DIR ?? "").catch(() => [])).toEqual([]);
  expect(p.logs.filter((line) => String(line.msg).includes("spooled"))).toEqual([]);
});
