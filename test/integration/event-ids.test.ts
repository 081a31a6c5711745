import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { EventIdConflictError } from "../../src/publisher.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  startPipeline,
  whereWaiting,
} from "../support/pipeline-harness.js";
import { httpAddressOf } from "../support/webhooks.js";

/** Event ids name one event: a repeat is a no-op, another event under the same id is refused. */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const ago = (hours: number) =>
  DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

function postEvent(p: PipelineHarness, body: unknown): Promise<Response> {
  return fetch(`${httpAddressOf(p)}/v1/events`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${p.envVars.API_TOKEN}`,
    },
    body: JSON.stringify(body),
  });
}

async function finished(p: PipelineHarness, jobId: string) {
  return eventually(async () => {
    const state = await (await p.events.getJob(jobId))?.getState();
    // Fetched once finished: one fetched before may lack its failed reason or return value.
    const job = await p.events.getJob(jobId);
    return job && (state === "completed" || state === "failed") ? { state, job } : undefined;
  }, `event job ${jobId} to finish`);
}

async function metric(p: PipelineHarness, name: string): Promise<number> {
  const text = (await p.worker?.metrics.registry.metrics()) ?? "";
  return Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1] ?? Number.NaN);
}

// One instant for the whole file: built per call, two calls a second apart would be two
// different events under one id (the repeat would be refused instead of being a no-op).
const tvAt = ago(2);
const tv = (customerId: string) =>
  purchaseInput({
    id: "evt-shared",
    orderId: `ord-${customerId}`,
    occurredAt: tvAt,
    customer: { id: customerId },
    items: [item("televisions", "700.00")],
  });

// With four shards the two customers live in different shards (0 and 2): the id is still refused.
describe.each([1, 4])("an event id used again, %i shard(s)", (shards) => {
  it("for the same event is accepted and changes nothing; for another event it is a 409 over HTTP", async () => {
    pipeline = await startPipeline("reused-http", { shards });
    const p = pipeline;
    // Key order and keys the contract does not know do not make it another event.
    const first = tv("cus-first");
    expect((await postEvent(p, first)).status).toBe(202);
    await finished(p, "evt-shared");
    const reordered = {
      extra: { from: "a newer publisher" },
      ...Object.fromEntries(Object.entries(first).reverse()),
    };
    expect((await postEvent(p, reordered)).status).toBe(202);

    // Its job cleaned up (as retention does after an hour), another customer's purchase under
    // the same id is refused, not merged into the first.
    await (await p.events.getJob("evt-shared"))?.remove();
    const other = await postEvent(p, tv("cus-second"));
    expect(other.status).toBe(409);
    expect(await other.json()).toEqual({
      error: "event id reused with different content",
      eventId: "evt-shared",
    });
    expect(await metric(p, "followups_events_id_reused_total")).toBe(1);
    expect(await p.events.getJob("evt-shared")).toBeUndefined();
    // The first purchase keeps its own follow-ups.
    expect((await p.store.loadEvent("evt-shared"))?.customer.id).toBe("cus-first");
  });

  it("for the same event with its instant written another way is the same event; a millisecond later is another", async () => {
    pipeline = await startPipeline("reused-instant", { shards });
    const p = pipeline;
    const first = tv("cus-first");
    expect((await postEvent(p, first)).status).toBe(202);
    expect((await finished(p, "evt-shared")).state).toBe("completed");
    await (await p.events.getJob("evt-shared"))?.remove();

    // tvAt is whole seconds in UTC ("…Z"); the same instant with milliseconds and with an offset.
    const utc = DateTime.fromISO(tvAt, { zone: "utc" });
    const withMillis = utc.toISO() ?? "";
    const inBerlin = utc.setZone("Europe/Berlin").toISO({ suppressMilliseconds: true }) ?? "";
    expect(inBerlin).not.toContain("Z");
    for (const occurredAt of [withMillis, inBerlin]) {
      expect((await postEvent(p, { ...first, occurredAt })).status).toBe(202);
      expect((await finished(p, "evt-shared")).state).toBe("completed");
      await (await p.events.getJob("evt-shared"))?.remove();
    }
    // Straight onto the queue too: a repeat, not a failed job.
    await p.events.add(
      "purchase.completed",
      { ...first, occurredAt: inBerlin },
      { jobId: "evt-shared" },
    );
    expect((await finished(p, "evt-shared")).state).toBe("completed");
    await (await p.events.getJob("evt-shared"))?.remove();
    expect(await metric(p, "followups_events_id_reused_total")).toBe(0);

    const later = utc.plus({ milliseconds: 1 }).toISO() ?? "";
    expect((await postEvent(p, { ...first, occurredAt: later })).status).toBe(409);
    expect(await metric(p, "followups_events_id_reused_total")).toBe(1);
    // One purchase, as first written, counted once.
    expect((await p.store.loadEvent("evt-shared"))?.occurredAt).toBe(tvAt);
    const shard = p.stores.of(p.shardOfCustomer("cus-first"));
    expect(await shard.history.purchasesOf("cus-first")).toHaveLength(1);
  });

  it("on the queue fails the job with the reason, and a refund under a purchase's id cancels nothing", async () => {
    pipeline = await startPipeline("reused-queue", { shards });
    const p = pipeline;
    await p.publisher.publish(tv("cus-first") as never);
    await finished(p, "evt-shared");
    await (await p.events.getJob("evt-shared"))?.remove();

    // Straight onto the queue, as a publisher without the typed publisher does.
    await p.events.add("purchase.completed", tv("cus-second"), { jobId: "evt-shared" });
    const { state, job } = await finished(p, "evt-shared");
    expect(state).toBe("failed");
    expect(job.failedReason).toBe("event id reused with different content: evt-shared");
    expect(job.attemptsMade).toBe(1);
    await job.remove();

    const refund = {
      type: "purchase.refunded",
      id: "evt-shared",
      occurredAt: ago(1),
      orderId: "ord-cus-first",
    };
    await p.events.add("purchase.refunded", refund, { jobId: "evt-shared" });
    expect((await finished(p, "evt-shared")).state).toBe("failed");
    const checkIn = (await p.store.stepRecords("evt-shared", ["big-ticket.check-in"])).get(
      "big-ticket.check-in",
    );
    expect(checkIn?.state).toBe("scheduled");
    expect(await whereWaiting(p, "evt-shared", "big-ticket.check-in")).toBe("schedule");
    expect(await metric(p, "followups_events_id_reused_total")).toBe(2);
  });

  it("of a purchase whose order was refunded before it arrived is kept: another purchase under it is refused", async () => {
    pipeline = await startPipeline("reused-refunded", { shards });
    const p = pipeline;
    await p.events.add(
      "purchase.refunded",
      { type: "purchase.refunded", id: "ref-first", occurredAt: ago(1), orderId: "ord-cus-first" },
      { jobId: "ref-first" },
    );
    expect((await finished(p, "ref-first")).state).toBe("completed");
    await p.events.add("purchase.completed", tv("cus-first"), { jobId: "evt-shared" });
    const first = await finished(p, "evt-shared");
    expect(first.state).toBe("completed");
    expect(first.job.returnvalue).toMatchObject({ refunded: true, planned: 0 });
    await first.job.remove();

    // The same purchase again is a repeat; another customer's purchase under its id is refused.
    await p.events.add("purchase.completed", tv("cus-first"), { jobId: "evt-shared" });
    expect((await finished(p, "evt-shared")).state).toBe("completed");
    await (await p.events.getJob("evt-shared"))?.remove();
    await p.events.add("purchase.completed", tv("cus-second"), { jobId: "evt-shared" });
    const second = await finished(p, "evt-shared");
    expect(second.state).toBe("failed");
    expect(second.job.failedReason).toBe("event id reused with different content: evt-shared");
    expect(await p.store.loadEvent("evt-shared")).toBeUndefined();
  });

  it("while the first is still queued is refused by the publisher; the same event is a no-op", async () => {
    pipeline = await startPipeline("reused-publisher", { startWorker: false, shards });
    const p = pipeline;
    // One event, published twice.
    const first = tv("cus-first");
    expect(await p.publisher.publish(first as never)).toEqual({
      eventId: "evt-shared",
      jobId: "evt-shared",
    });
    expect(await p.publisher.publish(first as never)).toEqual({
      eventId: "evt-shared",
      jobId: "evt-shared",
    });
    await expect(p.publisher.publish(tv("cus-second") as never)).rejects.toThrow(
      EventIdConflictError,
    );
    const queued = await p.events.getJob("evt-shared");
    expect(queued?.data.customer.id).toBe("cus-first");
  });

  it("published twice at once with other content is enqueued once: the other publish is refused, not lost", async () => {
    pipeline = await startPipeline("reused-race", { startWorker: false, shards });
    const p = pipeline;
    // Both look the id up before either adds its job; BullMQ then adds the second one silently
    // not at all, and a publisher told it was enqueued would have lost it.
    const outcomes = await Promise.allSettled([
      p.publisher.publish(tv("cus-first") as never),
      p.publisher.publish(tv("cus-second") as never),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "rejected"]);
    expect((outcomes[1] as PromiseRejectedResult).reason).toBeInstanceOf(EventIdConflictError);
    expect((await p.events.getJob("evt-shared"))?.data.customer.id).toBe("cus-first");
    // The same event at once twice is one event, and neither publish is refused.
    const again = tv("cus-first");
    const same = await Promise.allSettled([
      p.publisher.publish({ ...again, id: "evt-twice" } as never),
      p.publisher.publish({ ...again, id: "evt-twice" } as never),
    ]);
    expect(same.map((outcome) => outcome.status)).toEqual(["fulfilled", "fulfilled"]);
  });
});

describe("an event refused as invalid on the queue", () => {
  it("holds no id: the corrected event under it is enqueued and taken in", async () => {
    pipeline = await startPipeline("reused-invalid");
    const p = pipeline;
    // Added by hand (another language's BullMQ client), with an address that is not one.
    const corrected = purchaseInput({
      id: "evt-fixed",
      orderId: "ord-fixed",
      occurredAt: ago(2),
      items: [item("televisions", "700.00")],
    });
    const customer = corrected.customer as Record<string, unknown>;
    const invalid = { ...corrected, customer: { ...customer, email: "ana at example" } };
    await p.events.add("purchase.completed", invalid as never, { jobId: "evt-fixed" });
    expect((await finished(p, "evt-fixed")).job.failedReason).toMatch(/^invalid event: /);

    // Not "event id reused with different content": the id names no event yet.
    const answer = await postEvent(p, corrected);
    expect([answer.status, await answer.json()]).toEqual([202, { eventId: "evt-fixed" }]);
    const taken = await finished(p, "evt-fixed");
    expect(taken.state).toBe("completed");
    expect((await p.store.loadEvent("evt-fixed"))?.customer.email).toBe(customer.email);
    expect(await metric(p, "followups_events_id_reused_total")).toBe(0);
  });

  it("holds no id when refused for a date ahead of the clock: its corrected event is taken in", async () => {
    pipeline = await startPipeline("reused-ahead");
    const p = pipeline;
    // Day and month swapped by the publisher: a date weeks ahead, refused by intake alone.
    const ahead = DateTime.utc().plus({ days: 40 }).startOf("second").toISO({
      suppressMilliseconds: true,
    });
    const corrected = purchaseInput({
      id: "evt-dated",
      orderId: "ord-dated",
      occurredAt: ago(2),
      items: [item("televisions", "700.00")],
    });
    await p.events.add("purchase.completed", { ...corrected, occurredAt: ahead } as never, {
      jobId: "evt-dated",
    });
    expect((await finished(p, "evt-dated")).job.failedReason).toMatch(
      /^invalid event: occurredAt: .* is more than a day after now/,
    );

    // Not "event id reused with different content": the id names no event yet.
    const answer = await postEvent(p, corrected);
    expect([answer.status, await answer.json()]).toEqual([202, { eventId: "evt-dated" }]);
    expect((await finished(p, "evt-dated")).state).toBe("completed");
    expect((await p.store.loadEvent("evt-dated"))?.occurredAt).toBe(corrected.occurredAt);
    expect(await metric(p, "followups_events_id_reused_total")).toBe(0);
  });
});

describe("an event refused on the queue for an id used before", () => {
  it("holds no id: the event that owns the id, published again, is a repeat, not a 409", async () => {
    pipeline = await startPipeline("reused-refused");
    const p = pipeline;
    const first = tv("cus-first");
    expect((await postEvent(p, first)).status).toBe(202);
    expect((await finished(p, "evt-shared")).state).toBe("completed");
    await (await p.events.getJob("evt-shared"))?.remove();
    // Another purchase under the id, added by hand: refused, and kept in the failed set.
    await p.events.add("purchase.completed", tv("cus-second"), { jobId: "evt-shared" });
    const refused = await finished(p, "evt-shared");
    expect(refused.job.failedReason).toBe("event id reused with different content: evt-shared");

    // The refused job holds no claim on the id: the first event's publisher retrying it (or
    // `followups publish`, which asks `conflicts`) is told it is accepted, and it is a repeat.
    expect(await p.publisher.conflicts(first as never)).toBe(false);
    const answer = await postEvent(p, first);
    expect([answer.status, await answer.json()]).toEqual([202, { eventId: "evt-shared" }]);
    const again = await finished(p, "evt-shared");
    expect(again.state).toBe("completed");
    expect(again.job.data.customer.id).toBe("cus-first");
    await again.job.remove();
    expect(await p.publisher.publish(first as never)).toEqual({
      eventId: "evt-shared",
      jobId: "evt-shared",
    });
    expect((await finished(p, "evt-shared")).state).toBe("completed");
    const shard = p.stores.of(p.shardOfCustomer("cus-first"));
    expect(await shard.history.purchasesOf("cus-first")).toHaveLength(1);
    expect((await p.store.loadEvent("evt-shared"))?.customer.id).toBe("cus-first");
    // The refused one is still refused when published again (with the typed publisher too).
    expect((await postEvent(p, tv("cus-second"))).status).toBe(409);
    expect(await metric(p, "followups_events_id_reused_total")).toBe(2);
  });
});

describe("what publishers enqueue", () => {
  it("is contract v1 without unknown keys, however deep they are nested", async () => {
    pipeline = await startPipeline("stripped");
    const p = pipeline;
    // 25,000 levels of arrays fit the 64 kB body limit, and are more than JSON.stringify can
    // write back (it overflows the stack): enqueued as given, they made BullMQ's add throw.
    const deep = `${"[".repeat(25_000)}${"]".repeat(25_000)}`;
    const event = JSON.stringify({
      ...purchaseInput({ id: "evt-deep", orderId: "ord-deep", occurredAt: ago(2) }),
      publisherMeta: "DEEP",
    }).replace('"DEEP"', deep);
    const answer = await fetch(`${httpAddressOf(p)}/v1/events`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${p.envVars.API_TOKEN}`,
      },
      body: event,
    });
    expect(answer.status).toBe(202);
    const job = await p.events.getJob("evt-deep");
    expect(Object.keys(job?.data ?? {})).not.toContain("publisherMeta");
    expect((await finished(p, "evt-deep")).state).toBe("completed");
    await p.sink.waitForMessages(1);
  });
});

