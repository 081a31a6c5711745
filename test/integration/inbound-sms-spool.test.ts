import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import { runCustomer } from "../../src/cli/customer-command.js";
import { addressHash, customerHash } from "../../src/domain/address-hash.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import { followUpJobId } from "../../src/queue/names.js";
import { sharedSecret } from "../../src/store/shared-secrets.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { unsubscribeUrl } from "../../src/templates/unsubscribe-link.js";
import { quietRedisErrors } from "../faults/fault-support.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  promoteStep,
  recentLedgerCounts,
  startPipeline,
  stepRecordOf,
  TWILIO_FROM,
  waitForState,
} from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { callRoute, publishTv, withVoiceCheckIn } from "../support/voice-check-in.js";
import { httpAddressOf, postTwilio } from "../support/webhooks.js";

/**
 * Twilio does not send a webhook again after a 5xx: while Redis is away the worker keeps a
 * verified inbound SMS, a call's keypad answer, or a message's or call's status callback on disk
 * (WEBHOOK_SPOOL_DIR), answers as usual (200, or 204 to status callbacks), and handles it once
 * Redis is back. Redis here keeps its data across the outage (append-only file in a folder of the test).
 */

let servers: RedisServer[] = [];
let pipeline: PipelineHarness | undefined;
let redisDir: string | undefined;
let downPort: number | undefined;
afterEach(async () => {
  if (downPort !== undefined) await redisBack();
  await pipeline?.close();
  pipeline = undefined;
  for (const server of servers) await server.stop();
  servers = [];
  if (redisDir) await rm(redisDir, { recursive: true, force: true });
  redisDir = undefined;
});

const PHONE = "+447400123456";
const INBOUND = "/webhooks/twilio/inbound";

/** A private Redis whose data survives a stop and start (its folder is the test's). */
async function durableRedis(): Promise<RedisServer> {
  redisDir = await mkdtemp(path.join(tmpdir(), "followups-spool-redis-"));
  const server = await startRedisServer({ dir: redisDir, appendonly: true, appendfsync: "always" });
  servers.push(server);
  return server;
}

/** A pipeline whose worker serves HTTP, on a Redis of its own that keeps its data. */
async function startOnDurableRedis(label: string, prepare?: (p: PipelineHarness) => Promise<void>) {
  const server = await durableRedis();
  pipeline = await startPipeline(label, { redisUrl: server.url, startWorker: false });
  await prepare?.(pipeline);
  await pipeline.startWorker();
  // The harness's own connections have no error listeners; they reconnect by themselves.
  quietRedisErrors(pipeline);
  return { p: pipeline, server };
}

/** Stops Redis; resolves once the worker sees it gone (/readyz 503). */
async function redisAway(p: PipelineHarness, server: RedisServer): Promise<void> {
  await server.stop();
  servers = servers.filter((s) => s !== server);
  downPort = server.port;
  await eventually(
    async () => ((await fetch(`${httpAddressOf(p)}/readyz`)).status === 503 ? true : undefined),
    "the worker to see Redis gone",
  );
}

/** Starts Redis again, on its port, with its data. */
async function redisBack(): Promise<void> {
  if (downPort === undefined || redisDir === undefined) throw new Error("Redis is not down");
  servers.push(
    await startRedisServer({
      dir: redisDir,
      port: downPort,
      appendonly: true,
      appendfsync: "always",
    }),
  );
  downPort = undefined;
}

const spoolDir = (p: PipelineHarness) => p.envVars.WEBHOOK_SPOOL_DIR ?? "";
const spooled = async (p: PipelineHarness) =>
  (await readdir(spoolDir(p)).catch(() => [] as string[])).filter((name) => name.endsWith(".json"));

/** Starts Redis again; resolves once the worker has handled every spooled webhook. */
async function replayedOnceRedisIsBack(p: PipelineHarness): Promise<void> {
  await redisBack();
  await eventually(
    async () => ((await spooled(p)).length === 0 ? true : undefined),
    "the spool to be empty",
    15_000,
  );
}

/** A spooled file's content as written (JSON, tagged with its kind). */
async function spooledFile(p: PipelineHarness, name: string | undefined): Promise<unknown> {
  return JSON.parse(await readFile(path.join(spoolDir(p), name ?? ""), "utf8"));
}

