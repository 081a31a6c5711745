import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { simpleParser } from "mailparser";
import { afterEach, describe, expect, it } from "vitest";
import { runErase } from "../../src/cli/erase-command.js";
import type { ErasureReceipt } from "../../src/operations/erase-customer.js";
import { followUpJobId } from "../../src/queue/names.js";
import { replyId } from "../../src/store/step-replies.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { valuesUnder } from "../support/personal-data-scan.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  sendOwnerReport,
  startPipeline,
} from "../support/pipeline-harness.js";
import { callRoute, withVoiceCheckIn } from "../support/voice-check-in.js";
import { httpAddressOf, postTwilio } from "../support/webhooks.js";

/**
 * An adversarial audit of erasure: one customer goes through as much of the product as a test can
 * drive (purchases by queue and HTTP, a refused event, a refund, email, calls, an SMS fallback, SMS
 * and email replies, a STOP, owners' alerts and report, the admin API), is erased, and then every
 * key under the pipeline's prefix and every file the worker wrote is searched for them.
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const INBOUND = "inbound-token-0123456789";
const ADMIN = "admin-token-0123456789";
const OWNER = {
  name: "Maria",
  email: "maria@shop.example",
  timezone: "Europe/London",
  frequency: "daily",
  alerts: true,
};
const CUSTOMER = "cus-au-zk";
const EMAIL = "Zofia.Kowalczyk@Mail.example";
const PHONE_GIVEN = "+44 7400 900 555";
const PHONE = "+447400900555";
const CALL_STEP = "big-ticket.check-in";
const FALLBACK_STEP = "big-ticket.check-in-fallback";
const iso = (time: DateTime) => time.toUTC().toISO({ suppressMilliseconds: true }) ?? "";
const customer = {
  id: CUSTOMER,
  name: "Zofia Kowalczyk",
  email: EMAIL,
  phone: PHONE_GIVEN,
  timezone: "Europe/London",
  consent: { email: true, sms: true, voice: true },
};

/**
 * Every file under `dir` (recursively) with its text, an email's decoded too (quoted-printable
 * breaks lines); none when `dir` does not exist.
 */
async function filesUnder(dir: string): Promise<{ file: string; text: string }[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  const found: { file: string; text: string }[] = [];
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const raw = await readFile(file);
    const mail = file.endsWith(".eml") ? await simpleParser(raw) : undefined;
    const decoded = mail ? [mail.text ?? "", typeof mail.html === "string" ? mail.html : ""] : [];
    found.push({ file, text: [raw.toString("utf8"), ...decoded].join("\n") });
  }
  return found;
}

function holding(
  found: readonly { where: string; text: string }[],
  needles: readonly string[],
): string[] {
  const hits: string[] = [];
  for (const { where, text } of found) {
    const lower = text.toLowerCase();
    for (const needle of needles)
      if (lower.includes(needle.toLowerCase())) hits.push(`${where} <- ${needle}`);
  }
  return hits;
}

