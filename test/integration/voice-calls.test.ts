import { type Element, isTag } from "domhandler";
import { parseDocument as parseXml } from "htmlparser2";
import twilio from "twilio";
import { afterEach, describe, expect, it } from "vitest";
import { channelsFromEnv } from "../../src/channels/channels-from-env.js";
import { createTwilioVoiceChannel } from "../../src/channels/voice-twilio.js";
import { runErase } from "../../src/cli/erase-command.js";
import { readEnv } from "../../src/config/env.js";
import { followUpJobId } from "../../src/queue/names.js";
import { sumHours } from "../../src/store/delivery-ledger.js";
import { StoreKeys } from "../../src/store/keys.js";
import { replyId } from "../../src/store/step-replies.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  startPipeline,
  TWILIO_FROM,
  TWILIO_SID,
  TWILIO_TOKEN,
} from "../support/pipeline-harness.js";
import { optOutRacingStart } from "../support/replay-at-opt-out.js";
import { startTwilioFake, type TwilioFake } from "../support/twilio-fake.js";
import {
  callRoute,
  publishTv as publishTvTo,
  withVoiceCheckIn,
} from "../support/voice-check-in.js";
import { postTwilio } from "../support/webhooks.js";

let pipeline: PipelineHarness | undefined;
let fake: TwilioFake | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
  await fake?.close();
  fake = undefined;
});

const PHONE = "+447400112233";
const CALL_STEP = "big-ticket.check-in";
const FALLBACK_STEP = "big-ticket.check-in-fallback";
const PUBLIC_URL = "https://followups.test";

/** A TwiML element as the test reads it: name, attributes, text and child elements. */
interface Node {
  name: string;
  attributes: Record<string, string>;
  text: string;
  children: Node[];
}

/** Parses TwiML with a real XML parser; fails on anything but one <Response>. */
function parseTwiml(xml: string): Node {
  const document = parseXml(xml, { xmlMode: true });
  const toNode = (element: Element): Node => ({
    name: element.name,
    attributes: { ...element.attribs },
    text: element.children
      .map((child) => ("data" in child && typeof child.data === "string" ? child.data : ""))
      .join("")
      .trim(),
    children: element.children.filter(isTag).map(toNode),
  });
  const roots = document.children.filter(isTag);
  expect(roots.map((root) => root.name)).toEqual(["Response"]);
  return toNode(roots[0] as Element);
}

/** The verbs of a webhook's TwiML answer, in order (`Gather`, `Say`, `Hangup`). */
async function verbs(answer: Response): Promise<string[]> {
  return parseTwiml(await answer.text()).children.map((child) => child.name);
}

/** A TV bought three months ago to the minute: its check-in call is due now. */
const publishTv = (p: PipelineHarness, id: string, name?: string) =>
  publishTvTo(p, id, PHONE, name);

/**
 * The fallback step once it has ended. A fallback that came due while its call was not over waits
 * an hour; this moves it on at once, as an operator could with the queue tools.
 */
async function fallbackEnded(p: PipelineHarness, eventId: string) {
  return eventually(async () => {
    const found = await stepRecord(p, eventId, FALLBACK_STEP);
    if (found?.state === "scheduled") {
      const job = await p.followUps.getJob(followUpJobId(eventId, FALLBACK_STEP));
      if ((await job?.getState()) === "delayed") await job?.promote().catch(() => undefined);
    }
    return found && found.state !== "scheduled" && found.state !== "sending" ? found : undefined;
  }, `the fallback of ${eventId} to end`);
}

async function stepRecord(p: PipelineHarness, eventId: string, stepId: string) {
  return (await p.store.stepRecords(eventId, [stepId])).get(stepId);
}

/** The call step's record once it is in `state`. */
function stepIn(p: PipelineHarness, eventId: string, state: "sent" | "failed", what: string) {
  return eventually(async () => {
    const record = await stepRecord(p, eventId, CALL_STEP);
    return record?.state === state ? record : undefined;
  }, what);
}

/** A pipeline with the voice check-in whose call for a TV bought as `eventId` has been placed. */
async function callPlaced(name: string, eventId: string) {
  pipeline = await startPipeline(name, { startWorker: false });
  const p = pipeline;
  await withVoiceCheckIn(p.configDir);
  await p.startWorker();
  await publishTv(p, eventId);
  const [call] = await p.twilio.waitForCalls(1, 15_000);
  await eventually(
    async () => ((await stepRecord(p, eventId, CALL_STEP))?.state === "sent" ? true : undefined),
    "the call step to be sent",
  );
  return { p, followUpId: followUpJobId(eventId, CALL_STEP), callSid: call?.sid ?? "" };
}

/**
 * Picks up a call placed for `eventId` as a person would, checks that it says no more than goodbye
 * (no message, no question), ends it, and checks the step says answered without a score.
 */
async function answeredWithGoodbyeOnly(
  placed: { p: PipelineHarness; followUpId: string; callSid: string },
  eventId: string,
) {
  const { p, followUpId, callSid } = placed;
  const answer = await postTwilio(p, callRoute("answer", followUpId), {
    CallSid: callSid,
    CallStatus: "in-progress",
    AnsweredBy: "human",
  });
  const twiml = parseTwiml(await answer.text());
  // No message, no question: they asked for no more calls, and hear that they will get none.
  expect(twiml.children.map((child) => child.name)).toEqual(["Say", "Hangup"]);
  expect(twiml.children[0]?.text).toBe("You will get no more calls from us. Goodbye.");
  await postTwilio(p, callRoute("status", followUpId), {
    CallSid: callSid,
    CallStatus: "completed",
    AnsweredBy: "human",
  });
  expect((await stepRecord(p, eventId, CALL_STEP))?.delivery).toEqual({
    status: "answered-no-score",
  });
}

