import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { runCustomer } from "../../src/cli/customer-command.js";
import { runErase } from "../../src/cli/erase-command.js";
import { runResolve } from "../../src/cli/resolve-command.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import { sumHours } from "../../src/store/delivery-ledger.js";
import { StoreKeys } from "../../src/store/keys.js";
import { replyId } from "../../src/store/step-replies.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { captureIo } from "../support/capture-io.js";
import { purchaseInput } from "../support/fixtures.js";
import { keysHolding } from "../support/personal-data-scan.js";
import {
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
} from "../support/pipeline-harness.js";
import { httpAddressOf } from "../support/webhooks.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const TOKEN = "inbound-token-0123456789";

function replyMime(headers: Record<string, string>, body: string): string {
  const lines = Object.entries({
    From: "Ana Novak <ana@example.com>",
    To: "hello@shop.example",
    Subject: "Re: Thank you for your order",
    Date: new Date().toUTCString(),
    "Content-Type": "text/plain; charset=utf-8",
    ...headers,
  }).map(([name, value]) => `${name}: ${value}`);
  return `${lines.join("\r\n")}\r\n\r\n${body.replace(/\n/g, "\r\n")}\r\n`;
}

async function postEmail(p: PipelineHarness, mime: string, token: string | null = TOKEN) {
  const response = await fetch(`${httpAddressOf(p)}/webhooks/email/inbound`, {
    method: "POST",
    headers: {
      "content-type": "message/rfc822",
      ...(token && { authorization: `Bearer ${token}` }),
    },
    body: mime,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Publishes a purchase of `customerId` and sends its thank-you: the email's Message-ID. */
async function thankYouSent(p: PipelineHarness, eventId: string, customerId: string) {
  await p.publisher.publish(
    purchaseInput({
      id: eventId,
      orderId: `ord-${eventId}`,
      occurredAt: DateTime.utc().toISO() ?? "",
      customer: { id: customerId },
    }) as never,
  );
  await promoteStep(p, eventId, "thank-you.thank-you");
  const [thankYou] = await p.sink.waitForMessages(1);
  const messageId = thankYou?.parsed.messageId ?? "";
  await eventually(async () => {
    const record = (await p.store.stepRecords(eventId, ["thank-you.thank-you"])).get(
      "thank-you.thank-you",
    );
    return record?.state === "sent" ? true : undefined;
  }, "the thank-you to be recorded sent");
  return messageId;
}

describe("email replies", () => {
  it("match the thank-you they answer, lose the quoted original, alert the owner and reach support", async () => {
    pipeline = await startPipeline("email-replies", {
      startWorker: false,
      env: {
        INBOUND_EMAIL_TOKEN: TOKEN,
        INBOUND_EMAIL_MAX_BYTES: "20000",
        SUPPORT_EMAIL: "support@shop.example",
      },
    });
    const p = pipeline;
    const rulesFile = path.join(p.configDir, "rules.yaml");
    const doc = parseDocument(await readFile(rulesFile, "utf8"));
    doc.setIn(
      ["owners"],
      doc.createNode([
        {
          name: "Maria",
          email: "maria@shop.example",
          timezone: "Europe/London",
          frequency: "weekly",
          alerts: true,
        },
      ]),
    );
    await writeFile(rulesFile, doc.toString());
    await p.startWorker();
    await p.publisher.publish(
      purchaseInput({
        id: "evt-mail",
        orderId: "ord-mail-3",
        occurredAt: DateTime.utc().toISO() ?? "",
        customer: { id: "cus-mail" },
      }) as never,
    );
    await promoteStep(p, "evt-mail", "thank-you.thank-you");
    const [thankYou] = await p.sink.waitForMessages(1);
    const messageId = thankYou?.parsed.messageId ?? "";
    expect(messageId).toMatch(/^<followup\./);
    await eventually(async () => {
      const record = (await p.store.stepRecords("evt-mail", ["thank-you.thank-you"])).get(
        "thank-you.thank-you",
      );
      return record?.state === "sent" ? true : undefined;
    }, "the thank-you to be recorded sent");

    // With more than one shard a reply's id names its shard: `<event>/<step>/<n>@<shard>`.
    const shard = await p.shardOf("evt-mail");
    const idOf = (n: number) =>
      replyId({ eventId: "evt-mail", stepId: "thank-you.thank-you", n, shard });
    const reply = replyMime(
      { "Message-ID": "<reply-1@mail.example>", "In-Reply-To": messageId, References: messageId },
      "The pan arrived broken, 2/10\n\nOn Mon, 1 Dec 2026 at 10:00, Shop <hello@shop.example> wrote:\n> Thank you for your order",
    );
    expect((await postEmail(p, reply, null)).status).toBe(401);
    expect((await postEmail(p, reply, "wrong-token-0123456789")).status).toBe(401);
    expect(await postEmail(p, reply)).toEqual({
      status: 202,
      body: { status: "recorded", replyId: idOf(1) },
    });
    // The same message again is a replay.
    expect(await postEmail(p, reply)).toEqual({
      status: 200,
      body: { status: "ignored", reason: "seen before" },
    });

    Object.assign(process.env, p.commandEnv);
    const io = captureIo();
    await runCustomer("cus-mail", { config: p.configDir, json: true }, io);
    const timeline = JSON.parse(io.output()) as CustomerTimeline;
    expect(timeline.purchases[0]?.steps[0]?.replies).toEqual([
      expect.objectContaining({
        id: idOf(1),
        text: "The pan arrived broken, 2/10",
        channel: "email",
        unhappy: true,
      }),
    ]);

    // The owner's alert and the forward to support both arrive.
    const messages = await p.sink.waitForMessages(3, 30_000);
    const to = (address: string) => messages.find((m) => m.envelope.rcptTo.includes(address));
    expect(to("maria@shop.example")?.parsed.text).toContain("The pan arrived broken, 2/10");
    expect(to("maria@shop.example")?.parsed.text).toContain("Replied by email");
    expect(to("support@shop.example")?.parsed.text).toContain("The pan arrived broken, 2/10");

    // Without a Message-ID we know, the sender's latest email follow-up is the match.
    expect(
      await postEmail(
        p,
        replyMime({ "Message-ID": "<reply-2@mail.example>" }, "Thanks, all fine!"),
      ),
    ).toMatchObject({ status: 202, body: { replyId: idOf(2) } });
    // Copies of one reply posted at once (a provider's retry racing the first) are filed as one
    // reply and reach support once.
    // Its subject turns the rest of a line around (U+202E, as RFC 2047 words: mail clients
    // send it so) and marks it right to left (U+200F).
    const subject = "Re: Thank you \u202egro.fdp\u200f";
    const copy = replyMime(
      {
        "Message-ID": "<reply-3@mail.example>",
        Subject: `=?UTF-8?B?${Buffer.from(subject).toString("base64")}?=`,
      },
      "Could you call me back?",
    );
    const answers = await Promise.all([1, 2, 3].map(() => postEmail(p, copy)));
    for (const answer of answers) {
      expect([
        { status: 202, body: { status: "recorded", replyId: idOf(3) } },
        { status: 200, body: { status: "ignored", reason: "seen before" } },
      ]).toContainEqual(answer);
    }
    await p.sink.waitForMessages(5, 30_000);
    const forwardsOf = (words: string) =>
      p.sink.messages.filter(
        (m) => m.envelope.rcptTo.includes("support@shop.example") && m.parsed.text?.includes(words),
      );
    expect(forwardsOf("Could you call me back?")).toHaveLength(1);
    // Support's subject line shows the customer's subject plainly, not turned around.
    expect(forwardsOf("Could you call me back?")[0]?.parsed.subject).toBe(
      "Customer reply: Re: Thank you gro.fdp",
    );
    expect(forwardsOf("Thanks, all fine!")).toHaveLength(1);
    // Automatic answers and strangers are ignored, storing nothing.
    expect(
      await postEmail(
        p,
        replyMime(
          {
            "Message-ID": "<ooo@mail.example>",
            "In-Reply-To": messageId,
            "Auto-Submitted": "auto-replied",
          },
          "I am away until Monday.",
        ),
      ),
    ).toEqual({ status: 200, body: { status: "ignored", reason: "automatic reply" } });
    expect(
      await postEmail(
        p,
        replyMime(
          { "Message-ID": "<who@mail.example>", From: "someone@else.example" },
          "Who are you?",
        ),
      ),
    ).toEqual({ status: 200, body: { status: "ignored", reason: "no matching follow-up" } });
    // Larger than INBOUND_EMAIL_MAX_BYTES.
    const huge = await postEmail(
      p,
      replyMime({ "Message-ID": "<big@mail.example>" }, "x".repeat(30_000)),
    );
    expect(huge.status).toBe(413);
    // Without the token, refused before the body is read: 401, not 413.
    const unauthorised = await postEmail(
      p,
      replyMime({ "Message-ID": "<big2@mail.example>" }, "x".repeat(30_000)),
      null,
    );
    expect(unauthorised.status).toBe(401);
  });
});

describe("a long email reply", () => {
  it("is cut between whole characters: support's subject and text hold no half emoji, and the reply can be resolved", async () => {
    pipeline = await startPipeline("email-reply-cut", {
      env: { INBOUND_EMAIL_TOKEN: TOKEN, SUPPORT_EMAIL: "support@shop.example" },
    });
    const p = pipeline;
    await thankYouSent(p, "evt-cut", "cus-cut");
    const shard = await p.shardOf("evt-cut");
    // "Customer reply: Re: " and 179 letters are 199 UTF-16 units: the subject's cut at 200
    // falls inside the emoji; the text's cut at 10,000 likewise.
    const subject = `Re: ${"a".repeat(179)}🎉 thanks`;
    const body = `${"b".repeat(9_999)}🎉 and more`;
    expect(
      await postEmail(
        p,
        replyMime(
          {
            "Message-ID": "<reply-cut@mail.example>",
            Subject: `=?UTF-8?B?${Buffer.from(subject).toString("base64")}?=`,
          },
          body,
        ),
      ),
    ).toMatchObject({ status: 202, body: { status: "recorded" } });
    const [forward] = await p.sink
      .waitForMessages(2, 30_000)
      .then((messages) =>
        messages.filter((m) => m.envelope.rcptTo.includes("support@shop.example")),
      );
    expect(forward?.parsed.subject).toBe(`Customer reply: Re: ${"a".repeat(179)}`);
    expect(forward?.parsed.text).toContain(`${"b".repeat(9_999)}\n`);
    expect(forward?.parsed.text).not.toContain("\ufffd");

    Object.assign(process.env, p.commandEnv);
    const id = replyId({ eventId: "evt-cut", stepId: "thank-you.thank-you", n: 1, shard });
    const io = captureIo();
    expect(await runResolve(id, { config: p.configDir, by: "ops", json: true }, io)).toBe(0);
    expect(JSON.parse(io.output())).toMatchObject({ id, by: "ops" });
  });
});

describe("an email reply asking for no more emails", () => {
  it("opts the sender's address and the follow-up's customer out of every email, counted once, and is still filed for support", async () => {
    pipeline = await startPipeline("email-reply-opt-out", {
      startWorker: false,
      env: { INBOUND_EMAIL_TOKEN: TOKEN, SUPPORT_EMAIL: "support@shop.example" },
    });
    const p = pipeline;
    await p.startWorker();
    const messageId = await thankYouSent(p, "evt-enough", "cus-enough");
    const shard = await p.shardOf("evt-enough");
    const idOf = (n: number) =>
      replyId({ eventId: "evt-enough", stepId: "thank-you.thank-you", n, shard });
    const answering = { "In-Reply-To": messageId, References: messageId };
    const list = new SuppressionList(p.redis, p.prefix);
    const optedOut = async () => [
      await list.isSuppressed("email", { address: "ana@example.com" }),
      await list.isSuppressed("email", { customerId: "cus-enough" }),
    ];
    const optOuts = async () => {
      const now = Date.now();
      const hours = await p.stores.of(0).ledger.hours(now - 7_200_000, now + 3_600_000);
      return [...sumHours(hours)].filter(([field]) => field.startsWith("optout|"));
    };

    // A negation is a reply, not an opt-out.
    const keep = replyMime(
      { "Message-ID": "<keep-1@mail.example>", ...answering },
      "I don't want to unsubscribe, the offers are great.",
    );
    expect(await postEmail(p, keep)).toEqual({
      status: 202,
      body: { status: "recorded", replyId: idOf(1) },
    });
    expect(await optedOut()).toEqual([false, false]);

    const stop = replyMime(
      { "Message-ID": "<stop-1@mail.example>", ...answering },
      "Please stop emailing me.\n\nOn Mon, 1 Dec 2026 at 10:00, Shop <hello@shop.example> wrote:\n> Thank you for your order",
    );
    // Filed as a reply (support reads the customer's words), and every email stops: the
    // address and the customer, whatever the step (not offers only).
    expect(await postEmail(p, stop)).toEqual({
      status: 202,
      body: { status: "recorded", replyId: idOf(2) },
    });
    expect(await optedOut()).toEqual([true, true]);
    expect(await list.isSuppressed("email", { address: "ana@example.com" }, "marketing")).toBe(
      false,
    );
    // Once in the ledger, however often it is posted or said again.
    expect(await postEmail(p, stop)).toEqual({
      status: 200,
      body: { status: "ignored", reason: "seen before" },
    });
    const again = replyMime({ "Message-ID": "<stop-2@mail.example>", ...answering }, "Unsubscribe");
    expect((await postEmail(p, again)).status).toBe(202);
    expect(await optOuts()).toEqual([["optout|email|-|-", 1]]);
    await eventually(
      async () =>
        p.sink.messages.some(
          (m) =>
            m.envelope.rcptTo.includes("support@shop.example") &&
            (m.parsed.text ?? "").includes("Please stop emailing me"),
        )
          ? true
          : undefined,
      "the reply to reach support",
    );
    // Logged without the address or the words.
    const logged = p.logs.filter((line) => line.msg === "customer unsubscribed");
    expect(logged).toEqual([
      expect.objectContaining({ channels: ["email"], source: "email-reply", scope: "all" }),
      expect.objectContaining({ channels: ["email"], source: "email-reply", scope: "all" }),
    ]);
    expect(JSON.stringify(logged)).not.toMatch(/ana@example\.com|stop emailing/i);
    // One that answers no follow-up we know still stops emails to the address it came from.
    const stranger = replyMime(
      { From: "Bo <bo@example.com>", "Message-ID": "<bo-1@mail.example>" },
      "Remove me from your mailing list",
    );
    expect(await postEmail(p, stranger)).toEqual({
      status: 200,
      body: { status: "unsubscribed" },
    });
    expect(await list.isSuppressed("email", { address: "bo@example.com" })).toBe(true);
  });

  it("from an address whose internationalised domain the mail gives in Unicode opts out the address as events carry it (in ASCII)", async () => {
    pipeline = await startPipeline("email-reply-idn-opt-out", {
      env: { INBOUND_EMAIL_TOKEN: TOKEN },
    });
    const p = pipeline;
    // An SMTPUTF8 mail: its From names the domain in Unicode; a purchase carries it as xn--.
    const stop = replyMime(
      { From: "Ana <ana@bücher.de>", "Message-ID": "<idn-stop-1@mail.example>" },
      "Please stop emailing me.",
    );
    expect((await postEmail(p, stop)).status).toBe(200);
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("email", { address: "ana@xn--bcher-kva.de" })).toBe(true);
  });

  it("sent from another address than the follow-up's (a forward) also opts out the address the follow-up was sent to", async () => {
    pipeline = await startPipeline("email-reply-forwarded-opt-out", {
      startWorker: false,
      env: { INBOUND_EMAIL_TOKEN: TOKEN },
    });
    const p = pipeline;
    await p.startWorker();
    const messageId = await thankYouSent(p, "evt-forwarded", "cus-forwarded");
    // ana@example.com forwards to a private mailbox, whose reply answers the thank-you.
    const stop = replyMime(
      {
        From: "Ana Novak <ana.private@mail.example>",
        "Message-ID": "<fwd-stop-1@mail.example>",
        "In-Reply-To": messageId,
        References: messageId,
      },
      "Please stop emailing me.",
    );
    expect((await postEmail(p, stop)).status).toBe(202);
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("email", { address: "ana.private@mail.example" })).toBe(true);
    expect(await list.isSuppressed("email", { customerId: "cus-forwarded" })).toBe(true);
    // The address the thank-you went to: a guest checkout with it is not emailed either, as
    // after the link in that email.
    expect(await list.isSuppressed("email", { address: "ana@example.com" })).toBe(true);
  });

  it("reads a subject the customer wrote (an empty mail titled 'Unsubscribe'), not the shop's own subject quoted in 'Re:'", async () => {
    pipeline = await startPipeline("email-subject-opt-out", {
      env: { INBOUND_EMAIL_TOKEN: TOKEN },
    });
    const p = pipeline;
    const list = new SuppressionList(p.redis, p.prefix);
    // The shop's subject, answered: its words are the shop's, not a request ("No more emails until spring").
    const answer = replyMime(
      {
        From: "Cy <cy@example.com>",
        "Message-ID": "<cy-1@mail.example>",
        Subject: "Re: No more emails until spring: our winter break",
      },
      "",
    );
    expect((await postEmail(p, answer)).body.status).toBe("ignored");
    expect(await list.isSuppressed("email", { address: "cy@example.com" })).toBe(false);
    // The customer's own subject, with nothing in the body, as many write it.
    const titled = replyMime(
      {
        From: "Dee <dee@example.com>",
        "Message-ID": "<dee-1@mail.example>",
        Subject: "Unsubscribe",
      },
      "",
    );
    expect(await postEmail(p, titled)).toEqual({ status: 200, body: { status: "unsubscribed" } });
    expect(await list.isSuppressed("email", { address: "dee@example.com" })).toBe(true);
    const german = replyMime(
      {
        From: "Eli <eli@example.com>",
        "Message-ID": "<eli-1@mail.example>",
        Subject: "=?utf-8?Q?Keine_E-Mails_mehr?=",
      },
      "\n\nGesendet von meinem iPhone",
    );
    expect((await postEmail(p, german)).body.status).toBe("unsubscribed");
    expect(await list.isSuppressed("email", { address: "eli@example.com" })).toBe(true);
  });
});

/** Ordinary customer replies (complaints, questions) that ask for nothing to stop. */
const ORDINARY_REPLIES: readonly string[] = [
  // A thank-you whose client quoted our offer's footer under a French header.
  "Super, merci !\n\nDe : Example Shop <hello@shop.example>\nEnvoyé : samedi 5 décembre 2026\n\nRather not get offers like this? Unsubscribe: https://shop.example/u/abc",
  // "I have not received any more mail, where is my invoice?"
  "Ich habe keine Mail mehr bekommen, wo ist meine Rechnung?",
  "No more emails came after the order confirmation, where is my invoice?",
  "Stop! The TV arrived broken.",
  "Please stop sending me the wrong size, this is the second time.",
  "Remove my address from the invoice please.",
];

describe("an ordinary email reply", () => {
  it("is filed, and leaves the customer's emails on, though its words hold 'stop', 'no more emails' or a quoted 'Unsubscribe'", async () => {
    pipeline = await startPipeline("email-reply-not-opt-out", {
      startWorker: false,
      env: { INBOUND_EMAIL_TOKEN: TOKEN },
    });
    const p = pipeline;
    await p.startWorker();
    const messageId = await thankYouSent(p, "evt-fp", "cus-fp");
    const list = new SuppressionList(p.redis, p.prefix);
    for (const [n, body] of ORDINARY_REPLIES.entries()) {
      const mime = replyMime(
        { "Message-ID": `<fp-${n}@mail.example>`, "In-Reply-To": messageId, References: messageId },
        body,
      );
      expect((await postEmail(p, mime)).body.status, body).toBe("recorded");
      expect(
        [
          await list.isSuppressed("email", { address: "ana@example.com" }),
          await list.isSuppressed("email", { customerId: "cus-fp" }),
        ],
        body,
      ).toEqual([false, false]);
    }
  });
});

describe("an email's receipt (kept a week against replays)", () => {
  it("names no part of its Message-ID, which a mail client may build from the sender's address: none is left after an erasure, nor of a mail that matched nothing", async () => {
    pipeline = await startPipeline("email-receipt-digest", { env: { INBOUND_EMAIL_TOKEN: TOKEN } });
    const p = pipeline;
    const messageId = await thankYouSent(p, "evt-receipt", "cus-receipt");
    // Theirs, answering the thank-you, and a stranger's that matches no follow-up.
    const theirs = replyMime(
      {
        From: "Ana Novak <ana.novak@example.com>",
        "Message-ID": "<ana.novak.4711@example.com>",
        "In-Reply-To": messageId,
        References: messageId,
      },
      "It works, thanks",
    );
    const strangers = replyMime(
      {
        From: "Bo Stranger <bo@example.net>",
        "Message-ID": "<bo.stranger.17@example.net>",
        Subject: "Hello",
      },
      "Is the shop open on Sundays?",
    );
    expect((await postEmail(p, theirs)).body.status).toBe("recorded");
    expect((await postEmail(p, strangers)).body).toEqual({
      status: "ignored",
      reason: "no matching follow-up",
    });
    // Each is still recognised when it comes again.
    expect((await postEmail(p, theirs)).body).toEqual({ status: "ignored", reason: "seen before" });
    expect((await postEmail(p, strangers)).body).toEqual({
      status: "ignored",
      reason: "seen before",
    });
    // A mail that matches no follow-up stores nothing of its sender.
    expect(await keysHolding(p.redis, p.prefix, ["bo.stranger"])).toEqual([]);
    Object.assign(process.env, p.commandEnv);
    expect(await runErase("cus-receipt", { config: p.configDir, json: true }, captureIo())).toBe(0);
    expect(await keysHolding(p.redis, p.prefix, ["ana.novak", "bo.stranger"])).toEqual([]);
  });

  it("still knows a mail the previous version took in, by the receipt it wrote under the Message-ID, for that receipt's week", async () => {
    pipeline = await startPipeline("email-receipt-upgrade", {
      env: { INBOUND_EMAIL_TOKEN: TOKEN },
    });
    const p = pipeline;
    const messageId = await thankYouSent(p, "evt-receipt-old", "cus-receipt-old");
    const mail = replyMime(
      {
        "Message-ID": "<taken-in-before@example.com>",
        "In-Reply-To": messageId,
        References: messageId,
      },
      "It works, thanks",
    );
    // As the previous version left a mail it took in (filed, forwarded, alerted): its receipt
    // named the Message-ID in clear. Delivered again after the upgrade (a provider's retry), it
    // is the same mail: filed, forwarded to support and alerted once, not twice.
    await p.redis.set(
      new StoreKeys(p.prefix).webhookReceipt("in-email:<taken-in-before@example.com>"),
      "1",
      "EX",
      600,
    );
    expect((await postEmail(p, mail)).body).toEqual({ status: "ignored", reason: "seen before" });
    // Another mail still is taken in.
    const other = replyMime(
      { "Message-ID": "<new-after@example.com>", "In-Reply-To": messageId, References: messageId },
      "Works well",
    );
    expect((await postEmail(p, other)).body.status).toBe("recorded");
  });
});

describe("an email the parser refuses", () => {
  it("is answered 413 saying why, not 500: the sender's service does not retry it for days", async () => {
    pipeline = await startPipeline("email-unreadable", { env: { INBOUND_EMAIL_TOKEN: TOKEN } });
    const p = pipeline;
    // 1,001 nested MIME parts: more than mailparser reads.
    const depth = 1001;
    let mime = replyMime(
      { "MIME-Version": "1.0", "Content-Type": "multipart/mixed; boundary=b0" },
      "",
    );
    mime = mime.replace(/\r\n\r\n\r\n$/, "\r\n\r\n");
    for (let i = 0; i < depth; i++)
      mime += `--b${i}\r\nContent-Type: multipart/mixed; boundary=b${i + 1}\r\n\r\n`;
    mime += `--b${depth}\r\nContent-Type: text/plain\r\n\r\nIt broke.\r\n`;
    for (let i = depth; i >= 0; i--) mime += `--b${i}--\r\n`;
    expect(await postEmail(p, mime)).toEqual({
      status: 413,
      body: { error: "the email cannot be read: Max allowed child nodes exceeded" },
    });
    expect(p.logs.filter((line) => line.msg === "request failed")).toEqual([]);
  });
});
