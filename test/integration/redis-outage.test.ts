import { readdir } from "node:fs/promises";
import { DateTime } from "luxon";
import twilio from "twilio";
import { afterEach, expect, it } from "vitest";
import { quietRedisErrors } from "../faults/fault-support.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  startPipeline,
  TWILIO_TOKEN,
} from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { spawnWorker, type WorkerProcess } from "../support/worker-process.js";

/**
 * Redis goes away under a running worker (its own redis-server, stopped and started again on the
 * same port): HTTP answers at once instead of hanging, the worker recovers by itself, and a
 * shutdown finishes in time even though Redis never answers.
 */

let servers: RedisServer[] = [];
let pipeline: PipelineHarness | undefined;
let child: WorkerProcess | undefined;
/** Port of a Redis the test stopped, started again before cleaning up (which needs Redis). */
let downPort: number | undefined;
/** Pid of a redis-server the test froze with SIGSTOP. */
let frozenPid: number | undefined;
afterEach(async () => {
  await child?.kill9();
  child = undefined;
  if (frozenPid !== undefined) process.kill(frozenPid, "SIGCONT");
  frozenPid = undefined;
  if (downPort !== undefined) await ownRedis(downPort);
  downPort = undefined;
  await pipeline?.close();
  pipeline = undefined;
  for (const server of servers) await server.stop();
  servers = [];
});

/** /readyz must answer within this while Redis is down (orchestrators' probes time out fast). */
const READY_BOUND_MS = 1_000;
/** POST /v1/events must answer within this while Redis is down. */
const POST_BOUND_MS = 3_000;
const SHUTDOWN_TIMEOUT_MS = 3_000;
/** Room for the event loop of a busy 2-core machine on top of SHUTDOWN_TIMEOUT_MS. */
const SHUTDOWN_MARGIN_MS = 1_500;
/**
 * For the whole process, the same bound: once close() returns, `followups worker` exits at once,
 * even while BullMQ's own guard on a blocking read Redis never answered is still pending.
 */
const PROCESS_SHUTDOWN_TIMEOUT_MS = SHUTDOWN_TIMEOUT_MS;

async function ownRedis(port?: number): Promise<RedisServer> {
  const server = await startRedisServer(port === undefined ? {} : { port });
  servers.push(server);
  return server;
}

/** Stops the test's Redis; resolves once the process is gone. */
async function stopRedis(server: RedisServer): Promise<void> {
  await server.stop();
  servers = servers.filter((s) => s !== server);
  downPort = server.port;
}

/** Starts Redis again on the port it had (empty: it kept nothing). */
async function restartRedis(): Promise<void> {
  if (downPort === undefined) throw new Error("Redis is not down");
  await ownRedis(downPort);
  downPort = undefined;
}

/** Freezes the test's Redis (SIGSTOP): connections stay open, nothing is answered. */
async function freezeRedis(p: PipelineHarness): Promise<void> {
  const pid = Number((await p.redis.info("server")).match(/process_id:(\d+)/)?.[1]);
  process.kill(pid, "SIGSTOP");
  frozenPid = pid;
}

/** Resolves with `promise`'s outcome, or "running" if it has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | "running"> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<"running">((resolve) => {
    timer = setTimeout(resolve, ms, "running");
  });
  try {
    return await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
}

function http(p: PipelineHarness): string {
  const address = p.worker?.httpAddress;
  if (!address) throw new Error("HTTP is not listening");
  return address;
}

/** A request that must be answered within `boundMs` (aborted and failed otherwise), timed. */
async function timed(url: string, boundMs: number, init: RequestInit = {}) {
  const started = performance.now();
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(boundMs) });
  const body = await response.text();
  return { response, body, ms: Math.round(performance.now() - started) };
}

const TILL_TOKEN = "till-token-0123456789";
const INBOUND_EMAIL_TOKEN = "inbound-email-token-0123456789";
const ADMIN_TOKENS = "dana:admin-token-0123456789";