describe("a voice check-in call", () => {
  it("is placed, asks its question in TwiML, and a keypad 2 reaches the owner within a minute", async () => {
    pipeline = await startPipeline("voice-calls", { startWorker: false });
    const p = pipeline;
    await withVoiceCheckIn(p.configDir, [
      {
        name: "Maria",
        email: "maria@shop.example",
        timezone: "Europe/London",
        frequency: "weekly",
        alerts: true,
      },
    ]);
    await p.startWorker();
    await publishTv(p, "evt-call");
    const followUpId = followUpJobId("evt-call", CALL_STEP);

    const [call] = await p.twilio.waitForCalls(1, 15_000);
    expect(call).toMatchObject({
      to: PHONE,
      from: TWILIO_FROM,
      url: `${PUBLIC_URL}/webhooks/twilio/voice/answer?call=${followUpId}`,
      method: "POST",
      statusCallback: `${PUBLIC_URL}/webhooks/twilio/voice/status?call=${followUpId}`,
      machineDetection: "DetectMessageEnd",
    });
    await eventually(
      async () =>
        (await stepRecord(p, "evt-call", CALL_STEP))?.state === "sent" ? true : undefined,
      "the call step to be sent",
    );
    expect((await stepRecord(p, "evt-call", CALL_STEP))?.providerId).toBe(call?.sid);
    // No SMS went out for the call.
    expect(p.twilio.messages).toEqual([]);

    // Answered by a person: the message and the keypad question, gathered back to us.
    const answer = await postTwilio(p, callRoute("answer", followUpId), {
      CallSid: call?.sid ?? "",
      CallStatus: "in-progress",
      AnsweredBy: "human",
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("content-type")).toMatch(/^text\/xml/);
    const twiml = parseTwiml(await answer.text());
    expect(twiml.children.map((child) => child.name)).toEqual(["Gather"]);
    const gather = twiml.children[0] as Node;
    expect(gather.attributes).toMatchObject({
      input: "dtmf",
      numDigits: "1",
      action: `${PUBLIC_URL}/webhooks/twilio/voice/gather?call=${followUpId}`,
      method: "POST",
      actionOnEmptyResult: "true",
    });
    expect(gather.children.map((say) => [say.name, say.attributes.language])).toEqual([
      ["Say", "en-GB"],
      ["Say", "en-GB"],
    ]);
    expect(gather.children[0]?.text).toContain("Hello Nina, this is Your shop, Corner Shop.");
    expect(gather.children[0]?.text).toContain("you bought OLED TV 55 inch from us");
    expect(gather.children[1]?.text).toBe(
      "Please press a key from 1 to 5: 5 means very happy, 1 means not happy at all. Press 9 to stop these calls.",
    );

    // Keypad 2: recorded as an unhappy reply, and the owner hears of it at once.
    const pressedAt = Date.now();
    const heard = await postTwilio(p, callRoute("gather", followUpId), {
      CallSid: call?.sid ?? "",
      Digits: "2",
    });
    expect(heard.status).toBe(200);
    const goodbye = parseTwiml(await heard.text());
    expect(goodbye.children.map((child) => child.name)).toEqual(["Say", "Hangup"]);
    expect(goodbye.children[0]?.text).toMatch(/^Thank you\. We are sorry to hear that/);

    const [alert] = await p.sink.waitForMessages(1, 60_000);
    expect(Date.now() - pressedAt).toBeLessThan(60_000);
    expect(alert?.envelope.rcptTo).toEqual(["maria@shop.example"]);
    expect(alert?.parsed.subject).toBe(
      "Your shop: an unhappy reply from Nina (order ord-evt-call)",
    );
    expect(alert?.parsed.text).toContain("“Keypad: 2/5”");
    expect(alert?.parsed.text).toContain("1 × OLED TV 55 inch");
    expect(alert?.parsed.text).toContain("score 2 of 5");

    // Twilio posts the same answer again, twice at once (a retry): still one reply.
    await Promise.all(
      [1, 2].map(() =>
        postTwilio(p, callRoute("gather", followUpId), { CallSid: call?.sid ?? "", Digits: "2" }),
      ),
    );
    const shard = await p.shardOf("evt-call");
    const { replies: stepReplies } = p.stores.of(shard);
    const replies = (await stepReplies.ofEvent("evt-call")).get(CALL_STEP);
    expect(replies?.map((r) => [r.id, r.text, r.channel])).toEqual([
      [replyId({ eventId: "evt-call", stepId: CALL_STEP, n: 1, shard }), "Keypad: 2/5", "voice"],
    ]);
    // Counted once among the replies the owners' reports total, as a text reply is.
    const ledgerNow = Date.now();
    const counted = sumHours(
      await p.stores.of(0).ledger.hours(ledgerNow - 7_200_000, ledgerNow + 3_600_000),
    );
    expect([...counted].filter(([field]) => field.startsWith("reply|"))).toEqual([
      ["reply|voice|check-in|big-ticket", 1],
    ]);
    // A status callback about another call (an earlier attempt) changes nothing.
    const stale = await postTwilio(p, callRoute("status", followUpId), {
      CallSid: `CA${"0".repeat(32)}`,
      CallStatus: "no-answer",
    });
    expect(stale.status).toBe(204);
    expect((await stepRecord(p, "evt-call", CALL_STEP))?.delivery).toEqual({ status: "answered" });
    // Nor does an unsigned one, or one whose ?call= was changed after signing.
    const forged = await postTwilio(
      p,
      callRoute("status", followUpId),
      { CallSid: call?.sid ?? "", CallStatus: "no-answer" },
      "forged",
    );
    expect(forged.status).toBe(403);
    const moved = await fetch(`${p.worker?.httpAddress}${callRoute("status", "f0")}`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilio.getExpectedTwilioSignature(
          TWILIO_TOKEN,
          `${PUBLIC_URL}${callRoute("status", followUpId)}`,
          { CallSid: call?.sid ?? "", CallStatus: "no-answer" },
        ),
      },
      body: new URLSearchParams({ CallSid: call?.sid ?? "", CallStatus: "no-answer" }).toString(),
    });
    expect(moved.status).toBe(403);
    const status = await postTwilio(p, callRoute("status", followUpId), {
      CallSid: call?.sid ?? "",
      CallStatus: "completed",
      AnsweredBy: "human",
      CallDuration: "41",
    });
    expect(status.status).toBe(204);
    const record = await stepRecord(p, "evt-call", CALL_STEP);
    expect(record?.delivery).toEqual({ status: "answered" });
    // Twilio repeats the final callback: the call's one billed minute to a UK number is charged once.
    await postTwilio(p, callRoute("status", followUpId), {
      CallSid: call?.sid ?? "",
      CallStatus: "completed",
      AnsweredBy: "human",
      CallDuration: "41",
    });
    const operator = await (await fetch(`${p.worker?.httpAddress}/metrics`)).text();
    expect(operator).toMatch(/^followups_alerts_sent_total 1$/m);
    expect(operator).toMatch(/^followups_spend_this_month\{channel="voice"\} 0\.014$/m);

    // The customer answered: the SMS fallback is skipped when it falls due, not sent.
    const fallback = await fallbackEnded(p, "evt-call");
    expect(fallback.state).toBe("skipped");
    expect(fallback.reason?.code).toBe("call-answered");
    expect(p.twilio.messages).toEqual([]);
  });

  it("sends the SMS fallback when nobody answers, and not before the call has ended", async () => {
    const { p, followUpId, callSid } = await callPlaced("voice-no-answer", "evt-ring");
    // The call is still ringing when the fallback falls due: it waits for the outcome.
    const fallbackId = followUpJobId("evt-ring", FALLBACK_STEP);
    await eventually(async () => {
      // BullMQ scores a delayed job by its due time × 4096.
      const queue = p.followUpQueues[await p.shardOf("evt-ring")];
      const score = queue && (await p.redis.zscore(queue.keys.delayed ?? "", fallbackId));
      return score !== null && Number(score) / 4096 > Date.now() + 30 * 60_000 ? true : undefined;
    }, "the fallback to wait for the call's outcome");
    expect((await stepRecord(p, "evt-ring", FALLBACK_STEP))?.state).toBe("scheduled");
    expect(p.twilio.messages).toEqual([]);

    const status = await postTwilio(p, callRoute("status", followUpId), {
      CallSid: callSid,
      CallStatus: "no-answer",
    });
    expect(status.status).toBe(204);
    expect((await stepRecord(p, "evt-ring", CALL_STEP))?.delivery).toEqual({
      status: "no-answer",
    });
    // Operators (and the test) move a waiting job with the queue tools; here: promote it now.
    await (await p.followUps.getJob(fallbackId))?.promote();
    const [sms] = await p.twilio.waitForMessages(1, 15_000);
    expect(sms?.to).toBe(PHONE);
    expect(sms?.body).toContain("how is your OLED TV 55 inch from Corner Shop?");
    // The call was no text: this first SMS to the number says how to opt out.
    expect(sms?.body).toMatch(/\nReply STOP to opt out$/);
    await eventually(
      async () =>
        (await stepRecord(p, "evt-ring", FALLBACK_STEP))?.state === "sent" ? true : undefined,
      "the fallback to be recorded as sent",
    );
  });

  it("says no more than goodbye to a number that opted out while the call was on its way", async () => {
    const placed = await callPlaced("voice-stopped-meanwhile", "evt-meanwhile");
    // Twilio queues calls at the account's calls per second: the STOP comes before the ringing.
    const stop = { From: PHONE, Body: "STOP", MessageSid: "SMmeanwhile" };
    expect((await postTwilio(placed.p, "/webhooks/twilio/inbound", stop)).status).toBe(200);
    await answeredWithGoodbyeOnly(placed, "evt-meanwhile");
  });

  it("leaves a voicemail at an answering machine, and a 9 stops calls and texts to the number", async () => {
    pipeline = await startPipeline("voice-machine", { startWorker: false });
    const p = pipeline;
    await withVoiceCheckIn(p.configDir, [], "PT2M");
    await p.startWorker();
    await publishTv(p, "evt-machine");
    const machineId = followUpJobId("evt-machine", CALL_STEP);
    const [first] = await p.twilio.waitForCalls(1, 15_000);
    await eventually(
      async () =>
        (await stepRecord(p, "evt-machine", CALL_STEP))?.state === "sent" ? true : undefined,
      "the call step to be sent",
    );
    const voicemail = parseTwiml(
      await (
        await postTwilio(p, callRoute("answer", machineId), {
          CallSid: first?.sid ?? "",
          CallStatus: "in-progress",
          AnsweredBy: "machine_end_beep",
        })
      ).text(),
    );
    expect(voicemail.children.map((child) => child.name)).toEqual(["Say", "Say", "Hangup"]);
    expect(voicemail.children[0]?.text).toContain("Hello Nina");
    expect(voicemail.children[1]?.text).toBe("There is no need to call back. Goodbye.");
    await postTwilio(p, callRoute("status", machineId), {
      CallSid: first?.sid ?? "",
      CallStatus: "completed",
      AnsweredBy: "machine_end_beep",
    });
    expect((await stepRecord(p, "evt-machine", CALL_STEP))?.delivery).toEqual({
      status: "voicemail",
    });

    // A second purchase, a second call: a person answers and presses 9.
    await publishTv(p, "evt-stop", "Nina Berg");
    const stopId = followUpJobId("evt-stop", CALL_STEP);
    const calls = await p.twilio.waitForCalls(2, 15_000);
    const second = calls[1];
    await eventually(
      async () =>
        (await stepRecord(p, "evt-stop", CALL_STEP))?.state === "sent" ? true : undefined,
      "the second call step to be sent",
    );
    await postTwilio(p, callRoute("answer", stopId), {
      CallSid: second?.sid ?? "",
      CallStatus: "in-progress",
      AnsweredBy: "human",
    });
    const stopped = parseTwiml(
      await (
        await postTwilio(p, callRoute("gather", stopId), {
          CallSid: second?.sid ?? "",
          Digits: "9",
        })
      ).text(),
    );
    expect(stopped.children[0]?.text).toBe("You will get no more calls or texts from us. Goodbye.");
    const suppressions = new SuppressionList(p.redis, p.prefix);
    expect(await suppressions.isSuppressed("voice", { address: PHONE })).toBe(true);
    expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(true);
    await postTwilio(p, callRoute("status", stopId), {
      CallSid: second?.sid ?? "",
      CallStatus: "completed",
    });
    // Neither fallback texts the number now: both are skipped as opted out.
    for (const eventId of ["evt-machine", "evt-stop"]) {
      const fallback = await fallbackEnded(p, eventId);
      expect([fallback.state, fallback.reason?.code]).toEqual(["skipped", "opted-out"]);
    }
    expect(p.twilio.messages).toEqual([]);
  });
  it("files a key pressed as the call ended even when its webhook comes after the final status callback, and a late 9 still stops calls and texts", async () => {
    const { p, followUpId, callSid } = await callPlaced("voice-late-answer", "evt-late");
    const answered = async (id: string, sid: string) =>
      postTwilio(p, callRoute("answer", id), {
        CallSid: sid,
        CallStatus: "in-progress",
        AnsweredBy: "human",
      });
    const ended = async (id: string, sid: string) =>
      postTwilio(p, callRoute("status", id), {
        CallSid: sid,
        CallStatus: "completed",
        AnsweredBy: "human",
        CallDuration: "12",
      });
    expect((await answered(followUpId, callSid)).status).toBe(200);
    // The customer presses 2 and hangs up at once: Twilio posts the call's end and the key press
    // in no set order, and here the end comes first.
    expect((await ended(followUpId, callSid)).status).toBe(204);
    expect((await stepRecord(p, "evt-late", CALL_STEP))?.delivery).toEqual({
      status: "answered-no-score",
    });
    const late = await postTwilio(p, callRoute("gather", followUpId), {
      CallSid: callSid,
      Digits: "2",
    });
    expect(late.status).toBe(200);
    const shard = await p.shardOf("evt-late");
    const replies = (await p.stores.of(shard).replies.ofEvent("evt-late")).get(CALL_STEP);
    expect(replies?.map((r) => [r.text, r.channel])).toEqual([["Keypad: 2/5", "voice"]]);
    expect((await stepRecord(p, "evt-late", CALL_STEP))?.delivery).toEqual({ status: "answered" });
    // What the call said (the customer's name) went when the call ended; the rest goes an hour at most.
    const script = new StoreKeys(p.prefix).callScript(followUpId);
    expect(await p.redis.get(script)).not.toContain("Nina");
    expect(await p.redis.pttl(script)).toBeGreaterThan(0);
    expect(await p.redis.pttl(script)).toBeLessThanOrEqual(3_600_000);
    const at = Date.now();
    const counted = sumHours(await p.stores.of(0).ledger.hours(at - 7_200_000, at + 3_600_000));
    expect([...counted].filter(([field]) => field.startsWith("reply|"))).toEqual([
      ["reply|voice|check-in|big-ticket", 1],
    ]);
    // The call counted once as delivered, however late its answer.
    expect([...counted].filter(([field]) => field.startsWith("delivered|voice"))).toEqual([
      [expect.stringMatching(/^delivered\|voice\|check-in\|big-ticket/), 1],
    ]);

    // A second call: the customer presses 9, and that webhook too comes after the call's end.
    await publishTv(p, "evt-late-stop");
    const stopId = followUpJobId("evt-late-stop", CALL_STEP);
    const second = (await p.twilio.waitForCalls(2, 15_000))[1]?.sid ?? "";
    await eventually(
      async () =>
        (await stepRecord(p, "evt-late-stop", CALL_STEP))?.state === "sent" ? true : undefined,
      "the second call step to be sent",
    );
    await answered(stopId, second);
    expect((await ended(stopId, second)).status).toBe(204);
    const suppressions = new SuppressionList(p.redis, p.prefix);
    expect(await suppressions.isSuppressed("voice", { address: PHONE })).toBe(false);
    await postTwilio(p, callRoute("gather", stopId), { CallSid: second, Digits: "9" });
    expect(await suppressions.isSuppressed("voice", { address: PHONE })).toBe(true);
    expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(true);
  });
});

