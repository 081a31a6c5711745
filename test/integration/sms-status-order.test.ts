import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { runErase } from "../../src/cli/erase-command.js";
import { runFailed } from "../../src/cli/failed-command.js";
import { runOrder } from "../../src/cli/order-command.js";
import { runResend } from "../../src/cli/resend-command.js";
import { spendMonthOf } from "../../src/domain/spend.js";
import type { FailedFollowUp } from "../../src/operations/operator-tools.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import { followUpJobId } from "../../src/queue/names.js";
import type { ReportModel } from "../../src/reports/report-model.js";
import { StoreKeys, shardScope } from "../../src/store/keys.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import type { WorkerHandle } from "../../src/worker.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  recentLedgerCounts,
  startPipeline,
  stepRecordOf,
  waitForState,
} from "../support/pipeline-harness.js";
import { todaysReport } from "../support/todays-report.js";
import { postTwilio } from "../support/webhooks.js";

/**
 * Twilio posts each status of a message on its own, in no set order, and posts one again when our
 * answer did not reach it. A message is delivered or it is not: however its final reports arrive
 * (one contradicting another, repeated, interleaved), the step's record and the owners' ledger
 * say the same, and the message is counted once. A status may come before Twilio's answer to the
 * send reaches the worker: it is kept, and applied when the worker has written the sid's reference.
 */

let pipeline: PipelineHarness | undefined;
const extraWorkers: WorkerHandle[] = [];
afterEach(async () => {
  await Promise.all(extraWorkers.splice(0).map((worker) => worker.close()));
  await pipeline?.close();
  pipeline = undefined;
});

const EVENT_ID = "evt-status-order";
const STEP_ID = "big-ticket.check-in";
const THANK_YOU_ID = "big-ticket.thank-you";

const ago = (hours: number) =>
  DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

/** How long the fake Twilio holds its answer to the send, for reports to come before it. */
const ANSWER_DELAY_MS = 1_500;

/**
 * Sends the check-in SMS; its sid once its reference (what status callbacks find) is written.
 * With `beforeTheAnswer`, Twilio's answer to the send is held back while it runs, so that what it
 * posts comes before the worker knows the message's sid. `state`: the step's once the send is
 * recorded (`failed` when a `canceled` came before the answer). With `thankYouFirst`, the
 * purchase's thank-you email (due at once) is sent before the check-in is, so the text is the
 * customer's latest follow-up.
 */
async function sentSms(
  p: PipelineHarness,
  beforeTheAnswer?: (sid: string) => Promise<void>,
  state: "sent" | "failed" = "sent",
  thankYouFirst = false,
): Promise<string> {
  if (beforeTheAnswer) p.twilio.setResponseDelay(ANSWER_DELAY_MS);
  await p.publisher.publish(
    purchaseInput({
      id: EVENT_ID,
      orderId: "ord-status-order",
      occurredAt: ago(2),
      items: [item("televisions", "700.00")],
    }) as never,
  );
  await waitForState(p, EVENT_ID, STEP_ID, "scheduled");
  if (thankYouFirst) await waitForState(p, EVENT_ID, THANK_YOU_ID, "sent");
  await promoteStep(p, EVENT_ID, STEP_ID);
  const [sms] = await p.twilio.waitForMessages(1);
  const sid = sms?.sid ?? "";
  if (beforeTheAnswer) {
    await beforeTheAnswer(sid);
    // Still held back: what was posted came before the worker could know the sid.
    expect((await stepRecordOf(p, EVENT_ID, STEP_ID))?.state).toBe("sending");
    p.twilio.setResponseDelay(0);
  }
  await waitForState(p, EVENT_ID, STEP_ID, state);
  const references = new SmsReferences(p.redis, p.prefix);
  await eventually(async () => references.stepOfSms(sid), "the SMS's reference to be written");
  return sid;
}

/** The outcomes counted of the SMS (delivered or undelivered), without their reasons. */
const outcomesCounted = async (p: PipelineHarness) =>
  (await recentLedgerCounts(p, "delivered|sms|")).filter(([field]) => !field.startsWith("reason|"));

const report = (sid: string, MessageStatus: string, ErrorCode?: string) => ({
  MessageSid: sid,
  MessageStatus,
  ...(ErrorCode !== undefined && { ErrorCode }),
});

it.each([
  {
    name: "delivered, then undelivered",
    reports: [["delivered"], ["undelivered", "30003"]],
    final: { status: "delivered" },
    counted: "delivered",
  },
  {
    name: "failed, then delivered (and sent, late)",
    reports: [["failed", "30007"], ["delivered"], ["sent"]],
    final: { status: "failed", errorCode: 30007 },
    counted: "undelivered",
    // Nothing went out (Twilio could not send it): the step failed, and can be sent again.
    state: "failed",
  },
  {
    name: "delivered, failed, delivered again (Twilio repeating a report)",
    reports: [["delivered"], ["failed", "30007"], ["delivered"]],
    final: { status: "delivered" },
    counted: "delivered",
  },
])(
  "an SMS reported $name is counted once, as its record says",
  async ({ reports, final, counted, state = "sent" }) => {
    pipeline = await startPipeline("sms-status-order");
    const p = pipeline;
    const sid = await sentSms(p);
    for (const [status, code] of reports) {
      const answer = await postTwilio(
        p,
        "/webhooks/twilio/status",
        report(sid, status ?? "", code),
      );
      expect(answer.status).toBe(204);
    }
    const record = await stepRecordOf(p, EVENT_ID, STEP_ID);
    expect(record).toMatchObject({ state });
    expect(record?.delivery).toEqual(final);
    const outcomes = await outcomesCounted(p);
    expect(outcomes).toEqual([[`${counted}|sms|check-in|big-ticket`, 1]]);
    // One message went out, and it was counted as sent once.
    expect(p.twilio.messages).toHaveLength(1);
    expect(await recentLedgerCounts(p, "sent|sms|")).toEqual([["sent|sms|check-in|big-ticket", 1]]);
  },
);

