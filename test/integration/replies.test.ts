import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runCustomer } from "../../src/cli/customer-command.js";
import { runErase } from "../../src/cli/erase-command.js";
import type { CommandIo } from "../../src/cli/io.js";
import { runReport } from "../../src/cli/report-command.js";
import { runResolve } from "../../src/cli/resolve-command.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import type { ReportModel } from "../../src/reports/report-model.js";
import { sumHours } from "../../src/store/delivery-ledger.js";
import { StoreKeys } from "../../src/store/keys.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { replyId } from "../../src/store/step-replies.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { keysHolding } from "../support/personal-data-scan.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { ALERTED_OWNER, withOwners } from "../support/rules-config.js";
import { postTwilio } from "../support/webhooks.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const PHONE = "+447400123456";

async function command(p: PipelineHarness, run: (io: CommandIo) => Promise<number>) {
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  const code = await run(io);
  return { code, out: io.output() };
}

async function timelineOf(p: PipelineHarness, id: string): Promise<CustomerTimeline> {
  const { out } = await command(p, (io) =>
    runCustomer(id, { config: p.configDir, json: true }, io),
  );
  return JSON.parse(out) as CustomerTimeline;
}

async function sms(p: PipelineHarness, body: string, sid: string, from = PHONE): Promise<number> {
  const answer = await postTwilio(p, "/webhooks/twilio/inbound", {
    From: from,
    Body: body,
    MessageSid: sid,
  });
  return answer.status;
}

/**
 * A TV bought three months ago (`evt-<name>`, by `cus-<name>` at `phone`): its check-in SMS is
 * due now.
 */
async function publishTv(p: PipelineHarness, name: string, phone = PHONE): Promise<void> {
  const occurredAt = DateTime.utc().startOf("second").setZone("Europe/London").minus({ months: 3 });
  await p.publisher.publish(
    purchaseInput({
      id: `evt-${name}`,
      orderId: `ord-${name}`,
      occurredAt: occurredAt.toUTC().toISO({ suppressMilliseconds: true }) ?? "",
      customer: { id: `cus-${name}`, phone, name: "Rhea Lane" },
      items: [item("televisions", "899.00")],
    }) as never,
  );
}

/**
 * A pipeline whose owners are alerted to unhappy replies, a TV bought by each of `buyers` (its
 * name, then its phone) and its check-in text on file, so that texts from them are replies to it.
 */
async function checkInsOnFile(
  label: string,
  buyers: readonly (readonly [name: string, phone: string])[],
): Promise<PipelineHarness> {
  pipeline = await startPipeline(label, { startWorker: false });
  const p = pipeline;
  await withOwners(p.configDir, [ALERTED_OWNER]);
  await p.startWorker();
  for (const [name, phone] of buyers) await publishTv(p, name, phone);
  await p.twilio.waitForMessages(buyers.length);
  const suppressions = new SuppressionList(p.redis, p.prefix);
  const references = new SmsReferences(p.redis, p.prefix);
  for (const [, phone] of buyers) {
    const member = await suppressions.addressMember(phone);
    await eventually(async () => references.latestCheckIn(member), "the check-in to be on file");
  }
  return p;
}

/** The texts of the replies filed on the check-in of `evt-<name>`. */
async function replyTexts(p: PipelineHarness, name: string): Promise<string[]> {
  const eventId = `evt-${name}`;
  const replies = await p.stores.of(await p.shardOf(eventId)).replies.ofEvent(eventId);
  return (replies.get("big-ticket.check-in") ?? []).map((reply) => reply.text);
}