/**
 * A pipeline whose voice check-in for a TV bought as `eventId` is published, Twilio placing its
 * first call but answering 503 (as a Twilio 5xx may mean); with `listFails`, the retry's look in
 * Twilio's Calls list is answered 503 too; with `placedAfterMs`, Twilio places that first call
 * only that long after answering, so the retry's look in the Calls list misses it.
 */
async function callFailingWith503(
  name: string,
  eventId: string,
  env?: Record<string, string>,
  then: { readonly listFails?: boolean; readonly placedAfterMs?: number } = {},
) {
  pipeline = await startPipeline(name, { startWorker: false, ...(env && { env }) });
  const p = pipeline;
  await withVoiceCheckIn(p.configDir);
  p.twilio.failNext(
    {
      status: 503,
      createdAnyway: true,
      ...(then.placedAfterMs !== undefined && { createdAfterMs: then.placedAfterMs }),
    },
    ...(then.listFails ? [{ status: 503 }] : []),
  );
  await p.startWorker();
  await publishTv(p, eventId);
  return p;
}

/** A person picks up the call, presses 4 and hangs up after `seconds`; the pick-up's answer. */
async function answeredWith4(
  p: PipelineHarness,
  followUpId: string,
  callSid: string,
  seconds: string,
) {
  const answer = await postTwilio(p, callRoute("answer", followUpId), {
    CallSid: callSid,
    CallStatus: "in-progress",
    AnsweredBy: "human",
  });
  await postTwilio(p, callRoute("gather", followUpId), { CallSid: callSid, Digits: "4" });
  await postTwilio(p, callRoute("status", followUpId), {
    CallSid: callSid,
    CallStatus: "completed",
    AnsweredBy: "human",
    CallDuration: seconds,
  });
  return answer;
}