it("two contradicting final reports handled at the same moment count the message once", async () => {
  pipeline = await startPipeline("sms-status-race");
  const p = pipeline;
  const sid = await sentSms(p);
  const answers = await Promise.all([
    postTwilio(p, "/webhooks/twilio/status", report(sid, "delivered")),
    postTwilio(p, "/webhooks/twilio/status", report(sid, "undelivered", "30003")),
  ]);
  expect(answers.map((answer) => answer.status)).toEqual([204, 204]);
  const outcomes = await outcomesCounted(p);
  expect(outcomes).toHaveLength(1);
  const [[field]] = outcomes as [[string, number]];
  expect(outcomes[0]?.[1]).toBe(1);
  // The record says what was counted.
  const status = (await stepRecordOf(p, EVENT_ID, STEP_ID))?.delivery?.status;
  expect(field.startsWith(status === "delivered" ? "delivered|" : "undelivered|")).toBe(true);
});

it("statuses only move forward: a queued or sending that arrives after sent leaves sent", async () => {
  pipeline = await startPipeline("sms-status-forward");
  const p = pipeline;
  const sid = await sentSms(p);
  for (const status of ["sending", "sent", "queued", "sending", "accepted"]) {
    const answer = await postTwilio(p, "/webhooks/twilio/status", report(sid, status));
    expect(answer.status).toBe(204);
  }
  expect((await stepRecordOf(p, EVENT_ID, STEP_ID))?.delivery).toEqual({ status: "sent" });
  expect(await recentLedgerCounts(p, "delivered|sms|")).toEqual([]);
});

it("earlier statuses handled at the same moment as delivered never take its place", async () => {
  pipeline = await startPipeline("sms-status-forward-race");
  const p = pipeline;
  const sid = await sentSms(p);
  // Twilio's earlier reports, late and repeated, around the final one: each handler reads the
  // record before it writes, so one that read it before `delivered` was written still writes.
  const early = ["queued", "sending", "sent"];
  const answers = await Promise.all([
    ...Array.from({ length: 12 }, (_, n) =>
      postTwilio(p, "/webhooks/twilio/status", report(sid, early[n % 3] ?? "sent")),
    ),
    postTwilio(p, "/webhooks/twilio/status", report(sid, "delivered")),
    ...Array.from({ length: 12 }, (_, n) =>
      postTwilio(p, "/webhooks/twilio/status", report(sid, early[n % 3] ?? "sent")),
    ),
  ]);
  expect(answers.every((answer) => answer.status === 204)).toBe(true);
  expect((await stepRecordOf(p, EVENT_ID, STEP_ID))?.delivery).toEqual({ status: "delivered" });
  const outcomes = await outcomesCounted(p);
  expect(outcomes).toEqual([["delivered|sms|check-in|big-ticket", 1]]);
});

