import { afterEach, expect, it, onTestFinished } from "vitest";
import { isConnectionLoss } from "../../src/store/redis-client.js";
import { purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
} from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";

let server: RedisServer | undefined;
let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
  await server?.stop();
  server = undefined;
});

const LOST = /^Redis connection lost/;

/** A line that logs an error that only says Redis could not be reached. */
function connectionErrorLine(line: Record<string, unknown>): boolean {
  const err = line.err as { code?: string; message?: string; type?: string } | undefined;
  if (!err) return false;
  const error = Object.assign(new Error(err.message ?? ""), err.code ? { code: err.code } : {});
  if (err.type) error.name = err.type;
  return isConnectionLoss(error);
}

it("logs a Redis outage in a few lines, not a line per reconnect of every connection", {
  timeout: 60_000,
}, async () => {
  // Its data survives the restart (append-only, every write synced), as a production Redis's.
  server = await startRedisServer({ appendonly: true, appendfsync: "always" });
  const p = await startPipeline("redis-outage-log", { redisUrl: server.url });
  pipeline = p;
  await p.publisher.publish(purchaseInput({ id: "evt-before", orderId: "ord-before" }) as never);
  expect(await eventProcessed(p, "evt-before")).toBe("completed");

  const from = p.logs.length;
  await server.restart({ downMs: 8_000 });
  const back = await eventually(
    async () => p.logs.slice(from).find((line) => line.msg === "Redis reachable again"),
    "the worker to log that Redis is back",
    30_000,
  );
  const during = p.logs.slice(from, p.logs.indexOf(back) + 1);
  // One line as Redis went, with the error that said so; one as it came back, with how long it
  // was away and how many connection errors came meanwhile (each reconnect of each connection).
  const lost = during.filter((line) => LOST.test(String(line.msg)));
  expect(lost).toHaveLength(1);
  expect(lost[0]).toMatchObject({ level: 50 });
  expect(back).toMatchObject({ level: 30 });
  expect(back.awayMs).toBeGreaterThanOrEqual(7_000);
  expect(back.errors).toBeGreaterThan(10);
  // No connection error logged on its own line besides (before: about four a second).
  expect(during.filter(connectionErrorLine)).toEqual([lost[0]]);

  // The worker goes on once Redis is back.
  await p.publisher.publish(purchaseInput({ id: "evt-after", orderId: "ord-after" }) as never);
  expect(await eventProcessed(p, "evt-after")).toBe("completed");
});

it("logs a frozen Redis (connections open, nothing answered) as away, and its return", {
  timeout: 90_000,
}, async () => {
  server = await startRedisServer();
  const p = await startPipeline("redis-frozen-log", { redisUrl: server.url });
  pipeline = p;
  await p.publisher.publish(purchaseInput({ id: "evt-before", orderId: "ord-before" }) as never);
  expect(await eventProcessed(p, "evt-before")).toBe("completed");

  const from = p.logs.length;
  server.freeze();
  // Thawed whatever happens: a frozen server would hold up closing the pipeline.
  const frozen = server;
  onTestFinished(() => frozen.thaw());
  const lost = await eventually(
    async () => p.logs.slice(from).find((line) => LOST.test(String(line.msg))),
    "the worker to log that Redis does not answer",
    30_000,
  );
  expect(lost).toMatchObject({ level: 50 });
  expect(String((lost.err as { message?: string } | undefined)?.message)).toMatch(
    /Redis has not answered for \d+ s/,
  );
  server.thaw();
  const back = await eventually(
    async () => p.logs.slice(from).find((line) => line.msg === "Redis reachable again"),
    "the worker to log that Redis answers again",
    30_000,
  );
  expect(back).toMatchObject({ level: 30 });
  // From when the PING went unanswered (the freeze), not from when that was found out.
  expect(back.awayMs).toBeGreaterThanOrEqual(5_000);
  // Said once each.
  const during = p.logs.slice(from, p.logs.indexOf(back) + 1);
  expect(during.filter((line) => LOST.test(String(line.msg)))).toHaveLength(1);

  await p.publisher.publish(purchaseInput({ id: "evt-after", orderId: "ord-after" }) as never);
  expect(await eventProcessed(p, "evt-after")).toBe("completed");
});
