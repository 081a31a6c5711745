import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import tls from "node:tls";
import { simpleParser } from "mailparser";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type {
  DeliveryChannel,
  EmailMessage,
  FailureKind,
  OutgoingMessage,
  PhoneMessage,
} from "../../src/channels/channel.js";
import { createSmtpEmailChannel } from "../../src/channels/email-smtp.js";
import { FOLLOW_UP_HEADER } from "../../src/channels/mail-options.js";
import { createOutboxChannel, type OutboxPhoneFile } from "../../src/channels/outbox.js";
import { createTwilioSmsChannel } from "../../src/channels/sms-twilio.js";
import { classifySmtpFailure } from "../../src/channels/smtp-failure.js";
import { classifyTwilioFailure } from "../../src/channels/twilio-failure.js";
import { findFreePort } from "../support/redis-server.js";
import { type SmtpSink, startSmtpSink } from "../support/smtp-sink.js";
import { startTwilioFake, type TwilioFake } from "../support/twilio-fake.js";

const FROM = '"Corner Shop" <hello@shop.example>';
const ACCOUNT_SID = `AC${"0123456789abcdef".repeat(2)}`;
const AUTH_TOKEN = "contract-auth-token";
const TWILIO_FROM = "+15005550001";
/** REPLY_TO of the email adapters that are given one. */
const REPLY_TO = "help@shop.example";

/** What the far side got, in a form every adapter of a channel can be compared by. */
type Received =
  | {
      channel: "email";
      to: string;
      subject: string;
      text: string;
      html: string | undefined;
      messageId: string | undefined;
      followUpId: string | undefined;
      extraHeader: string | undefined;
      replyTo: string | undefined;
    }
  | { channel: "sms"; to: string; text: string };

/** A way the adapter can be made to fail, and what it must report. */
interface FailureScenario {
  readonly name: string;
  readonly kind: FailureKind;
  readonly code: string | RegExp;
  readonly optedOut?: boolean;
  /** Sets the failure up; returns the channel to send with (default: a fresh one) and a cleanup. */
  arrange(): Promise<{ channel?: DeliveryChannel; cleanup?: () => Promise<void> }>;
}

/** One adapter under the shared contract. */
interface AdapterUnderTest {
  readonly name: string;
  readonly channel: "email" | "sms";
  /** Whether it keeps connections open between sends (what close() must release). */
  readonly connects: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  create(): DeliveryChannel;
  /** Email adapters: one configured with a Reply-To address (REPLY_TO). */
  createWithReplyTo?(replyTo: string): DeliveryChannel;
  /** The content the far side holds for a send that returned `id`. */
  received(id: string, message: OutgoingMessage): Promise<Received>;
  readonly failures: readonly FailureScenario[];
}

function emailMessage(followUpId: string): EmailMessage {
  return {
    channel: "email",
    followUpId,
    to: "ana@customer.example",
    subject: "Danke für Ihren Einkauf, Ana – 10 € Rabatt 🎉",
    text: `Hallo Ana,\n\nvielen Dank! Ihr Code: THANKS-7KQ2-M9XD-4TBW.\n${"Eine lange Zeile ".repeat(8)}Ende.`,
    html: "<p>Hallo Ana &amp; Team,</p><p>Ihr Code: <strong>THANKS-7KQ2-M9XD-4TBW</strong> – 10 €</p>",
    headers: { "List-Unsubscribe": "<https://shop.example/u/abc>", "X-Followup-Id": "forged" },
  };
}

function smsMessage(followUpId: string): PhoneMessage {
  return {
    channel: "sms",
    followUpId,
    to: "+15005550006",
    text: "Hi Ana, is all well with your new TV? Just reply to this text if we can help. €5 off",
  };
}

function messageFor(channel: "email" | "sms", followUpId: string): OutgoingMessage {
  return channel === "email" ? emailMessage(followUpId) : smsMessage(followUpId);
}

/** What the far side should hold for a message: exactly what was sent. */
function expectedContent(message: OutgoingMessage): Received {
  if (message.channel === "email") {
    return {
      channel: "email",
      to: message.to,
      subject: message.subject,
      text: message.text,
      html: message.html,
      messageId: expect.stringMatching(/^<followup\.[0-9a-f]{32}@shop\.example>$/),
      followUpId: message.followUpId,
      extraHeader: "<https://shop.example/u/abc>",
      replyTo: undefined,
    };
  }
  return { channel: "sms", to: message.to, text: message.text };
}

async function parseEmail(raw: string | Buffer): Promise<Received> {
  const parsed = await simpleParser(raw);
  const to = Array.isArray(parsed.to) ? parsed.to[0] : parsed.to;
  const header = (name: string) => {
    const lines = parsed.headerLines.filter((entry) => entry.key === name.toLowerCase());
    if (lines.length > 1) throw new Error(`${name} appears ${lines.length} times`);
    const line = lines[0]?.line;
    return line?.slice(line.indexOf(":") + 1).trim();
  };
  return {
    channel: "email",
    to: to?.value[0]?.address ?? "",
    subject: parsed.subject ?? "",
    text: (parsed.text ?? "").replace(/\n$/, ""),
    html: parsed.html === false ? undefined : parsed.html,
    messageId: parsed.messageId,
    followUpId: header(FOLLOW_UP_HEADER),
    extraHeader: header("List-Unsubscribe"),
    replyTo: header("Reply-To"),
  };
}