/** The spool metric's samples: `{ waiting, failed }` as /metrics shows them. */
async function spoolMetric(p: PipelineHarness): Promise<Record<string, number>> {
  const text = await (await fetch(`${httpAddressOf(p)}/metrics`)).text();
  const samples = text.matchAll(/^followups_webhook_spool_files\{state="(\w+)"\} (\d+)$/gm);
  return Object.fromEntries([...samples].map(([, state, value]) => [state, Number(value)]));
}

/** Waits for /metrics to show the spool's counts. */
async function spoolMetricIs(p: PipelineHarness, counts: Record<string, number>): Promise<void> {
  await eventually(
    async () =>
      JSON.stringify(await spoolMetric(p)) === JSON.stringify(counts) ? true : undefined,
    `the spool metric to read ${JSON.stringify(counts)}`,
    15_000,
  );
}

function inbound(p: PipelineHarness, Body: string, MessageSid: string) {
  return postTwilio(p, INBOUND, { From: PHONE, Body, MessageSid });
}

/** No log line holds the number or the message's words. */
function expectNoPersonalDataLogged(p: PipelineHarness, ...words: string[]) {
  const text = JSON.stringify(p.logs);
  for (const word of [PHONE, ...words]) expect(text).not.toContain(word);
}

it("a STOP texted while Redis is away is answered 200, kept on disk, and honoured for SMS and calls once Redis is back", {
  timeout: 60_000,
}, async () => {
  const { p, server } = await startOnDurableRedis("spool-stop");
  await redisAway(p, server);

  const answer = await inbound(p, "STOP", "SMspoolstop1");
  expect(answer.status).toBe(200);
  expect(await answer.text()).toMatch(/<Response\s*\/?>(<\/Response>)?$/);
  const files = await spooled(p);
  expect(files).toHaveLength(1);
  const file = path.join(spoolDir(p), files[0] ?? "");
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  expect(JSON.parse(await readFile(file, "utf8"))).toMatchObject({
    message: { from: PHONE, body: "STOP", messageSid: "SMspoolstop1" },
  });
  await spoolMetricIs(p, { waiting: 1, failed: 0 });

  await redisBack();
  const list = new SuppressionList(p.redis, p.prefix);
  await eventually(
    async () =>
      (await list.isSuppressed("sms", { address: PHONE })) &&
      (await list.isSuppressed("voice", { address: PHONE }))
        ? true
        : undefined,
    "the spooled STOP to suppress SMS and calls",
    15_000,
  );
  await eventually(
    async () => ((await spooled(p)).length === 0 ? true : undefined),
    "the spool to be empty",
  );
  await replayLogged(p);
  await spoolMetricIs(p, { waiting: 0, failed: 0 });
  expectNoPersonalDataLogged(p);
});

/**
 * Waits for the replay's log line: it is written once the round ends, just after its last file is
 * removed, and this test's listing of the spool may see the removal first.
 */
async function replayLogged(p: PipelineHarness): Promise<void> {
  await eventually(
    async () =>
      p.logs.some((line) => line.msg === "replayed spooled webhooks") ? true : undefined,
    "the replay to be logged",
  );
}

async function timelineOf(p: PipelineHarness, id: string): Promise<CustomerTimeline> {
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  await runCustomer(id, { config: p.configDir, json: true }, io);
  return JSON.parse(io.output()) as CustomerTimeline;
}

