import { Redis } from "ioredis";
import nodemailer from "nodemailer";
import twilio from "twilio";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTwilioHttpClient } from "../../src/channels/twilio-base-url.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";
import { type SmtpSink, startSmtpSink } from "../support/smtp-sink.js";
import { countSmsSegments, startTwilioFake, type TwilioFake } from "../support/twilio-fake.js";

const ACCOUNT_SID = `AC${"0123456789abcdef".repeat(2)}`;
const AUTH_TOKEN = "test-auth-token";

describe("injected redis", () => {
  const redisUrl = inject("redisUrl");
  let redis: Redis;

  beforeAll(() => {
    redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    await redis.quit();
  });

  it("answers PING and is private unless REDIS_URL was given", async () => {
    expect(await redis.ping()).toBe("PONG");
    const externalUrl = process.env.REDIS_URL;
    if (externalUrl) {
      expect(redisUrl).toBe(externalUrl);
    } else {
      const url = new URL(redisUrl);
      expect(url.hostname).toBe("127.0.0.1");
      expect(url.port).not.toBe("6379");
    }
  });

  it("deletes only keys under its own prefix", async () => {
    const mine = uniquePrefix("namespace");
    const other = uniquePrefix("namespace");
    expect(mine).toMatch(/^t-namespace-[0-9a-f]+$/);
    expect(mine).not.toBe(other);
    await redis.mset(`${mine}:a`, "1", `${mine}:b`, "2", `${other}:a`, "3");
    expect(await deleteKeysWithPrefix(redis, mine)).toBe(2);
    expect(await redis.exists(`${mine}:a`, `${mine}:b`)).toBe(0);
    expect(await redis.get(`${other}:a`)).toBe("3");
    await deleteKeysWithPrefix(redis, other);
  });
});

describe("smtp sink", () => {
  let sink: SmtpSink;

  beforeAll(async () => {
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await sink.close();
  });

  const createPoolTransport = () =>
    nodemailer.createTransport({
      pool: true,
      url: sink.url,
      maxConnections: 1,
      connectionTimeout: 2_000,
      greetingTimeout: 2_000,
    });

  it("receives, parses and records the envelope of a pooled send", async () => {
    const transport = createPoolTransport();
    try {
      await transport.sendMail({
        from: "shop@example.test",
        to: "customer@example.test",
        subject: "Thanks for your order",
        text: "How was it?",
      });
    } finally {
      transport.close();
    }
    const [message] = await sink.waitForMessages(1);
    expect(message?.parsed.subject).toBe("Thanks for your order");
    expect(message?.parsed.text?.trim()).toBe("How was it?");
    expect(message?.envelope).toEqual({
      mailFrom: "shop@example.test",
      rcptTo: ["customer@example.test"],
    });
    expect(message?.raw).toContain("Subject: Thanks for your order");
  });

  it("fails the next attempt with a scripted 451, then accepts", async () => {
    const transport = createPoolTransport();
    const before = sink.messages.length;
    const attemptsBefore = sink.attempts;
    sink.failNext({ code: 451 });
    const mail = {
      from: "shop@example.test",
      to: "retry@example.test",
      subject: "Retry",
      text: "x",
    };
    try {
      await expect(transport.sendMail(mail)).rejects.toMatchObject({ responseCode: 451 });
      await transport.sendMail(mail);
    } finally {
      transport.close();
    }
    expect(sink.attempts - attemptsBefore).toBe(2);
    expect(sink.messages.length - before).toBe(1);
  });

  it("fails at DATA with a permanent error when scripted", async () => {
    const transport = createPoolTransport();
    sink.failNext({ code: 550, message: "5.7.1 Rejected by policy", stage: "data" });
    try {
      await expect(
        transport.sendMail({ from: "a@example.test", to: "b@example.test", text: "x" }),
      ).rejects.toMatchObject({ responseCode: 550 });
    } finally {
      transport.close();
    }
  });

  it("refuses connections while down and comes back on the same port", async () => {
    const transport = nodemailer.createTransport({ url: sink.url, connectionTimeout: 1_000 });
    const mail = { from: "a@example.test", to: "b@example.test", text: "outage" };
    await sink.setDown(true);
    await expect(transport.sendMail(mail)).rejects.toMatchObject({ code: "ESOCKET" });
    await sink.setDown(false);
    const before = sink.messages.length;
    await transport.sendMail(mail);
    expect(sink.messages.length).toBe(before + 1);
  });

  it("lets a pooled transport recover after an outage", async () => {
    const transport = createPoolTransport();
    const mail = { from: "a@example.test", to: "b@example.test", text: "pooled outage" };
    try {
      await transport.sendMail(mail);
      await sink.setDown(true);
      await expect(transport.sendMail(mail)).rejects.toBeInstanceOf(Error);
      await sink.setDown(false);
      const before = sink.messages.length;
      await transport.sendMail(mail);
      expect(sink.messages.length).toBe(before + 1);
    } finally {
      transport.close();
    }
  });

  it("rejects wrong credentials with 535 when auth is required", async () => {
    const authSink = await startSmtpSink({ requireAuth: { user: "mailer", pass: "secret" } });
    try {
      const wrong = nodemailer.createTransport({
        url: authSink.url,
        auth: { user: "mailer", pass: "nope" },
      });
      await expect(
        wrong.sendMail({ from: "a@example.test", to: "b@example.test", text: "x" }),
      ).rejects.toMatchObject({ responseCode: 535 });

      const right = nodemailer.createTransport({
        url: authSink.url,
        auth: { user: "mailer", pass: "secret" },
      });
      await right.sendMail({ from: "a@example.test", to: "b@example.test", text: "x" });
      const [message] = await authSink.waitForMessages(1);
      expect(message?.auth).toMatchObject({ username: "mailer", accepted: true });
      expect(authSink.authentications.map((auth) => auth.accepted)).toEqual([false, true]);
    } finally {
      await authSink.close();
    }
  });

  it("reports how many messages arrived when waiting times out", async () => {
    await expect(sink.waitForMessages(sink.messages.length + 1, 50)).rejects.toThrow(
      /expected \d+ message\(s\) within 50 ms but \d+ arrived/,
    );
  });
});