describe("a voice step", () => {
  it("is skipped, not counted as sent, while calls are not available and other channels are real", async () => {
    pipeline = await startPipeline("voice", { startWorker: false, calls: false });
    const p = pipeline;
    const rulesFile = path.join(p.configDir, "rules.yaml");
    const doc = parseDocument(await readFile(rulesFile, "utf8"));
    doc.setIn(
      ["rules", 2, "steps", 1],
      doc.createNode({ kind: "check-in", channel: "voice", template: "check-in", delay: "PT1H" }),
    );
    await writeFile(rulesFile, doc.toString());
    await p.startWorker();
    await p.publisher.publish(
      purchaseInput({
        id: "evt-voice",
        orderId: "ord-voice",
        occurredAt: ago(3),
        customer: { consent: { email: true, sms: true, voice: true } },
        items: [item("televisions", "700.00")],
      }) as never,
    );
    const record = await eventually(async () => {
      const found = (await p.store.stepRecords("evt-voice", ["big-ticket.check-in"])).get(
        "big-ticket.check-in",
      );
      return found?.state === "skipped" ? found : undefined;
    }, "the voice check-in to be skipped");
    expect(record.reason).toEqual({
      code: "channel-unavailable",
      text: "voice calls need Twilio credentials, a caller id (TWILIO_CALLER_ID or TWILIO_FROM) and PUBLIC_URL",
    });
    // Nothing was written to the outbox in its place.
    expect(await readdir(p.outboxDir, { recursive: true }).catch(() => [])).toEqual([]);
    const sent = (await p.worker?.metrics.registry.metrics()) ?? "";
    expect(sent).not.toMatch(/^followups_sent_total\{channel="voice"/m);
  });
});
