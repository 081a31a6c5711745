import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { isMap, isSeq, parseDocument } from "yaml";
import { createOperatorTools } from "../../src/operations/operator-tools.js";
import { joinedThankYou } from "../../src/queue/delivery-processor.js";
import { followUpJobId } from "../../src/queue/names.js";
import { StoreKeys, shardScope } from "../../src/store/keys.js";
import { Shards } from "../../src/store/shards.js";
import { item, purchaseInput, shippedRules } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  stepRecordOf,
  waitForState,
} from "../support/pipeline-harness.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const THANK_YOU = "thank-you.thank-you";

/** A shirt bought `minutesAgo` by `customerId`: the shipped thank-you rule coalesces for an hour. */
const shirt = (id: string, customerId: string, minutesAgo: number) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt:
      DateTime.utc()
        .minus({ minutes: minutesAgo })
        .startOf("second")
        .toISO({ suppressMilliseconds: true }) ?? "",
    customer: { id: customerId },
    items: [item("clothing", "60.00", { name: `Shirt ${id}` })],
  });

async function buy(p: PipelineHarness, customerId: string, ...purchases: [string, number][]) {
  for (const [id, minutesAgo] of purchases) {
    await p.publisher.publish(shirt(id, customerId, minutesAgo) as never);
    expect(await eventProcessed(p, id)).toBe("completed");
  }
}

/** Sends the purchase's thank-you now; the text of the message, the sink's `nth` (from 1). */
async function thankYouSent(p: PipelineHarness, eventId: string, nth: number): Promise<string> {
  await promoteStep(p, eventId, THANK_YOU);
  await waitForState(p, eventId, THANK_YOU, "sent");
  return (await p.sink.waitForMessages(nth))[nth - 1]?.parsed.text ?? "";
}

async function keysOf(p: PipelineHarness, eventId: string) {
  return new StoreKeys(shardScope(p.prefix, await p.shardOf(eventId), p.shards));
}

/**
 * `target` as it is, except that `meanwhile` runs once, right after the first of its calls (or
 * of its siblings' sharing `once`) has answered: another worker acting between two reads.
 */
function actingAfterFirstRead<T extends object>(
  target: T,
  once: { meanwhile?: () => Promise<void> },
): T {
  return new Proxy(target, {
    get(object, name) {
      const value: unknown = Reflect.get(object, name, object);
      if (typeof value !== "function") return value;
      return async (...args: unknown[]) => {
        const answer = await (value as (...a: unknown[]) => Promise<unknown>).apply(object, args);
        const meanwhile = once.meanwhile;
        once.meanwhile = undefined;
        await meanwhile?.();
        return answer;
      };
    },
  });
}

describe("a joined purchase's thank-you deciding while its leader's goes out without it", () => {
  it("is not skipped as thanked for when the leader left it out between its reads: it gets its own", async () => {
    pipeline = await startPipeline("coalesce-race");
    const p = pipeline;
    await buy(p, "cus-race", ["race-lead", 30], ["race-member", 10]);
    const record = (await keysOf(p, "race-member")).eventRecord("race-member");
    const stored = await p.redis.hgetBuffer(record, "p0");
    if (!stored) throw new Error("race-member has no stored purchase");
    const { store, thankYous } = p.stores.of(p.shardOfCustomer("cus-race"));

    // Right after the member's thank-you first reads the store, the leader's goes out, and it
    // cannot read the member's purchase then: it leaves it out (leave-thank-you.lua).
    const once = {
      meanwhile: async () => {
        await p.redis.hset(record, "p0", Buffer.from('{"customer":'));
        await promoteStep(p, "race-lead", THANK_YOU);
        await waitForState(p, "race-lead", THANK_YOU, "sent");
        await p.redis.hset(record, "p0", stored);
      },
    };
    const deps = {
      thankYous: actingAfterFirstRead(thankYous, once),
      // Read by versions that read the filing and the leader's step apart.
      store: actingAfterFirstRead(store, once),
    };
    const verdict = await joinedThankYou(deps, "cus-race", "race-member");
    expect(once.meanwhile).toBeUndefined();
    const [leaders] = await p.sink.waitForMessages(1);
    expect(leaders?.parsed.text ?? "").toContain("Shirt race-lead");
    expect(leaders?.parsed.text ?? "").not.toContain("Shirt race-member");
    // It was not thanked for: not skipped as coalesced.
    expect(verdict?.action).not.toBe("skip");

    // Its own thank-you goes, listing its order.
    expect(await thankYouSent(p, "race-member", 2)).toContain("Shirt race-member");
  });
});