describe("a key press and the call's end posted at the same moment", () => {
  it("record the score, whichever is handled first: the step says answered, not answered-no-score", async () => {
    pipeline = await startPipeline("voice-gather-status-race", { startWorker: false });
    const p = pipeline;
    await withVoiceCheckIn(p.configDir);
    await p.startWorker();
    // Six customers, each called once (one call a second, the voice rate).
    const ids = [0, 1, 2, 3, 4, 5].map((n) => `evt-race-${n}`);
    for (const [n, id] of ids.entries()) await publishTvTo(p, id, `+4474001122${40 + n}`);
    const calls = await p.twilio.waitForCalls(ids.length, 30_000);
    for (const id of ids) {
      await eventually(
        async () => ((await stepRecord(p, id, CALL_STEP))?.state === "sent" ? true : undefined),
        `the call step of ${id} to be sent`,
      );
    }
    for (const id of ids) {
      const record = await stepRecord(p, id, CALL_STEP);
      const followUpId = followUpJobId(id, CALL_STEP);
      const callSid = record?.providerId ?? "";
      expect(calls.map((call) => call.sid)).toContain(callSid);
      await postTwilio(p, callRoute("answer", followUpId), {
        CallSid: callSid,
        CallStatus: "in-progress",
        AnsweredBy: "human",
      });
      // The customer presses 4 and hangs up at once: Twilio posts both together.
      const [gather, status] = await Promise.all([
        postTwilio(p, callRoute("gather", followUpId), { CallSid: callSid, Digits: "4" }),
        postTwilio(p, callRoute("status", followUpId), {
          CallSid: callSid,
          CallStatus: "completed",
          AnsweredBy: "human",
          CallDuration: "20",
        }),
      ]);
      expect([gather.status, status.status]).toEqual([200, 204]);
    }
    const outcomes = await Promise.all(
      ids.map(async (id) => (await stepRecord(p, id, CALL_STEP))?.delivery?.status),
    );
    expect(outcomes).toEqual(ids.map(() => "answered"));
    // Each call's record says it is over, with its score: what it said went when it ended, the
    // rest goes within the hour.
    const keys = new StoreKeys(p.prefix);
    const records = await Promise.all(
      ids.map(async (id) => {
        const key = keys.callScript(followUpJobId(id, CALL_STEP));
        const stored = JSON.parse((await p.redis.get(key)) ?? "{}");
        const ttl = await p.redis.pttl(key);
        return [stored.outcome, stored.ended, stored.script?.text, ttl > 0 && ttl <= 3_600_000];
      }),
    );
    expect(records).toEqual(ids.map(() => ["answered", true, "", true]));
    // Each call's end counted once, as delivered; each score once.
    const at = Date.now();
    const counted = sumHours(await p.stores.of(0).ledger.hours(at - 7_200_000, at + 3_600_000));
    const total = (prefix: string) =>
      [...counted].filter(([field]) => field.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);
    expect([total("delivered|voice"), total("reply|voice")]).toEqual([ids.length, ids.length]);
  });
});