describe("replies to a check-in", () => {
  it("keeps every reply with its own id, reads YES as an answer, and resolves a complaint once", async () => {
    pipeline = await startPipeline("replies");
    const p = pipeline;
    await publishTv(p, "reply");
    await p.twilio.waitForMessages(1);
    await eventually(async () => {
      const record = (await p.store.stepRecords("evt-reply", ["big-ticket.check-in"])).get(
        "big-ticket.check-in",
      );
      return record?.state === "sent" ? true : undefined;
    }, "the check-in to be sent");
    // Replies are filed against the number's latest check-in, remembered just after the send.
    const references = new SmsReferences(p.redis, p.prefix);
    const member = await new SuppressionList(p.redis, p.prefix).addressMember(PHONE);
    await eventually(async () => references.latestCheckIn(member), "the check-in to be on file");

    // "Yes" to "Is all well?" from a number that never opted out is an answer, not an opt-in.
    expect(await sms(p, "Yes", "SMreply1")).toBe(200);
    // Twilio may deliver a message twice at once (a retry after a time-out, a fallback URL): one reply.
    const complaint = "Actually the remote is broken, 3/10";
    const copies = await Promise.all([1, 2, 3].map(() => sms(p, complaint, "SMreply2")));
    expect(copies).toEqual([200, 200, 200]);
    // With more than one shard a reply's id names its shard: `<event>/<step>/<n>@<shard>`.
    const shard = await p.shardOf("evt-reply");
    const idOf = (n: number) =>
      replyId({ eventId: "evt-reply", stepId: "big-ticket.check-in", n, shard });
    const replies = await eventually(async () => {
      const t = await timelineOf(p, "cus-reply");
      const found = t.purchases[0]?.steps.find((s) => s.stepId === "big-ticket.check-in")?.replies;
      return found && found.length === 2 ? found : undefined;
    }, "both replies to be kept");
    expect(replies).toEqual([
      expect.objectContaining({ id: idOf(1), text: "Yes", channel: "sms", unhappy: false }),
      expect.objectContaining({
        id: idOf(2),
        text: "Actually the remote is broken, 3/10",
        unhappy: true,
        resolved: null,
      }),
    ]);
    const suppressions = new SuppressionList(p.redis, p.prefix);
    expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(false);

    // Resolved once, with who and the note; a second time is refused.
    const resolved = await command(p, (io) =>
      runResolve(
        idOf(2),
        { config: p.configDir, note: "sent a new remote", by: "ops", json: true },
        io,
      ),
    );
    expect(JSON.parse(resolved.out)).toMatchObject({
      id: idOf(2),
      by: "ops",
      note: "sent a new remote",
    });
    await expect(
      command(p, (io) => runResolve(idOf(2), { config: p.configDir }, io)),
    ).rejects.toMatchObject({
      code: 1,
      message: expect.stringMatching(/resolved already, by ops/),
    });
    await expect(
      command(p, (io) => runResolve(idOf(9), { config: p.configDir }, io)),
    ).rejects.toMatchObject({ code: 1 });
    await expect(
      command(p, (io) => runResolve("not-a-reply", { config: p.configDir }, io)),
    ).rejects.toMatchObject({ code: 2 });
    const after = await timelineOf(p, "cus-reply");
    expect(
      after.purchases[0]?.steps.find((s) => s.stepId === "big-ticket.check-in")?.replies[1],
    ).toMatchObject({ resolved: { by: "ops", note: "sent a new remote" } });
    expect(after.audit[0]).toMatchObject({ by: "ops", action: "resolve", target: idOf(2) });

    // The report counts the complaint by channel, resolved, and how fast.
    const until = DateTime.now().setZone("Europe/London").plus({ days: 1 }).toISODate() ?? "";
    const report = await command(p, (io) =>
      runReport({ config: p.configDir, until, format: "text", json: true }, io),
    );
    const model = JSON.parse(report.out) as ReportModel;
    expect(model.complaints).toEqual({
      byChannel: { sms: 1 },
      resolved: 1,
      medianMinutesToResolve: 0,
    });
    expect(model.unhappyReplies).toEqual([
      expect.objectContaining({ channel: "sms", resolved: true, id: idOf(2) }),
    ]);

    // STOP, then YES: now YES opts the number back in.
    await sms(p, "STOP", "SMreply3");
    await eventually(
      async () => ((await suppressions.isSuppressed("sms", { address: PHONE })) ? true : undefined),
      "the STOP",
    );
    await sms(p, "YES", "SMreply4");
    await eventually(
      async () => ((await suppressions.isSuppressed("sms", { address: PHONE })) ? undefined : true),
      "the YES to opt back in",
    );

    // A text of nothing but spaces is no reply; a picture without words is one, said so, as the
    // picture is not kept (it may well show what broke).
    expect(await sms(p, "  \n ", "SMblank")).toBe(200);
    const picture = { From: PHONE, MessageSid: "SMpicture", NumMedia: "1" };
    expect((await postTwilio(p, "/webhooks/twilio/inbound", picture)).status).toBe(200);
    const withPicture = await eventually(async () => {
      const t = await timelineOf(p, "cus-reply");
      const found = t.purchases[0]?.steps.find((s) => s.stepId === "big-ticket.check-in")?.replies;
      return found && found.length === 3 ? found : undefined;
    }, "the picture to be kept as a reply");
    expect(withPicture[2]).toMatchObject({ id: idOf(3), text: "(1 picture or file, not kept)" });

    // Erasure takes the replies too.
    await command(p, (io) => runErase("cus-reply", { config: p.configDir }, io));
    expect(
      await keysHolding(p.redis, p.prefix, ["remote is broken", "new remote", "Rhea"]),
    ).toEqual([]);
  });

  it("keeps a reply longer than 1,600 UTF-16 units cut between whole characters, and resolves it", async () => {
    pipeline = await startPipeline("replies-cut");
    const p = pipeline;
    await publishTv(p, "cut");
    await p.twilio.waitForMessages(1);
    const references = new SmsReferences(p.redis, p.prefix);
    const member = await new SuppressionList(p.redis, p.prefix).addressMember(PHONE);
    await eventually(async () => references.latestCheckIn(member), "the check-in to be on file");
    // The cut at 1,600 falls inside the emoji (a surrogate pair).
    expect(await sms(p, `${"a".repeat(1_599)}👍 more`, "SMcut1")).toBe(200);
    const shard = await p.shardOf("evt-cut");
    const id = replyId({ eventId: "evt-cut", stepId: "big-ticket.check-in", n: 1, shard });
    const replies = await eventually(async () => {
      const t = await timelineOf(p, "cus-cut");
      return t.purchases[0]?.steps.find((s) => s.stepId === "big-ticket.check-in")?.replies;
    }, "the reply to be kept");
    expect(replies?.[0]?.text).toBe("a".repeat(1_599));
    const resolved = await command(p, (io) =>
      runResolve(id, { config: p.configDir, by: "ops", json: true }, io),
    );
    expect(JSON.parse(resolved.out)).toMatchObject({ id, by: "ops" });
  });

  it("files a reply that failed half-way, after it was appended, once when Twilio retries it: one reply, counted once, one alert", {
    timeout: 60_000,
  }, async () => {
    const startedAt = Date.now();
    const p = await checkInsOnFile("replies-half-way", [["half", PHONE]]);
    const references = new SmsReferences(p.redis, p.prefix);
    const shard = await p.shardOf("evt-half");
    const repliesOf = async () =>
      (await p.stores.of(shard).replies.ofEvent("evt-half")).get("big-ticket.check-in") ?? [];
    const countedReplies = async () => {
      const at = Date.now();
      const hours = await p.stores.of(0).ledger.hours(at - 7_200_000, at + 3_600_000);
      return [...sumHours(hours)].filter(([field]) => field.startsWith("reply|"));
    };

    // Redis refuses the write after the append: the index of replies by time is not a sorted set.
    const index = new StoreKeys(p.prefix).replies();
    await p.redis.set(index, "in the way");
    const complaint = "The remote is broken, 1/10";
    expect(await sms(p, complaint, "SMhalfway")).toBe(500);
    // Half-way indeed: the reply is appended, neither counted nor alerted.
    expect((await repliesOf()).map((r) => r.text)).toEqual([complaint]);
    expect(await countedReplies()).toEqual([]);

    // Redis takes writes again; Twilio retries the delivery, and later replays it once more.
    await p.redis.del(index);
    expect(await sms(p, complaint, "SMhalfway")).toBe(200);
    expect(await sms(p, complaint, "SMhalfway")).toBe(200);
    const [alert] = await p.sink.waitForMessages(1, 30_000);
    expect(alert?.parsed.text).toContain(complaint);
    expect(
      (await repliesOf()).map((r) => [r.id, r.text]),
      "one reply, filed once",
    ).toEqual([
      [replyId({ eventId: "evt-half", stepId: "big-ticket.check-in", n: 1, shard }), complaint],
    ]);
    expect(await countedReplies()).toEqual([["reply|sms|check-in|big-ticket", 1]]);
    // Indexed for the reports as reply 1, once.
    const indexed = await references.repliesBetween(startedAt - 60_000, Date.now() + 60_000);
    expect(indexed.map((ref) => [ref.eventId, ref.n])).toEqual([["evt-half", 1]]);
    const filedForAlerts = p.logs.filter(
      (line) => line.msg === "unhappy reply filed for an owner's alert",
    );
    expect(filedForAlerts).toHaveLength(1);
  });
});