function tcpSockets(): number {
  return process.getActiveResourcesInfo().filter((name) => name === "TCPSocketWrap").length;
}

async function waitFor(condition: () => boolean, timeoutMs = 3_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return condition();
}

let followUpCounter = 0;
function nextFollowUpId(): string {
  followUpCounter++;
  return `evt-${followUpCounter}:big-ticket.thank-you`;
}

function smtpAdapter(): AdapterUnderTest & { sink(): SmtpSink } {
  let sink: SmtpSink;
  const create = (url = sink.url, replyTo?: string) =>
    createSmtpEmailChannel({
      smtpUrl: url,
      from: FROM,
      ...(replyTo !== undefined && { replyTo }),
      maxConnections: 2,
      timeoutMs: 2_000,
    });
  return {
    name: "email-smtp (smtp-sink)",
    channel: "email",
    connects: true,
    sink: () => sink,
    async start() {
      sink = await startSmtpSink();
    },
    async stop() {
      await sink.close();
    },
    create: () => create(),
    createWithReplyTo: (replyTo) => create(sink.url, replyTo),
    async received(id) {
      const message = sink.messages.find((m) => m.parsed.messageId === id);
      if (!message) throw new Error(`the sink has no message ${id}`);
      return parseEmail(message.raw);
    },
    failures: [
      {
        name: "SMTP 451 at RCPT TO",
        kind: "transient",
        code: "451",
        async arrange() {
          sink.failNext({ code: 451, message: "4.7.1 Try again later" });
          return {};
        },
      },
      {
        name: "SMTP 550 after DATA",
        kind: "permanent",
        code: "550",
        async arrange() {
          sink.failNext({ code: 550, message: "5.7.1 Rejected by policy", stage: "data" });
          return {};
        },
      },
      {
        name: "SMTP 550 at RCPT TO (no such mailbox)",
        kind: "permanent",
        code: "550",
        async arrange() {
          sink.failNext({ code: 550, message: "5.1.1 <ana@customer.example>: no such user" });
          return {};
        },
      },
      {
        name: "server down",
        kind: "transient",
        code: /^E[A-Z]+$/,
        async arrange() {
          await sink.setDown(true);
          return { cleanup: () => sink.setDown(false) };
        },
      },
      {
        name: "wrong credentials (535)",
        kind: "misconfigured",
        code: "EAUTH",
        async arrange() {
          const guarded = await startSmtpSink({ requireAuth: { user: "mailer", pass: "secret" } });
          const url = new URL(guarded.url);
          url.username = "mailer";
          url.password = "wrong";
          return {
            channel: create(url.href),
            cleanup: () => guarded.close(),
          };
        },
      },
      {
        name: "no credentials where the server needs them (530)",
        kind: "misconfigured",
        code: "530",
        async arrange() {
          const guarded = await startSmtpSink({ requireAuth: { user: "mailer", pass: "secret" } });
          return {
            channel: create(guarded.url),
            cleanup: () => guarded.close(),
          };
        },
      },
    ],
  };
}