it("a reply texted twice while Redis is away is filed once after replay; a spool file that is not a webhook is moved aside and does not stop the others", {
  timeout: 60_000,
}, async () => {
  const { p, server } = await startOnDurableRedis("spool-reply");
  // A TV bought three months ago: its check-in SMS is due now, and replies are filed against it.
  await p.publisher.publish(
    purchaseInput({
      id: "evt-spool",
      orderId: "ord-spool",
      occurredAt:
        DateTime.utc()
          .startOf("second")
          .setZone("Europe/London")
          .minus({ months: 3 })
          .toUTC()
          .toISO({ suppressMilliseconds: true }) ?? "",
      customer: { id: "cus-spool", phone: PHONE, name: "Rhea Lane" },
      items: [item("televisions", "899.00")],
    }) as never,
  );
  await p.twilio.waitForMessages(1);
  const member = await new SuppressionList(p.redis, p.prefix).addressMember(PHONE);
  const references = new SmsReferences(p.redis, p.prefix);
  await eventually(async () => references.latestCheckIn(member), "the check-in to be on file");

  await redisAway(p, server);
  // Left in the spool (the oldest): not a webhook. Replay moves it aside and goes on.
  const bad = "000000000000001-000000-00.json";
  await mkdir(spoolDir(p), { recursive: true });
  await writeFile(path.join(spoolDir(p), bad), "{ half a file", { mode: 0o600 });
  const complaint = "The remote stopped working";
  // Twilio sends the same message again after a failed connection: both kept, filed once.
  expect((await inbound(p, complaint, "SMspoolreply1")).status).toBe(200);
  expect((await inbound(p, complaint, "SMspoolreply1")).status).toBe(200);
  expect(await spooled(p)).toHaveLength(3);

  await redisBack();
  const replies = await eventually(
    async () => {
      const t = await timelineOf(p, "cus-spool");
      const found = t.purchases[0]?.steps.find((s) => s.replies.length > 0)?.replies;
      return (await spooled(p)).length === 0 && found ? found : undefined;
    },
    "the spooled reply to be filed and the spool emptied",
    20_000,
  );
  expect(replies).toEqual([expect.objectContaining({ text: complaint, channel: "sms" })]);
  expect(await readdir(path.join(spoolDir(p), "failed"))).toEqual([bad]);
  // What an operator is to look at: one file moved aside.
  await spoolMetricIs(p, { waiting: 0, failed: 1 });
  expect(p.logs).toContainEqual(
    expect.objectContaining({
      file: bad,
      msg: "a spooled webhook cannot be handled; moved aside, not replayed again",
    }),
  );
  expectNoPersonalDataLogged(p, complaint);
});

const OTHER_PHONE = "+447400987654";
const CALL_STEP = "big-ticket.check-in";

/** A pipeline with the voice check-in on a Redis that keeps its data, whose call to PHONE is placed. */
async function callPlaced(label: string, eventId: string) {
  const started = await startOnDurableRedis(label, (h) => withVoiceCheckIn(h.configDir));
  await publishTv(started.p, eventId, PHONE);
  const [call] = await started.p.twilio.waitForCalls(1, 15_000);
  const followUpId = followUpJobId(eventId, CALL_STEP);
  // Twilio reports how the call ended to the status callback set on it.
  expect(call?.statusCallback).toContain(callRoute("status", followUpId));
  return { ...started, callSid: call?.sid ?? "", followUpId };
}

/**
 * Moves the call's fallback on (it waits an hour for a call's outcome; an operator could promote
 * it) and waits until it has texted PHONE, alone.
 */
async function fallbackTexted(p: PipelineHarness, eventId: string): Promise<void> {
  const fallbackId = followUpJobId(eventId, `${CALL_STEP}-fallback`);
  await eventually(async () => {
    const job = await p.followUps.getJob(fallbackId);
    if ((await job?.getState()) === "delayed") await job?.promote().catch(() => undefined);
    return p.twilio.messages.length > 0 ? true : undefined;
  }, "the fallback SMS to be sent");
  expect(p.twilio.messages.map((message) => message.to)).toEqual([PHONE]);
  await waitForState(p, eventId, `${CALL_STEP}-fallback`, "sent");
}

/** Twilio's answer webhook of a call picked up, without answering-machine detection. */
function pickedUp(p: PipelineHarness, followUpId: string, callSid: string) {
  return postTwilio(p, callRoute("answer", followUpId), {
    CallSid: callSid,
    CallStatus: "in-progress",
    To: PHONE,
  });
}

/** Its final status callback: `completed` after a second, as for a person who listened. */
function endedAfterASecond(p: PipelineHarness, followUpId: string, callSid: string) {
  return postTwilio(p, callRoute("status", followUpId), {
    CallSid: callSid,
    CallStatus: "completed",
    CallDuration: "1",
    To: PHONE,
  });
}