describe("an erased customer who used every part of the product", () => {
  it("leaves no name, address, number or message of theirs in Redis or the worker's files", async () => {
    // No SMTP: every email (the customer's, the owners' alerts and report, the forward to
    // support) is a file in OUTBOX_DIR.
    pipeline = await startPipeline("erase-audit", {
      startWorker: false,
      smtp: false,
      env: {
        INBOUND_EMAIL_TOKEN: INBOUND,
        SUPPORT_EMAIL: "support@shop.example",
        ADMIN_TOKENS: `dpo:${ADMIN}`,
      },
    });
    const p = pipeline;
    await withVoiceCheckIn(p.configDir, [OWNER]);
    await p.startWorker();
    const threeMonthsAgo = DateTime.utc().startOf("second").setZone("Europe/London").minus({
      months: 3,
    });
    // Two TVs bought three months ago by queue: their check-in calls are due now.
    for (const id of ["evt-au-call", "evt-au-ring"])
      await p.publisher.publish(
        purchaseInput({
          id,
          orderId: `ord-${id}`,
          occurredAt: iso(threeMonthsAgo),
          customer,
          items: [item("televisions", "899.00", { name: "OLED TV 55 inch" })],
        }) as never,
      );
    // A pan bought just now over HTTP: its thank-you email.
    const http = (route: string, body: unknown, token = p.envVars.API_TOKEN) =>
      fetch(`${httpAddressOf(p)}${route}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const pan = purchaseInput({
      id: "evt-au-http",
      orderId: "ord-au-http",
      occurredAt: iso(DateTime.utc().startOf("second")),
      customer,
      items: [item("kitchenware", "75.00", { name: "Cast iron pan" })],
    });
    expect((await http("/v1/events", pan)).status).toBe(202);
    // An event of theirs their publisher got wrong, over HTTP (refused at once) and on the queue
    // (kept in the failed set with its content).
    expect(
      (
        await http("/v1/events", {
          ...pan,
          id: "evt-au-bad-http",
          total: { amount: "75.00", currency: "XX" },
        })
      ).status,
    ).toBe(400);
    await p.events.add(
      "purchase.completed",
      {
        ...pan,
        id: "evt-au-bad",
        orderId: "ord-au-bad",
        total: { amount: "75.00", currency: "XX" },
      },
      { jobId: "evt-au-bad" },
    );
    expect(await eventProcessed(p, "evt-au-bad")).toBe("failed");

    await promoteStep(p, "evt-au-http", "thank-you.thank-you");
    const messageId = await eventually(async () => {
      const record = (await p.store.stepRecords("evt-au-http", ["thank-you.thank-you"])).get(
        "thank-you.thank-you",
      );
      return record?.state === "sent" ? record.providerId : undefined;
    }, "the thank-you email");
    // A partial refund of the pan.
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "evt-au-refund",
      occurredAt: iso(DateTime.utc().startOf("second")),
      orderId: "ord-au-http",
      amount: { amount: "20.00", currency: "GBP" },
    } as never);
    expect(await eventProcessed(p, "evt-au-refund")).toBe("completed");

    // The calls: one answered with a 2, one not answered (its SMS fallback goes).
    const calls = await p.twilio.waitForCalls(2, 15_000);
    const sidOf = (eventId: string) =>
      calls.find((call) => call.url.includes(`call=${followUpJobId(eventId, CALL_STEP)}`))?.sid ??
      "";
    const answered = followUpJobId("evt-au-call", CALL_STEP);
    const rung = followUpJobId("evt-au-ring", CALL_STEP);
    for (const eventId of ["evt-au-call", "evt-au-ring"])
      await eventually(async () => {
        const record = (await p.store.stepRecords(eventId, [CALL_STEP])).get(CALL_STEP);
        return record?.state === "sent" ? true : undefined;
      }, `the call of ${eventId} to be sent`);
    const answer = await postTwilio(p, callRoute("answer", answered), {
      CallSid: sidOf("evt-au-call"),
      CallStatus: "in-progress",
      AnsweredBy: "human",
      To: PHONE,
    });
    expect(await answer.text()).toContain("Hello Zofia");
    await postTwilio(p, callRoute("gather", answered), {
      CallSid: sidOf("evt-au-call"),
      Digits: "2",
      To: PHONE,
    });
    await postTwilio(p, callRoute("status", answered), {
      CallSid: sidOf("evt-au-call"),
      CallStatus: "completed",
      AnsweredBy: "human",
      CallDuration: "41",
      To: PHONE,
    });
    await postTwilio(p, callRoute("status", rung), {
      CallSid: sidOf("evt-au-ring"),
      CallStatus: "no-answer",
      To: PHONE,
    });
    await eventually(async () => {
      const job = await p.followUps.getJob(followUpJobId("evt-au-ring", FALLBACK_STEP));
      if ((await job?.getState()) === "delayed") await job?.promote().catch(() => undefined);
      return p.twilio.messages.length > 0 ? true : undefined;
    }, "the SMS fallback to go");
    const [sms] = p.twilio.messages;
    expect(sms?.to).toBe(PHONE);
    await eventually(async () => {
      const record = (await p.store.stepRecords("evt-au-ring", [FALLBACK_STEP])).get(FALLBACK_STEP);
      return record?.state === "sent" ? true : undefined;
    }, "the SMS fallback to be recorded sent");
    await postTwilio(p, "/webhooks/twilio/status", {
      MessageSid: sms?.sid ?? "",
      MessageStatus: "delivered",
      To: PHONE,
    });
    // An SMS reply naming them, then a STOP.
    for (const [body, sid] of [
      ["Zofia here: the stand wobbles, 3/10", "SMau0001"],
      ["STOP", "SMau0002"],
    ] as const) {
      const texted = await postTwilio(p, "/webhooks/twilio/inbound", {
        From: PHONE,
        To: p.envVars.TWILIO_FROM ?? "",
        Body: body,
        MessageSid: sid,
      });
      expect(texted.status).toBe(200);
    }
    // An email reply to the thank-you.
    const mime = [
      `From: Zofia Kowalczyk <${EMAIL}>`,
      "To: hello@shop.example",
      "Subject: Re: Thank you for your order",
      `Date: ${new Date().toUTCString()}`,
      "Message-ID: <zk-reply-1@mail.example>",
      `In-Reply-To: ${messageId}`,
      `References: ${messageId}`,
      "Content-Type: text/plain; charset=utf-8",
      "",
      "The pan arrived dented, 2/10. Ring me on 07400 900555 - Zofia Kowalczyk",
      "",
    ].join("\r\n");
    const mailed = await fetch(`${httpAddressOf(p)}/webhooks/email/inbound`, {
      method: "POST",
      headers: { "content-type": "message/rfc822", authorization: `Bearer ${INBOUND}` },
      body: mime,
    });
    expect(mailed.status).toBe(202);
    // The support desk resolves the email reply with a note, over the admin API, and looks the
    // customer up by address.
    const shard = await p.shardOf("evt-au-http");
    const emailReply = replyId({
      eventId: "evt-au-http",
      stepId: "thank-you.thank-you",
      n: 1,
      shard,
    });
    const resolved = await http(
      `/admin/v1/replies/${emailReply}/resolve`,
      { note: "Rang Zofia Kowalczyk back on 07400 900555, new pan sent" },
      ADMIN,
    );
    expect(resolved.status).toBe(200);
    const lookedUp = await fetch(
      `${httpAddressOf(p)}/admin/v1/customers?email=${encodeURIComponent(EMAIL)}`,
      { headers: { authorization: `Bearer ${ADMIN}` } },
    );
    expect(lookedUp.status).toBe(200);
    // The owner's report of today, and the forward of the email reply to support.
    await sendOwnerReport(p, OWNER, DateTime.now().setZone(OWNER.timezone).startOf("day"));
    await eventually(async () => {
      const mails = (await filesUnder(p.outboxDir)).map(({ text }) => text).join("\n");
      return mails.includes("support@shop.example") && mails.includes("maria@shop.example")
        ? true
        : undefined;
    }, "the email reply to reach support and the owner");
    // Twilio's ids of what was sent to them (which lead to the number and the text at Twilio)
    // and of what they sent (their SMS, their email's Message-ID).
    const sent = [sidOf("evt-au-call"), sidOf("evt-au-ring"), sms?.sid ?? ""];
    const received = ["SMau0001", "SMau0002"];
    const personal = [
      "Zofia",
      "Kowalczyk",
      EMAIL,
      PHONE,
      PHONE_GIVEN,
      "7400900555",
      "7400 900555",
      "stand wobbles",
      "pan arrived dented",
      "Rang Zofia",
    ];
    const dirs = [p.outboxDir, p.envVars.WEBHOOK_SPOOL_DIR ?? ""];
    const everywhere = async () => [
      ...(await valuesUnder(p.redis, p.prefix)).map(({ key, text }) => ({ where: key, text })),
      ...(await Promise.all(dirs.map(filesUnder))).flat().map(({ file, text }) => ({
        where: file,
        text,
      })),
    ];
    // Before: all of it is stored somewhere (the test would prove nothing otherwise).
    const before = await everywhere();
    for (const needle of [...personal, ...sent, ...received])
      expect(holding(before, [needle]), needle).not.toEqual([]);
    // Their email's Message-ID (which a mail client may build from their address) is kept only
    // as a digest, by its receipt and by the reply filed under it.
    expect(holding(before, ["zk-reply-1"])).toEqual([]);

    Object.assign(process.env, p.commandEnv, {
      OUTBOX_DIR: p.outboxDir,
      WEBHOOK_SPOOL_DIR: p.envVars.WEBHOOK_SPOOL_DIR,
    });
    const io = captureIo();
    try {
      expect(await runErase(CUSTOMER, { config: p.configDir, json: true, by: "dpo" }, io)).toBe(0);
    } finally {
      delete process.env.OUTBOX_DIR;
      delete process.env.WEBHOOK_SPOOL_DIR;
    }
    const receipt = JSON.parse(io.output()) as ErasureReceipt;
    // The thank-you, the owner's alert and report, the forward to support.
    expect(receipt).toMatchObject({ purchases: 3, outboxFilesRemoved: 4 });
    const after = await everywhere();
    expect(holding(after, personal)).toEqual([]);
    // What stays, as the README says: a call's binding to its follow-up and the month's voice
    // spend name the call's sid (against another follow-up's retry taking the call, and a
    // replayed end charging it twice); a received SMS's id is kept a week against replays (an
    // email's by a digest only).
    const where = (needles: readonly string[]) =>
      [...new Set(holding(after, needles).map((hit) => hit.split(" <- ")[0] ?? ""))]
        .map((key) => key.replace(/^\{[^}]*\}:fu:/, "").replace(/[0-9a-f]{32}|\d{4}-\d{2}/g, "…"))
        .sort();
    expect(where(sent)).toEqual(["callsid:CA…", "callsid:CA…", "spend:voice:…:charges"]);
    expect(where(received)).toEqual(["seen:in:SMau0001", "seen:in:SMau0002"]);
  });
});