describe("a call placed again", () => {
  it("is not placed a second time when Twilio placed the first after answering a 5xx and that call's webhooks came before the retry", async () => {
    // Retries 2.5 to 5 s apart: time for the first call to be answered before the retry.
    const p = await callFailingWith503("voice-created-anyway", "evt-twice", {
      DELIVERY_RETRY_BASE_MS: "5000",
      DELIVERY_RETRY_MAX_MS: "5000",
    });
    const followUpId = followUpJobId("evt-twice", CALL_STEP);
    const [first] = await p.twilio.waitForCalls(1, 15_000);
    const callSid = first?.sid ?? "";
    const retrying = await eventually(async () => {
      const record = await stepRecord(p, "evt-twice", CALL_STEP);
      return record?.state === "scheduled" && record.attempts === 1 ? record : undefined;
    }, "the call step to wait for its retry");
    expect(retrying.reason?.code).toBe("transient 20503");

    // The customer picks up the call Twilio placed all the same, presses 4 and hangs up.
    const answer = await answeredWith4(p, followUpId, callSid, "30");
    expect(await answer.text()).toContain("<Gather");

    // The retry finds the call it meant to place: that call is the step's, none is placed again.
    const sent = await stepIn(p, "evt-twice", "sent", "the call step to be sent");
    expect(sent.providerId).toBe(callSid);
    expect(sent.delivery).toEqual({ status: "answered" });
    expect(p.twilio.calls.map((call) => call.sid)).toEqual([callSid]);
    const fallback = await fallbackEnded(p, "evt-twice");
    expect([fallback.state, fallback.reason?.code]).toEqual(["skipped", "call-answered"]);
    expect(p.twilio.calls).toHaveLength(1);
    expect(p.twilio.messages).toEqual([]);
  });
});

describe("a call placed again before any webhook of the first came", () => {
  it("is not placed: the retry finds the call Twilio placed after answering a 5xx in its Calls list, and takes it for the step's", async () => {
    const p = await callFailingWith503("voice-found-in-list", "evt-listed");
    const followUpId = followUpJobId("evt-listed", CALL_STEP);
    const [first] = await p.twilio.waitForCalls(1, 15_000);
    const sent = await stepIn(p, "evt-listed", "sent", "the call step to be sent");
    expect(sent.providerId).toBe(first?.sid);
    expect(sent.attempts).toBe(2);
    expect(p.twilio.calls).toHaveLength(1);

    // The customer picks up that call and presses 4: the step's call, answered.
    await answeredWith4(p, followUpId, first?.sid ?? "", "30");
    expect((await stepRecord(p, "evt-listed", CALL_STEP))?.delivery).toEqual({
      status: "answered",
    });
    const fallback = await fallbackEnded(p, "evt-listed");
    expect([fallback.state, fallback.reason?.code]).toEqual(["skipped", "call-answered"]);
    expect(p.twilio.calls).toHaveLength(1);
    expect(p.twilio.messages).toEqual([]);
  });
});

/**
 * Two calls for one step: Twilio places the first after answering its request 503, but only after
 * the retry's look in its Calls list, which so finds none and places the step's call (bound to the
 * step). Returns the step's call (the retry's, placed first) and the other (placed 3 s later).
 */
async function twoCallsForOneStep(name: string, eventId: string) {
  const p = await callFailingWith503(name, eventId, undefined, { placedAfterMs: 3_000 });
  const [steps, other] = await p.twilio.waitForCalls(2, 15_000);
  const sent = await stepIn(p, eventId, "sent", "the call step to be sent");
  expect(sent.attempts).toBe(2);
  expect(sent.providerId).toBe(steps?.sid);
  // Both ask the step's words.
  expect(other?.url).toBe(steps?.url);
  expect(steps?.url).toContain(followUpJobId(eventId, CALL_STEP));
  return { p, followUpId: followUpJobId(eventId, CALL_STEP), steps, other };
}

describe("two calls placed for one step", () => {
  it("keep the outcome of the one answered, and each one's minutes are charged", async () => {
    const { p, followUpId, steps, other } = await twoCallsForOneStep("voice-two-calls", "evt-both");

    // The customer picks up the other call, is asked the question and presses 4; the step's rings
    // out meanwhile.
    const answer = await answeredWith4(p, followUpId, other?.sid ?? "", "75");
    expect(await answer.text()).toContain("<Gather");
    await postTwilio(p, callRoute("status", followUpId), {
      CallSid: steps?.sid ?? "",
      CallStatus: "no-answer",
    });

    // The customer answered: no SMS fallback, and the step says so.
    expect((await stepRecord(p, "evt-both", CALL_STEP))?.delivery).toEqual({ status: "answered" });
    const fallback = await fallbackEnded(p, "evt-both");
    expect([fallback.state, fallback.reason?.code]).toEqual(["skipped", "call-answered"]);
    expect(p.twilio.messages).toEqual([]);
    // Twilio bills the other call's two started minutes to the UK (0.014 each).
    const operator = await (await fetch(`${p.worker?.httpAddress}/metrics`)).text();
    expect(operator).toMatch(/^followups_spend_this_month\{channel="voice"\} 0\.028$/m);
  });
});

describe("two calls placed for one step, the other reaching voicemail", () => {
  it("keep the outcome of the one answered: the machine that picked up the other sends no fallback", async () => {
    const { p, followUpId, steps, other } = await twoCallsForOneStep(
      "voice-two-calls-machine",
      "evt-both-m",
    );

    // The customer picks up the other call and presses 4; the step's, on a busy line, reaches
    // their voicemail, which takes its message and hangs up.
    await answeredWith4(p, followUpId, other?.sid ?? "", "75");
    await postTwilio(p, callRoute("answer", followUpId), {
      CallSid: steps?.sid ?? "",
      CallStatus: "in-progress",
      AnsweredBy: "machine_end_beep",
    });
    await postTwilio(p, callRoute("status", followUpId), {
      CallSid: steps?.sid ?? "",
      CallStatus: "completed",
      AnsweredBy: "machine_end_beep",
      CallDuration: "20",
    });

    expect((await stepRecord(p, "evt-both-m", CALL_STEP))?.delivery).toEqual({
      status: "answered",
    });
    const fallback = await fallbackEnded(p, "evt-both-m");
    expect([fallback.state, fallback.reason?.code]).toEqual(["skipped", "call-answered"]);
    expect(p.twilio.messages).toEqual([]);
  });
});

