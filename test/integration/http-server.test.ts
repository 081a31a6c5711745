import { once } from "node:events";
import { request } from "node:http";
import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import type { FastifyInstance } from "fastify";
import { Counter, Registry } from "prom-client";
import twilio from "twilio";
import { afterEach, describe, expect, it } from "vitest";
import { customerHash } from "../../src/domain/address-hash.js";
import type { Channel } from "../../src/domain/events.js";
import { parseEvent } from "../../src/domain/events.js";
import { signUnsubscribeToken } from "../../src/domain/unsubscribe-token.js";
import type { CallTurn } from "../../src/domain/voice-call.js";
import type { HttpDeps } from "../../src/http/http-deps.js";
import { createHttpServer } from "../../src/http/http-server.js";
import { createLogger } from "../../src/logger.js";
import { unsubscribeUrl } from "../../src/templates/unsubscribe-link.js";
import { legacyUnsubscribeToken } from "../support/legacy-unsubscribe-token.js";

const API_TOKEN = "api-token-0123456789abcdef";
const PUBLIC_URL = "https://followups.shop.example";
const TWILIO_AUTH_TOKEN = "twilio-auth-token-for-tests";
const UNSUBSCRIBE_SECRET = "unsubscribe-secret-for-tests";
const SHOP_NAME = 'Corner <Shop> & "Sons"';
const BODY_LIMIT = 8_192;
const PHONE = "+14155550123";
const CUSTOMER = "cus-5120";
/** The keyed hash links name the customer by (ADDRESS_HASH_SECRET's role in a worker). */
const HASH_SECRET = "address-hash-secret-for-tests";
const CUSTOMER_HASH = customerHash(HASH_SECRET, CUSTOMER);

/** What the server asked of its dependencies, in order. */
interface Calls {
  events: unknown[];
  unsubscribes: Parameters<HttpDeps["unsubscribe"]>[0][];
  inbound: Parameters<HttpDeps["inboundSms"]>[0][];
  statuses: Parameters<HttpDeps["smsStatus"]>[0][];
}

interface Harness {
  app: FastifyInstance;
  calls: Calls;
  logs: string[];
  readiness: { ready: boolean; checks: Record<string, boolean> } | Error;
  failures: { acceptEvent?: Error; unsubscribe?: Error };
  /** How long acceptEvent takes to answer (ms). */
  acceptDelayMs: number;
  /** What an answered call says (TwiML). */
  answerTurn: CallTurn;
}

const open: FastifyInstance[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((app) => app.close()));
});

/** A recording HttpDeps: validates events with the real contract, records everything else. */
function startServer(settings: Partial<HttpDeps["settings"]> = {}): Harness {
  const calls: Calls = { events: [], unsubscribes: [], inbound: [], statuses: [] };
  const logs: string[] = [];
  const metrics = new Registry();
  new Counter({
    name: "followups_events_received_total",
    help: "Events received",
    registers: [metrics],
  }).inc(3);
  const harness: Harness = {
    app: undefined as unknown as FastifyInstance,
    calls,
    logs,
    readiness: { ready: true, checks: { redis: true, rules: true, workers: true } },
    failures: {},
    acceptDelayMs: 0,
    answerTurn: { type: "hang-up" },
  };
  const deps: HttpDeps = {
    discountCodes: {
      lookup: async () => undefined,
      redeem: async () => ({ status: "unknown" }),
    },
    voiceCall: {
      answered: async () => harness.answerTurn,
      gathered: async () => ({ type: "hang-up" }),
      status: async () => "unknown-call",
    },
    async acceptEvent(input) {
      if (harness.failures.acceptEvent) throw harness.failures.acceptEvent;
      if (harness.acceptDelayMs > 0)
        await new Promise((resolve) => setTimeout(resolve, harness.acceptDelayMs));
      calls.events.push(input);
      const parsed = parseEvent(input);
      return parsed.ok ? { ok: true, eventId: parsed.event.id } : parsed;
    },
    async unsubscribe(request) {
      if (harness.failures.unsubscribe) throw harness.failures.unsubscribe;
      calls.unsubscribes.push(request);
    },
    async inboundSms(message) {
      calls.inbound.push(message);
      return message.body.trim().toUpperCase() === "STOP" ? "opted-out" : "reply-recorded";
    },
    async inboundEmail() {
      return { outcome: "ignored" as const, reason: "not under test here" };
    },
    async smsStatus(update) {
      calls.statuses.push(update);
      return update.messageSid.startsWith("SM") ? "recorded" : "unknown-message";
    },
    async readiness() {
      if (harness.readiness instanceof Error) throw harness.readiness;
      return harness.readiness;
    },
    metrics,
    settings: {
      apiToken: API_TOKEN,
      publicUrl: PUBLIC_URL,
      twilioAuthToken: TWILIO_AUTH_TOKEN,
      unsubscribeSecret: UNSUBSCRIBE_SECRET,
      shopName: SHOP_NAME,
      bodyLimitBytes: BODY_LIMIT,
      ...settings,
    },
    logger: createLogger({
      level: "trace",
      pretty: false,
      destination: { write: (line: string) => logs.push(line) },
    }),
  };
  harness.app = createHttpServer(deps);
  open.push(harness.app);
  return harness;
}

function purchase(id = "evt-2026-11-23-0001") {
  return {
    type: "purchase.completed",
    id,
    occurredAt: "2026-11-23T14:05:00+01:00",
    orderId: "ord-100234",
    customer: { id: CUSTOMER, email: "ana@example.com", phone: PHONE, timezone: "Europe/Berlin" },
    items: [
      { sku: "TV-55", name: "A 55 inch TV", category: "tv", quantity: 1, unitPrice: "899.00" },
    ],
    total: { amount: "899.00", currency: "EUR" },
  };
}