describe("statuses Twilio posts before its answer to the send reaches the worker", () => {
  /** Posts `reports` for the SMS while Twilio's answer to its send is held back. */
  const reportedEarly =
    (p: PipelineHarness, reports: readonly (readonly [string, string?])[]) =>
    async (sid: string) => {
      for (const [status, code] of reports) {
        const answer = await postTwilio(p, "/webhooks/twilio/status", report(sid, status, code));
        expect(answer.status).toBe(204);
      }
    };
  /** The step's record once it carries a delivery status and its send's bookkeeping is done. */
  const settledDelivery = (p: PipelineHarness) =>
    eventually(async () => {
      const record = await stepRecordOf(p, EVENT_ID, STEP_ID);
      return record?.delivery && !record.bookkeepingPending ? record : undefined;
    }, "the early statuses to be applied");

  it("a delivered reported before the SMS's reference was written counts it delivered, once", async () => {
    pipeline = await startPipeline("sms-early-delivered");
    const p = pipeline;
    const sid = await sentSms(p, reportedEarly(p, [["queued"], ["sent"], ["delivered"]]));
    expect((await settledDelivery(p))?.delivery).toEqual({ status: "delivered" });
    expect(await outcomesCounted(p)).toEqual([["delivered|sms|check-in|big-ticket", 1]]);
    // Applied, then dropped.
    expect(await p.redis.exists(new StoreKeys(p.prefix).earlySmsStatuses(sid))).toBe(0);
    // Twilio repeating the report once the reference is there changes nothing.
    await postTwilio(p, "/webhooks/twilio/status", report(sid, "delivered"));
    expect(await outcomesCounted(p)).toEqual([["delivered|sms|check-in|big-ticket", 1]]);
  });

  it("a delivered reported before the SMS's reference was written is dated no earlier than the send: the timeline never has it delivered before it was sent", async () => {
    pipeline = await startPipeline("sms-early-dated");
    const p = pipeline;
    let reported = 0;
    await sentSms(p, async (sid) => {
      await reportedEarly(p, [["sent"], ["delivered"]])(sid);
      // Twilio's answer to the send is still held back: the worker records the send after this.
      reported = Date.now();
    });
    const record = await settledDelivery(p);
    expect(record?.delivery).toEqual({ status: "delivered" });
    expect(record?.changedAt).toBeGreaterThanOrEqual(reported);
    // As `followups order` shows it: the step sent, its delivery report dated from then on.
    const step = await stepInOrder(p);
    expect(step).toMatchObject({ state: "sent", delivery: { status: "delivered" } });
    expect(Date.parse(step?.changedAt ?? "")).toBeGreaterThanOrEqual(reported);
    expect(await outcomesCounted(p)).toEqual([["delivered|sms|check-in|big-ticket", 1]]);
  });

  it("an undelivered reported before the SMS's reference was written counts it undelivered, with its code", async () => {
    pipeline = await startPipeline("sms-early-undelivered");
    const p = pipeline;
    await sentSms(p, reportedEarly(p, [["sent"], ["undelivered", "30003"], ["delivered"]]));
    expect((await settledDelivery(p))?.delivery).toEqual({
      status: "undelivered",
      errorCode: 30003,
    });
    expect(await outcomesCounted(p)).toEqual([["undelivered|sms|check-in|big-ticket", 1]]);
  });

  it("a canceled reported before the SMS's reference was written fails the step, takes back the number's mark, and is counted once as undelivered", async () => {
    pipeline = await startPipeline("sms-early-canceled");
    const p = pipeline;
    // Failed as the worker records the send: it does not stay `sent`.
    await sentSms(p, reportedEarly(p, [["sent"], ["canceled"], ["delivered"]]), "failed");
    const record = await settledDelivery(p);
    expect(record).toMatchObject({ state: "failed", delivery: { status: "canceled" } });
    expect(await outcomesCounted(p)).toEqual([["undelivered|sms|check-in|big-ticket", 1]]);
    await resend(p);
    const [, second] = await p.twilio.waitForMessages(2);
    expect(second?.body).toContain("Reply STOP to opt out");
  });
});

/** The step as `followups order --json` shows it to an operator. */
async function stepInOrder(p: PipelineHarness) {
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  expect(await runOrder("ord-status-order", { config: p.configDir, json: true }, io)).toBe(0);
  const order = JSON.parse(io.output()) as CustomerTimeline;
  return order.purchases.flatMap((purchase) => purchase.steps).find((s) => s.stepId === STEP_ID);
}

/** The order as `followups order` prints it to an operator (text). */
async function orderText(p: PipelineHarness) {
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  expect(await runOrder("ord-status-order", { config: p.configDir }, io)).toBe(0);
  return io.output();
}

it("a status Twilio may add later, the first to come, is shown as one this version does not know, never as an outcome, until a known one replaces it", async () => {
  pipeline = await startPipeline("sms-status-future");
  const p = pipeline;
  const sid = await sentSms(p);
  const answer = await postTwilio(p, "/webhooks/twilio/status", report(sid, "delivered_soon"));
  expect(answer.status).toBe(204);
  expect((await stepInOrder(p))?.delivery).toEqual({
    status: "delivered_soon",
    errorCode: null,
    unknown: true,
  });
  expect(await orderText(p)).toContain(
    "delivered_soon (a status this version does not know: not an outcome)",
  );
  const { totals } = await reportedFailures(p);
  expect(totals).toMatchObject({ delivered: 0, undelivered: 0 });
  await postTwilio(p, "/webhooks/twilio/status", report(sid, "sent"));
  expect((await stepInOrder(p))?.delivery).toEqual({ status: "sent", errorCode: null });
  expect(await orderText(p)).not.toContain("does not know");
});

/** Today's delivered and undelivered counts, and why SMS went undelivered, as owners read them. */
async function reportedFailures(p: PipelineHarness) {
  const model = await todaysReport(p);
  return { totals: model.totals, reasons: model.topFailureReasons };
}