describe("a retry whose earlier attempt's call may have been placed", () => {
  it("does not take another follow-up's call to the same number, found in Twilio's Calls list, for its own: it places its own", async () => {
    pipeline = await startPipeline("voice-not-anothers", { startWorker: false });
    const p = pipeline;
    await withVoiceCheckIn(p.configDir);
    await p.startWorker();
    await publishTv(p, "evt-mine");
    const [mine] = await p.twilio.waitForCalls(1, 15_000);
    await eventually(
      async () =>
        (await stepRecord(p, "evt-mine", CALL_STEP))?.state === "sent" ? true : undefined,
      "the first call step to be sent",
    );
    // Another customer's purchase, to the same number: its first attempt is answered 503 (no call
    // created), so its retry looks in Twilio's Calls list, where the call above is the latest.
    p.twilio.failNext({ status: 503 });
    await publishTv(p, "evt-theirs");
    const sent = await stepIn(p, "evt-theirs", "sent", "the other call step to be sent");
    expect(sent.attempts).toBe(2);
    expect(sent.providerId).not.toBe(mine?.sid);
    const calls = await p.twilio.waitForCalls(2, 15_000);
    expect(sent.providerId).toBe(calls[1]?.sid);
    expect(calls[1]?.url).toBe(
      `${PUBLIC_URL}/webhooks/twilio/voice/answer?call=${followUpJobId("evt-theirs", CALL_STEP)}`,
    );
    // The first follow-up keeps its call.
    expect((await stepRecord(p, "evt-mine", CALL_STEP))?.providerId).toBe(mine?.sid);
  });

  it("places no call while Twilio's Calls list cannot be read: tried again later, it takes the call it then finds", async () => {
    // Twilio places the first call although it answers 503; the retry's look in the Calls list
    // is answered 503 too.
    const p = await callFailingWith503("voice-list-down", "evt-list-down", undefined, {
      listFails: true,
    });
    const [first] = await p.twilio.waitForCalls(1, 15_000);
    const sent = await stepIn(p, "evt-list-down", "sent", "the call step to be sent");
    // The first attempt (503), the second (the list unreadable: a transient failure), the third
    // (the call found).
    expect(sent.providerId).toBe(first?.sid);
    expect(sent.attempts).toBe(3);
    expect(p.twilio.calls).toHaveLength(1);
    expect(p.logs.map((line) => line.msg)).toContain(
      "could not ask Twilio whether an earlier attempt's call was placed: no call placed now, the attempt counts as a transient failure",
    );
  });

  it("fails once its attempts are used up with Twilio's Calls list unreadable, without placing a call", async () => {
    pipeline = await startPipeline("voice-list-gone", {
      startWorker: false,
      env: { DELIVERY_ATTEMPTS: "2" },
    });
    const p = pipeline;
    await withVoiceCheckIn(p.configDir);
    // The first attempt is answered 503 (no call created); the second cannot read the Calls list.
    p.twilio.failNext({ status: 503 }, { status: 503 });
    await p.startWorker();
    await publishTv(p, "evt-list-gone");
    const failed = await stepIn(p, "evt-list-gone", "failed", "the call step to fail");
    expect(failed.attempts).toBe(2);
    expect(failed.reason?.code).toBe("transient 20503");
    expect(failed.reason?.text).toMatch(
      /^gave up after 2 attempts: could not read Twilio's Calls list/,
    );
    expect(p.twilio.calls).toEqual([]);
  });
});

describe("a second call asking for a step's words", () => {
  it("asks its question too, files its answer, and keeps its outcome apart from the step's call's", async () => {
    const { p, followUpId, callSid } = await callPlaced("voice-second-call", "evt-second");
    // A call Twilio placed for the step although its request failed, found late.
    const other = `CA${"0".repeat(32)}`;
    const answer = await postTwilio(p, callRoute("answer", followUpId), {
      CallSid: other,
      CallStatus: "in-progress",
      AnsweredBy: "human",
      To: PHONE,
    });
    expect(await verbs(answer)).toContain("Gather");
    const gather = await postTwilio(p, callRoute("gather", followUpId), {
      CallSid: other,
      Digits: "2",
      To: PHONE,
    });
    expect(await verbs(gather)).not.toContain("Gather");
    expect((await stepRecord(p, "evt-second", CALL_STEP))?.delivery).toEqual({
      status: "answered",
    });
    const { replies } = p.stores.of(await p.shardOf("evt-second"));
    expect((await replies.ofEvent("evt-second")).get(CALL_STEP)).toBeDefined();

    // The step's own call, picked up by a machine later: its outcome is its own, and the step
    // keeps the one that went furthest.
    const machine = await postTwilio(p, callRoute("answer", followUpId), {
      CallSid: callSid,
      CallStatus: "in-progress",
      AnsweredBy: "machine_end_beep",
      To: PHONE,
    });
    expect(await verbs(machine)).not.toContain("Gather");
    const stored = JSON.parse(
      (await p.redis.get(new StoreKeys(p.prefix).callScript(followUpId))) ?? "{}",
    );
    expect([stored.callSid, stored.outcome, stored.outcomes]).toEqual([
      callSid,
      "answered",
      { [other]: "answered", [callSid]: "voicemail" },
    ]);
    expect((await stepRecord(p, "evt-second", CALL_STEP))?.delivery).toEqual({
      status: "answered",
    });
  });
});

describe("a call whose customer is erased while it rings", () => {
  it("is hung up on when picked up, and its minutes are still charged when it ends", async () => {
    const { p, followUpId, callSid } = await callPlaced("voice-erased-midcall", "evt-erased");
    Object.assign(process.env, p.commandEnv);
    const io = captureIo();
    expect(await runErase("cus-evt-erased", { config: p.configDir, json: true }, io)).toBe(0);
    const answer = await postTwilio(p, callRoute("answer", followUpId), {
      CallSid: callSid,
      CallStatus: "in-progress",
      AnsweredBy: "human",
      To: PHONE,
    });
    expect(await verbs(answer)).toEqual(["Hangup"]);
    // Twilio bills the call all the same: one started minute to the UK.
    const ended = await postTwilio(p, callRoute("status", followUpId), {
      CallSid: callSid,
      CallStatus: "completed",
      AnsweredBy: "human",
      CallDuration: "3",
      To: PHONE,
    });
    expect(ended.status).toBe(204);
    const operator = await (await fetch(`${p.worker?.httpAddress}/metrics`)).text();
    expect(operator).toMatch(/^followups_spend_this_month\{channel="voice"\} 0\.014$/m);
    expect(JSON.stringify(p.logs)).not.toContain(PHONE);
  });
});

/** A call picked up by a person. */
function pickedUp(p: PipelineHarness, followUpId: string, callSid: string) {
  return postTwilio(p, callRoute("answer", followUpId), {
    CallSid: callSid,
    CallStatus: "in-progress",
    AnsweredBy: "human",
  });
}

describe("a texted START after a 9 pressed on a call", () => {
  it("a START sent before a 9 and replayed from the spool while the 9 is being written does not undo it", async () => {
    const { p, followUpId, callSid } = await callPlaced("voice-nine-start-race", "evt-nine-race");
    await pickedUp(p, followUpId, callSid);
    const { replayed, list } = await optOutRacingStart(p, PHONE, () =>
      postTwilio(p, callRoute("gather", followUpId), { CallSid: callSid, Digits: "9" }),
    );
    expect(replayed).toBe(true);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);
  });

  it("brings the texts back, not the calls declined on the keypad, also after a later STOP and START; a START after a text STOP alone brings calls back", async () => {
    const { p, followUpId, callSid } = await callPlaced("voice-start-after-nine", "evt-nine");
    await pickedUp(p, followUpId, callSid);
    await postTwilio(p, callRoute("gather", followUpId), { CallSid: callSid, Digits: "9" });
    const list = new SuppressionList(p.redis, p.prefix);
    const text = (From: string, Body: string, MessageSid: string) =>
      postTwilio(p, "/webhooks/twilio/inbound", { From, Body, MessageSid });
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);
    // START is Twilio's "resubscribe to texts": the texts come back, the calls stay declined.
    expect((await text(PHONE, "START", "SMnine-start")).status).toBe(200);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(false);
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);
    // A later text STOP and START change the texts, not the decline.
    await text(PHONE, "STOP", "SMnine-stop");
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
    await text(PHONE, "START", "SMnine-start-2");
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(false);
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);
    // The decline is an opt-out: it outlives the customer's erasure, as the opt-out does.
    Object.assign(process.env, p.commandEnv);
    expect(await runErase("cus-evt-nine", { config: p.configDir, json: true }, captureIo())).toBe(
      0,
    );
    await text(PHONE, "START", "SMnine-start-3");
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);
    // A number that stopped calls by a text STOP only gets them back with START.
    const other = "+447400112299";
    await text(other, "STOP", "SMother-stop");
    expect(await list.isSuppressed("voice", { address: other })).toBe(true);
    await text(other, "START", "SMother-start");
    expect(await list.isSuppressed("voice", { address: other })).toBe(false);
    expect(await list.isSuppressed("sms", { address: other })).toBe(false);
  });
});