describe("a leader's thank-you that goes out after its group has ended", () => {
  it("lists none of the purchases that joined, and each of them gets its own", async () => {
    pipeline = await startPipeline("coalesce-ended");
    const p = pipeline;
    await buy(p, "cus-ended", ["end-lead", 30], ["end-member", 10]);
    // The leader's thank-you waited past the group's end (a worker down for a week, say): as the
    // group is found then (its end, the last number of `tg`, has passed).
    const history = new StoreKeys(
      shardScope(p.prefix, p.shardOfCustomer("cus-ended"), p.shards),
    ).customerHistory("cus-ended");
    const group = ((await p.redis.hget(history, "tg")) ?? "").split(" ");
    expect(group).toHaveLength(6);
    group[5] = (Date.now() - 1000).toString(36);
    await p.redis.hset(history, "tg", group.join(" "));

    const leaders = await thankYouSent(p, "end-lead", 1);
    expect(leaders).toContain("Shirt end-lead");
    expect(leaders).not.toContain("Shirt end-member");
    expect(await thankYouSent(p, "end-member", 2)).toContain("Shirt end-member");
  });
});

describe("a leader's thank-you retried after the purchases that joined it were thanked on their own", () => {
  it("does not thank for them again", async () => {
    pipeline = await startPipeline("coalesce-retried");
    const p = pipeline;
    await buy(p, "cus-retried", ["rt-lead", 30], ["rt-member", 10]);
    // The leader's thank-you fails for good (the mailbox refused it): the member's goes on its own.
    p.sink.failNext({ code: 550, message: "mailbox unavailable" });
    await promoteStep(p, "rt-lead", THANK_YOU);
    await waitForState(p, "rt-lead", THANK_YOU, "failed");
    expect(await thankYouSent(p, "rt-member", 1)).toContain("Shirt rt-member");

    // The operator retries the leader's (`followups failed --retry`): it thanks for its own order.
    const rules = await shippedRules();
    const tools = createOperatorTools({
      redis: p.redis,
      prefix: p.prefix,
      shards: p.shards,
      rules: () => rules,
      followUps: new Shards(p.shards, (shard) => p.followUpQueues[shard] ?? p.followUps),
      events: p.events,
      outboxDir: p.outboxDir,
      sendLeaseMs: 120_000,
      now: Date.now,
    });
    const ref = `rt-lead/${THANK_YOU}`;
    await eventually(
      async () => ((await tools.failed({})).some((f) => f.ref === ref) ? true : undefined),
      "the leader's thank-you listed as failed",
    );
    expect((await tools.retryFailed({ refs: [ref] }, "alice")).requeued).toEqual([ref]);
    await waitForState(p, "rt-lead", THANK_YOU, "sent");
    const mails = await p.sink.waitForMessages(2);
    expect(mails[1]?.parsed.text ?? "").toContain("Shirt rt-lead");
    expect(mails[1]?.parsed.text ?? "").not.toContain("Shirt rt-member");
  });
});

/**
 * The worker restarted on the shipped rules with (`on`) or without `coalesce` on every rule: a
 * new rules generation, as a deploy of edited rules.
 */
