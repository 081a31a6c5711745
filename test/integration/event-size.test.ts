import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { envSchema } from "../../src/config/env.js";
import { TWILIO_STATUS_PATH } from "../../src/config/public-paths.js";
import { parseEvent } from "../../src/domain/events.js";
import { eventJobId } from "../../src/queue/names.js";
import {
  eventProcessed,
  type PipelineHarness,
  startPipeline,
  stepRecordOf,
  waitForState,
} from "../support/pipeline-harness.js";
import { httpAddressOf, postTwilio } from "../support/webhooks.js";

/** POST /v1/events takes the largest event the contract admits, under the default settings. */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const DEFAULT_LIMIT = (envSchema.parse({}) as { HTTP_BODY_LIMIT: number }).HTTP_BODY_LIMIT;

/**
 * `length` characters drawn from `alphabet` by a fixed sequence, so that text does not compress
 * to nothing (the stored purchase is deflated) and every run builds the same event.
 */
function textOf(alphabet: readonly string[], length: number, seed: number): string {
  let state = seed;
  let text = "";
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    text += alphabet[(state >>> 8) % alphabet.length];
  }
  return text;
}

/** CJK ideographs: 3 bytes each in UTF-8, one UTF-16 code unit each (what zod's max counts). */
const IDEOGRAPHS = Array.from({ length: 20_000 }, (_, i) => String.fromCharCode(0x4e00 + i));
/**
 * Control characters: one byte in UTF-8, six in JSON (`\u0001`), the most any character takes;
 * not those JSON writes in two (`\b`, `\t`, `\n`, `\f`, `\r`), nor whitespace the contract trims.
 */
const CONTROLS = Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).filter(
  (c) => JSON.stringify(c).length === 8 && !/\s/.test(c),
);

/**
 * A purchase at every bound of the contract: 500 items, each text at its longest (ids and SKUs
 * 200, item names 300, categories 100, names 200), 20 discount codes of 64 characters, amounts
 * of 32 characters, the longest locale and email address, the quantity 100000.
 */
function largestPurchase(id: string, alphabet: readonly string[], occurredAt: string) {
  let seed = 0;
  const text = (length: number, start = "") =>
    start + textOf(alphabet, length - start.length, ++seed);
  // 32 characters: padding the contract trims (U+3000 is 3 bytes) around the largest amount.
  const amount = `${"\u3000".repeat(6)}999999999999.990000${"\u3000".repeat(7)}`;
  return {
    type: "purchase.completed",
    id: text(200, id),
    occurredAt,
    orderId: text(200, `ord-${id}`),
    customer: {
      id: text(200, `cus-${id}`),
      name: text(200),
      email: `${"a".repeat(64)}@${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(57)}.ex`,
      phone: `+1 415 555 0123${"\u3000".repeat(25)}`,
      timezone: "America/Argentina/ComodRivadavia",
      locale: "en-GB-u-ca-gregory-nu-latn-x-abcdef",
      consent: { email: true, sms: true, voice: false },
    },
    items: Array.from({ length: 500 }, () => ({
      sku: text(200),
      name: text(300),
      category: text(100),
      quantity: 100_000,
      unitPrice: amount,
    })),
    total: { amount, currency: "EUR" },
    store: { id: text(200), name: text(200), timezone: "America/Argentina/ComodRivadavia" },
    discountCodes: Array.from({ length: 20 }, (_, i) => `CODE-${i}-`.padEnd(64, "X")),
  };
}

/** Every character outside ASCII as a `\uXXXX` escape, as Python's json.dumps writes by default. */
const asciiEscaped = (json: string) =>
  json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/**
 * Posts an event as a publisher does, sending it again after a 503: enqueueing waits at most 2 s
 * for Redis, which a loaded test machine can take for megabytes of event (three tries at most).
 */