describe("statuses beyond delivered, undelivered and failed", () => {
  const post = async (p: PipelineHarness, sid: string, status: string, code?: string) => {
    const answer = await postTwilio(p, "/webhooks/twilio/status", report(sid, status, code));
    expect(answer.status).toBe(204);
  };

  it.each([
    { name: "read alone (WhatsApp, RCS)", reports: ["read"] },
    { name: "delivered, then read", reports: ["delivered", "read"] },
    { name: "read, then delivered", reports: ["read", "delivered"] },
    { name: "read, delivered, read again", reports: ["read", "delivered", "read", "sent"] },
  ])("$name: the SMS is delivered, counted once, shown as read", async ({ reports }) => {
    pipeline = await startPipeline("sms-status-read");
    const p = pipeline;
    const sid = await sentSms(p);
    for (const status of reports) await post(p, sid, status);
    expect(await outcomesCounted(p)).toEqual([["delivered|sms|check-in|big-ticket", 1]]);
    expect((await stepInOrder(p))?.delivery).toEqual({ status: "read", errorCode: null });
    const { totals, reasons } = await reportedFailures(p);
    expect(totals).toMatchObject({ delivered: 1, undelivered: 0 });
    expect(reasons).toEqual([]);
  });

  it("read and delivered handled at the same moment count the SMS delivered once", async () => {
    pipeline = await startPipeline("sms-status-read-race");
    const p = pipeline;
    const sid = await sentSms(p);
    await Promise.all([post(p, sid, "delivered"), post(p, sid, "read"), post(p, sid, "delivered")]);
    expect(await outcomesCounted(p)).toEqual([["delivered|sms|check-in|big-ticket", 1]]);
    expect((await stepRecordOf(p, EVENT_ID, STEP_ID))?.delivery).toEqual({ status: "read" });
  });

  it.each([
    {
      status: "canceled",
      why: "a scheduled message cancelled at Twilio: never sent",
      before: "scheduled",
      words: "the text was cancelled at the SMS provider before it went out",
    },
    {
      status: "partially_delivered",
      why: "only some parts of a long text reached the phone",
      before: "sent",
      words: "only part of the text reached the phone (a long text goes in parts)",
    },
  ])("$status ($why) counts the SMS not delivered, in words", async ({ status, before, words }) => {
    pipeline = await startPipeline(`sms-status-${status.slice(0, 8)}`);
    const p = pipeline;
    const sid = await sentSms(p);
    await post(p, sid, before);
    await post(p, sid, status);
    // Nothing Twilio says of the message after that changes what it was.
    await post(p, sid, "delivered");
    await post(p, sid, "sent");
    expect(await outcomesCounted(p)).toEqual([["undelivered|sms|check-in|big-ticket", 1]]);
    expect((await stepInOrder(p))?.delivery).toEqual({ status, errorCode: null });
    const { totals, reasons } = await reportedFailures(p);
    expect(totals).toMatchObject({ delivered: 0, undelivered: 1 });
    expect(reasons).toEqual([{ code: `undelivered ${status}`, words, count: 1 }]);
  });

  it("inbound statuses (receiving, received) and statuses Twilio may add later are answered, never shown over a final one, never counted", async () => {
    pipeline = await startPipeline("sms-status-unknown");
    const p = pipeline;
    const sid = await sentSms(p);
    // Statuses of messages coming in, not of this one going out: not the step's.
    await post(p, sid, "receiving");
    await post(p, sid, "received");
    expect((await stepRecordOf(p, EVENT_ID, STEP_ID))?.delivery).toBeUndefined();
    // Names an object has in JavaScript, and a status of the future.
    const odd = ["constructor", "toString", "__proto__", "hasOwnProperty", "delivered_soon"];
    await post(p, sid, "sent");
    // The ledger's SMS counts (every outcome, reason and label), before and after: none is added.
    const beforeOdd = await recentLedgerCounts(p, "sms");
    for (const status of odd) await post(p, sid, status);
    expect((await stepRecordOf(p, EVENT_ID, STEP_ID))?.delivery).toEqual({ status: "sent" });
    expect(await recentLedgerCounts(p, "sms")).toEqual(beforeOdd);
    await post(p, sid, "delivered");
    const delivered = await recentLedgerCounts(p, "sms");
    for (const status of [...odd, "received"]) await post(p, sid, status);
    expect((await stepInOrder(p))?.delivery).toEqual({ status: "delivered", errorCode: null });
    expect(await recentLedgerCounts(p, "sms")).toEqual(delivered);
    expect(await outcomesCounted(p)).toEqual([["delivered|sms|check-in|big-ticket", 1]]);
    // The worker is still answering.
    await post(p, sid, "delivered");
    expect(await outcomesCounted(p)).toEqual([["delivered|sms|check-in|big-ticket", 1]]);
  });
});

/**
 * A text Twilio reports `canceled` (a scheduled message cancelled at the provider) never went out:
 * its step is not shown as sent, owners read it as not delivered, and operators can send it again,
 * once.
 */
const REF = `${EVENT_ID}/${STEP_ID}`;
const CANCELLED_WORDS = "the text was cancelled at the SMS provider before it went out";

/** Waits until the step is sent with `sid` and its bookkeeping is done; the sid. */
async function referenced(p: PipelineHarness, sid: string): Promise<string> {
  const references = new SmsReferences(p.redis, p.prefix);
  await eventually(async () => {
    const record = await stepRecordOf(p, EVENT_ID, STEP_ID);
    // Undefined until then: `eventually` waits on undefined only (false would end the wait).
    return record?.providerId === sid && !record.bookkeepingPending
      ? references.stepOfSms(sid)
      : undefined;
  }, "the SMS's send to be recorded");
  return sid;
}