describe("a call answered after its customer opted out of calls by customer id", () => {
  it("asks nothing: the customer hears goodbye, as a number that opted out does", async () => {
    const placed = await callPlaced("voice-id-opted-out", "evt-id-out");
    // An opt-out by the customer's id alone while the call rings (a customer.unsubscribed event
    // of an id shared by many numbers covers the id only, as does one whose number is not known).
    const list = new SuppressionList(placed.p.redis, placed.p.prefix);
    await list.suppress("voice", { customerId: "cus-evt-id-out" });
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(false);
    await answeredWithGoodbyeOnly(placed, "evt-id-out");
  });
});

/** A pipeline whose voice step is an offer (`purpose: marketing`), its call placed. */
async function offerCallPlaced(name: string, eventId: string, env: Record<string, string> = {}) {
  pipeline = await startPipeline(name, { startWorker: false, env });
  const p = pipeline;
  await withVoiceCheckIn(p.configDir, [], "PT4S", "marketing");
  await p.startWorker();
  await publishTvTo(p, eventId, PHONE, undefined, { email: true, sms: true, voice: true });
  const [call] = await p.twilio.waitForCalls(1, 15_000);
  await stepIn(p, eventId, "sent", "the offer call to be placed");
  return { p, followUpId: followUpJobId(eventId, CALL_STEP), callSid: call?.sid ?? "" };
}

/** Ends this test's pipeline before it starts another. */
async function closePipeline() {
  await pipeline?.close();
  pipeline = undefined;
}

/** Picks the call up as a person: its TwiML answer. */
async function pickUp(placed: { p: PipelineHarness; followUpId: string; callSid: string }) {
  const answer = await postTwilio(placed.p, callRoute("answer", placed.followUpId), {
    CallSid: placed.callSid,
    CallStatus: "in-progress",
    AnsweredBy: "human",
  });
  return parseTwiml(await answer.text());
}

describe("a marketing call answered after its customer or number opted out of voice offers only", () => {
  it("says who calls and that a 9 stops the calls before the offer, and leaves no voicemail (TCPA)", async () => {
    // The rules leave shop.name at its default: SHOP_NAME (deprecated) stands in, as on the
    // unsubscribe page.
    const placed = await offerCallPlaced("voice-offer-opening", "evt-offer-opening", {
      SHOP_NAME: "Corner Shop",
    });
    // Placed to hang up on a machine, though the rules' voicemail setting (the default) stays.
    expect(placed.p.twilio.calls[0]).toMatchObject({ machineDetection: "Enable" });
    const twiml = await pickUp(placed);
    expect(twiml.children.map((child) => child.name)).toEqual(["Gather"]);
    const said = twiml.children[0]?.children.map((child) => child.text) ?? [];
    expect(said[0]).toBe(
      "This is a call from Corner Shop. To stop calls from us, press 9 at any time.",
    );
    expect(said).toHaveLength(3);
    const machine = await postTwilio(placed.p, callRoute("answer", placed.followUpId), {
      CallSid: placed.callSid,
      CallStatus: "in-progress",
      AnsweredBy: "machine_end_beep",
    });
    expect(await verbs(machine)).toEqual(["Hangup"]);
  });

  it("plays no offer and asks nothing, by number or by customer id; a check-in call still asks", async () => {
    const placed = await offerCallPlaced("voice-offers-out-number", "evt-offer-number");
    const list = new SuppressionList(placed.p.redis, placed.p.prefix);
    // Offers only, by the number, while the call rings: the check-in calls stay welcome.
    await list.suppress("voice", { address: PHONE }, undefined, "marketing");
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(false);
    const twiml = await pickUp(placed);
    expect(twiml.children.map((child) => child.name)).toEqual(["Say", "Hangup"]);
    expect(twiml.children[0]?.text).toBe("You will get no more offers from us by phone. Goodbye.");
    await postTwilio(placed.p, callRoute("status", placed.followUpId), {
      CallSid: placed.callSid,
      CallStatus: "completed",
      AnsweredBy: "human",
    });
    expect((await stepRecord(placed.p, "evt-offer-number", CALL_STEP))?.delivery).toEqual({
      status: "answered-no-score",
    });
    await closePipeline();

    const byId = await offerCallPlaced("voice-offers-out-id", "evt-offer-id");
    await new SuppressionList(byId.p.redis, byId.p.prefix).suppress(
      "voice",
      { customerId: "cus-evt-offer-id" },
      undefined,
      "marketing",
    );
    // Opted out by customer id: an answering machine gets no voicemail of the offer either.
    const machine = await postTwilio(byId.p, callRoute("answer", byId.followUpId), {
      CallSid: byId.callSid,
      CallStatus: "in-progress",
      AnsweredBy: "machine_end_beep",
    });
    expect(await verbs(machine)).toEqual(["Hangup"]);
    await closePipeline();

    // Not an offer: a check-in call to a number that opted out of offers only asks its question.
    const checkIn = await callPlaced("voice-offers-out-check-in", "evt-offer-check-in");
    await new SuppressionList(checkIn.p.redis, checkIn.p.prefix).suppress(
      "voice",
      { address: PHONE },
      undefined,
      "marketing",
    );
    expect((await pickUp(checkIn)).children.map((child) => child.name)).toEqual(["Gather"]);
    // A script stored by a version before 7 December 2026 names no purpose: taken for an offer's.
    const key = new StoreKeys(checkIn.p.prefix).callScript(checkIn.followUpId);
    const stored = JSON.parse((await checkIn.p.redis.get(key)) ?? "{}");
    expect(stored.script.purpose).toBe("transactional");
    delete stored.script.purpose;
    await checkIn.p.redis.set(key, JSON.stringify(stored), "KEEPTTL");
    const legacy = await pickUp(checkIn);
    expect(legacy.children.map((child) => child.name)).toEqual(["Say", "Hangup"]);
    expect(legacy.children[0]?.text).toBe("You will get no more offers from us by phone. Goodbye.");
  });
});