it("a 9 pressed on a call while Redis is away hangs up politely, is kept on disk, and stops calls and texts once Redis is back, also when the call is no longer on file", {
  timeout: 60_000,
}, async () => {
  const { p, server, callSid, followUpId } = await callPlaced("spool-call", "evt-spoolcall");
  const answered = await postTwilio(p, callRoute("answer", followUpId), {
    CallSid: callSid,
    CallStatus: "in-progress",
    AnsweredBy: "human",
    To: PHONE,
  });
  expect(await answered.text()).toContain("<Gather");

  await redisAway(p, server);
  // Twilio posts the gather with the call's parameters, the number it called (To) among them.
  const heard = await postTwilio(p, callRoute("gather", followUpId), {
    CallSid: callSid,
    Digits: "9",
    To: PHONE,
    From: TWILIO_FROM,
  });
  expect(heard.status).toBe(200);
  expect(heard.headers.get("content-type")).toMatch(/^text\/xml/);
  expect(await heard.text()).toBe(
    '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>',
  );
  // A call whose record will be gone when Redis is back (ended over an hour before): its 9 is
  // honoured for the number Twilio called.
  const goneAnswer = await postTwilio(p, callRoute("gather", "f-gone-call"), {
    CallSid: "CAgone1",
    Digits: "9",
    To: OTHER_PHONE,
  });
  expect(goneAnswer.status).toBe(200);
  const files = await spooled(p);
  expect(files).toHaveLength(2);
  expect(await spooledFile(p, files[0])).toMatchObject({
    kind: "twilio-voice-gather",
    gather: { followUpId, callSid, digits: "9", to: PHONE },
  });
  await spoolMetricIs(p, { waiting: 2, failed: 0 });

  await redisBack();
  const list = new SuppressionList(p.redis, p.prefix);
  await eventually(
    async () => ((await spooled(p)).length === 0 ? true : undefined),
    "the spool to be empty",
    15_000,
  );
  for (const phone of [PHONE, OTHER_PHONE]) {
    expect(await list.isSuppressed("voice", { address: phone })).toBe(true);
    expect(await list.isSuppressed("sms", { address: phone })).toBe(true);
  }
  await spoolMetricIs(p, { waiting: 0, failed: 0 });
  await replayLogged(p);
  expectNoPersonalDataLogged(p, OTHER_PHONE);
});

it("a call's final status callback while Redis is away is answered 204 and kept on disk; once Redis is back the call has its outcome, dated when it arrived, and its SMS fallback, counted once", {
  timeout: 60_000,
}, async () => {
  const { p, server, callSid, followUpId } = await callPlaced("spool-call-status", "evt-spoolring");
  await waitForState(p, "evt-spoolring", CALL_STEP, "sent");

  await redisAway(p, server);
  const endedAt = Date.now();
  const status = (CallStatus: string) =>
    postTwilio(p, callRoute("status", followUpId), { CallSid: callSid, CallStatus, To: PHONE });
  // Nobody answers. Twilio sends the final callback again after a failed connection, and an
  // earlier status may come late: all three are kept; the late `ringing` does not undo the end.
  for (const callStatus of ["no-answer", "no-answer", "ringing"]) {
    const answer = await status(callStatus);
    expect(answer.status).toBe(204);
    expect(await answer.text()).toBe("");
  }
  const files = await spooled(p);
  expect(files).toHaveLength(3);
  expect(await spooledFile(p, files[0])).toEqual({
    kind: "twilio-voice-status",
    receivedAt: expect.any(Number),
    // The number called prices the call's minutes should its record be gone by then.
    callStatus: { followUpId, callSid, callStatus: "no-answer", to: PHONE },
  });
  const postedBy = Date.now();
  await spoolMetricIs(p, { waiting: 3, failed: 0 });

  // The outcome is dated when the callback came (by postedBy), not when it is replayed: that is
  // after Redis is started again below, so later than postedBy without a wait.
  await replayedOnceRedisIsBack(p);
  const record = await stepRecordOf(p, "evt-spoolring", CALL_STEP);
  expect(record?.delivery).toEqual({ status: "no-answer" });
  expect(record?.changedAt).toBeGreaterThanOrEqual(endedAt);
  expect(record?.changedAt).toBeLessThanOrEqual(postedBy);
  // Counted once in the ledger, as undelivered with the outcome as reason.
  expect(await recentLedgerCounts(p, "undelivered|voice|")).toEqual([
    ["undelivered|voice|check-in|big-ticket", 1],
    ["reason|undelivered|voice|check-in|no-answer", 1],
  ]);
  await spoolMetricIs(p, { waiting: 0, failed: 0 });

  // The fallback waits an hour for a call's outcome; moved on now (as an operator could), it
  // texts the customer instead of being skipped as `call-outcome-unknown`.
  await fallbackTexted(p, "evt-spoolring");
  expectNoPersonalDataLogged(p);
});