/**
 * A till's lookup, a signed Twilio inbound text, an inbound email, the admin API, a call picked
 * up and Twilio's status callbacks: each bounded, timed. Each answers 503 with Retry-After, but
 * Twilio's webhooks: Twilio does not send one again after a 5xx, so the inbound text and the
 * status callbacks are kept in the webhook spool and answered as usual (200 with empty TwiML,
 * 204), and the call is hung up on.
 */
async function expectOtherRoutesInTime(p: PipelineHarness, boundMs: number): Promise<number[]> {
  const [till, text, email, admin, call, smsStatus, callStatus] = await otherRoutes(p, boundMs);
  expect(text?.response.status).toBe(200);
  expect(text?.body).toContain("<Response>");
  for (const status of [smsStatus, callStatus]) {
    expect(status?.response.status).toBe(204);
    expect(status?.body).toBe("");
  }
  // A call picked up meanwhile is hung up on: a 503 has Twilio tell the customer "an application
  // error has occurred".
  expect(call?.response.status).toBe(200);
  expect(call?.body).toContain("<Hangup/>");
  const spooled = await readdir(p.envVars.WEBHOOK_SPOOL_DIR ?? "");
  // The text, the call's pick-up (recorded as unheard once Redis is back) and both status
  // callbacks (a round may also keep those of an earlier one).
  expect(spooled.filter((name) => name.endsWith(".json")).length).toBeGreaterThanOrEqual(4);
  for (const answer of [till, email, admin]) {
    expect(answer?.response.status).toBe(503);
    expect(answer?.response.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
  }
  return [till, text, email, admin, call, smsStatus, callStatus].map((answer) => answer?.ms ?? -1);
}

async function otherRoutes(p: PipelineHarness, boundMs: number) {
  const params = { From: "+447400123456", Body: "Yes", MessageSid: "SM-outage" };
  const route = "/webhooks/twilio/inbound";
  const callParams = { CallSid: "CA-outage", AnsweredBy: "human", To: "+447400123456" };
  const callRoute = "/webhooks/twilio/voice/answer";
  return [
    await timed(`${http(p)}/v1/discount-codes/K7QM-2XRD`, boundMs, {
      headers: { authorization: `Bearer ${TILL_TOKEN}` },
    }),
    await signedTwilio(p, route, params, boundMs),
    await timed(`${http(p)}/webhooks/email/inbound`, boundMs, {
      method: "POST",
      headers: {
        authorization: `Bearer ${INBOUND_EMAIL_TOKEN}`,
        "content-type": "message/rfc822",
      },
      body: "Message-ID: <outage@mail.example>\r\nFrom: a@example.com\r\n\r\nHello",
    }),
    // The admin API: a 503 also when a command times out on a connection that looks up.
    await timed(`${http(p)}/admin/v1/customers/cus-outage`, boundMs, {
      headers: { authorization: "Bearer admin-token-0123456789" },
    }),
    await signedTwilio(p, `${callRoute}?call=fu.evt-outage.check-in`, callParams, boundMs),
    await signedTwilio(
      p,
      "/webhooks/twilio/status",
      { MessageSid: "SM-outage-sent", MessageStatus: "delivered" },
      boundMs,
    ),
    await signedTwilio(
      p,
      "/webhooks/twilio/voice/status?call=fu.evt-outage.check-in",
      { CallSid: "CA-outage", CallStatus: "no-answer" },
      boundMs,
    ),
  ];
}

/** A POST signed as Twilio signs it (form fields), bounded and timed. */
function signedTwilio(
  p: PipelineHarness,
  pathAndQuery: string,
  params: Record<string, string>,
  boundMs: number,
) {
  return timed(`${http(p)}${pathAndQuery}`, boundMs, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": twilio.getExpectedTwilioSignature(
        TWILIO_TOKEN,
        `${p.envVars.PUBLIC_URL}${pathAndQuery}`,
        params,
      ),
    },
    body: new URLSearchParams(params).toString(),
  });
}