describe("opt-out words Twilio does not answer, and a question with CANCEL in it", () => {
  it("the stop sign and ALTO opt a number out of texts and calls, with our confirmation; 'Can I cancel my order?' is a reply the owner is alerted to", {
    timeout: 60_000,
  }, async () => {
    const other = "+447400654321";
    const p = await checkInsOnFile("replies-opt-out-words", [
      ["words", PHONE],
      ["alto", other],
    ]);
    const suppressions = new SuppressionList(p.redis, p.prefix);
    const repliesOf = () => replyTexts(p, "words");

    // A question about the order with CANCEL inside it: a reply for the owner, no opt-out.
    const question = "The remote is broken. Can I cancel my order?";
    expect(await sms(p, question, "SMwords1")).toBe(200);
    expect(await repliesOf()).toEqual([question]);
    const [alert] = await p.sink.waitForMessages(1, 30_000);
    expect(alert?.parsed.text).toContain(question);
    for (const channel of ["sms", "voice"] as const)
      expect(await suppressions.isSuppressed(channel, { address: PHONE })).toBe(false);

    // Then the stop sign alone, and ALTO from the other number: both opt out of texts and calls.
    expect(await sms(p, "🛑", "SMwords2")).toBe(200);
    expect(await sms(p, "¡Alto!", "SMalto1", other)).toBe(200);
    for (const phone of [PHONE, other])
      for (const channel of ["sms", "voice"] as const)
        expect(await suppressions.isSuppressed(channel, { address: phone })).toBe(true);
    // Twilio answers neither (its keywords are English words): each gets our one confirmation.
    const confirmations = await eventually(async () => {
      const found = p.twilio.messages.filter((m) => m.body.includes("no more messages"));
      return found.length === 2 ? found : undefined;
    }, "both confirmations");
    expect(confirmations.map((m) => m.to).sort()).toEqual([PHONE, other].sort());
    // Neither is filed as a reply: the question stays the only one.
    expect(await repliesOf()).toEqual([question]);
  });
});