it("a call picked up while Redis is away is hung up on and kept on disk; once Redis is back it is recorded as unheard, not as a person reached, and its SMS fallback goes out", {
  timeout: 60_000,
}, async () => {
  const { p, server, callSid, followUpId } = await callPlaced("spool-unheard", "evt-spoolunheard");
  await waitForState(p, "evt-spoolunheard", CALL_STEP, "sent");

  await redisAway(p, server);
  // Without answering-machine detection Twilio posts no AnsweredBy: a pick-up, then the end of a
  // call that lasted a second, `completed` as for a person who listened.
  const picked = await pickedUp(p, followUpId, callSid);
  expect(picked.status).toBe(200);
  expect(await picked.text()).toBe(
    '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>',
  );
  const ended = await endedAfterASecond(p, followUpId, callSid);
  expect(ended.status).toBe(204);
  const files = await spooled(p);
  expect(files).toHaveLength(2);
  expect(await spooledFile(p, files[0])).toEqual({
    kind: "twilio-voice-unheard",
    receivedAt: expect.any(Number),
    unheard: { followUpId, callSid },
  });

  await replayedOnceRedisIsBack(p);
  const record = await stepRecordOf(p, "evt-spoolunheard", CALL_STEP);
  expect(record?.delivery).toEqual({ status: "unheard" });
  expect(await recentLedgerCounts(p, "undelivered|voice|")).toEqual([
    ["undelivered|voice|check-in|big-ticket", 1],
    ["reason|undelivered|voice|check-in|unheard", 1],
  ]);
  const delivered = (await recentLedgerCounts(p, "|voice|")).filter(([field]) =>
    field.startsWith("delivered|"),
  );
  expect(delivered).toEqual([]);
  // The customer heard nothing: the fallback texts them (moved on now, as in the test above).
  await fallbackTexted(p, "evt-spoolunheard");
  expectNoPersonalDataLogged(p);
});

it("a call picked up while Redis is away whose status callback is handled before the pick-up is replayed is still recorded as unheard, counted undelivered, and its SMS fallback goes out", {
  timeout: 60_000,
}, async () => {
  const { p, server, callSid, followUpId } = await callPlaced(
    "spool-unheard-late",
    "evt-unheardlate",
  );
  await waitForState(p, "evt-unheardlate", CALL_STEP, "sent");

  await redisAway(p, server);
  expect(await (await pickedUp(p, followUpId, callSid)).text()).toContain("<Hangup/>");
  const [file] = await spooled(p);
  expect(await spooledFile(p, file)).toMatchObject({ kind: "twilio-voice-unheard" });
  // Redis is back before the spool's next round (every 5 s), and the call's end (a second after
  // the hang-up) is handled at once: held out of the spool's sight until then.
  const held = path.join(spoolDir(p), `held-${file}`);
  await rename(path.join(spoolDir(p), file ?? ""), held);
  await redisBack();
  // The fallback, due meanwhile, looks first: the call's outcome has not come, it waits.
  const fallbackId = followUpJobId("evt-unheardlate", `${CALL_STEP}-fallback`);
  await eventually(async () => {
    const job = await p.followUps.getJob(fallbackId);
    if ((await job?.getState()) !== "delayed") return undefined;
    return (job?.delay ?? 0) + (job?.timestamp ?? 0) > Date.now() + 30 * 60_000 ? true : undefined;
  }, "the fallback to wait for the call's outcome");
  const ended = await endedAfterASecond(p, followUpId, callSid);
  expect(ended.status).toBe(204);
  await rename(held, path.join(spoolDir(p), file ?? ""));
  await eventually(
    async () => ((await spooled(p)).length === 0 ? true : undefined),
    "the spool to be empty",
    15_000,
  );

  // The customer heard nothing: not a person reached, whichever webhook was handled first.
  const record = await stepRecordOf(p, "evt-unheardlate", CALL_STEP);
  expect(record?.delivery).toEqual({ status: "unheard" });
  const nonZero = async (part: string) =>
    (await recentLedgerCounts(p, part)).filter(([, count]) => count !== 0);
  expect(await nonZero("undelivered|voice|")).toEqual([
    ["undelivered|voice|check-in|big-ticket", 1],
    ["reason|undelivered|voice|check-in|unheard", 1],
  ]);
  expect((await nonZero("|voice|")).filter(([field]) => field.startsWith("delivered|"))).toEqual(
    [],
  );
  await fallbackTexted(p, "evt-unheardlate");
  expectNoPersonalDataLogged(p);
});