async function post(p: PipelineHarness, body: string): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    const answer = await fetch(`${httpAddressOf(p)}/v1/events`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${p.envVars.API_TOKEN}`,
      },
      body,
    });
    if (answer.status !== 503 || attempt === 3) return answer;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

describe("the largest event the contract admits", () => {
  it("is accepted by POST /v1/events with the default HTTP_BODY_LIMIT, stored and planned", async () => {
    pipeline = await startPipeline("event-size");
    const p = pipeline;
    const occurredAt =
      DateTime.utc().minus({ hours: 2 }).startOf("second").toISO({ suppressMilliseconds: true }) ??
      "";
    const event = largestPurchase("evt-big-", IDEOGRAPHS, occurredAt);
    const parsed = parseEvent(event);
    expect(parsed.ok).toBe(true);
    // At the bounds: one more character in an item name, or one more item, is refused.
    const longer = structuredClone(event);
    longer.items[0] = { ...event.items[0], name: `${event.items[0]?.name}x` } as never;
    expect(parseEvent(longer).ok).toBe(false);
    expect(parseEvent({ ...event, items: [...event.items, event.items[0]] }).ok).toBe(false);

    // Compact JSON in UTF-8: about 0.97 MB, within 8% of fastify's own default limit of 1 MiB.
    const utf8 = JSON.stringify(event);
    expect(Buffer.byteLength(utf8)).toBeGreaterThan(950_000);
    const answer = await post(p, utf8);
    expect(answer.status).toBe(202);
    expect(await answer.json()).toEqual({ eventId: event.id });
    expect(await eventProcessed(p, eventJobId(event.id))).toBe("completed");

    // Stored whole (compressed, in its record) and read back as it came in.
    const stored = await p.store.loadEvent(event.id);
    expect(stored?.items).toHaveLength(500);
    expect(stored?.items.map((item) => item.name)).toEqual(event.items.map((item) => item.name));
    expect(stored?.customer.name).toBe(event.customer.name);
    // Planned (an order of 500 or more: big-ticket), and its thank-you, due already, sent.
    expect((await stepRecordOf(p, event.id, "big-ticket.check-in"))?.state).toBe("scheduled");
    await waitForState(p, event.id, "big-ticket.thank-you", "sent");
    expect(p.sink.messages.map((m) => m.envelope.rcptTo)).toEqual([[event.customer.email]]);

    // The same event as Python's json.dumps sends it (every ideograph a \u escape): 1.9 MB, the
    // same content, so a repeat that changes nothing.
    const escaped = asciiEscaped(utf8);
    expect(Buffer.byteLength(escaped)).toBeGreaterThan(1_800_000);
    const again = await post(p, escaped);
    expect(again.status).toBe(202);
    expect(await again.json()).toEqual({ eventId: event.id });

    // As many bytes from a writer that escapes nothing it need not: every character a control
    // character, which JSON writes as `\u0001`.
    const controls = JSON.stringify(largestPurchase("evt-ctl-", CONTROLS, occurredAt));
    expect(Buffer.byteLength(controls)).toBeGreaterThan(1_850_000);
    expect(Buffer.byteLength(controls)).toBeLessThan(DEFAULT_LIMIT / 2);
    const controlled = await post(p, controls);
    expect(controlled.status).toBe(202);
    const controlId = ((await controlled.json()) as { eventId: string }).eventId;
    expect(await eventProcessed(p, eventJobId(controlId))).toBe("completed");
  });

  it("a body over HTTP_BODY_LIMIT still gets 413, and other routes still stop at 64 KiB", async () => {
    pipeline = await startPipeline("event-size-413");
    const p = pipeline;
    const over = JSON.stringify({ type: "purchase.completed", padding: "x".repeat(DEFAULT_LIMIT) });
    const answer = await post(p, over);
    expect(answer.status).toBe(413);
    expect(await answer.json()).toEqual({
      error: `request body is larger than ${DEFAULT_LIMIT} bytes`,
    });
    // Routes anyone can post to, which read the body before they can check anything, keep 64 KiB.
    const padding = { MessageSid: "SM1", MessageStatus: "delivered", padding: "x".repeat(65_536) };
    const webhook = await postTwilio(p, TWILIO_STATUS_PATH, padding);
    expect(webhook.status).toBe(413);
    expect(await webhook.json()).toEqual({ error: "request body is larger than 65536 bytes" });
    const unsubscribe = await fetch(`${httpAddressOf(p)}/unsubscribe/some-token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `scope=all&padding=${"x".repeat(65_536)}`,
    });
    expect(unsubscribe.status).toBe(413);
  });
});