describe("Twilio's help keywords", () => {
  it("HELP and INFO (and a help keyword of the shop's Messaging Service) are not filed as replies nor alert the owners; help asked in words is a reply", {
    timeout: 60_000,
  }, async () => {
    const p = await checkInsOnFile("replies-help-keywords", [["help", PHONE]]);
    const suppressions = new SuppressionList(p.redis, p.prefix);
    const repliesOf = () => replyTexts(p, "help");

    // Twilio answers these itself with the account's help message.
    expect(await sms(p, "HELP", "SMhelp1")).toBe(200);
    expect(await sms(p, "info.", "SMhelp2")).toBe(200);
    expect(await sms(p, "ＨＥＬＰ", "SMhelp3")).toBe(200);
    const aide = await postTwilio(p, "/webhooks/twilio/inbound", {
      From: PHONE,
      Body: "Aide",
      MessageSid: "SMhelp4",
      OptOutType: "HELP",
    });
    expect(aide.status).toBe(200);
    expect(await repliesOf()).toEqual([]);
    // Help asked of the shop in words reaches the owner, as any reply does.
    const plea = "Help! The screen went black, 2/10";
    expect(await sms(p, plea, "SMhelp5")).toBe(200);
    expect(await repliesOf()).toEqual([plea]);
    const [alert] = await p.sink.waitForMessages(1, 30_000);
    expect(alert?.parsed.text).toContain(plea);
    // Nothing sent from us in answer, and the number stays subscribed.
    expect(p.twilio.messages).toHaveLength(1);
    expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(false);
  });
});

describe("what only looks like a help keyword", () => {
  it("HELP with an emoji, or with a phone's signature, is no message Twilio answers: a reply the owner is alerted to", {
    timeout: 60_000,
  }, async () => {
    const p = await checkInsOnFile("replies-help-lookalikes", [["plea", PHONE]]);
    const repliesOf = () => replyTexts(p, "plea");
    const angry = "HELP 😡";
    const signed = "Help\nSent from my iPhone";
    expect(await sms(p, angry, "SMplea1")).toBe(200);
    expect(await sms(p, signed, "SMplea2")).toBe(200);
    expect(await repliesOf()).toEqual([angry, signed]);
    const [alert] = await p.sink.waitForMessages(1, 30_000);
    expect(alert?.parsed.text).toContain(angry);
  });
});