it("a call picked up while Redis is away, replayed after the step's other call reached the customer without a score, leaves the step answered: no fallback", {
  timeout: 60_000,
}, async () => {
  // Twilio places a first call for the step although it answers 503, and only after the retry's
  // look in its Calls list, which so finds none and places a second: the step's (placed first).
  const { p, server } = await startOnDurableRedis("spool-unheard-other", async (h) => {
    await withVoiceCheckIn(h.configDir);
    h.twilio.failNext({ status: 503, createdAnyway: true, createdAfterMs: 3_000 });
  });
  await publishTv(p, "evt-unheardother", PHONE);
  const [steps, other] = await p.twilio.waitForCalls(2, 15_000);
  const sent = await waitForState(p, "evt-unheardother", CALL_STEP, "sent");
  expect(sent.providerId).toBe(steps?.sid);
  const followUpId = followUpJobId("evt-unheardother", CALL_STEP);

  // The customer picks up the other call, listens, presses nothing and hangs up.
  await postTwilio(p, callRoute("answer", followUpId), {
    CallSid: other?.sid ?? "",
    CallStatus: "in-progress",
    AnsweredBy: "human",
    To: PHONE,
  });
  await postTwilio(p, callRoute("gather", followUpId), { CallSid: other?.sid ?? "", To: PHONE });
  expect((await stepRecordOf(p, "evt-unheardother", CALL_STEP))?.delivery).toEqual({
    status: "answered-no-score",
  });

  // The step's call is picked up (by the customer's voicemail) while Redis is away: hung up on.
  await redisAway(p, server);
  expect(await (await pickedUp(p, followUpId, steps?.sid ?? "")).text()).toContain("<Hangup/>");
  await replayedOnceRedisIsBack(p);
  expect(await endedAfterASecond(p, followUpId, steps?.sid ?? "")).toHaveProperty("status", 204);

  // The customer was reached on the other call: the step says so, and no text follows the call.
  const record = await stepRecordOf(p, "evt-unheardother", CALL_STEP);
  expect(record?.delivery).toEqual({ status: "answered-no-score" });
  const fallbackId = followUpJobId("evt-unheardother", `${CALL_STEP}-fallback`);
  const fallback = await eventually(async () => {
    const job = await p.followUps.getJob(fallbackId);
    if ((await job?.getState()) === "delayed") await job?.promote().catch(() => undefined);
    const found = await stepRecordOf(p, "evt-unheardother", `${CALL_STEP}-fallback`);
    return found && found.state !== "scheduled" && found.state !== "sending" ? found : undefined;
  }, "the fallback to end");
  expect([fallback.state, fallback.reason?.code]).toEqual(["skipped", "call-answered"]);
  expect(p.twilio.messages).toEqual([]);
  expectNoPersonalDataLogged(p);
});

it("a message's status callback while Redis is away is answered 204 and kept on disk; once Redis is back the step shows it, and a carrier opt-out (21610) stops calls to the number", {
  timeout: 60_000,
}, async () => {
  const { p, server } = await startOnDurableRedis("spool-sms-status");
  await publishTv(p, "evt-spoolsms", PHONE);
  const [sms] = await p.twilio.waitForMessages(1, 15_000);
  const messageSid = sms?.sid ?? "";
  const references = new SmsReferences(p.redis, p.prefix);
  await eventually(async () => references.stepOfSms(messageSid), "the message to be on file");
  await waitForState(p, "evt-spoolsms", CALL_STEP, "sent");

  await redisAway(p, server);
  const report = (fields: Record<string, string>) =>
    postTwilio(p, "/webhooks/twilio/status", { MessageSid: messageSid, ...fields });
  // The final report, then a `sent` that Twilio posted earlier but that came late.
  const reports: Record<string, string>[] = [
    { MessageStatus: "undelivered", ErrorCode: "21610" },
    { MessageStatus: "sent" },
  ];
  for (const fields of reports) {
    expect((await report(fields)).status).toBe(204);
  }
  const postedBy = Date.now();
  const files = await spooled(p);
  expect(files).toHaveLength(2);
  expect(await spooledFile(p, files[0])).toEqual({
    kind: "twilio-sms-status",
    receivedAt: expect.any(Number),
    smsStatus: { messageSid, status: "undelivered", errorCode: 21610 },
  });
  const list = new SuppressionList(p.redis, p.prefix);

  await replayedOnceRedisIsBack(p);
  const record = await stepRecordOf(p, "evt-spoolsms", CALL_STEP);
  expect(record?.delivery).toEqual({ status: "undelivered", errorCode: 21610 });
  // Dated when the report came, not when it was replayed.
  expect(record?.changedAt).toBeLessThanOrEqual(postedBy);
  expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);
  expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
  await spoolMetricIs(p, { waiting: 0, failed: 0 });
  expectNoPersonalDataLogged(p);
});