describe("a call answered after its customer withdrew consent for calls while it rang", () => {
  /** A later purchase of the call's customer, at `phone`, stating `consent` (a newspaper: no plan). */
  async function laterPurchase(
    p: PipelineHarness,
    eventId: string,
    consent: Record<string, boolean>,
  ) {
    const id = `${eventId}-later`;
    await p.publisher.publish(
      purchaseInput({
        id,
        orderId: `ord-${id}`,
        occurredAt: new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, "Z"),
        customer: { id: `cus-${eventId}`, phone: PHONE, email: undefined, consent },
        items: [item("newspapers", "2.50")],
      }) as never,
    );
    await eventually(
      async () => ((await p.events.getJob(id))?.finishedOn ? true : undefined),
      `${id} to be taken in`,
    );
  }

  it("plays no offer and asks nothing when a later purchase states no consent for calls", async () => {
    const placed = await offerCallPlaced("voice-offer-consent-withdrawn", "evt-offer-consent");
    // At a checkout while the call rings, the customer clears the box for calls.
    await laterPurchase(placed.p, "evt-offer-consent", { email: true, sms: true, voice: false });
    await answeredWithGoodbyeOnly(placed, "evt-offer-consent");
    await closePipeline();

    // A later checkout that leaves the voice box out changes nothing: the offer plays.
    const kept = await offerCallPlaced("voice-offer-consent-kept", "evt-offer-kept");
    await laterPurchase(kept.p, "evt-offer-kept", { email: false });
    expect((await pickUp(kept)).children.map((child) => child.name)).toEqual(["Gather"]);
  });

  it("hangs up on a machine, and ends a check-in call too, when consent for calls is withdrawn", async () => {
    const checkIn = await callPlaced("voice-check-in-consent-withdrawn", "evt-check-in-consent");
    await laterPurchase(checkIn.p, "evt-check-in-consent", { voice: false });
    const machine = await postTwilio(checkIn.p, callRoute("answer", checkIn.followUpId), {
      CallSid: checkIn.callSid,
      CallStatus: "in-progress",
      AnsweredBy: "machine_end_beep",
    });
    expect(await verbs(machine)).toEqual(["Hangup"]);
    expect((await pickUp(checkIn)).children.map((child) => child.name)).toEqual(["Say", "Hangup"]);
  });
});

describe("the Twilio voice adapter", () => {
  it("gives Twilio its callback URLs in ASCII on a PUBLIC_URL of other letters (punycode host, percent-encoded path), the form Twilio signs", async () => {
    fake = await startTwilioFake({ accountSid: TWILIO_SID, authToken: TWILIO_TOKEN });
    const read = readEnv({
      PUBLIC_URL: "https://bücher.example/läden/",
      TWILIO_ACCOUNT_SID: TWILIO_SID,
      TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
      TWILIO_FROM,
      TWILIO_API_URL: fake.baseUrl,
    });
    if (!read.ok) throw new Error(read.problems.join("; "));
    const { sms, voice } = channelsFromEnv(read.env);
    const call = {
      language: "en" as const,
      sayLanguage: "en-GB",
      answeringMachine: "hangup" as const,
      speech: false,
    };
    try {
      const text = { channel: "sms", followUpId: "f1", to: PHONE, text: "Hello" } as const;
      expect(await sms.send(text)).toMatchObject({ ok: true });
      expect(
        await voice.send({ channel: "voice", followUpId: "f2", to: PHONE, text: "Hello", call }),
      ).toMatchObject({ ok: true });
    } finally {
      await sms.close?.();
      await voice.close?.();
    }
    const base = "https://xn--bcher-kva.example/l%C3%A4den/webhooks/twilio";
    expect(fake.messages[0]?.statusCallback).toBe(`${base}/status`);
    expect(fake.calls[0]).toMatchObject({
      url: `${base}/voice/answer?call=f2`,
      statusCallback: `${base}/voice/status?call=f2`,
    });
  });

  it("classifies the Calls API's answers: invalid numbers permanent, 429 and 5xx transient", async () => {
    fake = await startTwilioFake({ accountSid: TWILIO_SID, authToken: TWILIO_TOKEN });
    const channel = createTwilioVoiceChannel({
      accountSid: TWILIO_SID,
      authToken: TWILIO_TOKEN,
      callerId: TWILIO_FROM,
      publicUrl: `${PUBLIC_URL}/`,
      apiUrl: fake.baseUrl,
    });
    const call = {
      language: "en" as const,
      sayLanguage: "en-GB",
      answeringMachine: "hangup" as const,
      speech: false,
    };
    const message = (to: string) =>
      ({ channel: "voice", followUpId: "f123", to, text: "Hello", call }) as const;
    try {
      const since = Date.now();
      const placed = await channel.send(message(PHONE));
      expect(placed).toEqual({ ok: true, id: fake.calls[0]?.sid });
      // Twilio's Calls list, through the SDK: the call to the number since the attempt began.
      expect(await channel.findPlaced?.(message(PHONE), since)).toEqual({
        ok: true,
        ids: [fake.calls[0]?.sid],
      });
      expect(await channel.findPlaced?.(message("+447400999999"), since)).toEqual({
        ok: true,
        ids: [],
      });
      expect(await channel.findPlaced?.(message(PHONE), Date.now() + 3_600_000)).toEqual({
        ok: true,
        ids: [],
      });
      fake.failNext({ status: 500 });
      expect(await channel.findPlaced?.(message(PHONE), since)).toMatchObject({
        ok: false,
        error: { kind: "transient", code: "20500" },
      });
      expect(fake.calls[0]).toMatchObject({
        url: `${PUBLIC_URL}/webhooks/twilio/voice/answer?call=f123`,
        machineDetection: "Enable",
      });
      expect(await channel.send(message("12345"))).toMatchObject({
        ok: false,
        error: { kind: "permanent", code: "13224" },
      });
      fake.failNext({ status: 503 }, { status: 429 });
      expect(await channel.send(message(PHONE))).toMatchObject({
        ok: false,
        error: { kind: "transient", code: "20503" },
      });
      expect(await channel.send(message(PHONE))).toMatchObject({
        ok: false,
        error: { kind: "transient", code: "20429" },
      });
      fake.failNext({ status: 400, code: 21210 });
      expect(await channel.send(message(PHONE))).toMatchObject({
        ok: false,
        error: { kind: "misconfigured", code: "21210" },
      });
      const { followUpId: _, ...smsLike } = message(PHONE);
      expect(await channel.send({ ...smsLike, followUpId: "f9", channel: "sms" })).toMatchObject({
        ok: false,
      });
      expect(fake.calls).toHaveLength(1);
      // Every call to the number since then, earliest first (the caller passes over those bound
      // to other follow-ups).
      const later = await channel.send(message(PHONE));
      expect(await channel.findPlaced?.(message(PHONE), since)).toEqual({
        ok: true,
        ids: [fake.calls[0]?.sid, later.ok ? later.id : "?"],
      });
    } finally {
      await channel.close();
    }
  });
});