async function coalescing(p: PipelineHarness, on: boolean): Promise<void> {
  await p.worker?.close();
  const file = path.join(p.configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  const rules = doc.get("rules");
  if (!isSeq(rules)) throw new Error("rules.yaml has no rules");
  for (const rule of rules.items) {
    if (!isMap(rule)) continue;
    // The shipped rules that coalesce, as shipped.
    if (!on) rule.delete("coalesce");
    else if (["thank-you", "big-ticket"].includes(String(rule.get("id"))))
      rule.set("coalesce", "PT1H");
  }
  await writeFile(file, doc.toString());
  await p.startWorker();
}

describe("a joined purchase's thank-you after the rules stopped coalescing", () => {
  it("is still skipped when the leader's went out listing it before", async () => {
    pipeline = await startPipeline("coalesce-off");
    const p = pipeline;
    await buy(p, "cus-off", ["off-lead", 30], ["off-member", 10]);
    const leaders = await thankYouSent(p, "off-lead", 1);
    expect(leaders).toContain("Shirt off-lead");
    expect(leaders).toContain("Shirt off-member");

    // Coalescing is taken out of every rule: the member's thank-you was thanked for all the same.
    await coalescing(p, false);
    await promoteStep(p, "off-member", THANK_YOU);
    const done = await waitForState(p, "off-member", THANK_YOU, "skipped");
    expect(done.reason?.code).toBe("coalesced");
    expect(p.sink.messages).toHaveLength(1);
  });
});

describe("a leader's thank-you sent while no rule coalesced, coalescing back before the member's", () => {
  it("lists none, and the purchase that joined gets its own", async () => {
    pipeline = await startPipeline("coalesce-twice");
    const p = pipeline;
    await buy(p, "cus-twice", ["tw-lead", 30], ["tw-member", 10]);
    await coalescing(p, false);
    const leaders = await thankYouSent(p, "tw-lead", 1);
    expect(leaders).toContain("Shirt tw-lead");
    expect(leaders).not.toContain("Shirt tw-member");

    await coalescing(p, true);
    expect(await thankYouSent(p, "tw-member", 2)).toContain("Shirt tw-member");
    // What it listed (none) is recorded, as for any leader.
    expect(await p.redis.hget((await keysOf(p, "tw-lead")).eventRecord("tw-lead"), "tj")).toBe(
      `${THANK_YOU}\n`,
    );
  });

  it("by a version that wrote no record of what it listed: the group it left open says it listed none", async () => {
    pipeline = await startPipeline("coalesce-twice-old");
    const p = pipeline;
    await buy(p, "cus-old", ["old-lead", 30], ["old-member", 10]);
    // A leader filed before leaders were (no `ty`), sent while no rule coalesced: as the versions
    // before `tj` sent it, it neither closed its group nor recorded anything.
    await p.redis.hdel((await keysOf(p, "old-lead")).eventRecord("old-lead"), "ty");
    await coalescing(p, false);
    const leaders = await thankYouSent(p, "old-lead", 1);
    expect(leaders).not.toContain("Shirt old-member");
    expect(
      await p.redis.hget((await keysOf(p, "old-lead")).eventRecord("old-lead"), "tj"),
    ).toBeNull();

    await coalescing(p, true);
    expect(await thankYouSent(p, "old-member", 2)).toContain("Shirt old-member");
  });
});

describe("purchases made while no rule coalesced, the rules coalescing later", () => {
  it("are filed nowhere and keep their own thank-yous; later purchases form groups of their own", async () => {
    pipeline = await startPipeline("coalesce-later");
    const p = pipeline;
    await coalescing(p, false);
    await buy(p, "cus-later", ["later-old", 40]);
    const recordOf = async (id: string) => (await keysOf(p, id)).eventRecord(id);
    // Intake files nothing while no rule coalesces: no `ty=lead`, no group.
    expect(await p.redis.hget(await recordOf("later-old"), "ty")).toBeNull();

    await coalescing(p, true);
    await buy(p, "cus-later", ["later-lead", 20], ["later-member", 10]);
    expect(await p.redis.hget(await recordOf("later-lead"), "ty")).toBe("lead");
    expect(await p.redis.hget(await recordOf("later-member"), "ty")).toMatch(
      /^joined\nlater-lead\n/,
    );
    // The older purchase's thank-you, looked at as one filed before leaders were, lists none
    // and records nothing; the group's leader lists its member, whose own is skipped.
    const old = await thankYouSent(p, "later-old", 1);
    expect(old).toContain("Shirt later-old");
    expect(old).not.toContain("Shirt later-lead");
    expect(old).not.toContain("Shirt later-member");
    expect(await p.redis.hget(await recordOf("later-old"), "tj")).toBeNull();
    const leaders = await thankYouSent(p, "later-lead", 2);
    expect(leaders).toContain("Shirt later-member");
    expect(leaders).not.toContain("Shirt later-old");
    await promoteStep(p, "later-member", THANK_YOU);
    expect((await waitForState(p, "later-member", THANK_YOU, "skipped")).reason?.code).toBe(
      "coalesced",
    );
    expect(p.sink.messages).toHaveLength(2);
  });
});

describe("a joined purchase's thank-you whose leader's stays scheduled with no job behind it", () => {
  it("stops waiting after the leader's grace period and goes on its own; the leader's, if it comes, is past due", async () => {
    pipeline = await startPipeline("coalesce-lost");
    const p = pipeline;
    await buy(p, "cus-lost", ["lost-lead", 30], ["lost-member", 10]);
    // The leader's thank-you fell due three days ago and its job was lost: its record says
    // scheduled, and no promoter will make it a job (its schedule line is for another bucket).
    const record = (await keysOf(p, "lost-lead")).eventRecord("lost-lead");
    const field = `s:${THANK_YOU}`;
    const raw = (await p.redis.hget(record, field)) ?? "";
    expect(raw).toMatch(/^set[0-9a-z]+/);
    const longAgo = Date.now() - 3 * 24 * 3600 * 1000;
    await p.redis.hset(record, field, raw.replace(/^set[0-9a-z]+/, `set${longAgo.toString(36)}`));
    expect((await stepRecordOf(p, "lost-lead", THANK_YOU))?.dueAt).toBe(longAgo);

    expect(await thankYouSent(p, "lost-member", 1)).toContain("Shirt lost-member");
    // Filed alone: the leader's, if its job turns up, would not list it (and is past due).
    expect(
      await p.redis.hget((await keysOf(p, "lost-member")).eventRecord("lost-member"), "ty"),
    ).toBe("alone");
    await promoteStep(p, "lost-lead", THANK_YOU);
    const leader = await waitForState(p, "lost-lead", THANK_YOU, "skipped");
    expect(leader.reason?.code).toBe("past-due");
    expect(p.sink.messages).toHaveLength(1);
  });
});

describe("a joined purchase's thank-you whose leader's stays `sending` (its worker died mid-send, its job gone)", () => {
  it("waits while that send may be live or taken over, then goes on its own as a possible duplicate; the leader's, if its job comes, is past due", async () => {
    pipeline = await startPipeline("coalesce-stuck");
    const p = pipeline;
    await buy(p, "cus-stuck", ["stuck-lead", 30], ["stuck-member", 10]);
    const { store, thankYous } = p.stores.of(p.shardOfCustomer("cus-stuck"));
    const HOUR = 3_600_000;
    // The shipped thank-you grace period (P2D), the pipeline's lease, and the margin past them
    // (an hour and a quarter, as for a leader's thank-you still scheduled).
    const graceMs = 48 * HOUR;
    const leaseMs = p.env.DELIVERY_LEASE_MS;
    const marginMs = 75 * 60_000;

    // On an injected clock: the leader's thank-you fell due three days ago; a worker claimed it a
    // second before its grace period ended, closed its group (listing the member) and died
    // mid-send, and its job is gone: its record says `sending`, and nothing will take it over.
    const record = (await keysOf(p, "stuck-lead")).eventRecord("stuck-lead");
    const field = `s:${THANK_YOU}`;
    const raw = (await p.redis.hget(record, field)) ?? "";
    expect(raw).toMatch(/^set[0-9a-z]+/);
    const dueAt = Date.now() - 3 * 24 * HOUR;
    await p.redis.hset(record, field, raw.replace(/^set[0-9a-z]+/, `set${dueAt.toString(36)}`));
    const claimedAt = dueAt + graceMs - 1000;
    const claim = await store.claim("stuck-lead", THANK_YOU, claimedAt, leaseMs, { dueAt });
    expect(claim.claimed).toBe(true);
    expect(await thankYous.close("cus-stuck", "stuck-lead", claimedAt, THANK_YOU)).toEqual([
      "stuck-member",
    ]);

    // Waited on while that send may be live (its lease), or taken over by another run of its job
    // (a stalled job's): also past the leader's grace end and the margin that frees a member from
    // a leader's still scheduled.
    const decideAt = (now: number) =>
      joinedThankYou({ thankYous }, "cus-stuck", "stuck-member", {
        graceMs,
        leaseMs,
        stepId: THANK_YOU,
        now,
      });
    expect((await decideAt(claimedAt + leaseMs))?.action).toBe("wait");
    expect((await decideAt(dueAt + graceMs + marginMs))?.action).toBe("wait");
    expect((await decideAt(claimedAt + leaseMs + marginMs - 1))?.action).toBe("wait");
    expect(
      await p.redis.hget((await keysOf(p, "stuck-member")).eventRecord("stuck-member"), "ty"),
    ).toMatch(/^joined\n/);

    // Three days on (now), it goes on its own, filed alone: never waiting for ever.
    expect(await thankYouSent(p, "stuck-member", 1)).toContain("Shirt stuck-member");
    expect(
      await p.redis.hget((await keysOf(p, "stuck-member")).eventRecord("stuck-member"), "ty"),
    ).toBe("alone");
    // The leader's message listed it and may have reached the customer: a possible duplicate,
    // counted in its step record and the metric, and logged with the leader's event id.
    expect((await stepRecordOf(p, "stuck-member", THANK_YOU))?.takeovers).toBe(1);
    expect(await p.worker?.metrics.registry.metrics()).toContain(
      'followups_possible_duplicates_total{cause="stuck-leader"} 1',
    );
    expect(
      p.logs.some(
        (line) =>
          line.leaderEventId === "stuck-lead" &&
          line.possibleDuplicate === true &&
          String(line.msg).startsWith("the thank-you this one joined is still being sent"),
      ),
    ).toBe(true);

    // The leader's job turns up after all: past due, it sends nothing.
    const queue = p.followUpQueues[await p.shardOf("stuck-lead")] ?? p.followUps;
    await queue.add(
      "email",
      { e: "stuck-lead", s: THANK_YOU },
      { jobId: followUpJobId("stuck-lead", THANK_YOU) },
    );
    const leader = await waitForState(p, "stuck-lead", THANK_YOU, "skipped");
    expect(leader.reason?.code).toBe("past-due");
    expect(p.sink.messages).toHaveLength(1);
  });
});