function twilioAdapter(): AdapterUnderTest & { fake(): TwilioFake } {
  let fake: TwilioFake;
  const create = (options: { apiUrl?: string; authToken?: string } = {}) =>
    createTwilioSmsChannel({
      accountSid: ACCOUNT_SID,
      authToken: options.authToken ?? AUTH_TOKEN,
      from: TWILIO_FROM,
      statusCallback: "https://hooks.shop.example/twilio/status",
      apiUrl: options.apiUrl ?? fake.baseUrl,
      timeoutMs: 10_000,
    });
  return {
    name: "sms-twilio (twilio-fake through the SDK)",
    channel: "sms",
    connects: true,
    fake: () => fake,
    async start() {
      fake = await startTwilioFake({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
    },
    async stop() {
      await fake.close();
    },
    create: () => create(),
    async received(id) {
      const message = fake.messages.find((m) => m.sid === id);
      if (!message) throw new Error(`the fake has no message ${id}`);
      expect(message.from).toBe(TWILIO_FROM);
      expect(message.statusCallback).toBe("https://hooks.shop.example/twilio/status");
      return { channel: "sms", to: message.to, text: message.body };
    },
    failures: [
      ...(
        [
          [429, 20429],
          [500, 20500],
          [503, 20503],
        ] as const
      ).map(
        ([status, code]): FailureScenario => ({
          name: `Twilio HTTP ${status}`,
          kind: "transient",
          code: String(code),
          async arrange() {
            fake.failNext({ status });
            return {};
          },
        }),
      ),
      {
        name: "server down",
        kind: "transient",
        code: "ECONNREFUSED",
        async arrange() {
          const port = await findFreePort();
          return { channel: create({ apiUrl: `http://127.0.0.1:${port}` }) };
        },
      },
      ...(
        [
          [21211, "The 'To' number +15005550006 is not a valid phone number."],
          [21614, "'To' number is not a valid mobile number"],
        ] as const
      ).map(
        ([code, message]): FailureScenario => ({
          name: `Twilio ${code}`,
          kind: "permanent",
          code: String(code),
          async arrange() {
            fake.failNext({ status: 400, code, message });
            return {};
          },
        }),
      ),
      {
        name: "Twilio 21610 (recipient unsubscribed)",
        kind: "permanent",
        code: "21610",
        optedOut: true,
        async arrange() {
          fake.failNext({
            status: 400,
            code: 21610,
            message: "Attempt to send to unsubscribed recipient",
          });
          return {};
        },
      },
      {
        name: "wrong auth token (401, 20003)",
        kind: "misconfigured",
        code: "20003",
        async arrange() {
          return { channel: create({ authToken: "wrong-token" }) };
        },
      },
    ],
  };
}

function outboxAdapter(channel: "email" | "sms"): AdapterUnderTest & { dir(): string } {
  let dir: string;
  return {
    name: `outbox (${channel})`,
    channel,
    connects: false,
    dir: () => dir,
    async start() {
      dir = path.join(await mkdtemp(path.join(tmpdir(), "followups-outbox-")), "not-yet-created");
    },
    async stop() {
      await rm(path.dirname(dir), { recursive: true, force: true });
    },
    create: () => createOutboxChannel({ dir, from: FROM, channels: [channel] }),
    ...(channel === "email" && {
      createWithReplyTo: (replyTo: string) =>
        createOutboxChannel({ dir, from: FROM, replyTo, channels: [channel] }),
    }),
    async received(id) {
      const content = await readFile(path.join(dir, id));
      if (channel === "email") return parseEmail(content);
      const file = JSON.parse(content.toString("utf8")) as OutboxPhoneFile;
      return { channel: "sms", to: file.to, text: file.text };
    },
    failures: [
      {
        name: "the outbox path is a file",
        kind: "misconfigured",
        code: /^(ENOTDIR|EEXIST)$/,
        async arrange() {
          const file = path.join(path.dirname(dir), "a-file");
          await writeFile(file, "not a folder");
          return { channel: createOutboxChannel({ dir: path.join(file, "outbox"), from: FROM }) };
        },
      },
    ],
  };
}

const adapters = [smtpAdapter(), twilioAdapter(), outboxAdapter("email"), outboxAdapter("sms")];

describe.each(adapters)("channel contract: $name", (adapter) => {
  const open: DeliveryChannel[] = [];
  const fresh = () => {
    const channel = adapter.create();
    open.push(channel);
    return channel;
  };

  beforeAll(() => adapter.start());
  afterAll(() => adapter.stop());
  afterEach(async () => {
    await Promise.all(open.splice(0).map((channel) => channel.close()));
  });

  it("serves the channel it is tested for", () => {
    expect(fresh().channels).toContain(adapter.channel);
  });

  it("accepts a message: ok with an id, and the far side holds exactly its content", async () => {
    const message = messageFor(adapter.channel, nextFollowUpId());
    const result = await fresh().send(message);
    if (!result.ok) throw new Error(`send failed: ${JSON.stringify(result.error)}`);
    expect(result.id).not.toBe("");
    expect(await adapter.received(result.id, message)).toEqual(expectedContent(message));
  });

  it.runIf(adapter.createWithReplyTo !== undefined)(
    "with a reply-to address, the far side holds it as the one Reply-To, over a message's own",
    async () => {
      const channel = adapter.createWithReplyTo?.(REPLY_TO);
      if (!channel) throw new Error("no reply-to variant");
      open.push(channel);
      const plain = emailMessage(nextFollowUpId());
      const message = { ...plain, headers: { ...plain.headers, "Reply-To": "x@other.example" } };
      const result = await channel.send(message);
      if (!result.ok) throw new Error(`send failed: ${JSON.stringify(result.error)}`);
      // parseEmail refuses a header that appears twice.
      expect(await adapter.received(result.id, message)).toEqual({
        ...expectedContent(message),
        replyTo: REPLY_TO,
      });
    },
  );

  it.each(adapter.failures)("classifies $name as $kind", async (scenario) => {
    const arranged = await scenario.arrange();
    try {
      const message = messageFor(adapter.channel, nextFollowUpId());
      const result = await (arranged.channel ?? fresh()).send(message);
      if (result.ok) throw new Error(`expected a failure, got ok ${result.id}`);
      expect(result.error.kind).toBe(scenario.kind);
      expect(result.error.code).toMatch(scenario.code);
      expect(result.error.optedOut ?? false).toBe(scenario.optedOut ?? false);
      expect(result.error.reason).not.toBe("");
      expect(result.error.reason).not.toContain(message.to);
    } finally {
      await arranged.channel?.close();
      await arranged.cleanup?.();
    }
  });

  it("recovers after a failure: the next send goes through", async () => {
    const [first] = adapter.failures;
    if (!first) throw new Error("no failure scenario");
    const arranged = await first.arrange();
    const channel = fresh();
    try {
      const failed = await (arranged.channel ?? channel).send(
        messageFor(adapter.channel, nextFollowUpId()),
      );
      expect(failed.ok).toBe(false);
    } finally {
      await arranged.channel?.close();
      await arranged.cleanup?.();
    }
    const message = messageFor(adapter.channel, nextFollowUpId());
    const result = await channel.send(message);
    expect(result.ok).toBe(true);
  });

  it("answers a message of a channel it does not serve as misconfigured, without throwing", async () => {
    const foreign: PhoneMessage =
      adapter.channel === "email"
        ? smsMessage(nextFollowUpId())
        : { ...smsMessage(nextFollowUpId()), channel: "voice" };
    const result = await fresh().send(foreign);
    expect(result).toMatchObject({
      ok: false,
      error: { kind: "misconfigured", code: "EUNSUPPORTED" },
    });
  });

  it("close() releases its connections; a send after it fails as transient", async () => {
    // Earlier tests closed their channels, whose sockets close soon after. This file runs in a
    // process of its own (forks pool) where only the adapters and their servers open TCP sockets,
    // so those are all gone once none is left: a state to wait for, not a quiet spell to time.
    expect(await waitFor(() => tcpSockets() === 0)).toBe(true);
    const channel = adapter.create();
    const sent = await channel.send(messageFor(adapter.channel, nextFollowUpId()));
    expect(sent.ok).toBe(true);
    if (adapter.connects) expect(tcpSockets()).toBeGreaterThan(0);
    await channel.close();
    // Well within the adapters' idle timeouts, so only close() can explain the drop.
    expect(await waitFor(() => tcpSockets() === 0, 1_000)).toBe(true);
    const after = await channel.send(messageFor(adapter.channel, nextFollowUpId()));
    expect(after).toMatchObject({ ok: false, error: { kind: "transient", code: "ECLOSED" } });
  });
});

describe("email-smtp specifics", () => {
  const adapter = smtpAdapter();
  beforeAll(() => adapter.start());
  afterAll(() => adapter.stop());

  it("keeps the Message-ID of a follow-up across redeliveries and sets the envelope sender", async () => {
    const channel = adapter.create();
    try {
      const followUpId = nextFollowUpId();
      const first = await channel.send(emailMessage(followUpId));
      const second = await channel.send(emailMessage(followUpId));
      const other = await channel.send(emailMessage(nextFollowUpId()));
      expect(first.ok && second.ok && other.ok).toBe(true);
      if (!first.ok || !second.ok || !other.ok) return;
      expect(second.id).toBe(first.id);
      expect(other.id).not.toBe(first.id);
      const received = adapter.sink().messages.filter((m) => m.parsed.messageId === first.id);
      expect(received).toHaveLength(2);
      expect(received[0]?.envelope).toEqual({
        mailFrom: "hello@shop.example",
        rcptTo: ["ana@customer.example"],
      });
    } finally {
      await channel.close();
    }
  });

  it("sends concurrent messages over at most maxConnections pooled connections", async () => {
    const channel = adapter.create();
    const before = adapter.sink().connections;
    try {
      const results = await Promise.all(
        Array.from({ length: 8 }, () => channel.send(emailMessage(nextFollowUpId()))),
      );
      expect(results.every((result) => result.ok)).toBe(true);
      expect(adapter.sink().connections - before).toBeLessThanOrEqual(2);
    } finally {
      await channel.close();
    }
  });

  it("keeps its connections for hundreds of messages: reconnects would bunch sends above the rate", async () => {
    const channel = adapter.create();
    const before = adapter.sink().connections;
    try {
      for (let batch = 0; batch < 5; batch++) {
        const results = await Promise.all(
          Array.from({ length: 50 }, () => channel.send(emailMessage(nextFollowUpId()))),
        );
        expect(results.every((result) => result.ok)).toBe(true);
      }
      // 250 messages over two pooled connections: nodemailer's default would have opened five.
      expect(adapter.sink().connections - before).toBeLessThanOrEqual(2);
    } finally {
      await channel.close();
    }
  });

  it("replaces a connection after the configured number of messages, for servers that cap them", async () => {
    const channel = createSmtpEmailChannel({
      smtpUrl: adapter.sink().url,
      from: FROM,
      maxConnections: 1,
      messagesPerConnection: 5,
      timeoutMs: 2_000,
    });
    const before = adapter.sink().connections;
    try {
      for (let i = 0; i < 12; i++) {
        expect((await channel.send(emailMessage(nextFollowUpId()))).ok).toBe(true);
      }
      expect(adapter.sink().connections - before).toBe(3);
    } finally {
      await channel.close();
    }
  });

  it("does not resend on its own when the server defers: one attempt per send", async () => {
    const channel = adapter.create();
    const before = adapter.sink().attempts;
    try {
      adapter.sink().failNext({ code: 421, message: "4.3.2 Shutting down" });
      const result = await channel.send(emailMessage(nextFollowUpId()));
      expect(result).toMatchObject({ ok: false, error: { kind: "transient", code: "421" } });
      expect(adapter.sink().attempts - before).toBe(1);
    } finally {
      await channel.close();
    }
  });

  it("refuses a MAIL_FROM without a domain at construction", () => {
    expect(() => createSmtpEmailChannel({ smtpUrl: "smtp://127.0.0.1:1", from: "shop" })).toThrow(
      /MAIL_FROM/,
    );
  });
});

describe("sms-twilio specifics", () => {
  const adapter = twilioAdapter();
  beforeAll(() => adapter.start());
  afterAll(() => adapter.stop());

  it("sends through a messaging service instead of a From number", async () => {
    const channel = createTwilioSmsChannel({
      accountSid: ACCOUNT_SID,
      authToken: AUTH_TOKEN,
      messagingServiceSid: `MG${"a".repeat(32)}`,
      apiUrl: adapter.fake().baseUrl,
    });
    try {
      const result = await channel.send(smsMessage(nextFollowUpId()));
      if (!result.ok) throw new Error(JSON.stringify(result.error));
      const received = adapter.fake().messages.find((m) => m.sid === result.id);
      expect(received?.messagingServiceSid).toBe(`MG${"a".repeat(32)}`);
      expect(received?.from).toBeUndefined();
      expect(received?.statusCallback).toBeUndefined();
    } finally {
      await channel.close();
    }
  });

  it("does not retry a 429 inside the SDK: one request per send", async () => {
    const channel = adapter.create();
    const before = adapter.fake().requests;
    try {
      adapter.fake().failNext({ status: 429, retryAfterSeconds: 1 });
      const result = await channel.send(smsMessage(nextFollowUpId()));
      // Twilio's Retry-After, which the SDK's error does not carry, comes with the failure.
      expect(result).toMatchObject({
        ok: false,
        error: { kind: "transient", retryAfterMs: 1_000 },
      });
      expect(adapter.fake().requests - before).toBe(1);
    } finally {
      await channel.close();
    }
  });

  it("serves SMS only: voice is a separate adapter", async () => {
    const channel = adapter.create();
    try {
      expect(channel.channels).toEqual(["sms"]);
      const result = await channel.send({ ...smsMessage(nextFollowUpId()), channel: "voice" });
      expect(result).toMatchObject({ ok: false, error: { kind: "misconfigured" } });
    } finally {
      await channel.close();
    }
  });

  it("needs a From number or a messaging service", () => {
    expect(() =>
      createTwilioSmsChannel({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN }),
    ).toThrow(/TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID/);
  });
});

describe("outbox specifics", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "followups-outbox-"));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it("overwrites a redelivered follow-up's file instead of adding one, leaving no temp files", async () => {
    const dir = path.join(root, "redelivery");
    const channel = createOutboxChannel({ dir, from: FROM });
    const followUpId = nextFollowUpId();
    const first = await channel.send(emailMessage(followUpId));
    const second = await channel.send({ ...emailMessage(followUpId), subject: "Second try" });
    const sms = await channel.send(smsMessage(followUpId));
    await channel.close();
    if (!first.ok || !second.ok || !sms.ok) throw new Error("outbox send failed");
    expect(second.id).toBe(first.id);
    expect(first.id).toMatch(/\.eml$/);
    expect(sms.id).toMatch(/\.json$/);
    expect((await readdir(dir)).sort()).toEqual([first.id, sms.id].sort());
    const parsed = await simpleParser(await readFile(path.join(dir, first.id)));
    expect(parsed.subject).toBe("Second try");
  });

  it("writes SMS files with the segment count and the follow-up id", async () => {
    const dir = path.join(root, "sms");
    const channel = createOutboxChannel({ dir, from: FROM });
    const message = smsMessage(nextFollowUpId());
    const result = await channel.send(message);
    await channel.close();
    if (!result.ok) throw new Error("outbox send failed");
    const file = JSON.parse(await readFile(path.join(dir, result.id), "utf8")) as OutboxPhoneFile;
    expect(file).toEqual({
      channel: "sms",
      followUpId: message.followUpId,
      to: message.to,
      text: message.text,
      // 84 characters, "€" from GSM-7's extension table counting twice: 85 septets, one part
      // (read as UCS-2, 84 units would take two).
      segments: 1,
    });
  });

  it.each([
    ["../../etc/passwd", /^etc_passwd-[0-9a-f]{10}\.json$/],
    ["evt-1:rule/step", /^evt-1_rule_step-[0-9a-f]{10}\.json$/],
    ["....", /^follow-up-[0-9a-f]{10}\.json$/],
  ])("keeps the file for follow-up id %j inside the folder", async (followUpId, name) => {
    const dir = path.join(root, "names");
    const channel = createOutboxChannel({ dir, from: FROM });
    const result = await channel.send(smsMessage(followUpId));
    await channel.close();
    if (!result.ok) throw new Error("outbox send failed");
    expect(result.id).toMatch(name);
    expect(await readdir(dir)).toContain(result.id);
  });

  it("gives ids that sanitise alike different files", async () => {
    const dir = path.join(root, "collisions");
    const channel = createOutboxChannel({ dir, from: FROM });
    const a = await channel.send(smsMessage("a:b"));
    const b = await channel.send(smsMessage("a/b"));
    await channel.close();
    expect(a.ok && b.ok && a.id !== b.id).toBe(true);
  });
});