it("a STOP texted while Redis is away stops a check-in that falls due as Redis comes back: the spool is read before the text goes", {
  timeout: 60_000,
}, async () => {
  const { p, server } = await startOnDurableRedis("spool-stop-before-due");
  // A TV bought a day short of three months ago: its SMS check-in waits for its day.
  const occurredAt = DateTime.utc().minus({ months: 3 }).plus({ days: 1 });
  await p.publisher.publish(
    purchaseInput({
      id: "evt-stopdue",
      orderId: "ord-stopdue",
      occurredAt: occurredAt.toISO({ suppressMilliseconds: true }) ?? "",
      customer: { id: "cus-stopdue", phone: PHONE, email: undefined },
      items: [item("televisions", "899.00")],
    }) as never,
  );
  await waitForState(p, "evt-stopdue", CALL_STEP, "scheduled");

  await redisAway(p, server);
  expect((await inbound(p, "Please stop texting me", "SMspoolstopdue")).status).toBe(200);
  expect(await spooled(p)).toHaveLength(1);
  await redisBack();
  // The check-in falls due the moment Redis is back (an outage across its due time).
  await promoteStep(p, "evt-stopdue", CALL_STEP);

  const record = await eventually(
    async () => {
      const found = await stepRecordOf(p, "evt-stopdue", CALL_STEP);
      return found && found.state !== "scheduled" && found.state !== "sending" ? found : undefined;
    },
    "the check-in to be decided",
    15_000,
  );
  expect([record.state, record.reason?.code]).toEqual(["skipped", "opted-out"]);
  // The only text is our confirmation of the opt-out, never the check-in.
  expect(p.twilio.messages.map((m) => m.body)).toEqual([
    "You will get no more messages from Your shop.",
  ]);
});

it("a one-click unsubscribe while Redis is away is answered as done, kept on disk, and stops an offer that falls due as Redis comes back", {
  timeout: 60_000,
}, async () => {
  const { p, server } = await startOnDurableRedis("spool-one-click");
  const email = "oneclick@example.com";
  // A laptop: a thank-you now, an accessories discount (an offer, by email) in a few days.
  await p.publisher.publish(
    purchaseInput({
      id: "evt-oneclick",
      orderId: "ord-oneclick",
      occurredAt: DateTime.utc().minus({ hours: 2 }).toISO() ?? "",
      customer: { id: "cus-oneclick", email, phone: undefined },
      items: [item("laptops", "900.00")],
    }) as never,
  );
  await waitForState(p, "evt-oneclick", "accessories.discount", "scheduled");
  const secret = await sharedSecret(p.redis, p.prefix, "unsubscribe");
  const hashSecret = await sharedSecret(p.redis, p.prefix, "address-hash");
  const hashed = addressHash(hashSecret, email);
  const customer = customerHash(hashSecret, "cus-oneclick");
  const link = unsubscribeUrl(p.envVars.PUBLIC_URL ?? "", secret, customer, "email", hashed);
  await redisAway(p, server);

  // A mail provider's RFC 8058 request: it is not sent again, whatever the answer.
  const answer = await fetch(`${httpAddressOf(p)}${new URL(link).pathname}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "List-Unsubscribe=One-Click",
  });
  expect(answer.status).toBe(200);
  expect(await spooled(p)).toHaveLength(1);
  await redisBack();
  await promoteStep(p, "evt-oneclick", "accessories.discount");

  const record = await eventually(
    async () => {
      const found = await stepRecordOf(p, "evt-oneclick", "accessories.discount");
      return found && found.state !== "scheduled" && found.state !== "sending" ? found : undefined;
    },
    "the offer to be decided",
    15_000,
  );
  expect([record.state, record.reason?.code]).toEqual(["skipped", "opted-out"]);
  expect(p.sink.messages.filter((m) => /List-Unsubscribe:/i.test(m.raw))).toEqual([]);
  const list = new SuppressionList(p.redis, p.prefix);
  expect(await list.isSuppressed("email", { customerId: "cus-oneclick" }, "marketing")).toBe(true);
  expect(await list.isSuppressed("email", { address: email }, "marketing")).toBe(true);
  // Offers only, as a one-click request asks.
  expect(await list.isSuppressed("email", { customerId: "cus-oneclick" })).toBe(false);
  expect(JSON.stringify(p.logs)).not.toContain(email);
});

it("a text's unsubscribe link clicked while Redis is away, then a START, both replayed: the START counts, as it was sent after the click", {
  timeout: 60_000,
}, async () => {
  const { p, server } = await startOnDurableRedis("spool-link-then-start");
  const secret = await sharedSecret(p.redis, p.prefix, "unsubscribe");
  const hashSecret = await sharedSecret(p.redis, p.prefix, "address-hash");
  const hashed = addressHash(hashSecret, PHONE);
  const customer = customerHash(hashSecret, "cus-link");
  const link = unsubscribeUrl(p.envVars.PUBLIC_URL ?? "", secret, customer, "sms", hashed);
  await redisAway(p, server);

  // "Stop all follow-ups" on the page a text linked to, and a START texted a moment later.
  const clicked = await fetch(`${httpAddressOf(p)}${new URL(link).pathname}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "scope=all",
  });
  expect(clicked.status).toBe(200);
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect((await inbound(p, "START", "SMspoollinkstart")).status).toBe(200);
  expect(await spooled(p)).toHaveLength(2);
  await replayedOnceRedisIsBack(p);

  // The number's last word was START: its texts are back (the customer id stays opted out).
  const list = new SuppressionList(p.redis, p.prefix);
  expect(await list.isSuppressed("sms", { address: PHONE })).toBe(false);
  expect(await list.isSuppressed("sms", { customerId: "cus-link" })).toBe(true);
});