function postEvent(harness: Harness, body: unknown, authorization = `Bearer ${API_TOKEN}`) {
  return harness.app.inject({
    method: "POST",
    url: "/v1/events",
    headers: { "content-type": "application/json", authorization },
    payload: typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
}

function signedTwilio(
  harness: Harness,
  path: string,
  params: Record<string, string>,
  options: { signedParams?: Record<string, string>; signedUrl?: string; signature?: string } = {},
) {
  const signature =
    options.signature ??
    twilio.getExpectedTwilioSignature(
      TWILIO_AUTH_TOKEN,
      options.signedUrl ?? PUBLIC_URL + path,
      options.signedParams ?? params,
    );
  return harness.app.inject({
    method: "POST",
    url: path,
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": signature,
    },
    payload: new URLSearchParams(params).toString(),
  });
}

function tokenFor(channel: Channel, customerId = CUSTOMER, secret = UNSUBSCRIBE_SECRET) {
  return signUnsubscribeToken(secret, {
    customerHash: customerHash(HASH_SECRET, customerId),
    channel,
  });
}

describe("POST /v1/events", () => {
  it.each([
    ["missing", undefined, 'Bearer realm="followups"', "missing API token"],
    ["empty", "", 'Bearer realm="followups"', "missing API token"],
    [
      "wrong",
      "Bearer not-the-token",
      'Bearer realm="followups", error="invalid_token"',
      "wrong API token",
    ],
    [
      "a prefix of the right",
      `Bearer ${API_TOKEN.slice(0, -1)}`,
      'Bearer realm="followups", error="invalid_token"',
      "wrong API token",
    ],
    [
      "not a bearer",
      `Basic ${API_TOKEN}`,
      'Bearer realm="followups", error="invalid_token"',
      "wrong API token",
    ],
  ])(
    "answers 401 for a %s token and accepts nothing",
    async (_name, authorization, challenge, error) => {
      const harness = startServer();
      const response = await harness.app.inject({
        method: "POST",
        url: "/v1/events",
        headers: {
          "content-type": "application/json",
          ...(authorization !== undefined && { authorization }),
        },
        payload: JSON.stringify(purchase()),
      });
      expect(response.statusCode).toBe(401);
      expect(response.headers["www-authenticate"]).toBe(challenge);
      expect(response.json()).toEqual({ error });
      expect(harness.calls.events).toEqual([]);
    },
  );

  it("answers 503 when no API token is configured", async () => {
    const harness = startServer({ apiToken: undefined });
    const response = await postEvent(harness, purchase());
    expect(response.statusCode).toBe(503);
    expect(response.json().error).toMatch(/not configured/);
    expect(harness.calls.events).toEqual([]);
  });

  it("answers 413 for a body over the limit", async () => {
    const harness = startServer();
    const big = { ...purchase(), padding: "x".repeat(BODY_LIMIT) };
    const response = await postEvent(harness, big);
    expect(response.statusCode).toBe(413);
    expect(response.json()).toEqual({ error: `request body is larger than ${BODY_LIMIT} bytes` });
    expect(harness.calls.events).toEqual([]);
  });

  it("answers 400 for a body that is not JSON", async () => {
    const harness = startServer();
    const response = await postEvent(harness, '{"type": "purchase.completed",');
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({ error: "the body is not valid JSON" });
    expect(harness.calls.events).toEqual([]);
  });

  it("answers 400 for a body that is not UTF-8, or holds a prototype-poisoning key", async () => {
    const harness = startServer();
    // A name with two bytes no UTF-8 text has: refused, not stored with U+FFFD in their place.
    const text = JSON.stringify(purchase());
    const at = text.indexOf('"name"');
    const bytes = Buffer.concat([
      Buffer.from(text.slice(0, at + 8)),
      Buffer.from([0xff, 0xfe]),
      Buffer.from(text.slice(at + 8)),
    ]);
    const response = await postEvent(harness, bytes);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({ error: "the body is not valid UTF-8" });
    const poisoned = await postEvent(
      harness,
      `{"__proto__": {"x": 1}, "type": "purchase.completed"}`,
    );
    expect(poisoned.statusCode).toBe(400);
    expect(poisoned.json()).toEqual({
      error: "the body holds a __proto__ or constructor.prototype key, which is refused",
    });
    expect(harness.calls.events).toEqual([]);
    // Valid UTF-8 beyond ASCII is taken as it is.
    const named = purchase("evt-utf8");
    const accepted = await postEvent(harness, {
      ...named,
      customer: { ...named.customer, name: "Zoë Šimić" },
    });
    expect(accepted.statusCode).toBe(202);
  });

  it("answers 400 for a body that gives a key twice, naming it", async () => {
    const harness = startServer();
    // JSON.parse keeps the last of the two, another reader (a gateway in front) the first: the
    // event stored would not be the one the publisher or a proxy checked.
    const text = JSON.stringify(purchase("evt-twice"));
    const twice = text.replace('"email":', '"email": "first@shop.example", "email":');
    expect(twice).not.toBe(text);
    const response = await postEvent(harness, twice);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      error:
        "the body gives customer.email twice: give each key once (JSON readers differ on which of the two counts)",
    });
    expect(harness.calls.events).toEqual([]);
  });

  it("answers 415 for a compressed body, rather than calling it not UTF-8", async () => {
    const harness = startServer();
    const send = (encoding: string, payload: Buffer) =>
      harness.app.inject({
        method: "POST",
        url: "/v1/events",
        headers: {
          "content-type": "application/json",
          "content-encoding": encoding,
          authorization: `Bearer ${API_TOKEN}`,
        },
        payload,
      });
    const text = JSON.stringify(purchase("evt-gzip"));
    const gzipped = await send("gzip", gzipSync(text));
    expect([gzipped.statusCode, gzipped.json()]).toEqual([
      415,
      { error: "Content-Encoding gzip is not accepted: send the JSON uncompressed" },
    ]);
    expect(harness.calls.events).toEqual([]);
    // identity is no encoding at all.
    expect((await send("identity", Buffer.from(text))).statusCode).toBe(202);
  });

  it("answers 415 for another content type", async () => {
    const harness = startServer();
    const response = await harness.app.inject({
      method: "POST",
      url: "/v1/events",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Bearer ${API_TOKEN}`,
      },
      payload: "type=purchase.completed",
    });
    expect(response.statusCode).toBe(415);
    expect(harness.calls.events).toEqual([]);
  });

  it("answers 400 listing every problem with its path", async () => {
    const harness = startServer();
    const event = purchase();
    const bad = {
      ...event,
      occurredAt: "yesterday",
      customer: { ...event.customer, email: "not-an-address", timezone: "Mars/Olympus" },
      items: [{ ...event.items[0], quantity: 0 }],
    };
    const response = await postEvent(harness, bad);
    expect(response.statusCode).toBe(400);
    const body = response.json() as {
      error: string;
      problems: { path: string; message: string }[];
    };
    expect(body.error).toBe("invalid event");
    const expected = parseEvent(bad);
    if (expected.ok) throw new Error("the bad event parsed");
    expect(body.problems).toEqual(
      expected.problems.map(({ path, message }) => ({ path, message })),
    );
    expect(body.problems.map((problem) => problem.path)).toEqual(
      expect.arrayContaining([
        "occurredAt",
        "customer.email",
        "customer.timezone",
        "items[0].quantity",
      ]),
    );
  });

  it("answers 202 with the event id, and again for the same event", async () => {
    const harness = startServer();
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await postEvent(harness, purchase());
      expect(response.statusCode).toBe(202);
      expect(response.json()).toEqual({ eventId: "evt-2026-11-23-0001" });
    }
    expect(harness.calls.events).toHaveLength(2);
  });

  it("answers 500 without details when intake fails", async () => {
    const harness = startServer();
    harness.failures.acceptEvent = new Error("connect ECONNREFUSED 127.0.0.1:6379");
    const response = await postEvent(harness, purchase());
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: "internal error" });
    expect(harness.logs.join("\n")).toMatch(/ECONNREFUSED/);
  });
});

describe("Twilio webhooks", () => {
  const STATUS = "/webhooks/twilio/status";
  const INBOUND = "/webhooks/twilio/inbound";
  const failed = {
    MessageSid: "SM0123456789abcdef",
    MessageStatus: "undelivered",
    ErrorCode: "30003",
  };

  it("records a signed status callback with its error code", async () => {
    const harness = startServer();
    const response = await signedTwilio(harness, STATUS, failed);
    expect(response.statusCode).toBe(204);
    expect(harness.calls.statuses).toEqual([
      { messageSid: "SM0123456789abcdef", status: "undelivered", errorCode: 30003 },
    ]);
  });

  it("records a status callback without an error code, and one for a message it does not know", async () => {
    const harness = startServer();
    const delivered = { MessageSid: "SM1", MessageStatus: "delivered", AccountSid: "AC1" };
    expect((await signedTwilio(harness, STATUS, delivered)).statusCode).toBe(204);
    const unknown = { MessageSid: "MM1", MessageStatus: "delivered" };
    expect((await signedTwilio(harness, STATUS, unknown)).statusCode).toBe(204);
    expect(harness.calls.statuses).toEqual([
      { messageSid: "SM1", status: "delivered" },
      { messageSid: "MM1", status: "delivered" },
    ]);
  });

  it.each([
    ["missing", ""],
    ["forged", "bm90IGEgcmVhbCBzaWduYXR1cmU="],
    [
      "signed with another auth token",
      twilio.getExpectedTwilioSignature("other-token", PUBLIC_URL + STATUS, failed),
    ],
  ])("answers 403 to a %s signature and records nothing", async (_name, signature) => {
    const harness = startServer();
    const response = await signedTwilio(harness, STATUS, failed, { signature });
    expect(response.statusCode).toBe(403);
    expect(harness.calls.statuses).toEqual([]);
  });

  it("answers 403 to a signature replayed with other params", async () => {
    const harness = startServer();
    const signedParams = { ...failed, MessageStatus: "delivered" };
    const response = await signedTwilio(harness, STATUS, failed, { signedParams });
    expect(response.statusCode).toBe(403);
    const extra = await signedTwilio(
      harness,
      STATUS,
      { ...failed, Extra: "1" },
      { signedParams: failed },
    );
    expect(extra.statusCode).toBe(403);
    expect(harness.calls.statuses).toEqual([]);
  });

  it("answers 403 to a signature made for another URL", async () => {
    const harness = startServer();
    const inbound = { MessageSid: "SM2", From: PHONE, Body: "STOP" };
    const replayed = await signedTwilio(harness, STATUS, inbound, {
      signedUrl: PUBLIC_URL + INBOUND,
    });
    expect(replayed.statusCode).toBe(403);
    const otherHost = await signedTwilio(harness, INBOUND, inbound, {
      signedUrl: `https://attacker.example${INBOUND}`,
    });
    expect(otherHost.statusCode).toBe(403);
    expect(harness.calls.inbound).toEqual([]);
    expect(harness.calls.statuses).toEqual([]);
  });

  it("passes an inbound STOP through with its sender and body, answering empty TwiML", async () => {
    const harness = startServer();
    const response = await signedTwilio(harness, INBOUND, {
      MessageSid: "SM3",
      AccountSid: "AC1",
      From: PHONE,
      To: "+15005550001",
      Body: "STOP",
      NumMedia: "0",
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toMatch(/^text\/xml/);
    expect(response.body).toBe('<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
    expect(harness.calls.inbound).toEqual([{ from: PHONE, body: "STOP", messageSid: "SM3" }]);
  });

  it("validates signatures for URLs with a query string", async () => {
    const harness = startServer();
    const path = `${INBOUND}?site=berlin`;
    const response = await signedTwilio(harness, path, {
      MessageSid: "SM4",
      From: PHONE,
      Body: "Thanks!",
    });
    expect(response.statusCode).toBe(200);
    expect(harness.calls.inbound).toEqual([{ from: PHONE, body: "Thanks!", messageSid: "SM4" }]);
  });

  it("answers 400 to a signed request missing its fields", async () => {
    const harness = startServer();
    expect((await signedTwilio(harness, STATUS, { MessageSid: "SM5" })).statusCode).toBe(400);
    expect((await signedTwilio(harness, INBOUND, { Body: "hi" })).statusCode).toBe(400);
    expect(harness.calls.statuses).toEqual([]);
    expect(harness.calls.inbound).toEqual([]);
  });

  describe("with a PUBLIC_URL of other letters", () => {
    const UNICODE_URL = "https://bücher.example/läden";
    /** The form Twilio is given it in (punycode host, percent-encoded path), and signs. */
    const ASCII_URL = "https://xn--bcher-kva.example/l%C3%A4den";
    const inbound = { MessageSid: "SM6", From: PHONE, Body: "STOP" };

    it("accepts the signature for its ASCII form, and for it as written (an operator may type either in Twilio's console)", async () => {
      const harness = startServer({ publicUrl: UNICODE_URL });
      const status = await signedTwilio(harness, STATUS, failed, { signedUrl: ASCII_URL + STATUS });
      expect(status.statusCode).toBe(204);
      const typed = await signedTwilio(harness, INBOUND, inbound, {
        signedUrl: UNICODE_URL + INBOUND,
      });
      expect(typed.statusCode).toBe(200);
      const path = `${INBOUND}?site=m%C3%BCnchen`;
      const query = await signedTwilio(harness, path, inbound, { signedUrl: ASCII_URL + path });
      expect(query.statusCode).toBe(200);
      expect(harness.calls.statuses).toHaveLength(1);
      expect(harness.calls.inbound).toHaveLength(2);
    });

    it("checks the URL exactly as Twilio requested it, also with a query that normalizing a URL writes otherwise", async () => {
      const harness = startServer({ publicUrl: UNICODE_URL });
      const address = new URL(await harness.app.listen({ host: "127.0.0.1", port: 0 }));
      // As an operator may set it in Twilio's console, which signs it as given (' stays ').
      const path = `${INBOUND}?site=o'brien&x=%41`;
      const body = new URLSearchParams(inbound).toString();
      const signature = twilio.getExpectedTwilioSignature(
        TWILIO_AUTH_TOKEN,
        ASCII_URL + path,
        inbound,
      );
      const status = await new Promise<number>((resolve, reject) => {
        const sent = request(
          {
            host: address.hostname,
            port: address.port,
            path,
            method: "POST",
            headers: {
              "content-type": "application/x-www-form-urlencoded",
              "content-length": Buffer.byteLength(body),
              "x-twilio-signature": signature,
            },
          },
          (answer) => {
            answer.resume();
            resolve(answer.statusCode ?? 0);
          },
        );
        sent.on("error", reject);
        sent.end(body);
      });
      expect(status).toBe(200);
      expect(harness.calls.inbound).toEqual([{ from: PHONE, body: "STOP", messageSid: "SM6" }]);
    });

    it("refuses a signature for any other URL", async () => {
      const harness = startServer({ publicUrl: UNICODE_URL });
      for (const signedUrl of [
        `https://xn--bcher-kva.example${STATUS}`,
        `https://bücher.example${STATUS}`,
        `https://xn--bcher-kva.example/laden${STATUS}`,
        `https://attacker.example/l%C3%A4den${STATUS}`,
        `http://xn--bcher-kva.example/l%C3%A4den${STATUS}`,
        `${ASCII_URL}${INBOUND}`,
      ]) {
        const response = await signedTwilio(harness, STATUS, failed, { signedUrl });
        expect({ signedUrl, status: response.statusCode }).toEqual({ signedUrl, status: 403 });
      }
      expect(harness.calls.statuses).toEqual([]);
    });

    it("gives Twilio the gather URL of a call's question in ASCII, as it gives the call's other URLs", async () => {
      const harness = startServer({ publicUrl: UNICODE_URL });
      harness.answerTurn = {
        type: "ask",
        say: ["Press 1 if all is well."],
        speaking: { language: "en-GB" },
        speech: false,
      };
      const path = "/webhooks/twilio/voice/answer?call=f123";
      const response = await signedTwilio(
        harness,
        path,
        { CallSid: "CA1", CallStatus: "in-progress" },
        { signedUrl: ASCII_URL + path },
      );
      expect(response.statusCode).toBe(200);
      expect(response.body).toContain(
        `action="${ASCII_URL}/webhooks/twilio/voice/gather?call=f123"`,
      );
      expect(/^[\x20-\x7e]*$/.test(response.body)).toBe(true);
    });
  });

  describe("with a PUBLIC_URL in ASCII, as before", () => {
    const answer = "/webhooks/twilio/voice/answer?call=f123";
    const asking: CallTurn = {
      type: "ask",
      say: ["Press 1 if all is well."],
      speaking: { language: "en-GB" },
      speech: false,
    };
    it.each([
      // PUBLIC_URL, as Twilio was given it before (and an operator typed it), as it is given now.
      [
        "https://shop.example/followups/",
        "https://shop.example/followups",
        "https://shop.example/followups",
      ],
      ["https://shop.example:8443", "https://shop.example:8443", "https://shop.example:8443"],
      [
        "https://Shop.Example:443/followups",
        "https://Shop.Example:443/followups",
        "https://shop.example/followups",
      ],
    ])(
      "%s: accepts what Twilio signs for the URL as before and as given now, with and without the port, and gives the gather URL so",
      async (publicUrl, before, now) => {
        const harness = startServer({ publicUrl });
        harness.answerTurn = asking;
        const withPort = (url: string) =>
          new URL(url).port === "" ? url.replace(/^(https:\/\/[^/]+)/, "$1:443") : url;
        for (const base of [before, now, withPort(now)]) {
          const response = await signedTwilio(harness, STATUS, failed, {
            signedUrl: base + STATUS,
          });
          expect({ base, status: response.statusCode }).toEqual({ base, status: 204 });
        }
        const call = { CallSid: "CA1", CallStatus: "in-progress" };
        const response = await signedTwilio(harness, answer, call, { signedUrl: now + answer });
        expect(response.statusCode).toBe(200);
        expect(response.body).toContain(`action="${now}/webhooks/twilio/voice/gather?call=f123"`);
        expect(harness.calls.statuses).toHaveLength(3);
      },
    );

    it("checks against PUBLIC_URL whatever the request's Host or X-Forwarded-* headers name", async () => {
      const harness = startServer({
        publicUrl: "https://shop.example/followups/",
        trustProxy: true,
      });
      for (const signedUrl of [
        `https://attacker.example${STATUS}`,
        `https://attacker.example/followups${STATUS}`,
        `http://shop.example/followups${STATUS}`,
        `https://shop.example/followups${STATUS}${STATUS}`,
      ]) {
        const response = await harness.app.inject({
          method: "POST",
          url: STATUS,
          headers: {
            host: "attacker.example",
            "x-forwarded-host": "attacker.example",
            "x-forwarded-proto": "http",
            "x-forwarded-prefix": "/followups",
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": twilio.getExpectedTwilioSignature(
              TWILIO_AUTH_TOKEN,
              signedUrl,
              failed,
            ),
          },
          payload: new URLSearchParams(failed).toString(),
        });
        expect({ signedUrl, status: response.statusCode }).toEqual({ signedUrl, status: 403 });
      }
      expect(harness.calls.statuses).toEqual([]);
    });
  });

  it("answers 503 when the auth token or PUBLIC_URL is missing", async () => {
    for (const settings of [{ twilioAuthToken: undefined }, { publicUrl: undefined }]) {
      const harness = startServer(settings);
      expect((await signedTwilio(harness, STATUS, failed)).statusCode).toBe(503);
      expect(harness.calls.statuses).toEqual([]);
    }
  });
});

describe("unsubscribe links", () => {
  const expectHtmlHeaders = (headers: Record<string, unknown>) => {
    expect(headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(headers["content-security-policy"]).toBe(
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    );
    expect(headers["x-content-type-options"]).toBe("nosniff");
    expect(headers["referrer-policy"]).toBe("no-referrer");
  };

  const postBody = (
    harness: ReturnType<typeof startServer>,
    url: string,
    contentType: string,
    payload: string,
  ) =>
    harness.app.inject({ method: "POST", url, headers: { "content-type": contentType }, payload });

  it("shows a confirmation page naming the shop and channel, and unsubscribes nobody", async () => {
    const harness = startServer();
    const url = unsubscribeUrl(PUBLIC_URL, UNSUBSCRIBE_SECRET, CUSTOMER_HASH, "sms");
    const response = await harness.app.inject({ method: "GET", url: url.slice(PUBLIC_URL.length) });
    expect(response.statusCode).toBe(200);
    expectHtmlHeaders(response.headers);
    expect(response.body).toContain("other promotions by text message (SMS) from");
    expect(response.body).toContain("Corner &#60;Shop&#62; &#38; &#34;Sons&#34;");
    expect(response.body).not.toContain("<Shop>");
    // Two choices, each its own form: offers only, or every follow-up.
    expect(response.body).toContain(
      '<form method="post"><input type="hidden" name="scope" value="marketing"><button type="submit">Stop offers</button></form>',
    );
    expect(response.body).toContain(
      '<form method="post"><input type="hidden" name="scope" value="all"><button type="submit">Stop all follow-ups</button></form>',
    );
    expect(response.body).not.toMatch(/<script/i);
    expect(response.body).not.toContain(CUSTOMER);
    expect(harness.calls.unsubscribes).toEqual([]);
  });

  it("unsubscribes on the page's POST, and again without complaint", async () => {
    const harness = startServer();
    const url = `/unsubscribe/${tokenFor("email")}`;
    // A page from before the two buttons posts no scope: everything stops, as it said.
    for (const payload of ["", "scope=all", "scope=marketing"]) {
      const response = await postBody(harness, url, "application/x-www-form-urlencoded", payload);
      expect(response.statusCode).toBe(200);
      expectHtmlHeaders(response.headers);
      expect(response.body).toContain("You are unsubscribed");
      expect(response.body).toContain(
        payload === "scope=marketing"
          ? "You will not receive offers by email from"
          : "You will not receive follow-up emails from",
      );
    }
    expect(harness.calls.unsubscribes).toEqual([
      { customerHash: CUSTOMER_HASH, channel: "email", source: "link", scope: "all" },
      { customerHash: CUSTOMER_HASH, channel: "email", source: "link", scope: "all" },
      { customerHash: CUSTOMER_HASH, channel: "email", source: "link", scope: "marketing" },
    ]);
  });

  it("unsubscribes on a POST with a JSON body, also one that does not parse", async () => {
    const harness = startServer();
    const url = `/unsubscribe/${tokenFor("sms")}`;
    for (const payload of ['{"scope": "marketing"}', '{"scope": "marketing"', "\u0000{]"]) {
      const response = await postBody(harness, url, "application/json", payload);
      expect(response.statusCode, payload).toBe(200);
      expect(response.body).toContain("You are unsubscribed");
    }
    // A body that names no scope readably stops everything.
    expect(harness.calls.unsubscribes).toEqual([
      { customerHash: CUSTOMER_HASH, channel: "sms", source: "link", scope: "marketing" },
      { customerHash: CUSTOMER_HASH, channel: "sms", source: "link", scope: "all" },
      { customerHash: CUSTOMER_HASH, channel: "sms", source: "link", scope: "all" },
    ]);
  });

  it("speaks the customer's language: the link's lang, else the browser's", async () => {
    const harness = startServer();
    const url = `/unsubscribe/${tokenFor("email")}`;
    const german = await harness.app.inject({ method: "GET", url: `${url}?lang=de-AT` });
    expect(german.body).toContain('<html lang="de">');
    expect(german.body).toContain("Keine Angebote mehr");
    const browser = await harness.app.inject({
      method: "GET",
      url,
      headers: { "accept-language": "fr-CH, de;q=0.8, en;q=0.5" },
    });
    expect(browser.body).toContain("Keine Folgenachrichten mehr");
    const fallback = await harness.app.inject({
      method: "GET",
      url,
      headers: { "accept-language": "fr-CH" },
    });
    expect(fallback.body).toContain('<html lang="en">');
    const done = await harness.app.inject({
      method: "POST",
      url: `${url}?lang=de`,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: "scope=marketing",
    });
    expect(done.body).toContain("Sie erhalten keine Angebote per E-Mail von");
  });

  it("takes an RFC 8058 one-click POST, form-encoded or multipart", async () => {
    const harness = startServer();
    const url = `/unsubscribe/${tokenFor("email")}`;
    const encoded = await harness.app.inject({
      method: "POST",
      url,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: "List-Unsubscribe=One-Click",
    });
    expect(encoded.statusCode).toBe(200);
    const boundary = "----followups-test";
    const multipart = await harness.app.inject({
      method: "POST",
      url,
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      payload:
        `--${boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n` +
        `One-Click\r\n--${boundary}--\r\n`,
    });
    expect(multipart.statusCode).toBe(200);
    // One-click stops the list the message came from: offers.
    expect(harness.calls.unsubscribes).toEqual([
      { customerHash: CUSTOMER_HASH, channel: "email", source: "one-click", scope: "marketing" },
      { customerHash: CUSTOMER_HASH, channel: "email", source: "one-click", scope: "marketing" },
    ]);
  });

  it("takes a one-click POST over a real socket, as a mail provider sends it", async () => {
    const harness = startServer();
    const address = await harness.app.listen({ host: "127.0.0.1", port: 0 });
    const form = new FormData();
    form.set("List-Unsubscribe", "One-Click");
    const response = await fetch(`${address}/unsubscribe/${tokenFor("voice")}`, {
      method: "POST",
      body: form,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-security-policy")).toMatch(/^default-src 'none'/);
    expect(harness.calls.unsubscribes).toEqual([
      { customerHash: CUSTOMER_HASH, channel: "voice", source: "one-click", scope: "marketing" },
    ]);
  });

  it("takes a link sent before 7 December 2026, which names the customer by id (up to 800 bytes)", async () => {
    const harness = startServer();
    const longId = "😀".repeat(200);
    const addressHash = "AAECAwQFBgcICQoLDA0ODw";
    for (const token of [
      legacyUnsubscribeToken(UNSUBSCRIBE_SECRET, { customerId: CUSTOMER, channel: "email" }),
      legacyUnsubscribeToken(UNSUBSCRIBE_SECRET, {
        customerId: longId,
        channel: "sms",
        addressHash,
      }),
    ]) {
      const page = await harness.app.inject({ method: "GET", url: `/unsubscribe/${token}` });
      expect(page.statusCode).toBe(200);
      const response = await postBody(
        harness,
        `/unsubscribe/${token}`,
        "application/x-www-form-urlencoded",
        "List-Unsubscribe=One-Click",
      );
      expect(response.statusCode).toBe(200);
    }
    expect(harness.calls.unsubscribes).toEqual([
      { customerId: CUSTOMER, channel: "email", source: "one-click", scope: "marketing" },
      { customerId: longId, channel: "sms", addressHash, source: "one-click", scope: "marketing" },
    ]);
  });

  const good = tokenFor("email");
  const [goodPayload = "", goodMac = ""] = good.split(".");
  const otherPayload = tokenFor("email", "cus-9999").split(".")[0];
  it.each([
    ["foreign (another secret)", tokenFor("email", CUSTOMER, "some-other-shops-secret")],
    ["altered (another customer, same mac)", `${otherPayload}.${goodMac}`],
    ["altered (mac)", `${goodPayload}.${goodMac.slice(0, -2)}AA`],
    ["truncated", good.slice(0, -3)],
    ["garbage", "not-a-token"],
    ["overlong", "A".repeat(1_500)],
  ])("refuses a %s token with 400 on GET and POST, unsubscribing nobody", async (_name, token) => {
    const harness = startServer();
    for (const method of ["GET", "POST"] as const) {
      const response = await harness.app.inject({
        method,
        url: `/unsubscribe/${token}`,
        ...(method === "POST" && {
          headers: { "content-type": "application/x-www-form-urlencoded" },
          payload: "List-Unsubscribe=One-Click",
        }),
      });
      expect(response.statusCode, method).toBe(400);
      expectHtmlHeaders(response.headers);
      expect(response.body).toContain("This link is not valid");
    }
    expect(harness.calls.unsubscribes).toEqual([]);
  });

  it("answers 414 to a path parameter far beyond any token, unsubscribing nobody", async () => {
    const harness = startServer();
    const response = await harness.app.inject({
      method: "POST",
      url: `/unsubscribe/${"A".repeat(5_000)}`,
    });
    expect(response.statusCode).toBe(414);
    expect(response.json()).toEqual({ error: "URL too long" });
    expect(harness.calls.unsubscribes).toEqual([]);
  });

  it("answers 503 with a page when unsubscribing fails or is not configured", async () => {
    const failing = startServer();
    failing.failures.unsubscribe = new Error("redis down");
    const response = await failing.app.inject({ method: "POST", url: `/unsubscribe/${good}` });
    expect(response.statusCode).toBe(503);
    expect(response.headers["retry-after"]).toBe("5");
    expectHtmlHeaders(response.headers);
    expect(response.body).toContain("Nothing was changed");

    const unconfigured = startServer({ unsubscribeSecret: undefined });
    const page = await unconfigured.app.inject({ method: "GET", url: `/unsubscribe/${good}` });
    expect(page.statusCode).toBe(503);
    expect(unconfigured.calls.unsubscribes).toEqual([]);
  });
});

describe("health and metrics", () => {
  it("says the process is alive", async () => {
    const harness = startServer();
    const response = await harness.app.inject({ method: "GET", url: "/healthz" });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: "ok" });
  });

  it("answers readiness with 200 or 503 and the checks", async () => {
    const harness = startServer();
    const ready = await harness.app.inject({ method: "GET", url: "/readyz" });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({
      ready: true,
      checks: { redis: true, rules: true, workers: true },
    });

    harness.readiness = { ready: false, checks: { redis: false, rules: true, workers: true } };
    const notReady = await harness.app.inject({ method: "GET", url: "/readyz" });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toEqual({
      ready: false,
      checks: { redis: false, rules: true, workers: true },
    });

    harness.readiness = new Error("timeout");
    const failing = await harness.app.inject({ method: "GET", url: "/readyz" });
    expect(failing.statusCode).toBe(503);
    expect(failing.json()).toEqual({ ready: false, checks: {} });
  });

  it("serves the registry in Prometheus text format", async () => {
    const harness = startServer();
    const response = await harness.app.inject({ method: "GET", url: "/metrics" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(response.body).toContain("# TYPE followups_events_received_total counter");
    expect(response.body).toMatch(/^followups_events_received_total 3$/m);
  });

  it("answers unknown paths with 404 JSON", async () => {
    const harness = startServer();
    const response = await harness.app.inject({ method: "GET", url: "/nope" });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ error: "not found" });
  });
});

describe("methods a path does not take", () => {
  it.each([
    ["GET", "/v1/events", "POST"],
    ["PUT", "/v1/events", "POST"],
    ["DELETE", "/v1/events", "POST"],
    ["PATCH", "/v1/events", "POST"],
    ["GET", "/webhooks/twilio/inbound", "POST"],
    ["GET", "/webhooks/twilio/status", "POST"],
    ["GET", "/webhooks/email/inbound", "POST"],
    ["GET", "/v1/discount-codes/WELCOME10/redeem", "POST"],
    ["DELETE", "/v1/discount-codes/WELCOME10", "GET, HEAD"],
    ["POST", "/healthz", "GET, HEAD"],
    ["PUT", "/metrics", "GET, HEAD"],
  ])("answers %s %s with 405, Allow: %s and a JSON error", async (method, url, allow) => {
    const harness = startServer();
    const response = await harness.app.inject({
      method: method as "GET",
      url,
      // A body the route would not parse: the method is refused before any body is read.
      headers: { "content-type": "application/x-unknown" },
      payload: method === "GET" ? undefined : "x".repeat(100),
    });
    expect(response.statusCode).toBe(405);
    expect(response.headers.allow).toBe(allow);
    expect(response.headers["content-type"]).toMatch(/^application\/json/);
    expect(response.json()).toEqual({ error: `method ${method} not allowed; use ${allow}` });
    expect(harness.calls.events).toEqual([]);
  });

  it("answers 405 before the token check, and names the route, not the URL, in its log", async () => {
    const harness = startServer();
    const token = tokenFor("email");
    const events = await harness.app.inject({ method: "GET", url: "/v1/events" });
    expect(events.statusCode).toBe(405);
    const unsubscribe = await harness.app.inject({ method: "PUT", url: `/unsubscribe/${token}` });
    expect(unsubscribe.statusCode).toBe(405);
    expect(unsubscribe.headers.allow).toBe("GET, HEAD, POST");
    expect(harness.calls.unsubscribes).toEqual([]);
    const text = harness.logs.join("\n");
    expect(text).not.toContain(token);
    expect(text).toContain('"route":"/unsubscribe/:token","statusCode":405');
  });

  it("still answers 404 for a path no method takes, and the methods a path takes as before", async () => {
    const harness = startServer();
    expect((await harness.app.inject({ method: "PUT", url: "/v1/event" })).statusCode).toBe(404);
    expect((await harness.app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    expect((await harness.app.inject({ method: "HEAD", url: "/healthz" })).statusCode).toBe(200);
    expect((await postEvent(harness, purchase())).statusCode).toBe(202);
  });
});

describe("requests that never finish arriving", () => {
  const TIMEOUT_MS = 400;

  /** Sends `head` over a raw socket and keeps it open; what the server wrote, once it closes. */
  async function holdOpen(address: string, head: string, waitMs: number) {
    const { hostname, port } = new URL(address);
    const socket = connect(Number(port), hostname);
    await once(socket, "connect");
    socket.write(head);
    let answer = "";
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString();
    });
    const closed = once(socket, "close").then(() => true);
    const held = new Promise<false>((resolve) => setTimeout(() => resolve(false), waitMs));
    const wasClosed = await Promise.race([closed, held]);
    socket.destroy();
    return { closed: wasClosed, answer };
  }

  it.each([
    [
      "a webhook whose body stops half-way",
      "POST /webhooks/twilio/inbound HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6000\r\n\r\nBody=aaaa",
    ],
    [
      "an unsubscribe POST whose body never comes",
      `POST /unsubscribe/${"A".repeat(20)}.B HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n`,
    ],
    ["a request whose headers never end", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a"],
  ])("answers 408 to %s and closes its connection", async (_name, head) => {
    const harness = startServer({ requestTimeoutMs: TIMEOUT_MS });
    const address = await harness.app.listen({ host: "127.0.0.1", port: 0 });
    const started = Date.now();
    const { closed, answer } = await holdOpen(address, head, TIMEOUT_MS + 4_000);
    expect(closed, "the connection is still open").toBe(true);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(harness.calls.inbound).toEqual([]);
    expect(harness.calls.unsubscribes).toEqual([]);
  });

  it("still answers a request that arrived whole but takes longer than that to handle", async () => {
    const harness = startServer({ requestTimeoutMs: TIMEOUT_MS });
    harness.acceptDelayMs = TIMEOUT_MS * 3;
    const address = await harness.app.listen({ host: "127.0.0.1", port: 0 });
    const response = await fetch(`${address}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(purchase()),
    });
    expect(response.status).toBe(202);
  });

  it("gives every request 30 s to arrive by default", async () => {
    const harness = startServer();
    await harness.app.ready();
    expect(harness.app.server.requestTimeout).toBe(30_000);
    expect(harness.app.server.headersTimeout).toBe(30_000);
  });
});

describe("settings and logs", () => {
  it.each([
    [{ unsubscribeSecret: "short" }, /UNSUBSCRIBE_SECRET must be at least 16/],
    [{ publicUrl: "followups.shop.example" }, /PUBLIC_URL must be an absolute URL/],
    [{ publicUrl: "ftp://followups.shop.example" }, /PUBLIC_URL must start with https/],
    [{ publicUrl: "https://followups.shop.example/?a=1" }, /query string/],
    [{ bodyLimitBytes: 0 }, /HTTP_BODY_LIMIT/],
  ])("refuses %o at construction", (settings, message) => {
    expect(() => startServer(settings)).toThrow(message);
  });

  it("never logs tokens, phone numbers, message bodies or email addresses", async () => {
    const harness = startServer();
    const unsubscribeToken = tokenFor("sms");
    await postEvent(harness, purchase());
    await postEvent(harness, { ...purchase(), customer: { id: CUSTOMER, email: "ana@@example" } });
    await postEvent(harness, purchase(), "Bearer wrong-token-value");
    await signedTwilio(harness, "/webhooks/twilio/inbound", {
      MessageSid: "SM6",
      From: PHONE,
      Body: "please call me back tomorrow",
    });
    await signedTwilio(
      harness,
      "/webhooks/twilio/inbound",
      { MessageSid: "SM7", From: PHONE, Body: "forged body text" },
      { signature: "forged" },
    );
    await harness.app.inject({ method: "GET", url: `/unsubscribe/${unsubscribeToken}` });
    await harness.app.inject({ method: "POST", url: `/unsubscribe/${unsubscribeToken}` });
    await harness.app.inject({ method: "GET", url: `/unsubscribe/${unsubscribeToken}x` });
    await harness.app.inject({ method: "GET", url: `/nope/${unsubscribeToken}` });
    await harness.app.inject({ method: "GET", url: `/unsubscribe/${unsubscribeToken.repeat(4)}` });
    await harness.app.inject({ method: "GET", url: `/unsubscribe/%E0${unsubscribeToken}` });

    const text = harness.logs.join("\n");
    expect(harness.logs.length).toBeGreaterThan(5);
    for (const secret of [
      API_TOKEN,
      "wrong-token-value",
      unsubscribeToken,
      PHONE,
      "4155550123",
      "please call me back",
      "forged body text",
      "ana@",
      TWILIO_AUTH_TOKEN,
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('"route":"/unsubscribe/:token"');
  });
});