/** Posts a status callback (to `worker`, or the pipeline's), answered 204. */
async function post(
  p: PipelineHarness,
  sid: string,
  status: string,
  code?: string,
  worker?: WorkerHandle,
) {
  const to = worker ? { ...p, worker } : p;
  const answer = await postTwilio(to, "/webhooks/twilio/status", report(sid, status, code));
  expect(answer.status).toBe(204);
}

/** `followups resend` of the step. */
async function resend(p: PipelineHarness) {
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  expect(await runResend({ config: p.configDir, step: REF, by: "carol" }, io)).toBe(0);
}

describe("an SMS Twilio reports canceled", () => {
  it("fails its step with the reason: not shown as sent, and the owners read it not delivered", async () => {
    pipeline = await startPipeline("sms-canceled");
    const p = pipeline;
    const sid = await sentSms(p);
    await post(p, sid, "scheduled");
    await post(p, sid, "canceled");
    // Nothing Twilio says of the message afterwards makes it delivered.
    await post(p, sid, "delivered");
    await post(p, sid, "sent");

    const step = await stepInOrder(p);
    expect(step).toMatchObject({
      state: "failed",
      reason: { code: "undelivered canceled", text: CANCELLED_WORDS },
      delivery: { status: "canceled", errorCode: null },
    });
    const report = await todaysReport(p);
    expect(report.totals).toMatchObject({ delivered: 0, undelivered: 1 });
    expect(report.topFailureReasons).toEqual([
      { code: "undelivered canceled", words: CANCELLED_WORDS, count: 1 },
    ]);
    expect(await outcomesCounted(p)).toEqual([["undelivered|sms|check-in|big-ticket", 1]]);
  });

  it("can be resent, once, and the resend's own reports count", async () => {
    pipeline = await startPipeline("sms-canceled-resend");
    const p = pipeline;
    const sid = await sentSms(p);
    await post(p, sid, "canceled");
    expect(await stepInOrder(p)).toMatchObject({ state: "failed" });
    await resend(p);
    const [first, second] = await p.twilio.waitForMessages(2);
    const secondSid = await referenced(p, second?.sid ?? "");
    // The customer got nothing of the first: the text that reaches them is their first to the
    // number, and says how to opt out.
    expect(first?.body).toContain("Reply STOP to opt out");
    expect(second?.body).toContain("Reply STOP to opt out");
    await post(p, secondSid, "delivered");
    expect(await stepInOrder(p)).toMatchObject({
      state: "sent",
      resends: 1,
      delivery: { status: "delivered", errorCode: null },
    });
    // A late report of the cancelled message changes nothing of the one sent now.
    await post(p, sid, "canceled");
    expect(await stepInOrder(p)).toMatchObject({
      state: "sent",
      reason: null,
      delivery: { status: "delivered", errorCode: null },
    });
    const report = await todaysReport(p);
    expect(report.totals).toMatchObject({ delivered: 1, undelivered: 1 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(p.twilio.messages).toHaveLength(2);
  });

  it("and undelivered with a code for the same message, handled at the same moment by two workers: the step and the owners' report name the same outcome", async () => {
    pipeline = await startPipeline("sms-canceled-race");
    const p = pipeline;
    // Another worker process's equal: its own Redis connections and HTTP server.
    const kept = p.worker;
    const other = await p.startWorker();
    p.worker = kept;
    extraWorkers.push(other);
    let sid = await sentSms(p);
    const seen = new Map<string, number>();
    for (let round = 1; round <= 10; round++) {
      const reported = sid;
      await Promise.all([
        post(p, reported, "canceled"),
        post(p, reported, "undelivered", "30003", other),
      ]);
      const step = await stepInOrder(p);
      expect(["canceled", "undelivered"]).toContain(step?.delivery?.status);
      // Each message is counted once, under the reason its step shows.
      const shown =
        step?.delivery?.status === "canceled" ? "undelivered canceled" : "undelivered 30003";
      seen.set(shown, (seen.get(shown) ?? 0) + 1);
      const reasons = (await todaysReport(p)).topFailureReasons;
      expect(new Map(reasons.map((r) => [r.code, r.count]))).toEqual(seen);
      await resend(p);
      const messages = await p.twilio.waitForMessages(round + 1);
      sid = await referenced(p, messages[round]?.sid ?? "");
    }
  });
});

/**
 * A text Twilio reports `failed` could not be sent at all (Twilio: queue overflow, account
 * suspended, invalid number; it charges nothing for it): as a cancelled one, it never reached the
 * phone, so its step fails with Twilio's error code in the reason and can be sent again.
 */
describe("an SMS Twilio reports failed", () => {
  const QUEUE_WORDS =
    "the SMS provider's queue for the sending number was full: the text never went out";
  const FAILED_WORDS = "the SMS provider could not send the text: it never went out";

  it.each([
    {
      name: "with its error code",
      code: "30001",
      reason: "undelivered 30001",
      text: `${FAILED_WORDS} (Twilio error 30001)`,
      words: QUEUE_WORDS,
    },
    {
      name: "without an error code",
      code: undefined,
      reason: "undelivered failed",
      text: FAILED_WORDS,
      words: FAILED_WORDS,
    },
  ])(
    "$name fails its step with the reason, counted once as undelivered",
    async ({ code, reason, text, words }) => {
      pipeline = await startPipeline("sms-failed-status");
      const p = pipeline;
      const sid = await sentSms(p);
      await post(p, sid, "failed", code);
      // Twilio repeating it, and what it says of the message afterwards, change nothing.
      await post(p, sid, "failed", code);
      await post(p, sid, "delivered");
      await post(p, sid, "sent");
      expect(await stepInOrder(p)).toMatchObject({
        state: "failed",
        reason: { code: reason, text },
        delivery: { status: "failed", errorCode: code === undefined ? null : Number(code) },
      });
      expect(await outcomesCounted(p)).toEqual([["undelivered|sms|check-in|big-ticket", 1]]);
      const { totals, reasons } = await reportedFailures(p);
      expect(totals).toMatchObject({ delivered: 0, undelivered: 1 });
      expect(reasons).toEqual([{ code: reason, words, count: 1 }]);
    },
  );

  it("can be resent, once, as the number's first text, and a late report of it changes nothing of the new one", async () => {
    pipeline = await startPipeline("sms-failed-resend");
    const p = pipeline;
    const sid = await sentSms(p);
    await post(p, sid, "failed", "30001");
    await resend(p);
    const [first, second] = await p.twilio.waitForMessages(2);
    const secondSid = await referenced(p, second?.sid ?? "");
    expect(first?.body).toContain("Reply STOP to opt out");
    expect(second?.body).toContain("Reply STOP to opt out");
    await post(p, sid, "failed", "30001");
    expect(await stepInOrder(p)).toMatchObject({ state: "sent", resends: 1, reason: null });
    await post(p, secondSid, "delivered");
    expect((await todaysReport(p)).totals).toMatchObject({ delivered: 1, undelivered: 1 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(p.twilio.messages).toHaveLength(2);
  });
});

/** `followups failed --json` (with `--retry`: its requeued refs too). */
async function failedListing(p: PipelineHarness, retry = false) {
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  expect(await runFailed({ config: p.configDir, json: true, retry, by: "carol" }, io)).toBe(0);
  return JSON.parse(io.output()) as { failed: FailedFollowUp[]; refs?: string[] };
}

it("followups failed lists texts a final SMS status failed (canceled, failed), and --retry sends them again", async () => {
  pipeline = await startPipeline("sms-failed-listing");
  const p = pipeline;
  const sid = await sentSms(p);
  expect((await failedListing(p)).failed).toEqual([]);
  await post(p, sid, "canceled");
  const listed = await failedListing(p);
  expect(listed.failed).toEqual([
    {
      ref: REF,
      channel: "sms",
      kind: "check-in",
      ruleId: "big-ticket",
      failedAt: expect.any(String),
      attempts: expect.any(Number),
      reason: { code: "undelivered canceled", text: CANCELLED_WORDS, words: CANCELLED_WORDS },
      delivery: { status: "canceled", errorCode: null },
    },
  ]);
  const retried = await failedListing(p, true);
  expect(retried.refs).toEqual([REF]);
  const [, second] = await p.twilio.waitForMessages(2);
  const secondSid = await referenced(p, second?.sid ?? "");
  expect((await failedListing(p)).failed).toEqual([]);
  await post(p, secondSid, "failed", "30002");
  expect((await failedListing(p)).failed).toMatchObject([
    {
      ref: REF,
      reason: { code: "undelivered 30002" },
      delivery: { status: "failed", errorCode: 30002 },
    },
  ]);
  // A late report of the first message lists nothing twice.
  await post(p, sid, "canceled");
  expect((await failedListing(p)).failed).toHaveLength(1);
});

it.each(["canceled", "failed"])(
  "a text Twilio reports %s gives back its frequency-cap slot, once: a repeated report never frees the resend's",
  async (status) => {
    pipeline = await startPipeline(`sms-cap-${status}`, { startWorker: false });
    const p = pipeline;
    const rulesFile = path.join(p.configDir, "rules.yaml");
    const doc = parseDocument(await readFile(rulesFile, "utf8"));
    doc.setIn(["frequencyCaps", "sms"], doc.createNode([{ max: 3, per: "P7D" }]));
    await writeFile(rulesFile, doc.toString());
    await p.startWorker();
    const keys = new StoreKeys(shardScope(p.prefix, p.shardOfCustomer("cus-1"), p.shards));
    // The slots held: one per send (a resend's job, `…-r1`, takes its own).
    const slots = () => p.redis.zrange(keys.capWindow("sms", "cus-1"), 0, -1);
    const base = followUpJobId(EVENT_ID, STEP_ID);
    const code = status === "failed" ? "30001" : undefined;
    const sid = await sentSms(p);
    expect(await slots()).toEqual([base]);
    await post(p, sid, status, code);
    expect(await slots()).toEqual([]);
    await resend(p);
    const [, second] = await p.twilio.waitForMessages(2);
    const secondSid = await referenced(p, second?.sid ?? "");
    expect(await slots()).toEqual([`${base}-r1`]);
    // The first message's report again (Twilio repeating it, the webhook spool replaying it).
    await post(p, sid, status, code);
    expect(await slots()).toEqual([`${base}-r1`]);
    // The resend's own: its slot goes back, once.
    await post(p, secondSid, status, code);
    await post(p, secondSid, status, code);
    expect(await slots()).toEqual([]);
  },
);

/** The month's SMS spend (micros). */
const smsSpent = async (p: PipelineHarness) =>
  Number(
    (await p.redis.get(
      new StoreKeys(p.prefix).spendMonth("sms", spendMonthOf(Date.now(), "Europe/London")),
    )) ?? 0,
  );

/**
 * Sends the check-in SMS (the shipped rules price a text to a GB number, the fixture's, at 0.0400
 * a segment); its sid and what its charge brought the month's SMS spend to.
 */
async function chargedSms(p: PipelineHarness): Promise<{ sid: string; charged: number }> {
  const sid = await sentSms(p);
  const charged = await smsSpent(p);
  expect(charged).toBeGreaterThan(0);
  return { sid, charged };
}

it.each([
  { status: "canceled", code: undefined },
  { status: "failed", code: "30001" },
])(
  "a text Twilio reports $status costs nothing: its charge goes back from the month's SMS spend, once, and a resend's only with its own report",
  async ({ status, code }) => {
    pipeline = await startPipeline(`sms-spend-${status}`);
    const p = pipeline;
    const spent = () => smsSpent(p);
    const { sid, charged } = await chargedSms(p);
    await post(p, sid, status, code);
    expect(await spent()).toBe(0);
    await resend(p);
    const [, second] = await p.twilio.waitForMessages(2);
    const secondSid = await referenced(p, second?.sid ?? "");
    expect(await spent()).toBe(charged);
    // The first message's report again (Twilio repeating it): the resend's charge stays.
    await post(p, sid, status, code);
    expect(await spent()).toBe(charged);
    // The resend's own: its charge goes back, once.
    await post(p, secondSid, status, code);
    await post(p, secondSid, status, code);
    expect(await spent()).toBe(0);
  },
);

it("a failed text's charge goes back on Twilio's retry of the report, when the first handling stopped after failing the step", async () => {
  pipeline = await startPipeline("sms-spend-retried");
  const p = pipeline;
  const { sid, charged } = await chargedSms(p);
  // The first handling's script failed the step (and gave back the cap slot), and the handler
  // stopped there (a Redis error): Twilio gets no 204, and posts the report again.
  const noted = await p.store.noteSmsStatus(
    EVENT_ID,
    STEP_ID,
    { messageSid: sid, status: "failed", errorCode: 30001 },
    Date.now(),
    "failed 30001" as never,
    {
      channel: "sms",
      customerId: (await p.store.storedPurchase(EVENT_ID)).customerId ?? "",
      followUpId: followUpJobId(EVENT_ID, STEP_ID),
    },
  );
  expect(noted.record?.state).toBe("failed");
  expect(await smsSpent(p)).toBe(charged);
  await post(p, sid, "failed", "30001");
  expect(await smsSpent(p)).toBe(0);
  // And again: nothing more goes back.
  await post(p, sid, "failed", "30001");
  expect(await smsSpent(p)).toBe(0);
});

it("a text reported undelivered stays charged: Twilio sent it, and the carrier did not deliver it", async () => {
  pipeline = await startPipeline("sms-spend-undelivered");
  const p = pipeline;
  const { sid, charged } = await chargedSms(p);
  await post(p, sid, "undelivered", "30003");
  expect((await stepRecordOf(p, EVENT_ID, STEP_ID))?.delivery?.status).toBe("undelivered");
  expect(await smsSpent(p)).toBe(charged);
});

/** A pipeline whose check-in text Twilio reported failed (30001), listed by `followups failed`. */
async function failedTextListed(name: string): Promise<PipelineHarness> {
  pipeline = await startPipeline(name);
  const p = pipeline;
  const sid = await sentSms(p);
  await post(p, sid, "failed", "30001");
  expect((await failedListing(p)).failed).toMatchObject([{ ref: REF }]);
  return p;
}

/** The customer's shard's list of texts a final SMS status failed. */
const failuresKey = (p: PipelineHarness) =>
  new StoreKeys(shardScope(p.prefix, p.shardOfCustomer("cus-1"), p.shards)).smsStatusFailures();

it("an erasure takes the customer's texts off the list of those a final SMS status failed: no event id of theirs stays there, and followups failed lists nothing of them", async () => {
  const p = await failedTextListed("sms-failed-erased");
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  expect(await runErase("cus-1", { config: p.configDir, json: true }, io)).toBe(0);
  expect(await p.redis.zrange(failuresKey(p), 0, -1)).toEqual([]);
  expect((await failedListing(p)).failed).toEqual([]);
});

it("followups failed lists a text a final SMS status failed for 30 days, also while later failures keep the list itself", async () => {
  const p = await failedTextListed("sms-failed-30-days");
  // As the list stands 31 days on when another text failed 10 days ago (each failure keeps the
  // list 30 days more, and trims what was older than 30 days then).
  const day = 86_400_000;
  await p.redis.zadd(failuresKey(p), "XX", Date.now() - 31 * day, REF);
  await p.redis.pexpire(failuresKey(p), 20 * day);
  expect((await failedListing(p)).failed).toEqual([]);
});

/**
 * A purchase by the check-in's customer now (another order); its broughtBack in today's report
 * once it is processed.
 */
async function boughtAgain(p: PipelineHarness, id: string): Promise<ReportModel["broughtBack"]> {
  await p.publisher.publish(
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: DateTime.utc().toISO() ?? "",
      items: [item("kitchenware", "42.00")],
    }) as never,
  );
  expect(await eventProcessed(p, id)).toBe("completed");
  return (await todaysReport(p)).broughtBack;
}

describe("the customer's next purchase after a text Twilio reports failed or canceled", () => {
  it.each([
    { status: "failed", code: "30001" },
    { status: "canceled", code: undefined },
  ])("is not credited to the $status text, which never reached them", async ({ status, code }) => {
    pipeline = await startPipeline(`sms-attribution-${status}`);
    const p = pipeline;
    const sid = await referenced(p, await sentSms(p, undefined, "sent", true));
    await post(p, sid, status, code);
    expect(await stepInOrder(p)).toMatchObject({ state: "failed" });
    const broughtBack = await boughtAgain(p, `evt-after-${status}`);
    // Credited to the follow-up before it, which reached them: the thank-you email.
    expect(broughtBack.byChannelKind).toEqual([
      {
        channel: "email",
        kind: "thank-you",
        orders: 1,
        revenue: [{ currency: "GBP", amount: "42.00" }],
      },
    ]);
  });

  it("is credited to the text once its resend is delivered", async () => {
    pipeline = await startPipeline("sms-attribution-resent");
    const p = pipeline;
    const sid = await referenced(p, await sentSms(p, undefined, "sent", true));
    await post(p, sid, "failed", "30001");
    await resend(p);
    const [, second] = await p.twilio.waitForMessages(2);
    await post(p, await referenced(p, second?.sid ?? ""), "delivered");
    const broughtBack = await boughtAgain(p, "evt-after-resend");
    expect(broughtBack.byChannelKind).toEqual([
      {
        channel: "sms",
        kind: "check-in",
        orders: 1,
        revenue: [{ currency: "GBP", amount: "42.00" }],
      },
    ]);
  });
});

it.each([
  { status: "failed", code: "30001" },
  { status: "canceled", code: undefined },
])(
  "a text Twilio reports $status after its customer was erased gives its charge back, once",
  async ({ status, code }) => {
    pipeline = await startPipeline(`sms-spend-erased-${status}`);
    const p = pipeline;
    const { sid } = await chargedSms(p);
    Object.assign(process.env, p.commandEnv);
    expect(await runErase("cus-1", { config: p.configDir, json: true }, captureIo())).toBe(0);
    await post(p, sid, status, code);
    expect(await smsSpent(p)).toBe(0);
    await post(p, sid, status, code);
    expect(await smsSpent(p)).toBe(0);
    // Nothing of the message is kept early for a reference that will never be written.
    expect(await p.redis.exists(new StoreKeys(p.prefix).earlySmsStatuses(sid))).toBe(0);
  },
);

it("a text reported delivered after its customer was erased stays charged, and leaves nothing of its sid when Twilio posts it again", async () => {
  pipeline = await startPipeline("sms-spend-erased-delivered");
  const p = pipeline;
  const { sid, charged } = await chargedSms(p);
  Object.assign(process.env, p.commandEnv);
  expect(await runErase("cus-1", { config: p.configDir, json: true }, captureIo())).toBe(0);
  await post(p, sid, "delivered");
  // Twilio posting it again (our answer lost), or `read` after it: not kept as a status come
  // early for a reference that will never be written.
  await post(p, sid, "delivered");
  await post(p, sid, "read");
  await post(p, sid, "failed", "30001");
  expect(await smsSpent(p)).toBe(charged);
  expect(await p.redis.exists(new StoreKeys(p.prefix).earlySmsStatuses(sid))).toBe(0);
});

it("a text of a step both retried and resent gives back its own send's charge when Twilio reports it failed, with no frequency-cap slot to tell the sends apart", async () => {
  pipeline = await startPipeline("sms-spend-retried-and-resent");
  const p = pipeline;
  const { sid, charged } = await chargedSms(p);
  // No SMS cap in the shipped rules: no slot names any send.
  const keys = new StoreKeys(shardScope(p.prefix, p.shardOfCustomer("cus-1"), p.shards));
  expect(await p.redis.exists(keys.capWindow("sms", "cus-1"))).toBe(0);
  await post(p, sid, "failed", "30001");
  await failedListing(p, true);
  const [, second] = await p.twilio.waitForMessages(2);
  await post(p, await referenced(p, second?.sid ?? ""), "failed", "30001");
  await resend(p);
  const [, , third] = await p.twilio.waitForMessages(3);
  const thirdSid = await referenced(p, third?.sid ?? "");
  expect(await stepInOrder(p)).toMatchObject({ state: "sent", resends: 1, retries: 1 });
  expect(await smsSpent(p)).toBe(charged);
  await post(p, thirdSid, "failed", "30001");
  expect(await smsSpent(p)).toBe(0);
});