/**
 * Resolves just after a replay round ended: each round first removes a temporary file left by an
 * interrupted write (older than ten minutes), so one planted here is gone once a round has run.
 * The next round is a few seconds away (SPOOL_REPLAY_INTERVAL_MS).
 */
async function replayRoundJustEnded(p: PipelineHarness): Promise<void> {
  const leftOver = path.join(spoolDir(p), ".000000000000001-000001-0ff.json.tmp");
  await writeFile(leftOver, "{}");
  const hourAgo = new Date(Date.now() - 3_600_000);
  await utimes(leftOver, hourAgo, hourAgo);
  await eventually(
    async () => ((await stat(leftOver).catch(() => undefined)) ? undefined : true),
    "a replay round to remove the left-over temporary file",
    15_000,
  );
}

it("a START kept on disk while Redis was away, delivered again by Twilio after a later STOP and before the spool is replayed, does not undo the STOP", {
  timeout: 60_000,
}, async () => {
  const { p, server } = await startOnDurableRedis("spool-start-retried");
  await redisAway(p, server);
  // Twilio's first delivery of a START: kept on disk (Twilio saw no answer in time, and retries).
  expect((await inbound(p, "START", "SMstartretried")).status).toBe(200);
  expect(await spooled(p)).toHaveLength(1);
  await replayRoundJustEnded(p);
  await redisBack();
  await eventually(
    async () => ((await fetch(`${httpAddressOf(p)}/readyz`)).status === 200 ? true : undefined),
    "the worker to see Redis back",
  );

  // The customer's STOP, then Twilio's retry of the START (the same MessageSid, signed alike),
  // both before the next replay round reads the first START from the spool.
  expect((await inbound(p, "STOP", "SMstopafterstart")).status).toBe(200);
  expect((await inbound(p, "START", "SMstartretried")).status).toBe(200);
  await eventually(
    async () => ((await spooled(p)).length === 0 ? true : undefined),
    "the spool to be empty",
    15_000,
  );

  // The STOP was the customer's last word: texts and calls stay off.
  const list = new SuppressionList(p.redis, p.prefix);
  for (const channel of ["sms", "voice"] as const)
    expect(await list.isSuppressed(channel, { address: PHONE }), channel).toBe(true);
  expectNoPersonalDataLogged(p);
});

it("a spooled file that can be neither handled nor moved aside holds back no text that comes later, with Redis up", {
  timeout: 60_000,
}, async () => {
  pipeline = await startPipeline("spool-stuck-file", { startWorker: false });
  const p = pipeline;
  // A file that is not a webhook, and a `failed` that is a file, not a folder: it stays where it is.
  await mkdir(spoolDir(p), { recursive: true });
  await writeFile(path.join(spoolDir(p), "000000000000001-000001-0aa.json"), "not a webhook");
  await writeFile(path.join(spoolDir(p), "failed"), "");
  await p.startWorker();
  const list = new SuppressionList(p.redis, p.prefix);

  // The customer's STOP, with Redis up: applied within moments, not kept behind that file forever.
  expect((await inbound(p, "STOP", "SMstopbehindstuck")).status).toBe(200);
  await eventually(
    async () => ((await list.isSuppressed("sms", { address: PHONE })) ? true : undefined),
    "the STOP to be applied",
    15_000,
  );
  expect(await spooled(p)).toEqual(["000000000000001-000001-0aa.json"]);
});