/**
 * A bare SMTP server on a loopback socket that misbehaves on purpose where smtp-server cannot be
 * made to: a temporary refusal of AUTH, or a connection dropped after the whole message came.
 */
async function scriptedSmtp(mode: "auth-454" | "reset-after-data" | "greeting-554" | "mail-550") {
  const received = { messages: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    let buffer = "";
    let inData = false;
    if (mode === "greeting-554") {
      // The server will not take mail from this host at all (an address on a blocklist, say).
      socket.end("554 5.7.1 Service unavailable; client host blocked\r\n");
      return;
    }
    socket.write("220 scripted ESMTP\r\n");
    socket.on("data", (chunk) => {
      buffer += chunk.toString("latin1");
      for (;;) {
        if (inData) {
          const end = buffer.indexOf("\r\n.\r\n");
          if (end < 0) return;
          buffer = buffer.slice(end + 5);
          inData = false;
          received.messages++;
          // The whole message is here; the connection breaks before the server says so.
          socket.destroy();
          return;
        }
        const newline = buffer.indexOf("\r\n");
        if (newline < 0) return;
        const line = buffer.slice(0, newline).toUpperCase();
        buffer = buffer.slice(newline + 2);
        if (line.startsWith("EHLO")) socket.write("250-scripted\r\n250 AUTH PLAIN LOGIN\r\n");
        else if (line.startsWith("AUTH"))
          socket.write("454 4.7.0 Temporary authentication failure\r\n");
        else if (line.startsWith("MAIL") && mode === "mail-550")
          // The sender (MAIL_FROM) is not one the server sends for: every message fails alike.
          socket.write("550 5.7.1 Sender address not verified\r\n");
        else if (line.startsWith("MAIL") || line.startsWith("RCPT")) socket.write("250 ok\r\n");
        else if (line === "DATA") {
          socket.write("354 go ahead\r\n");
          inData = true;
        } else if (line === "QUIT") socket.end("221 bye\r\n");
        else socket.write("502 not here\r\n");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  const url =
    mode === "auth-454" ? `smtp://user:pass@127.0.0.1:${port}` : `smtp://127.0.0.1:${port}`;
  return {
    url,
    received,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * An SMTP server over TLS (smtps://) that takes the whole message and then, instead of its 250,
 * writes plain text on the connection under TLS (a middlebox, or a server that drops TLS as it
 * fails): the client reads a record that is not TLS, ERR_SSL_WRONG_VERSION_NUMBER, as from a
 * server that never spoke TLS, but after the message was handed over.
 */
async function plainTextAfterDataSmtps() {
  const folder = await mkdtemp(path.join(tmpdir(), "followups-smtps-"));
  const key = path.join(folder, "key.pem");
  const cert = path.join(folder, "cert.pem");
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
      ...["-keyout", key, "-out", cert],
    ],
    { stdio: "ignore" },
  );
  const received = { messages: 0 };
  const raw: net.Socket[] = [];
  const server = tls.createServer(
    { key: await readFile(key), cert: await readFile(cert) },
    (socket) => {
      const plain = raw.at(-1);
      socket.on("error", () => undefined);
      let buffer = "";
      let inData = false;
      socket.write("220 scripted ESMTP\r\n");
      socket.on("data", (chunk) => {
        buffer += chunk.toString("latin1");
        for (;;) {
          if (inData) {
            if (!buffer.includes("\r\n.\r\n")) return;
            received.messages++;
            // The whole message is here: plain text under TLS where the 250 would go.
            plain?.write("421 4.4.2 closing\r\n");
            return;
          }
          const newline = buffer.indexOf("\r\n");
          if (newline < 0) return;
          const line = buffer.slice(0, newline).toUpperCase();
          buffer = buffer.slice(newline + 2);
          if (line.startsWith("EHLO")) socket.write("250 scripted\r\n");
          else if (line.startsWith("MAIL") || line.startsWith("RCPT")) socket.write("250 ok\r\n");
          else if (line === "DATA") {
            socket.write("354 go ahead\r\n");
            inData = true;
          } else socket.write("502 not here\r\n");
        }
      });
    },
  );
  server.on("connection", (socket: net.Socket) => {
    raw.push(socket);
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `smtps://127.0.0.1:${port}`,
    received,
    stop: async () => {
      for (const socket of raw) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      await rm(folder, { recursive: true, force: true });
    },
  };
}

describe("SMTP failures on a real connection", () => {
  const send = async (url: string) => {
    const channel = createSmtpEmailChannel({ smtpUrl: url, from: "hello@shop.example" });
    try {
      return await channel.send(emailMessage(nextFollowUpId()));
    } finally {
      await channel.close();
    }
  };

  it("552 to RCPT TO (a full mailbox, too many recipients) is retried as a 452 (RFC 5321 4.5.3.1.10); 552 to MAIL FROM or after DATA (over the server's size) fails at once", async () => {
    const sink = await startSmtpSink();
    try {
      sink.failNext({ code: 552, message: "5.2.2 <ana@customer.example>: mailbox full" });
      const atRecipient = await send(sink.url);
      expect(atRecipient).toMatchObject({ ok: false, error: { kind: "transient", code: "552" } });
      if (!atRecipient.ok) {
        expect(atRecipient.error.reason).toBe(
          "the SMTP server deferred the message at RCPT (SMTP 552 5.2.2): a 552 to a recipient (its mailbox full, too many recipients) is retried as a 452, as RFC 5321 asks",
        );
        expect(atRecipient.error.uncertain).toBeUndefined();
      }
      sink.failNext({
        code: 552,
        message: "5.3.4 Message size exceeds fixed limit",
        stage: "mail",
      });
      expect(await send(sink.url)).toMatchObject({
        ok: false,
        error: {
          kind: "permanent",
          code: "552",
          reason: "the SMTP server rejected the message at MAIL (SMTP 552 5.3.4)",
        },
      });
      sink.failNext({ code: 552, message: "5.3.4 Message too big", stage: "data" });
      expect(await send(sink.url)).toMatchObject({
        ok: false,
        error: {
          kind: "permanent",
          code: "552",
          reason: "the SMTP server rejected the message at DATA (SMTP 552 5.3.4)",
        },
      });
      expect(sink.messages).toHaveLength(0);
    } finally {
      await sink.close();
    }
  });

  it("552 to RCPT TO with a permanent enhanced code (5.3.4 too big, 5.2.3, 5.7.1) fails at once; with 5.2.2, 5.5.3 or none it is retried", async () => {
    const sink = await startSmtpSink();
    try {
      for (const [enhanced, text] of [
        ["5.3.4", "Message too big for system"],
        ["5.2.3", "Message length exceeds administrative limit"],
        ["5.7.1", "Delivery not authorized"],
      ] as const) {
        sink.failNext({ code: 552, message: `${enhanced} <ana@customer.example>: ${text}` });
        const sent = await send(sink.url);
        expect(sent).toMatchObject({
          ok: false,
          error: {
            kind: "permanent",
            code: "552",
            reason: `the SMTP server rejected the message at RCPT (SMTP 552 ${enhanced})`,
          },
        });
        if (!sent.ok) expect(sent.error.uncertain).toBeUndefined();
      }
      for (const message of [
        "5.2.2 <ana@customer.example>: mailbox full",
        "5.5.3 Too many recipients",
        "4.2.2 <ana@customer.example>: over quota",
        "Mailbox full",
      ]) {
        sink.failNext({ code: 552, message });
        expect(await send(sink.url)).toMatchObject({
          ok: false,
          error: { kind: "transient", code: "552" },
        });
      }
      expect(sink.messages).toHaveLength(0);
    } finally {
      await sink.close();
    }
  });

  it("a temporary refusal of the credentials (454) is retried, not taken for wrong settings", async () => {
    const server = await scriptedSmtp("auth-454");
    try {
      expect(await send(server.url)).toMatchObject({
        ok: false,
        error: { kind: "transient", code: "454" },
      });
    } finally {
      await server.stop();
    }
  });

  it("a connection lost after the whole message went out may hide an acceptance: uncertain", async () => {
    const server = await scriptedSmtp("reset-after-data");
    try {
      const result = await send(server.url);
      expect(server.received.messages).toBe(1);
      expect(result).toMatchObject({ ok: false, error: { kind: "transient", uncertain: true } });
    } finally {
      await server.stop();
    }
  });

  it.each([
    ["greeting-554", "554", "CONN"],
    ["mail-550", "550", "MAIL"],
  ] as const)(
    "a server that refuses us, not the recipient (%s), is a setting to fix: misconfigured",
    async (mode, code, at) => {
      const server = await scriptedSmtp(mode);
      try {
        const result = await send(server.url);
        expect(result).toMatchObject({ ok: false, error: { kind: "misconfigured", code } });
        if (!result.ok) expect(result.error.reason).toContain(`at ${at}`);
        expect(server.received.messages).toBe(0);
      } finally {
        await server.stop();
      }
    },
  );

  it("a TLS record that is not TLS after the whole message went out (ERR_SSL_WRONG_VERSION_NUMBER mid-session) may hide an acceptance: uncertain", async () => {
    const server = await plainTextAfterDataSmtps();
    // The server's certificate is its own (made above).
    const checking = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
    try {
      const result = await send(server.url);
      expect(server.received.messages).toBe(1);
      expect(result).toMatchObject({ ok: false, error: { kind: "transient", uncertain: true } });
    } finally {
      if (checking === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = checking;
      await server.stop();
    }
  });

  it("smtps:// to a server that speaks plain SMTP counts as possibly handed over: its error is also raised mid-session", async () => {
    const server = await scriptedSmtp("reset-after-data");
    try {
      const result = await send(server.url.replace(/^smtp:/, "smtps:"));
      expect(result).toMatchObject({ ok: false, error: { kind: "transient", uncertain: true } });
      expect(server.received.messages).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it("a connection that never opened is certain: nothing was sent", async () => {
    const port = await findFreePort();
    const result = await send(`smtp://127.0.0.1:${port}`);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.kind).toBe("transient");
      expect(result.error.uncertain).toBeUndefined();
    }
  });
});

describe("failure classification by code", () => {
  it.each([
    [{ code: "EENVELOPE", responseCode: 451, command: "RCPT TO" }, "transient", "451"],
    [{ code: "EMESSAGE", responseCode: 552, command: "DATA" }, "permanent", "552"],
    [{ code: "EENVELOPE", responseCode: 503 }, "transient", "503"],
    [{ code: "EAUTH", responseCode: 535, command: "AUTH PLAIN" }, "misconfigured", "EAUTH"],
    [{ code: "EAUTH", responseCode: 454, command: "AUTH PLAIN" }, "transient", "454"],
    [{ code: "EAUTH", responseCode: 421, command: "AUTH PLAIN" }, "transient", "421"],
    [{ code: "EAUTH", command: "AUTH PLAIN" }, "misconfigured", "EAUTH"],
    [{ code: "EMESSAGE", command: "MAIL FROM" }, "permanent", "EMESSAGE"],
    [{ code: "ENOAUTH" }, "misconfigured", "ENOAUTH"],
    [{ code: "EENVELOPE", responseCode: 530 }, "misconfigured", "530"],
    [{ code: "EENVELOPE", responseCode: 550, command: "MAIL FROM" }, "misconfigured", "550"],
    [{ code: "EENVELOPE", responseCode: 553, command: "MAIL FROM" }, "misconfigured", "553"],
    [{ code: "EPROTOCOL", responseCode: 554, command: "CONN" }, "misconfigured", "554"],
    [{ code: "EPROTOCOL", responseCode: 550, command: "HELO" }, "misconfigured", "550"],
    [{ code: "EPROTOCOL", responseCode: 421, command: "CONN" }, "transient", "421"],
    [{ code: "EENVELOPE", responseCode: 552, command: "MAIL FROM" }, "permanent", "552"],
    [{ code: "EENVELOPE", responseCode: 552, command: "RCPT TO" }, "transient", "552"],
    [
      { code: "EENVELOPE", responseCode: 552, command: "RCPT TO", response: "552 5.3.4 Too big" },
      "permanent",
      "552",
    ],
    [
      { code: "EENVELOPE", responseCode: 552, command: "RCPT TO", response: "552-5.2.2 Full" },
      "transient",
      "552",
    ],
    [{ code: "EENVELOPE", responseCode: 550, command: "RCPT TO" }, "permanent", "550"],
    [{ code: "EMESSAGE", responseCode: 554, command: "DATA" }, "permanent", "554"],
    [{ code: "ECONNECTION" }, "transient", "ECONNECTION"],
    [{ code: "ETIMEDOUT" }, "transient", "ETIMEDOUT"],
    [{ code: "ESOCKET" }, "transient", "ESOCKET"],
    [{ code: "EDNS" }, "transient", "EDNS"],
    [{ code: "ECONNREFUSED" }, "transient", "ECONNREFUSED"],
    [{ code: "EENVELOPE" }, "permanent", "EENVELOPE"],
    [{}, "transient", "UNKNOWN"],
    [new Error("550 looks permanent but has no code"), "transient", "UNKNOWN"],
  ] as const)("SMTP %j → %s %s", (error, kind, code) => {
    expect(classifySmtpFailure(error)).toMatchObject({ kind, code });
  });

  it.each([
    ["DEPTH_ZERO_SELF_SIGNED_CERT"],
    ["UNABLE_TO_VERIFY_LEAF_SIGNATURE"],
    ["CERT_HAS_EXPIRED"],
    ["ERR_TLS_CERT_ALTNAME_INVALID"],
  ])(
    "a TLS handshake refused (%s) is certain, over SMTP and to Twilio: nothing was handed over",
    (cause) => {
      const smtp = classifySmtpFailure({ code: "ESOCKET", originalCode: cause, command: "CONN" });
      expect(smtp).toMatchObject({ kind: "transient", code: "ESOCKET" });
      expect(smtp.uncertain).toBeUndefined();
      const twilio = classifyTwilioFailure({ code: cause });
      expect(twilio).toMatchObject({ kind: "transient", code: cause });
      expect(twilio.uncertain).toBeUndefined();
    },
  );

  it("a record that is not TLS (ERR_SSL_WRONG_VERSION_NUMBER) is uncertain, over SMTP and to Twilio: it may come after the handover", () => {
    const cause = "ERR_SSL_WRONG_VERSION_NUMBER";
    const smtp = classifySmtpFailure({ code: "ESOCKET", originalCode: cause, command: "CONN" });
    expect(smtp).toMatchObject({ kind: "transient", code: "ESOCKET", uncertain: true });
    expect(classifyTwilioFailure({ code: cause })).toMatchObject({
      kind: "transient",
      code: cause,
      uncertain: true,
    });
  });

  it("names the enhanced status and the command, not the server's words", () => {
    const failure = classifySmtpFailure({
      code: "EENVELOPE",
      responseCode: 550,
      response: "550 5.1.1 <ana@customer.example>: Recipient address rejected",
      command: "RCPT TO",
    });
    expect(failure.reason).toBe("the SMTP server rejected the message at RCPT (SMTP 550 5.1.1)");
  });

  it.each([
    [{ status: 429, code: 20429 }, "transient", "20429", false],
    [{ status: 500, code: 20500 }, "transient", "20500", false],
    [{ status: 502 }, "transient", "502", false],
    [{ code: "ECONNRESET" }, "transient", "ECONNRESET", false],
    [{ code: "ETIMEDOUT" }, "transient", "ETIMEDOUT", false],
    [{ status: 401, code: 20003 }, "misconfigured", "20003", false],
    [{ status: 403 }, "misconfigured", "403", false],
    [{ status: 404, code: 20404 }, "misconfigured", "20404", false],
    [{ status: 400, code: 21211 }, "permanent", "21211", false],
    [{ status: 400, code: 21611 }, "transient", "21611", false],
    [{ status: 400, code: 21614 }, "permanent", "21614", false],
    [{ status: 400, code: 21610 }, "permanent", "21610", true],
    [{ status: 400, code: 21408 }, "permanent", "21408", false],
    [{ status: 400, code: 21612 }, "permanent", "21612", false],
    [{ status: 400, code: 21606 }, "permanent", "21606", false],
    [{ status: 400, code: 21602 }, "permanent", "21602", false],
    [{ status: 400, code: 30000 }, "permanent", "30000", false],
  ] as const)("Twilio %j → %s %s", (error, kind, code, optedOut) => {
    const failure = classifyTwilioFailure(error);
    expect(failure).toMatchObject({ kind, code });
    expect(failure.optedOut ?? false).toBe(optedOut);
  });
});