describe("twilio fake through the real SDK", () => {
  let fake: TwilioFake;

  beforeAll(async () => {
    fake = await startTwilioFake({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  });
  afterAll(async () => {
    await fake.close();
  });

  const createClient = (token = AUTH_TOKEN) =>
    twilio(ACCOUNT_SID, token, { httpClient: createTwilioHttpClient(fake.baseUrl) });

  it("maps any Twilio host onto the base URL, keeping path and query", () => {
    const client = createTwilioHttpClient("http://127.0.0.1:9999/prefix/");
    expect(client.autoRetry).toBe(false);
    expect(client.redirect("https://messaging.twilio.com/v1/Services?PageSize=5")).toBe(
      "http://127.0.0.1:9999/prefix/v1/Services?PageSize=5",
    );
    expect(client.redirect("https://api.sydney.au1.twilio.com/2010-04-01/Accounts.json")).toBe(
      "http://127.0.0.1:9999/prefix/2010-04-01/Accounts.json",
    );
  });

  it("creates a message and resolves with its sid", async () => {
    const message = await createClient().messages.create({
      to: "+15005550006",
      from: "+15005550001",
      body: "Hello there",
      statusCallback: "https://example.test/status",
    });
    expect(message.sid).toMatch(/^SM[0-9a-f]{32}$/);
    expect(message.status).toBe("queued");
    expect(message.numSegments).toBe("1");
    const [received] = await fake.waitForMessages(1);
    expect(received).toMatchObject({
      sid: message.sid,
      to: "+15005550006",
      from: "+15005550001",
      body: "Hello there",
      statusCallback: "https://example.test/status",
    });
  });

  it("accepts a messaging service instead of a From number", async () => {
    const message = await createClient().messages.create({
      to: "+15005550006",
      messagingServiceSid: `MG${"a".repeat(32)}`,
      body: "Hi",
    });
    expect(message.from).toBeNull();
    expect(message.messagingServiceSid).toBe(`MG${"a".repeat(32)}`);
  });

  it("rejects with the scripted 21211 as a 400 RestException", async () => {
    fake.failNext({
      status: 400,
      code: 21211,
      message: "The 'To' number is not a valid phone number.",
    });
    await expect(
      createClient().messages.create({ to: "+1", from: "+15005550001", body: "x" }),
    ).rejects.toMatchObject({
      status: 400,
      code: 21211,
      message: "The 'To' number is not a valid phone number.",
    });
  });

  it("does not auto-retry a 429", async () => {
    const requestsBefore = fake.requests;
    fake.failNext({ status: 429, code: 20429 });
    await expect(
      createClient().messages.create({ to: "+15005550006", from: "+15005550001", body: "x" }),
    ).rejects.toMatchObject({ status: 429, code: 20429 });
    expect(fake.requests - requestsBefore).toBe(1);
  });

  it("rejects a wrong token with 401/20003", async () => {
    await expect(
      createClient("wrong-token").messages.create({
        to: "+15005550006",
        from: "+15005550001",
        body: "x",
      }),
    ).rejects.toMatchObject({ status: 401, code: 20003 });
  });

  it("validates required parameters like Twilio", async () => {
    await expect(
      createClient().messages.create({ to: "+15005550006", from: "+15005550001", body: "" }),
    ).rejects.toMatchObject({ status: 400, code: 21602 });
  });
});

describe("countSmsSegments", () => {
  it.each([
    ["a".repeat(160), 1],
    ["a".repeat(161), 2],
    ["a".repeat(306), 2],
    ["a".repeat(307), 3],
    ["€".repeat(80), 1],
    ["€".repeat(81), 2],
    ["é".repeat(160), 1],
    ["ł".repeat(70), 1],
    ["ł".repeat(71), 2],
    ["ł".repeat(134), 2],
    ["ł".repeat(135), 3],
    ["😀".repeat(35), 1],
    ["😀".repeat(36), 2],
  ])("case %# has %i segment(s)", (body, expected) => {
    expect(countSmsSegments(body)).toBe(expected);
  });
});