/** /metrics answers in time while Redis is away, without the gauges it reads from Redis. */
async function expectMetricsInTime(p: PipelineHarness, boundMs: number) {
  const metrics = await timed(`${http(p)}/metrics`, boundMs);
  expect(metrics.response.status).toBe(200);
  expect(metrics.body).toContain("followups_events_received_total");
  return metrics.ms;
}

const ago = (hours: number) =>
  DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

/** Bought two hours ago: its thank-you email is due at once. */
const tv = (id: string) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: ago(2),
    items: [item("televisions", "700.00")],
    customer: { id: `cus-${id}`, email: `${id}@example.com` },
  });

function postEvent(p: PipelineHarness, event: unknown, boundMs: number) {
  return timed(`${http(p)}/v1/events`, boundMs, {
    method: "POST",
    headers: {
      authorization: `Bearer ${p.envVars.API_TOKEN}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(event),
  });
}

it("while Redis is down, /readyz and POST /v1/events answer 503 at once; back up, the worker recovers by itself", {
  timeout: 60_000,
}, async () => {
  const server = await ownRedis();
  pipeline = await startPipeline("redis-outage", {
    redisUrl: server.url,
    env: { TILL_TOKEN, INBOUND_EMAIL_TOKEN, ADMIN_TOKENS },
  });
  const p = pipeline;
  // The harness's own connections have no error listeners; they reconnect by themselves.
  quietRedisErrors(p);
  expect((await timed(`${http(p)}/readyz`, READY_BOUND_MS)).response.status).toBe(200);

  await stopRedis(server);
  const ready: number[] = [];
  // Several probes over the outage, each bounded: the first right after Redis exited, the others
  // while ioredis is between reconnection attempts.
  for (let probe = 0; probe < 5; probe++) {
    const answer = await timed(`${http(p)}/readyz`, READY_BOUND_MS);
    expect(answer.response.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({ ready: false, checks: { redis: false } });
    ready.push(answer.ms);
  }
  const posts: number[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const answer = await postEvent(p, tv("evt-outage"), POST_BOUND_MS);
    expect(answer.response.status).toBe(503);
    expect(answer.response.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    expect(JSON.parse(answer.body)).toEqual({ error: "temporarily unavailable; retry later" });
    posts.push(answer.ms);
  }
  // Webhooks and tills too: they must not hang.
  const others = await expectOtherRoutesInTime(p, POST_BOUND_MS);
  const metricsMs = await expectMetricsInTime(p, POST_BOUND_MS);
  console.log(
    `Redis down: /readyz ${ready.join(", ")} ms; POST /v1/events ${posts.join(", ")} ms; webhooks, tills and admin ${others.join(", ")} ms; /metrics ${metricsMs} ms`,
  );
  expect(
    p.logs.some((line) => line.msg === "answered 503: a dependency is unavailable"),
    "the refusal is logged for the operator",
  ).toBe(true);

  // Redis is back on the same address (empty: it kept nothing): nobody restarts the worker.
  const restarted = Date.now();
  await restartRedis();
  await eventually(
    async () => ((await fetch(`${http(p)}/readyz`)).status === 200 ? true : undefined),
    "/readyz 200 after Redis came back",
    20_000,
  );
  const readyAgainMs = Date.now() - restarted;
  // The client retries the refused event, as Retry-After told it to: accepted and sent.
  const retried = await eventually(async () => {
    const answer = await postEvent(p, tv("evt-outage"), 10_000);
    return answer.response.status === 202 ? answer : undefined;
  }, "the retried event to be accepted");
  expect(JSON.parse(retried.body)).toEqual({ eventId: "evt-outage" });
  const [mail] = await p.sink.waitForMessages(1, 20_000);
  expect(mail?.envelope.rcptTo).toEqual(["evt-outage@example.com"]);
  console.log(
    `Redis back: /readyz 200 after ${readyAgainMs} ms; sent ${Date.now() - restarted} ms after restart`,
  );
});

it("close() returns within SHUTDOWN_TIMEOUT_MS while Redis is down", {
  timeout: 30_000,
}, async () => {
  const server = await ownRedis();
  pipeline = await startPipeline("redis-outage-close", {
    redisUrl: server.url,
    env: { SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) },
  });
  const p = pipeline;
  // The harness's own connections have no error listeners; they reconnect by themselves.
  quietRedisErrors(p);
  const worker = p.worker;
  if (!worker) throw new Error("no worker");
  await stopRedis(server);

  const started = performance.now();
  const closed = await within(worker.close(), SHUTDOWN_TIMEOUT_MS + SHUTDOWN_MARGIN_MS);
  const ms = Math.round(performance.now() - started);
  console.log(`close() with Redis down: ${ms} ms (SHUTDOWN_TIMEOUT_MS ${SHUTDOWN_TIMEOUT_MS})`);
  expect(closed, `close() still running after ${ms} ms`).toBeUndefined();
  expect(p.logs.map((line) => line.msg)).toContain("followups worker stopped");
});

it("while Redis accepts connections but answers nothing (SIGSTOP), /readyz and POST answer 503 in time and close() still returns within SHUTDOWN_TIMEOUT_MS", {
  timeout: 30_000,
}, async () => {
  const server = await ownRedis();
  pipeline = await startPipeline("redis-frozen", {
    redisUrl: server.url,
    env: {
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      TILL_TOKEN,
      INBOUND_EMAIL_TOKEN,
      ADMIN_TOKENS,
    },
  });
  const p = pipeline;
  // The harness's own connections have no error listeners; they reconnect by themselves.
  quietRedisErrors(p);
  const worker = p.worker;
  if (!worker) throw new Error("no worker");
  await freezeRedis(p);

  const ready = await timed(`${http(p)}/readyz`, READY_BOUND_MS);
  expect(ready.response.status).toBe(503);
  const post = await postEvent(p, tv("evt-frozen"), POST_BOUND_MS);
  expect(post.response.status).toBe(503);
  expect(post.response.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
  await expectOtherRoutesInTime(p, POST_BOUND_MS);
  await expectMetricsInTime(p, POST_BOUND_MS);

  const started = performance.now();
  const closed = await within(worker.close(), SHUTDOWN_TIMEOUT_MS + SHUTDOWN_MARGIN_MS);
  const ms = Math.round(performance.now() - started);
  console.log(
    `Redis frozen: /readyz ${ready.ms} ms, POST ${post.ms} ms, close() ${ms} ms (SHUTDOWN_TIMEOUT_MS ${SHUTDOWN_TIMEOUT_MS})`,
  );
  expect(closed, `close() still running after ${ms} ms`).toBeUndefined();
  expect(p.logs.map((line) => line.msg)).toContain(
    "Redis did not answer in time; dropping its connections",
  );
});

it("a `followups worker` process exits 0 on SIGTERM within SHUTDOWN_TIMEOUT_MS while Redis is down", {
  // A worker process starting on a busy machine (a CI run beside others) took over 20 s.
  timeout: 80_000,
}, async () => {
  const server = await ownRedis();
  pipeline = await startPipeline("redis-outage-sigterm", {
    redisUrl: server.url,
    startWorker: false,
    env: { SHUTDOWN_TIMEOUT_MS: String(PROCESS_SHUTDOWN_TIMEOUT_MS) },
  });
  const p = pipeline;
  // The harness's own connections have no error listeners; they reconnect by themselves.
  quietRedisErrors(p);
  const worker = spawnWorker({ ...p.envVars, LOG_LEVEL: "info" });
  child = worker;
  await eventually(
    async () => (worker.output().includes('"msg":"followups worker started"') ? true : undefined),
    "the start-up line",
    50_000,
  );
  await stopRedis(server);
  const started = performance.now();
  worker.child.kill("SIGTERM");
  const exited = await within(worker.exited(), PROCESS_SHUTDOWN_TIMEOUT_MS + SHUTDOWN_MARGIN_MS);
  const ms = Math.round(performance.now() - started);
  console.log(`SIGTERM with Redis down: exited ${exited} after ${ms} ms`);
  expect(exited, worker.output().slice(-2_000)).toBe(0);
  expect(worker.output()).toContain('"msg":"followups worker stopped"');
});
