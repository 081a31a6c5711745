import { Redis } from "ioredis";
import { DateTime } from "luxon";
import twilio from "twilio";
import { afterEach, expect, it } from "vitest";
import { EventPublisher } from "../../src/publisher.js";
import { quietRedisErrors } from "../faults/fault-support.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  TWILIO_TOKEN,
} from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";

/**
 * A Redis write fails while a customer's data is in the command (an event being enqueued, an SMS
 * reply being filed): ioredis attaches the command and its arguments to the error, and that
 * error is logged. Nothing personal, and no secret, may reach the log lines.
 */

let server: RedisServer | undefined;
let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  if (pipeline) await pipeline.redis.config("SET", "maxmemory", "0");
  await pipeline?.close();
  pipeline = undefined;
  await server?.stop();
  server = undefined;
});

const CUSTOMER = {
  id: "cus-redaction",
  name: "Zofia Quellbrunn",
  email: "zofia.quellbrunn@example.org",
  phone: "+44 20 7946 0321",
};
const PHONE_E164 = "+442079460321";
const REPLY = "Kettle from Quellbrunn leaks, call me back on 07700 900321";
const REDIS_PASSWORD = "redis-pw-5f1c0e9a7d";

const ago = (hours: number) =>
  DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

const tv = (id: string) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: ago(2),
    items: [item("televisions", "700.00")],
    customer: CUSTOMER,
  });

function http(p: PipelineHarness): string {
  const address = p.worker?.httpAddress;
  if (!address) throw new Error("HTTP is not listening");
  return address;
}

/** Posts a form to a Twilio webhook, signed as Twilio signs it. */
function postTwilio(p: PipelineHarness, route: string, params: Record<string, string>) {
  const publicUrl = `${p.envVars.PUBLIC_URL}${route}`;
  return fetch(`${http(p)}${route}`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": twilio.getExpectedTwilioSignature(TWILIO_TOKEN, publicUrl, params),
    },
    body: new URLSearchParams(params).toString(),
  });
}

/** Every way the customer, their reply or a secret could appear in a log line. */
function leaks(p: PipelineHarness): string[] {
  const text = JSON.stringify(p.logs);
  const needles = [
    CUSTOMER.name,
    "Quellbrunn",
    CUSTOMER.email,
    CUSTOMER.phone,
    PHONE_E164,
    PHONE_E164.slice(1),
    REPLY,
    REPLY.slice(0, 20),
    REDIS_PASSWORD,
    p.envVars.API_TOKEN ?? "",
    p.envVars.TWILIO_AUTH_TOKEN ?? "",
  ];
  return needles.filter((needle) => needle !== "" && text.includes(needle));
}

it("a Redis write error while an event is enqueued or an SMS reply is filed logs no name, email, phone, reply or secret", {
  timeout: 60_000,
}, async () => {
  server = await startRedisServer();
  // A password in REDIS_URL, as in production: a secret that must not be logged either.
  const admin = new Redis(server.url);
  await admin.config("SET", "requirepass", REDIS_PASSWORD);
  admin.disconnect();
  const redisUrl = `redis://:${REDIS_PASSWORD}@127.0.0.1:${server.port}`;
  pipeline = await startPipeline("log-redaction", { redisUrl });
  const p = pipeline;
  quietRedisErrors(p);

  // A check-in SMS goes out, so a reply from that number is filed against it.
  await p.publisher.publish(tv("evt-redact") as never);
  await promoteStep(p, "evt-redact", "big-ticket.check-in");
  await p.twilio.waitForMessages(1, 10_000);
  await eventually(async () => {
    const record = (await p.store.stepRecords("evt-redact", ["big-ticket.check-in"])).get(
      "big-ticket.check-in",
    );
    return record?.state === "sent" ? true : undefined;
  }, "the check-in to be recorded as sent");
  expect(leaks(p), "leaks before any failure").toEqual([]);

  // Redis refuses every write from now on (reads still work): OOM at 1 byte of memory.
  await p.redis.config("SET", "maxmemory-policy", "noeviction");
  await p.redis.config("SET", "maxmemory", "1");

  // The trap is real: the failed command carries the whole event in its arguments.
  const probe = new EventPublisher({ connection: redisUrl, prefix: `${p.prefix}-probe` });
  const probeError = await probe.publish(tv("evt-probe") as never).then(
    () => undefined,
    (error: unknown) => error as { command?: { args?: unknown } },
  );
  await probe.close().catch(() => undefined);
  expect(JSON.stringify(probeError?.command?.args)).toContain(CUSTOMER.email);

  const posted = await fetch(`${http(p)}/v1/events`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${p.envVars.API_TOKEN}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(tv("evt-refused")),
  });
  expect(posted.status).toBe(503);
  expect(posted.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);

  const inbound = await postTwilio(p, "/webhooks/twilio/inbound", {
    From: PHONE_E164,
    Body: REPLY,
    MessageSid: "SMredact1",
  });
  // Out of memory is Redis away for a webhook: the reply is spooled (Twilio would not send it
  // again after a 5xx), and the spooling's log line says why, with the refused command.
  expect(inbound.status).toBe(200);

  expect(leaks(p)).toEqual([]);
  const failures = p.logs.filter((line) => typeof line.err === "object" && line.err !== null);
  const refused = failures.find((line) => line.msg === "answered 503: a dependency is unavailable");
  const reply = failures.find(
    (line) =>
      line.msg === "Redis is unavailable: inbound SMS spooled to disk, handled once Redis is back",
  );
  // Both failures are logged, with what operators need: the messages, the failed command's name.
  expect(JSON.stringify(refused?.err)).toMatch(/"message":"could not enqueue the event: OOM /);
  expect(JSON.stringify(refused?.err)).toMatch(/"command":\{"name":"eval(sha)?"\}/);
  expect(JSON.stringify(reply?.err)).toMatch(/"message":"OOM /);
  // A reply's first write is its append (add-reply.lua, filed under its message id in the same
  // script), whose arguments carry the reply's text.
  expect(JSON.stringify(reply?.err)).toMatch(/"command":\{"name":"eval(sha)?"\}/);
  expect(JSON.stringify(reply?.err)).toContain('"stack":"');
});
