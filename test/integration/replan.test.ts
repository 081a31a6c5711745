import { execFileSync } from "node:child_process";
import { constants } from "node:fs";
import { cp, type FileHandle, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { Queue } from "bullmq";
import { DateTime, Duration } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { runReplan } from "../../src/cli/replan-command.js";
import { loadConfig } from "../../src/config/load-config.js";
import { loadRules } from "../../src/config/load-rules.js";
import { planFollowUps } from "../../src/domain/planner.js";
import { ruleIdOf } from "../../src/domain/step-ref.js";
import { createLogger, type Logger } from "../../src/logger.js";
import { FollowUpMetrics } from "../../src/metrics.js";
import { followUpJobId, OWNER_REPORTS_QUEUE, queuePrefix } from "../../src/queue/names.js";
import { createPromoter } from "../../src/queue/promoter.js";
import { createReplanner } from "../../src/queue/replanner.js";
import type { RulePreview } from "../../src/reports/replan-preview.js";
import { CustomerHistoryStore } from "../../src/store/customer-history.js";
import { CustomerIndex } from "../../src/store/customer-index.js";
import { sumHours } from "../../src/store/delivery-ledger.js";
import { FollowUpSchedule } from "../../src/store/follow-up-schedule.js";
import { FollowUpStore } from "../../src/store/follow-up-store.js";
import { bucketOf, idHash, packedPlace, StoreKeys, shardScope } from "../../src/store/keys.js";
import { OrderStore } from "../../src/store/order-store.js";
import { createRedisClient, isRedisUnavailable } from "../../src/store/redis-client.js";
import { RulesGenerations } from "../../src/store/rules-generations.js";
import { claimShardCount } from "../../src/store/shards.js";
import type { StepRecord } from "../../src/store/step-record.js";
import { ThankYouGroups } from "../../src/store/thank-you-groups.js";
import { startWorker } from "../../src/worker.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  channelsFor,
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  waitForState,
  whereWaiting,
} from "../support/pipeline-harness.js";
import { withTwoOffers } from "../support/rules-config.js";
import { withVoiceCheckIn } from "../support/voice-check-in.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const iso = (time: DateTime) =>
  time.toUTC().startOf("second").toISO({ suppressMilliseconds: true });

function buy(id: string, category: string, price: string, occurredAt: DateTime) {
  return purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: iso(occurredAt) ?? "",
    // One customer each: no purchase counts towards another's loyalty rule.
    customer: { id: `cus-${id}` },
    items: [item(category, price)],
  });
}

async function editRules(
  p: PipelineHarness,
  edit: (doc: ReturnType<typeof parseDocument>) => void,
) {
  const file = path.join(p.configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  edit(doc);
  await writeFile(file, doc.toString());
}

async function step(p: PipelineHarness, eventId: string, stepId: string): Promise<StepRecord> {
  const record = (await p.store.stepRecords(eventId, [stepId])).get(stepId);
  if (!record) throw new Error(`no record of ${eventId} ${stepId}`);
  return record;
}

/**
 * A re-planner as a worker wires it, on `clock`: over shard `shard`'s stores, or over the
 * unsharded prefix's (a deployment of one shard).
 */
function replannerOf(
  p: PipelineHarness,
  clock: () => DateTime,
  shard?: number,
  /** Parts the test watches or changes, instead of the worker's own. */
  with_: {
    store?: FollowUpStore;
    schedule?: FollowUpSchedule;
    metrics?: FollowUpMetrics;
    logger?: Logger;
  } = {},
) {
  const stores = shard === undefined ? undefined : p.stores.of(shard);
  return createReplanner({
    store: with_.store ?? p.store,
    schedule: with_.schedule ?? stores?.schedule ?? new FollowUpSchedule(p.redis, p.prefix),
    history: stores?.history ?? new CustomerHistoryStore(p.redis, p.prefix),
    thankYous: stores?.thankYous ?? new ThankYouGroups(p.redis, p.prefix),
    orders: new OrderStore(p.redis, p.prefix),
    customers: new CustomerIndex(p.redis, p.prefix),
    ...(with_.metrics && { metrics: with_.metrics }),
    logger: with_.logger ?? createLogger({ level: "silent", pretty: false }),
    clock,
    horizonMs: p.env.PROMOTE_HORIZON_MS,
    recordRetentionMs: 90 * 86_400_000,
  });
}

/** A logger whose lines the test reads, parsed. */
function capturedLog() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    pretty: false,
    destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
  });
  return { lines, logger };
}

/** Waits until each step (event id, step id) waits in the schedule: its purchase is planned. */
async function allInSchedule(p: PipelineHarness, steps: readonly [string, string][]) {
  await eventually(async () => {
    const waiting = await Promise.all(steps.map(([e, s]) => whereWaiting(p, e, s)));
    return waiting.every((where) => where === "schedule") ? true : undefined;
  }, "every purchase to be planned");
}

/** Publishes each purchase and waits until it is taken in, one after the other. */
async function takeInTurn(p: PipelineHarness, purchases: readonly Record<string, unknown>[]) {
  for (const purchase of purchases) {
    await p.publisher.publish(purchase as never);
    await eventProcessed(p, String(purchase.id));
  }
}

/**
 * Two purchases of a pan by `customerId` a minute apart (the shipped thank-you rule coalesces):
 * the second's thank-you joins the first's, 15 minutes behind it. Their thank-yous' records.
 */
async function twoPansJoined(p: PipelineHarness, customerId: string) {
  const now = DateTime.utc();
  const pan = (id: string, at: DateTime) =>
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: iso(at) ?? "",
      customer: { id: customerId },
      items: [item("kitchenware", "75.00")],
    });
  await takeInTurn(p, [pan("evt-first", now.minus({ minutes: 1 })), pan("evt-second", now)]);
  const first = await step(p, "evt-first", "thank-you.thank-you");
  const second = await step(p, "evt-second", "thank-you.thank-you");
  expect(second.dueAt).toBe(first.dueAt + 15 * 60_000);
  return { first, second };
}

/** Index of a rule in the shipped rules.yaml, by id. */
function ruleIndex(doc: ReturnType<typeof parseDocument>, id: string): number {
  const rules = doc.toJS().rules as { id: string }[];
  const index = rules.findIndex((rule) => rule.id === id);
  if (index < 0) throw new Error(`no rule ${id}`);
  return index;
}

/** Sets the first step of rule `ruleId` in the rules of `configDir` to `spec`. */
async function withFirstStep(configDir: string, ruleId: string, spec: Record<string, string>) {
  const file = path.join(configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  doc.setIn(["rules", ruleIndex(doc, ruleId), "steps", 0], doc.createNode(spec));
  await writeFile(file, doc.toString());
}

/**
 * A copy of the pipeline's rules (`<configDir>-draft`) with `edit` made to it, and what
 * `replan --dry-run` previews of them.
 */
async function previewDraft(p: PipelineHarness, edit: (dir: string) => Promise<void>) {
  const draft = `${p.configDir}-draft`;
  await cp(p.configDir, draft, { recursive: true });
  await edit(draft);
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  expect(await runReplan({ config: draft, dryRun: true, json: true }, io)).toBe(0);
  const preview = JSON.parse(io.output()) as { generation: number; rules: RulePreview[] };
  return { draft, preview };
}

/** Deploys the draft's rules to the pipeline's worker: its summary of the walk they start. */
async function deployDraft(p: PipelineHarness, draft: string) {
  await writeFile(
    path.join(p.configDir, "rules.yaml"),
    await readFile(path.join(draft, "rules.yaml"), "utf8"),
  );
  return eventually(
    async () => p.logs.find((line) => line.msg === "scheduled follow-ups re-planned"),
    "the worker's summary of its walk",
  );
}

describe("re-planning when the rules change", () => {
  it("moves changed delays, cancels removed and no longer matching steps, skips past-grace ones, once", async () => {
    pipeline = await startPipeline("replan");
    const p = pipeline;
    const now = DateTime.utc();
    await p.publisher.publish(buy("evt-tv", "televisions", "899.00", now) as never);
    await p.publisher.publish(buy("evt-pan", "kitchenware", "75.00", now) as never);
    await p.publisher.publish(buy("evt-laptop", "laptops", "400.00", now) as never);
    // Bought 20 days ago: the thank-you is past its grace already, the check-in is 70 days out.
    await p.publisher.publish(
      buy("evt-old", "televisions", "899.00", now.minus({ days: 20 })) as never,
    );
    await allInSchedule(p, [
      ["evt-tv", "big-ticket.check-in"],
      ["evt-pan", "thank-you.thank-you"],
      ["evt-laptop", "accessories.discount"],
      ["evt-old", "big-ticket.check-in"],
    ]);
    const tvCheckIn = await step(p, "evt-tv", "big-ticket.check-in");
    const first = (await p.store.generationOf("evt-tv")) ?? 0;
    expect(first).toBeGreaterThan(0);
    // A note that its job waits (as a send window leaves it) is of the old due time.
    const waitsUntil = tvCheckIn.dueAt + 3_600_000;
    await p.store.notePostponed("evt-tv", "big-ticket.check-in", waitsUntil, "send-window");
    expect((await step(p, "evt-tv", "big-ticket.check-in")).postponed?.until).toBe(waitsUntil);

    // One edit: the check-in four months out, the plain thank-you from 100, no accessories offer.
    await editRules(p, (doc) => {
      doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], "P4M");
      doc.setIn(["rules", ruleIndex(doc, "thank-you"), "when", "total", "min"], 100);
      doc.deleteIn(["rules", ruleIndex(doc, "accessories")]);
    });
    const pan = await eventually(async () => {
      const record = await step(p, "evt-pan", "thank-you.thank-you");
      return record.state === "cancelled" ? record : undefined;
    }, "the thank-you that no longer matches to be cancelled");
    expect(pan.reason?.code).toBe("no-longer-matches");
    expect(pan.reason?.text).toMatch(/no longer matches: rule thank-you: .*100/);
    // Purchases are re-planned in batches, in no set order: the laptop's may come after the pan's.
    const laptop = await eventually(async () => {
      const record = await step(p, "evt-laptop", "accessories.discount");
      return record.state === "cancelled" ? record : undefined;
    }, "the removed rule's step to be cancelled");
    expect(laptop).toMatchObject({ state: "cancelled", reason: { code: "rule-removed" } });
    const moved = await eventually(async () => {
      const record = await step(p, "evt-tv", "big-ticket.check-in");
      return record.dueAt !== tvCheckIn.dueAt ? record : undefined;
    }, "the check-in to move");
    const bought = now.setZone("Europe/London");
    const dueLocal = DateTime.fromMillis(moved.dueAt, { zone: "Europe/London" });
    expect(dueLocal.toISODate()).toBe(bought.plus({ months: 4 }).toISODate());
    expect(moved.state).toBe("scheduled");
    expect(moved.postponed).toBeUndefined();
    expect(await whereWaiting(p, "evt-tv", "big-ticket.check-in")).toBe("schedule");
    // The TV's thank-you was not touched; the generation moved on by one.
    expect((await step(p, "evt-tv", "big-ticket.thank-you")).state).toBe("scheduled");
    expect(await p.store.generationOf("evt-tv")).toBe(first + 1);
    // Every purchase of the walk is re-planned before its counts are read.
    for (const id of ["evt-pan", "evt-laptop", "evt-old"])
      await eventually(
        async () => ((await p.store.generationOf(id)) === first + 1 ? true : undefined),
        `${id} to be re-planned`,
      );

    // The cancellations are counted once, under their reason.
    // Shard 0's ledger reads every shard's, as reports do.
    const ledger = p.stores.of(0).ledger;
    const counted = async () =>
      sumHours(await ledger.hours(Date.now() - 7_200_000, Date.now() + 3_600_000));
    await eventually(
      async () =>
        (await counted()).get("reason|cancelled|email|discount|rule-removed") === 1
          ? true
          : undefined,
      "the removed step to be counted",
    );
    const totals = await counted();
    expect(totals.get("reason|cancelled|email|thank-you|no-longer-matches")).toBe(1);
    // The pending counts follow: the thank-yous of the TV and the laptop, three check-ins.
    const pending = await ledger.pending(Date.now() - 86_400_000, 200);
    expect(pending).toEqual({ email: 2, sms: 3, voice: 0 });

    // A second edit: the check-in a day after the purchase. evt-tv's moves to tomorrow; evt-old's
    // would have been due 19 days ago, past its 14-day grace: skipped, never sent late.
    await editRules(p, (doc) => {
      doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], "P1D");
    });
    const old = await eventually(async () => {
      const record = await step(p, "evt-old", "big-ticket.check-in");
      return record.state === "skipped" ? record : undefined;
    }, "the past-grace check-in to be skipped");
    expect(old.reason?.code).toBe("past-due");
    const tomorrow = await eventually(async () => {
      const record = await step(p, "evt-tv", "big-ticket.check-in");
      return record.dueAt < moved.dueAt ? record : undefined;
    }, "the check-in to move to tomorrow");
    const aDayOn = now.setZone("Europe/London").plus({ days: 1 }); // a calendar day in London
    expect(Math.abs(tomorrow.dueAt - aDayOn.toMillis())).toBeLessThan(1_000);
    // The record (and the purchase in it) is kept RECORD_RETENTION_DAYS after its latest step,
    // no longer: with the check-in earlier, for four months less.
    const recordKey = new StoreKeys(
      shardScope(p.prefix, await p.shardOf("evt-tv"), p.shards),
    ).eventRecord("evt-tv");
    const retention = p.env.RECORD_RETENTION_DAYS * 86_400_000;
    expect(await p.redis.pexpiretime(recordKey)).toBe(tomorrow.dueAt + retention);
    expect(await p.store.generationOf("evt-tv")).toBe(first + 2);
    expect(await ledger.pending(Date.now() - 86_400_000, 200)).toEqual({
      email: 2,
      sms: 2,
      voice: 0,
    });
    expect(p.twilio.messages).toHaveLength(0);
  });
});

describe("a step a re-plan moves beyond its order's link (kept about 400 days from intake)", () => {
  it("is still found through its order by a refund up to its new due time", async () => {
    pipeline = await startPipeline("replan-order-link");
    const p = pipeline;
    const now = DateTime.utc();
    await p.publisher.publish(buy("evt-tv-long", "televisions", "899.00", now) as never);
    await allInSchedule(p, [["evt-tv-long", "big-ticket.check-in"]]);
    const planned = await step(p, "evt-tv-long", "big-ticket.check-in");
    // The check-in 14 months out (about 426 days): later than the order link intake gave the
    // purchase (its three-month check-in and RECORD_RETENTION_DAYS, at least 400 days).
    await editRules(p, (doc) => {
      doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], "P14M");
    });
    const moved = await eventually(async () => {
      const record = await step(p, "evt-tv-long", "big-ticket.check-in");
      return record.dueAt > planned.dueAt ? record : undefined;
    }, "the check-in to move 14 months out");
    expect(moved.dueAt - Date.now()).toBeGreaterThan(420 * 86_400_000);

    // A refund a day before the check-in is due, as the refunds of that day find their purchase.
    const dayBefore = moved.dueAt - 86_400_000;
    const orders = new OrderStore(p.redis, p.prefix, { now: () => dayBefore });
    const refunded = await orders.addRefund("ord-evt-tv-long", "ref-late", {}, 400 * 86_400_000);
    expect(refunded.fullyRefunded).toBe(true);
    expect(refunded.eventIds).toEqual(["evt-tv-long"]);
    // And the link's bucket is still there then (Redis expires the key, not only the entry).
    const { bucket } = packedPlace(idHash("ord-evt-tv-long"));
    expect(await p.redis.pexpiretime(new StoreKeys(p.prefix).orderLinks(bucket))).toBeGreaterThan(
      dayBefore,
    );
  });
});

describe("re-planning and cooldowns", () => {
  const offer = (id: string, category: string) =>
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: iso(DateTime.utc()) ?? "",
      customer: { id: "cus-offers" },
      items: [item(category, "40.00")],
    });
  const discountOf = async (p: PipelineHarness, eventId: string, stepId: string) =>
    (await p.store.stepRecords(eventId, [stepId])).get(stepId);
  /** Rules no worker has seen: the shipped offers, the sofa's after `sofa`. */
  const draftRules = async (p: PipelineHarness, name: string, sofa: string) => {
    const dir = `${p.configDir}-${name}`;
    await cp(p.configDir, dir, { recursive: true });
    await withTwoOffers(dir, { garden: "P20D", sofa });
    const loaded = await loadRules(dir);
    if (!loaded.ok) throw new Error("the draft rules should be valid");
    return { dir, rules: loaded.rules };
  };
  /** A re-planner of the customer's shard whose reads of recent steps first run `meanwhile`. */
  const replannerReading = (p: PipelineHarness, meanwhile: () => Promise<void>) => {
    const stores = p.stores.of(p.shardOfCustomer("cus-offers"));
    let reads = 0;
    const replanner = createReplanner({
      store: p.store,
      schedule: stores.schedule,
      history: {
        historyAt: (eventId) => stores.history.historyAt(eventId),
        rememberSteps: (...args) => stores.history.rememberSteps(...args),
        keepUntil: (...args) => stores.history.keepUntil(...args),
        async recentSteps(customerId, eventId) {
          const recent = await stores.history.recentSteps(customerId, eventId);
          if (++reads === 1) await meanwhile();
          return recent;
        },
      },
      thankYous: stores.thankYous,
      orders: new OrderStore(p.redis, p.prefix),
      customers: new CustomerIndex(p.redis, p.prefix),
      logger: createLogger({ level: "silent", pretty: false }),
      clock: () => DateTime.utc(),
      horizonMs: p.env.PROMOTE_HORIZON_MS,
      recordRetentionMs: 90 * 86_400_000,
    });
    return { replanner, reads: () => reads, history: stores.history };
  };

  it("a step a re-plan moves holds the customer's later purchases to its new due time", async () => {
    pipeline = await startPipeline("replan-cool-later", { startWorker: false });
    const p = pipeline;
    await withTwoOffers(p.configDir, { garden: "P20D" });
    await p.startWorker();
    await p.publisher.publish(offer("evt-garden", "garden-care") as never);
    await eventually(
      async () =>
        (await whereWaiting(p, "evt-garden", "garden-offer.discount")) ? true : undefined,
      "the garden offer to be planned",
    );
    const planned = await step(p, "evt-garden", "garden-offer.discount");
    // Garden care's offer moves from 20 to 50 days after the purchase.
    await withTwoOffers(p.configDir, { garden: "P50D" });
    await eventually(
      async () =>
        (await step(p, "evt-garden", "garden-offer.discount")).dueAt > planned.dueAt
          ? true
          : undefined,
      "the garden offer to move",
    );
    // A sofa's offer, 60 days on: 40 days after where the garden offer was, 10 after where it is.
    await p.publisher.publish(offer("evt-sofa", "sofas") as never);
    await eventProcessed(p, "evt-sofa");
    expect(await discountOf(p, "evt-sofa", "sofa-offer.discount")).toBeUndefined();
  });

  it("a step a re-plan cancels no longer holds the customer's later purchases", async () => {
    pipeline = await startPipeline("replan-cool-cancelled", { startWorker: false });
    const p = pipeline;
    await withTwoOffers(p.configDir, { garden: "P20D", sofa: "P25D" });
    await p.startWorker();
    await p.publisher.publish(offer("evt-sofa", "sofas") as never);
    await eventProcessed(p, "evt-sofa");
    expect((await step(p, "evt-sofa", "sofa-offer.discount")).state).toBe("scheduled");
    // The sofa offer's rule now matches armchairs only: its step is cancelled, as fresh planning
    // would plan none for the sofa.
    await editRules(p, (doc) =>
      doc.setIn(
        ["rules", ruleIndex(doc, "sofa-offer"), "when"],
        doc.createNode({ anyItem: { categories: ["armchairs"] } }),
      ),
    );
    await eventually(async () => {
      const record = await step(p, "evt-sofa", "sofa-offer.discount");
      return record.state === "cancelled" ? true : undefined;
    }, "the sofa offer to be cancelled");
    // A garden purchase now: its offer, 20 days on, is five days from where the cancelled one
    // was, and no discount is planned within the cooldown.
    await p.publisher.publish(offer("evt-garden", "garden-care") as never);
    await eventProcessed(p, "evt-garden");
    expect(await discountOf(p, "evt-garden", "garden-offer.discount")).toMatchObject({
      state: "scheduled",
    });
  });

  it("a step a re-plan would move within the cooldown of another purchase's is skipped", async () => {
    pipeline = await startPipeline("replan-cool-into", { startWorker: false });
    const p = pipeline;
    await withTwoOffers(p.configDir, { garden: "P20D" });
    await p.startWorker();
    await takeInTurn(p, [offer("evt-garden", "garden-care"), offer("evt-sofa", "sofas")]);
    const sofa = await step(p, "evt-sofa", "sofa-offer.discount");
    expect(sofa.state).toBe("scheduled");
    // The sofa's offer would move from 60 to 25 days: five days after the garden offer.
    await withTwoOffers(p.configDir, { garden: "P20D", sofa: "P25D" });
    const skipped = await eventually(async () => {
      const record = await step(p, "evt-sofa", "sofa-offer.discount");
      return record.state === "scheduled" && record.dueAt === sofa.dueAt ? undefined : record;
    }, "the sofa offer to be re-planned");
    expect(skipped).toMatchObject({ state: "skipped", reason: { code: "cooldown" } });
    expect((await step(p, "evt-garden", "garden-offer.discount")).state).toBe("scheduled");
  });

  it("a purchase taken in while a re-plan moves a step: the re-plan, second to remember, is made again and held", async () => {
    pipeline = await startPipeline("replan-cool-race", { startWorker: false });
    const p = pipeline;
    await withTwoOffers(p.configDir, { garden: "P20D" });
    await p.startWorker();
    await p.publisher.publish(offer("evt-sofa", "sofas") as never);
    await eventProcessed(p, "evt-sofa");
    const sofa = await step(p, "evt-sofa", "sofa-offer.discount");
    // Rules the worker has not seen: the sofa's offer from 60 days to 25.
    const draft = await draftRules(p, "draft", "P25D");
    const generation = ((await p.store.generationOf("evt-sofa")) ?? 0) + 1;
    // Between the re-plan's read of the customer's steps and its write, the worker takes in a
    // garden purchase: its offer (20 days on) is 40 days from the sofa's as it stands, and is
    // planned; the sofa's would move to 5 days after it.
    const { replanner, reads } = replannerReading(p, async () => {
      await p.publisher.publish(offer("evt-garden", "garden-care") as never);
      await eventProcessed(p, "evt-garden");
    });
    expect(await replanner.replanEvent("evt-sofa", draft.rules, generation)).toMatchObject({
      moved: 0,
      skipped: 1,
    });
    expect(reads()).toBe(2);
    expect((await step(p, "evt-garden", "garden-offer.discount")).state).toBe("scheduled");
    expect(await step(p, "evt-sofa", "sofa-offer.discount")).toMatchObject({
      state: "skipped",
      dueAt: sofa.dueAt,
      reason: { code: "cooldown" },
    });
    await rm(draft.dir, { recursive: true, force: true });
  });

  it("a re-plan under older rules that one under newer rules overtook leaves the newer due times", async () => {
    pipeline = await startPipeline("replan-overtaken", { startWorker: false });
    const p = pipeline;
    await withTwoOffers(p.configDir, { garden: "P20D" });
    await p.startWorker();
    await p.publisher.publish(offer("evt-sofa", "sofas") as never);
    await eventProcessed(p, "evt-sofa");
    const g = (await p.store.generationOf("evt-sofa")) ?? 0;
    // Two rules edits in a row: the sofa's offer at 90 days, then at 40.
    const older = await draftRules(p, "older", "P90D");
    const newer = await draftRules(p, "newer", "P40D");
    const onNewer = replannerReading(p, async () => undefined);
    // A worker still on the older rules re-plans the purchase; one on the newer rules re-plans
    // (and applies) it between the older one's read of the customer's steps and its write.
    const onOlder = replannerReading(p, async () => {
      expect((await onNewer.replanner.replanEvent("evt-sofa", newer.rules, g + 2)).moved).toBe(1);
    });
    expect((await onOlder.replanner.replanEvent("evt-sofa", older.rules, g + 1)).purchases).toBe(0);
    const sofa = await step(p, "evt-sofa", "sofa-offer.discount");
    expect(await p.store.generationOf("evt-sofa")).toBe(g + 2);
    // The customer's cooldowns are held to where the step is due, not to the older plan's time.
    const recent = await onNewer.history.recentSteps("cus-offers", "evt-other");
    expect(recent.byKind.get("discount")).toEqual([sofa.dueAt]);
    // So a garden purchase now (its offer 20 days on, 20 from the sofa's) is held by the 30-day
    // discount cooldown.
    await p.publisher.publish(offer("evt-garden", "garden-care") as never);
    await eventProcessed(p, "evt-garden");
    expect(await discountOf(p, "evt-garden", "garden-offer.discount")).toBeUndefined();
    for (const { dir } of [older, newer]) await rm(dir, { recursive: true, force: true });
  });
});

describe("a step sent on another channel than planned", () => {
  it("is taken off the pending count it was added to, and its record names the channel it went on", async () => {
    pipeline = await startPipeline("replan-channel");
    const p = pipeline;
    // The TV's check-in (by SMS, three months on) falls due in 40 seconds: a job at once, so the
    // re-plan below leaves it as it is, and the rules edit reaches it only as it is sent.
    const bought = DateTime.utc()
      .setZone("Europe/London")
      .minus({ months: 3 })
      .plus({ seconds: 40 });
    await p.publisher.publish(buy("evt-ch", "televisions", "899.00", bought) as never);
    await eventually(
      async () =>
        (await whereWaiting(p, "evt-ch", "big-ticket.check-in")) === "job" ? true : undefined,
      "the check-in to be a job",
    );
    const ledger = p.stores.of(0).ledger;
    const pending = async () =>
      (await ledger.pendingCounts(Date.now() - 2 * 86_400_000, 4)).filter(
        (count) => count.ruleId === "big-ticket",
      );
    expect(await pending()).toMatchObject([{ channel: "sms", count: 1 }]);

    await editRules(p, (doc) => {
      doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "channel"], "email");
      doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "template"], "thank-you");
    });
    await eventually(
      async () => (p.logs.some((line) => line.msg === "config reloaded") ? true : undefined),
      "the edited rules to be loaded",
    );
    await promoteStep(p, "evt-ch", "big-ticket.check-in");
    const sent = await waitForState(p, "evt-ch", "big-ticket.check-in", "sent");
    expect(sent.channel).toBe("email");
    expect(p.twilio.messages).toHaveLength(0);
    // Nothing pending is left under either channel: not +1 under sms, nor -1 under email.
    expect(await pending()).toEqual([]);
  });
});

describe("a rules edit whose generation cannot be read", () => {
  it("keeps the previous version and does not say it reloaded", async () => {
    pipeline = await startPipeline("replan-generation-unreadable");
    const p = pipeline;
    // A key of another type where the generations are kept: reading them fails (WRONGTYPE).
    const generationsKey = new StoreKeys(p.prefix).rulesGenerations();
    await p.redis.del(generationsKey);
    await p.redis.set(generationsKey, "not a hash");
    const version = p.worker?.configVersion();
    expect(version).toMatch(/\S/);
    await editRules(p, (doc) => {
      doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], "P4M");
    });
    await eventually(
      async () =>
        p.logs.some((line) => line.msg === "config reload failed; keeping the current version")
          ? true
          : undefined,
      "the reload to fail",
    );
    expect(p.logs.some((line) => line.msg === "config reloaded")).toBe(false);
    expect(p.worker?.configVersion()).toBe(version);
  });
});

/** Publishes a TV bought at `bought` and waits until its check-in waits in the schedule. */
async function tvCheckInPlanned(p: PipelineHarness, bought: DateTime): Promise<StepRecord> {
  await p.publisher.publish(buy("evt-tv", "televisions", "899.00", bought) as never);
  return eventually(
    async () =>
      (await whereWaiting(p, "evt-tv", "big-ticket.check-in")) === "schedule"
        ? step(p, "evt-tv", "big-ticket.check-in")
        : undefined,
    "the purchase to be planned",
  );
}

/** Waits until the TV's check-in moves from where it was `planned`, to four months after `bought`. */
async function checkInMovedToFourMonths(
  p: PipelineHarness,
  bought: DateTime,
  planned: StepRecord,
  what: string,
): Promise<void> {
  const moved = await eventually(async () => {
    const record = await step(p, "evt-tv", "big-ticket.check-in");
    return record.dueAt !== planned.dueAt ? record : undefined;
  }, what);
  expect(DateTime.fromMillis(moved.dueAt, { zone: "Europe/London" }).toISODate()).toBe(
    bought.setZone("Europe/London").plus({ months: 4 }).toISODate(),
  );
}

describe("a rules edit whose owner report schedules cannot be updated", () => {
  it("is in force, says what was not updated, and re-plans the scheduled follow-ups", async () => {
    pipeline = await startPipeline("replan-reports-unsynced");
    const p = pipeline;
    const bought = DateTime.utc();
    const planned = await tvCheckInPlanned(p, bought);
    // A key of another type where the owners' report schedules are kept: listing them fails
    // (WRONGTYPE), as any error reply of Redis would.
    const reports = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix: queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER),
    });
    const schedulers = reports.keys.repeat ?? "";
    await reports.close();
    await p.redis.set(schedulers, "not a sorted set");
    const before = p.worker?.configVersion();

    await editRules(p, (doc) => {
      doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], "P4M");
    });
    await checkInMovedToFourMonths(p, bought, planned, "the check-in to move under the new rules");
    expect(p.worker?.configVersion()).not.toBe(before);
    expect(p.logs.some((line) => line.msg === "config reloaded")).toBe(true);
    // Not said to have kept the previous version, which is no longer in force.
    expect(
      p.logs.some((line) => /keeping the (current|previous) version/.test(String(line.msg))),
    ).toBe(false);
    expect(
      p.logs.some((line) => line.level === 50 && /owner report schedules/.test(String(line.msg))),
    ).toBe(true);
    await p.redis.del(schedulers);
  });
});

describe("a re-planning walk that fails", () => {
  it("is tried again until it completes, without another rules load", async () => {
    pipeline = await startPipeline("replan-walk-retried");
    const p = pipeline;
    const bought = DateTime.utc();
    const planned = await tvCheckInPlanned(p, bought);
    // A key of another type where the walk notes the thank-you's bucket (the purchase's first)
    // done: reading it fails (WRONGTYPE), as an error reply of a Redis restarting (LOADING) or
    // failing over (READONLY) would.
    const thankYou = await step(p, "evt-tv", "big-ticket.thank-you");
    const keys = new StoreKeys(shardScope(p.prefix, await p.shardOf("evt-tv"), p.shards));
    const marker = keys.scheduleReplanned(bucketOf(thankYou.dueAt));
    await p.redis.hset(marker, "broken", "1");

    await editRules(p, (doc) => {
      doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], "P4M");
    });
    await eventually(
      async () =>
        p.logs.some((line) => String(line.msg).startsWith("re-planning failed")) ? true : undefined,
      "the walk to fail",
    );
    expect((await step(p, "evt-tv", "big-ticket.check-in")).dueAt).toBe(planned.dueAt);
    // Redis answers again: the walk resumes by itself and moves the check-in.
    await p.redis.del(marker);
    await checkInMovedToFourMonths(
      p,
      bought,
      planned,
      "the walk to be tried again and move the check-in",
    );
  });
});

describe("two config reloads in quick succession", () => {
  it("end on the files as they are now, whose rules are the newest generation", async () => {
    pipeline = await startPipeline("replan-reload-order", { startWorker: false });
    const p = pipeline;
    // SIGHUP's reload; no file watch, so that only the two reloads below read the files.
    const worker = await startWorker({
      env: p.env,
      logger: createLogger({ level: "silent", pretty: false }),
      channels: channelsFor(p.env),
      watchConfig: false,
    });
    try {
      const rulesFile = path.join(p.configDir, "rules.yaml");
      const original = await readFile(rulesFile, "utf8");
      // The first reload reads rules.yaml slowly: a FIFO holds its read until it is written to.
      await rm(rulesFile);
      execFileSync("mkfifo", [rulesFile]);
      const first = worker.reload();
      const fifo = await openForWriting(rulesFile);
      // Meanwhile the file is saved again, and reloaded again (an editor's second save, then a
      // SIGHUP): this read is quick.
      await writeFile(`${rulesFile}.tmp`, `${original}# second save\n`);
      await rename(`${rulesFile}.tmp`, rulesFile);
      const second = worker.reload();
      // Time for the second reload to finish, if it does not wait for the first. A plain wait: a
      // second reload that waits, as it should, does nothing anyone could see until the first ends.
      await Promise.race([second, new Promise((resolve) => setTimeout(resolve, 3_000))]);
      await fifo.writeFile(`${original}# first save\n`);
      await fifo.close();
      expect(await first).toBe(true);
      expect(await second).toBe(true);

      const now = await loadRules(p.configDir);
      if (!now.ok) throw new Error("the saved rules should be valid");
      expect(worker.configVersion().split("+")[0]).toBe(now.rules.version);
      // The rules on disk are the newest generation: workers loading them re-plan.
      const known = await new RulesGenerations(p.redis, p.prefix).known(now.rules.version);
      expect(known.generation).toBe(known.latest);
    } finally {
      await worker.close();
    }
  });
});

/**
 * A rolling deploy: a copy of the pipeline's config (`<configDir>-newer`) with `edit` applied to
 * its rules, both loaded, and both rules versions numbered, the pipeline's first.
 */
async function rollingOut(p: PipelineHarness, edit: (rules: string) => string) {
  const newerDir = `${p.configDir}-newer`;
  await cp(p.configDir, newerDir, { recursive: true });
  const newerFile = path.join(newerDir, "rules.yaml");
  await writeFile(newerFile, edit(await readFile(newerFile, "utf8")));
  const [older, newer] = await Promise.all([loadConfig(p.configDir), loadConfig(newerDir)]);
  for (const loaded of [older, newer])
    if (!loaded.ok) throw new Error(`test rules do not load: ${JSON.stringify(loaded.problems)}`);
  if (!older.ok || !newer.ok) throw new Error("unreachable");
  // As the first worker of a deployment does before anything else (a Redis holding rules
  // generations but no shard count is taken for one of versions before shards).
  await claimShardCount(p.redis, p.prefix, p.shards);
  const generations = new RulesGenerations(p.redis, p.prefix);
  const g1 = (await generations.generationOf(older.config.rules.version)).generation;
  const g2 = (await generations.generationOf(newer.config.rules.version)).generation;
  return { newerDir, older: older.config, newer: newer.config, g1, g2 };
}

/** A worker of the pipeline's deployment on the config in `configDir` (not watched). */
function workerWith(p: PipelineHarness, configDir: string) {
  return startWorker({
    env: { ...p.env, CONFIG_DIR: configDir },
    logger: createLogger({ level: "silent", pretty: false }),
    channels: channelsFor(p.env),
    watchConfig: false,
  });
}

describe("a step of a rule that only newer rules have", () => {
  it("is left for a worker with those rules by one still on older rules, not skipped as removed", async () => {
    pipeline = await startPipeline("replan-newer-rule", { startWorker: false, shards: 1 });
    const p = pipeline;
    // The newer rules name the plain thank-you's rule anew: its step is a step older rules lack.
    const { newerDir } = await rollingOut(p, (text) => {
      const doc = parseDocument(text);
      doc.setIn(["rules", ruleIndex(doc, "thank-you"), "id"], "thanks");
      return doc.toString();
    });
    const workerOn = (configDir: string) => workerWith(p, configDir);

    // A newer worker plans a purchase whose thank-you falls due in a few seconds, and stops.
    let worker = await workerOn(newerDir);
    const bought = DateTime.utc().minus({ hours: 1 }).plus({ seconds: 4 });
    await p.publisher.publish(buy("evt-pan", "kitchenware", "75.00", bought) as never);
    await eventually(
      async () => ((await whereWaiting(p, "evt-pan", "thanks.thank-you")) ? true : undefined),
      "the purchase to be planned under the newer rules",
    );
    await worker.close();
    // An older worker takes the job when it falls due: the step is not its to end.
    worker = await workerOn(p.configDir);
    try {
      const jobId = followUpJobId("evt-pan", "thanks.thank-you");
      await eventually(async () => {
        const job = await p.followUps.getJob(jobId);
        const handled = (await step(p, "evt-pan", "thanks.thank-you")).state !== "scheduled";
        return handled || (job && job.attemptsStarted > 0 && (await job.isDelayed()))
          ? true
          : undefined;
      }, "an older worker to take the job");
      expect(await step(p, "evt-pan", "thanks.thank-you")).toMatchObject({ state: "scheduled" });
      await worker.close();
      // A newer worker sends it.
      worker = await workerOn(newerDir);
      await (await p.followUps.getJob(jobId))?.promote();
      await waitForState(p, "evt-pan", "thanks.thank-you", "sent");
    } finally {
      await worker.close();
      await rm(newerDir, { recursive: true, force: true });
    }
  });
});

describe("a purchase planned under older rules after a walk under newer ones began", () => {
  it("is re-planned by a worker on the newer rules long before its step would be promoted", async () => {
    pipeline = await startPipeline("replan-straggler", { startWorker: false, shards: 1 });
    const p = pipeline;
    // The newer rules check in after one month instead of three.
    const { newerDir, older, newer, g1, g2 } = await rollingOut(p, (text) =>
      text.replace("P3M", "P1M"),
    );
    const workerOn = (configDir: string) => workerWith(p, configDir);
    const stepId = "big-ticket.check-in";
    try {
      // A worker on the newer rules starts: its walk of the (empty) schedule begins and ends.
      let worker = await workerOn(newerDir);
      await eventually(
        async () => ((await new RulesGenerations(p.redis, p.prefix).walked(g2)) ? true : undefined),
        "the newer rules' walk to complete",
      );
      await worker.close();
      // A worker still on the older rules (a rolling deploy) plans a purchase after that walk.
      worker = await workerOn(p.configDir);
      const bought = DateTime.utc();
      await p.publisher.publish(buy("evt-late", "televisions", "899.00", bought) as never);
      await allInSchedule(p, [["evt-late", stepId]]);
      await worker.close();
      expect(await p.store.generationOf("evt-late")).toBe(g1);
      const inMonths = (months: number) =>
        bought.setZone("Europe/London").plus({ months }).toISODate();
      const dayOf = (record: StepRecord) =>
        DateTime.fromMillis(record.dueAt, { zone: "Europe/London" }).toISODate();
      expect(dayOf(await step(p, "evt-late", stepId))).toBe(inMonths(3));

      const replanner = replannerOf(p, () => DateTime.utc());
      // A worker on the older rules leaves it to the newer ones.
      expect((await replanner.replanLater(older.rules, g1)).purchases).toBe(0);
      expect(dayOf(await step(p, "evt-late", stepId))).toBe(inMonths(3));
      // One on the newer rules moves it now: at promotion, three months on, a month after its
      // new due time, it could only have been skipped as past due.
      expect(await replanner.replanLater(newer.rules, g2)).toMatchObject({
        purchases: 1,
        moved: 1,
      });
      const moved = await step(p, "evt-late", stepId);
      expect(moved.state).toBe("scheduled");
      expect(dayOf(moved)).toBe(inMonths(1));
      expect(await p.store.generationOf("evt-late")).toBe(g2);
      expect(await whereWaiting(p, "evt-late", stepId)).toBe("schedule");
      // Done once: nothing is left to re-plan.
      expect((await replanner.replanLater(newer.rules, g2)).purchases).toBe(0);
      expect(await p.redis.exists(new StoreKeys(p.prefix).replanLater())).toBe(0);
    } finally {
      await rm(newerDir, { recursive: true, force: true });
    }
  });
});

/** Opens a FIFO for writing once a reader has opened it (without one, opening fails: ENXIO). */
async function openForWriting(fifo: string): Promise<FileHandle> {
  for (let tries = 0; ; tries++) {
    try {
      return await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENXIO" || tries > 500) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

describe("rules generations", () => {
  it("never re-plan backwards, and a purchase an older worker planned converges when promoted", async () => {
    // One shard, also on the cluster: the replanner and promoter below are of shard 0.
    pipeline = await startPipeline("replan-generations", { startWorker: false, shards: 1 });
    const p = pipeline;
    // The newer rules (check-in four months out) are deployed elsewhere first.
    const { newerDir, older, newer, g1, g2 } = await rollingOut(p, (text) =>
      text.replace("P3M", "P4M"),
    );
    expect(g2).toBe(g1 + 1);

    // This worker still has the older rules: it plans with them and re-plans nothing.
    await p.startWorker();
    expect(p.logs.some((line) => line.msg?.toString().includes("newer rules are deployed"))).toBe(
      true,
    );
    const now = DateTime.utc();
    await p.publisher.publish(buy("evt-a", "televisions", "899.00", now) as never);
    // evt-b's thank-you (an hour after the purchase) is due already and goes; its check-in
    // waits in the schedule alone.
    const boughtB = now.minus({ minutes: 61 });
    await p.publisher.publish(buy("evt-b", "televisions", "899.00", boughtB) as never);
    const planned = await eventually(async () => {
      const [a, b] = await Promise.all(
        ["evt-a", "evt-b"].map((id) => whereWaiting(p, id, "big-ticket.check-in")),
      );
      return a === "schedule" && b === "schedule"
        ? step(p, "evt-b", "big-ticket.check-in")
        : undefined;
    }, "both purchases to be planned");
    expect(await p.store.generationOf("evt-a")).toBe(g1);
    const inThreeMonths = boughtB.setZone("Europe/London").plus({ months: 3 }).toISODate();
    expect(DateTime.fromMillis(planned.dueAt, { zone: "Europe/London" }).toISODate()).toBe(
      inThreeMonths,
    );

    const logger = createLogger({ level: "silent", pretty: false });
    // One clock for the replanner and the promoter, as in a worker.
    let clockMs = Date.now();
    const replanner = replannerOf(p, () => DateTime.fromMillis(clockMs, { zone: "utc" }));
    // A newer worker re-plans evt-a; the older one then cannot take it back.
    expect((await replanner.replanEvent("evt-a", newer.rules, g2)).moved).toBe(1);
    const movedA = await step(p, "evt-a", "big-ticket.check-in");
    expect((await replanner.replanEvent("evt-a", older.rules, g1)).purchases).toBe(0);
    expect(await step(p, "evt-a", "big-ticket.check-in")).toEqual(movedA);
    expect(await p.store.generationOf("evt-a")).toBe(g2);

    // evt-b was left at the older generation; a newer worker's promoter, minutes before it is
    // due, re-plans it first: it moves a month on instead of becoming a job.
    // As if an older worker filed it after the walk: only the promoter sees it, once it falls
    // within the horizon, and re-plans the step it holds although it is due within it.
    await waitForState(p, "evt-b", "big-ticket.thank-you", "sent");
    clockMs = planned.dueAt - 60_000;
    const promoter = createPromoter({
      schedule: new FollowUpSchedule(p.redis, p.prefix),
      followUps: p.followUps,
      horizonMs: p.env.PROMOTE_HORIZON_MS,
      now: () => clockMs,
      logger,
      replan: {
        generation: () => g2,
        run: (eventId, promoting) => replanner.replanEvent(eventId, newer.rules, g2, promoting),
      },
    });
    // Only evt-a's thank-you (due long before) becomes a job.
    expect(await promoter.promoteDue()).toBe(1);
    const movedB = await step(p, "evt-b", "big-ticket.check-in");
    expect(movedB.state).toBe("scheduled");
    expect(DateTime.fromMillis(movedB.dueAt, { zone: "Europe/London" }).toISODate()).toBe(
      boughtB.setZone("Europe/London").plus({ months: 4 }).toISODate(),
    );
    expect(await whereWaiting(p, "evt-b", "big-ticket.check-in")).toBe("schedule");
    await rm(newerDir, { recursive: true, force: true });
  });
});

/**
 * Newer rules that check in after four months instead of three, loaded beside the pipeline's,
 * and two purchases of the same second (evt-good, evt-bad) planned by a worker on the older
 * rules, since stopped: their thank-yous share a bucket, and so do their check-ins.
 */
async function goodAndBadPlannedUnderOlderRules(p: PipelineHarness) {
  const { newerDir, newer, g1, g2 } = await rollingOut(p, (text) => text.replace("P3M", "P4M"));
  await rm(newerDir, { recursive: true, force: true });
  await p.startWorker();
  const bought = DateTime.utc();
  await p.publisher.publish(buy("evt-good", "televisions", "899.00", bought) as never);
  await p.publisher.publish(buy("evt-bad", "televisions", "899.00", bought) as never);
  const steps = ["big-ticket.thank-you", "big-ticket.check-in"];
  await allInSchedule(
    p,
    ["evt-good", "evt-bad"].flatMap((id) => steps.map((s): [string, string] => [id, s])),
  );
  await p.worker?.close();
  p.worker = undefined;
  return { newer, g1, g2, bought, steps };
}

describe("a purchase whose re-plan fails for good (its stored purchase cannot be read)", () => {
  it("holds up no other purchase: the walk completes and notes it, the promoter makes its steps jobs as planned", async () => {
    pipeline = await startPipeline("replan-poison", { startWorker: false, shards: 1 });
    const p = pipeline;
    const { newer, g1, g2, bought, steps } = await goodAndBadPlannedUnderOlderRules(p);
    const badCheckIn = await step(p, "evt-bad", "big-ticket.check-in");
    const goodCheckIn = await step(p, "evt-good", "big-ticket.check-in");
    expect(bucketOf(badCheckIn.dueAt)).toBe(bucketOf(goodCheckIn.dueAt));
    // evt-bad's stored purchase becomes bytes no version can decode (as a record written by a
    // newer format, or damaged): re-planning it fails every time, and not because of Redis.
    const keys = new StoreKeys(p.prefix);
    await p.redis.hset(keys.eventRecord("evt-bad"), "p0", Buffer.from([0x7f, 0xde, 0xad]));
    await expect(p.store.loadEvent("evt-bad")).rejects.toThrow(/unknown format/);

    const { lines, logger } = capturedLog();
    const metrics = new FollowUpMetrics();
    let clockMs = Date.now();
    const clock = () => DateTime.fromMillis(clockMs, { zone: "utc" });
    const schedule = new FollowUpSchedule(p.redis, p.prefix);
    const replannerOver = (store: FollowUpStore) =>
      replannerOf(p, clock, undefined, { store, schedule, metrics, logger });
    const replanner = replannerOver(p.store);
    const failures = async (during: string) =>
      (await metrics.replanFailures.get()).values.find((v) => v.labels.during === during)?.value ??
      0;
    const promoterAt = (atMs: number, on: typeof replanner) =>
      createPromoter({
        schedule,
        followUps: p.followUps,
        horizonMs: p.env.PROMOTE_HORIZON_MS,
        now: () => atMs,
        logger,
        leaseMs: 300,
        onReplanFailed: () => promotionFailures++,
        replan: {
          generation: () => g2,
          run: (eventId, promoting) => on.replanEvent(eventId, newer.rules, g2, promoting),
        },
      });
    let promotionFailures = 0;
    const promoteAt = badCheckIn.dueAt - 60_000;

    // While Redis cannot be reached for a purchase's re-plan, the walk and the promotion round
    // fail as before, to be tried again: nothing is noted, done or promoted.
    const away = createRedisClient("redis://127.0.0.1:1", false, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    away.on("error", () => {});
    const awayReplanner = replannerOver(new FollowUpStore(away, p.prefix));
    await schedule.beginWalk(g2);
    await expect(awayReplanner.replanAll(newer.rules, g2)).rejects.toSatisfy((error) =>
      isRedisUnavailable(error),
    );
    expect(await schedule.replannedFor(bucketOf(badCheckIn.dueAt), g2)).toBe(false);
    await expect(promoterAt(promoteAt, awayReplanner).promoteDue()).rejects.toSatisfy((error) =>
      isRedisUnavailable(error),
    );
    expect(await p.redis.exists(keys.replanLater())).toBe(0);
    expect(await p.followUps.getJobCounts("delayed", "wait")).toEqual({ delayed: 0, wait: 0 });
    expect(promotionFailures).toBe(0);
    away.disconnect();
    // The promoter's lease on the bucket it failed in runs out.
    await new Promise((resolve) => setTimeout(resolve, 350));

    // The walk under the newer rules completes: evt-good is re-planned, evt-bad is noted for the
    // re-plans of noted purchases and left as planned, and every bucket is done.
    expect(await replanner.replanAll(newer.rules, g2)).toMatchObject({ purchases: 1, moved: 1 });
    const movedGood = await step(p, "evt-good", "big-ticket.check-in");
    expect(DateTime.fromMillis(movedGood.dueAt, { zone: "Europe/London" }).toISODate()).toBe(
      bought.setZone("Europe/London").plus({ months: 4 }).toISODate(),
    );
    expect(await p.store.generationOf("evt-good")).toBe(g2);
    expect(await p.store.generationOf("evt-bad")).toBe(g1);
    expect(await step(p, "evt-bad", "big-ticket.check-in")).toEqual(badCheckIn);
    for (const s of steps) {
      const { dueAt } = await step(p, "evt-bad", s);
      expect(await schedule.replannedFor(bucketOf(dueAt), g2)).toBe(true);
    }
    expect(await p.redis.smembers(keys.replanLater())).toEqual(["evt-bad"]);
    // Tried once in each of its two buckets (the failures while Redis was away are not counted).
    expect(await failures("walk")).toBe(2);
    const failed = lines.filter((line) => line.eventId === "evt-bad" && line.level === 40);
    expect(failed.length).toBeGreaterThan(0);
    // The log names the purchase by its event id, never its customer.
    const logged = JSON.stringify(lines);
    for (const personal of ["ana@example.com", "Ana Novak", "7946"])
      expect(logged).not.toContain(personal);
    // Noted purchases that fail stay noted, and the others' re-plans go on.
    expect((await replanner.replanLater(newer.rules, g2)).purchases).toBe(0);
    expect(await p.redis.smembers(keys.replanLater())).toEqual(["evt-bad"]);

    // Three months on, a minute before evt-bad's check-in: the promoter of a worker on the newer
    // rules tries to re-plan evt-bad once more, fails, and makes its steps jobs as planned. The
    // thank-yous, long due, become jobs too; evt-good's check-in, moved, waits in the schedule.
    clockMs = promoteAt;
    expect(await promoterAt(promoteAt, replanner).promoteDue()).toBe(3);
    const badJob = await p.followUps.getJob(followUpJobId("evt-bad", "big-ticket.check-in"));
    expect(badJob?.delay).toBe(60_000);
    for (const id of ["evt-good", "evt-bad"])
      expect(await p.followUps.getJob(followUpJobId(id, "big-ticket.thank-you"))).toBeDefined();
    expect(await whereWaiting(p, "evt-good", "big-ticket.check-in")).toBe("schedule");
    expect(promotionFailures).toBe(2);
    expect(await step(p, "evt-bad", "big-ticket.check-in")).toEqual(badCheckIn);

    // Once its steps have ended, it is no longer tried again: nothing is left to re-plan. (Written
    // directly: ending its last step through the store fails too, as it reads the purchase to
    // trim it.)
    for (const s of steps) {
      const { dueAt, channel, kind } = await step(p, "evt-bad", s);
      await p.redis.hset(
        keys.eventRecord("evt-bad"),
        `s:${s}`,
        JSON.stringify({ s: "sent", d: dueAt, c: channel, k: kind }),
      );
    }
    const noted = await failures("noted");
    expect(await replanner.replanLater(newer.rules, g2)).toMatchObject({ purchases: 0 });
    expect(await failures("noted")).toBe(noted);
    expect(await p.redis.exists(keys.replanLater())).toBe(0);
  });
});

describe("a purchase with a step record the walk cannot read", () => {
  it("holds up no other purchase: the walk completes and notes it, its steps left as planned", async () => {
    pipeline = await startPipeline("replan-step-unreadable", { startWorker: false, shards: 1 });
    const p = pipeline;
    const { newer, g1, g2 } = await goodAndBadPlannedUnderOlderRules(p);
    const badThankYou = await step(p, "evt-bad", "big-ticket.thank-you");
    // evt-bad's check-in record in a form this version cannot read (damaged, or a newer one's).
    const keys = new StoreKeys(p.prefix);
    await p.redis.hset(keys.eventRecord("evt-bad"), "s:big-ticket.check-in", "?");
    const { lines, logger } = capturedLog();
    const metrics = new FollowUpMetrics();
    const schedule = new FollowUpSchedule(p.redis, p.prefix);
    const replanner = replannerOf(p, () => DateTime.utc(), undefined, {
      schedule,
      metrics,
      logger,
    });
    await schedule.beginWalk(g2);
    expect(await replanner.replanAll(newer.rules, g2)).toMatchObject({ purchases: 1, moved: 1 });
    expect(await p.store.generationOf("evt-good")).toBe(g2);
    expect(await p.store.generationOf("evt-bad")).toBe(g1);
    expect(await step(p, "evt-bad", "big-ticket.thank-you")).toEqual(badThankYou);
    expect(await p.redis.smembers(keys.replanLater())).toEqual(["evt-bad"]);
    expect(
      lines.some(
        (line) =>
          line.eventId === "evt-bad" &&
          line.msg ===
            "re-planning a purchase under newer rules failed; it is noted to be tried again, and the walk goes on",
      ),
    ).toBe(true);
    // Logged by the error's name: not the record it could not read.
    expect(JSON.stringify(lines)).not.toContain("unknown form");
  });
});

describe("a noted purchase whose re-plan fails at every try", () => {
  it("is tried again a minute later, then twice as long each time up to an hour, and given up after its 8th try: its steps stay as planned, logged and counted", async () => {
    pipeline = await startPipeline("replan-later-give-up", { startWorker: false, shards: 1 });
    const p = pipeline;
    const { newerDir, newer, g2 } = await rollingOut(p, (text) => text.replace("P3M", "P4M"));
    await rm(newerDir, { recursive: true, force: true });
    await p.startWorker();
    await p.publisher.publish(buy("evt-poison", "televisions", "899.00", DateTime.utc()) as never);
    await allInSchedule(p, [["evt-poison", "big-ticket.check-in"]]);
    await p.worker?.close();
    p.worker = undefined;
    const before = await p.store.allStepRecords("evt-poison");
    // Its stored purchase becomes bytes no version can decode: its re-plan fails every time.
    const keys = new StoreKeys(p.prefix);
    await p.redis.hset(keys.eventRecord("evt-poison"), "p0", Buffer.from([0x7f, 0xde, 0xad]));
    // Filed under older rules after a walk under the newer ones began: noted.
    const schedule = new FollowUpSchedule(p.redis, p.prefix);
    await schedule.beginWalk(g2);
    await schedule.noteLater(["evt-poison"]);

    const { lines, logger } = capturedLog();
    const metrics = new FollowUpMetrics();
    const startMs = Date.now();
    let clockMs = startMs;
    const replanner = replannerOf(
      p,
      () => DateTime.fromMillis(clockMs, { zone: "utc" }),
      undefined,
      { schedule, metrics, logger },
    );
    const tries = async () =>
      (await metrics.replanFailures.get()).values.find((v) => v.labels.during === "noted")?.value ??
      0;
    // As /metrics shows it.
    const givenUp = async () =>
      Number(
        /^followups_replan_given_up_total (\d+)$/m.exec(await metrics.registry.metrics())?.[1] ??
          "0",
      );

    // The workers' runs, every 30 seconds for three hours: the minutes at which it was tried.
    const triedAt: number[] = [];
    let givenUpAt: number | undefined;
    for (let run = 0; run <= 360; run++) {
      clockMs = startMs + run * 30_000;
      const triedBefore = await tries();
      expect((await replanner.replanLater(newer.rules, g2)).purchases).toBe(0);
      if ((await tries()) > triedBefore) triedAt.push(run / 2);
      if (givenUpAt === undefined && (await givenUp()) > 0) givenUpAt = run / 2;
    }
    expect(triedAt).toEqual([0, 1, 3, 7, 15, 31, 63, 123]);
    expect(givenUpAt).toBe(123);
    expect(await givenUp()).toBe(1);
    // Taken off, its tries with it; its steps as they were planned (the promoter still tries).
    expect(await p.redis.exists(keys.replanLater(), keys.replanLaterTries())).toBe(0);
    expect(await p.store.allStepRecords("evt-poison")).toEqual(before);
    const said = lines.filter((line) => String(line.msg).includes("failed at every try"));
    expect(said).toEqual([
      expect.objectContaining({ level: 40, eventId: "evt-poison", generation: g2, failures: 8 }),
    ]);
    const logged = JSON.stringify(lines);
    for (const personal of ["ana@example.com", "Ana Novak", "7946"])
      expect(logged).not.toContain(personal);
  });
});

/** What became of the waiting steps of one rule, counted as `replan --dry-run` counts them. */
interface PerRule {
  readonly ruleId: string;
  unchanged: number;
  earlier: number;
  later: number;
  cancelled: number;
  skipped: number;
  readonly reasons: Record<string, number>;
}

describe("followups replan --dry-run", () => {
  it("shows per rule what a rules directory would move, cancel and keep, and changes nothing", async () => {
    pipeline = await startPipeline("replan-preview");
    const p = pipeline;
    const now = DateTime.utc();
    await p.publisher.publish(buy("evt-tv", "televisions", "899.00", now) as never);
    await p.publisher.publish(buy("evt-pan", "kitchenware", "75.00", now) as never);
    await p.publisher.publish(buy("evt-laptop", "laptops", "400.00", now) as never);
    await eventually(async () => {
      const where = await whereWaiting(p, "evt-laptop", "accessories.discount");
      const pan = await whereWaiting(p, "evt-pan", "thank-you.thank-you");
      return where === "schedule" && pan === "schedule" ? true : undefined;
    }, "the purchases to be planned");
    const before = await p.store.allStepRecords("evt-tv");

    const draft = `${p.configDir}-draft`;
    await cp(p.configDir, draft, { recursive: true });
    const file = path.join(draft, "rules.yaml");
    const doc = parseDocument(await readFile(file, "utf8"));
    doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], "P4M");
    doc.setIn(["rules", ruleIndex(doc, "thank-you"), "when", "total", "min"], 100);
    doc.deleteIn(["rules", ruleIndex(doc, "accessories")]);
    await writeFile(file, doc.toString());

    Object.assign(process.env, p.commandEnv);
    const io = captureIo();
    expect(await runReplan({ config: draft, dryRun: true, json: true }, io)).toBe(0);
    const preview = JSON.parse(io.output()) as {
      rulesVersion: string;
      generation: number;
      latestGeneration: number;
      applies: boolean;
      rules: RulePreview[];
    };
    // New rules: the next generation, which the workers would apply.
    expect(preview).toMatchObject({ generation: 2, latestGeneration: 1, applies: true });
    const rule = (id: string) => preview.rules.find((r) => r.ruleId === id);
    // Two check-ins a month later (by 30 or 31 days: calendar months), two thank-yous as they are.
    expect(rule("big-ticket")).toMatchObject({
      unchanged: 2,
      earlier: { count: 0 },
      later: { count: 2 },
      cancelled: 0,
    });
    const shift = Duration.fromISO(rule("big-ticket")?.later.smallest ?? "").as("days");
    expect(shift).toBeGreaterThanOrEqual(29.9);
    expect(shift).toBeLessThanOrEqual(31.1);
    expect(rule("thank-you")).toMatchObject({
      unchanged: 0,
      cancelled: 1,
      reasons: { "no-longer-matches": 1 },
    });
    expect(rule("accessories")).toMatchObject({ cancelled: 1, reasons: { "rule-removed": 1 } });

    const text = captureIo();
    await runReplan({ config: draft, dryRun: true }, text);
    expect(text.output()).toContain("big-ticket: 2 unchanged, 2 later (by P");
    expect(text.output()).toContain("Nothing was changed.");
    await expect(runReplan({ config: draft }, captureIo())).rejects.toThrow(/pass --dry-run/);
    // A draft whose templates a worker would refuse (it keeps its config) re-plans nothing: said.
    const broken = path.join(draft, "templates", "thank-you", "en.text.liquid");
    const template = await readFile(broken, "utf8");
    await writeFile(broken, `${template}{% if %}`);
    await expect(
      runReplan({ config: draft, dryRun: true, json: true }, captureIo()),
    ).rejects.toMatchObject({
      code: 1,
      message: expect.stringMatching(/thank-you\/en\.text\.liquid.*\n.*templates are invalid/s),
    });
    await writeFile(broken, template);
    // The deployed rules themselves: every purchase is planned under them already.
    const same = captureIo();
    await runReplan({ config: p.configDir, dryRun: true, json: true }, same);
    expect(JSON.parse(same.output())).toMatchObject({ generation: 1, applies: true, rules: [] });
    // Once a worker has loaded the draft, the deployed rules are older: they would re-plan nothing.
    await new RulesGenerations(p.redis, p.prefix).generationOf(preview.rulesVersion);
    const older = captureIo();
    await runReplan({ config: p.configDir, dryRun: true }, older);
    expect(older.output()).toContain("older than generation 2 that workers run");
    // Nothing changed in Redis.
    expect(await p.store.allStepRecords("evt-tv")).toEqual(before);
    expect((await step(p, "evt-pan", "thank-you.thank-you")).state).toBe("scheduled");
    await rm(draft, { recursive: true, force: true });
  });

  it("reports the purchases it can read, and how many it could not, when a stored purchase cannot be decoded", async () => {
    pipeline = await startPipeline("replan-preview-unreadable");
    const p = pipeline;
    const now = DateTime.utc();
    await p.publisher.publish(buy("evt-tv", "televisions", "899.00", now) as never);
    await p.publisher.publish(buy("evt-broken", "televisions", "899.00", now) as never);
    const steps = ["big-ticket.thank-you", "big-ticket.check-in"];
    await allInSchedule(
      p,
      ["evt-tv", "evt-broken"].flatMap((id) => steps.map((s): [string, string] => [id, s])),
    );
    // evt-broken's stored purchase becomes bytes no version can decode.
    const keys = new StoreKeys(shardScope(p.prefix, await p.shardOf("evt-broken"), p.shards));
    await p.redis.hset(keys.eventRecord("evt-broken"), "p0", Buffer.from([0x7f, 0xde, 0xad]));
    await expect(p.store.loadEvent("evt-broken")).rejects.toThrow(/unknown format/);
    const before = await p.store.allStepRecords("evt-broken");

    const draft = `${p.configDir}-draft`;
    await cp(p.configDir, draft, { recursive: true });
    const file = path.join(draft, "rules.yaml");
    const doc = parseDocument(await readFile(file, "utf8"));
    doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], "P4M");
    await writeFile(file, doc.toString());
    Object.assign(process.env, p.commandEnv);

    // The preview completes (exit 0): the workers, too, leave such a purchase as planned.
    const io = captureIo();
    expect(await runReplan({ config: draft, dryRun: true, json: true }, io)).toBe(0);
    const preview = JSON.parse(io.output()) as {
      rules: RulePreview[];
      unreadable: { count: number; eventIds: string[] };
    };
    // The readable purchase is counted; the unreadable one is not, and is said by count and id.
    expect(preview.rules.find((r) => r.ruleId === "big-ticket")).toMatchObject({
      unchanged: 1,
      later: { count: 1 },
    });
    expect(preview.unreadable).toEqual({ count: 1, eventIds: ["evt-broken"] });
    expect(io.errors()).toContain("1 purchase could not be read");
    expect(io.errors()).toContain("evt-broken");

    const text = captureIo();
    expect(await runReplan({ config: draft, dryRun: true }, text)).toBe(0);
    expect(text.output()).toContain("big-ticket: 1 unchanged, 1 later (by P");
    expect(text.output()).toMatch(
      /1 purchase could not be read.*follow-ups as planned.*evt-broken/s,
    );
    // Nothing changed in Redis, the damaged purchase neither.
    expect(await p.store.allStepRecords("evt-broken")).toEqual(before);
    await rm(draft, { recursive: true, force: true });
  });

  it("counts per rule exactly what the workers then do when the rules are deployed", async () => {
    pipeline = await startPipeline("replan-preview-vs-workers");
    const p = pipeline;
    const now = DateTime.utc();
    const purchases = [
      buy("evt-tv", "televisions", "899.00", now),
      buy("evt-pan", "kitchenware", "75.00", now),
      buy("evt-laptop", "laptops", "400.00", now),
      buy("evt-sofa", "furniture", "1200.00", now.minus({ days: 3 })),
      // Bought 20 days ago: its check-in is 70 days out; a day's delay would be past its grace.
      buy("evt-old", "televisions", "899.00", now.minus({ days: 20 })),
    ];
    for (const purchase of purchases) await p.publisher.publish(purchase as never);
    const ids = purchases.map((purchase) => String(purchase.id));
    await allInSchedule(p, [
      ["evt-tv", "big-ticket.check-in"],
      ["evt-pan", "thank-you.thank-you"],
      ["evt-laptop", "accessories.discount"],
      ["evt-sofa", "big-ticket.check-in"],
      ["evt-old", "big-ticket.check-in"],
    ]);
    const scheduledBefore = new Map<string, StepRecord>();
    for (const id of ids)
      for (const [stepId, record] of await p.store.allStepRecords(id))
        if (record.state === "scheduled") scheduledBefore.set(`${id} ${stepId}`, record);

    // Check-ins a day after the purchase, thank-yous two hours after it, the plain thank-you
    // from 100, no accessories offer.
    const draft = `${p.configDir}-draft`;
    await cp(p.configDir, draft, { recursive: true });
    const draftRules = path.join(draft, "rules.yaml");
    const doc = parseDocument(await readFile(draftRules, "utf8"));
    doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 0, "delay"], "PT2H");
    doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], "P1D");
    doc.setIn(["rules", ruleIndex(doc, "thank-you"), "when", "total", "min"], 100);
    doc.deleteIn(["rules", ruleIndex(doc, "accessories")]);
    await writeFile(draftRules, doc.toString());
    Object.assign(process.env, p.commandEnv);
    const io = captureIo();
    expect(await runReplan({ config: draft, dryRun: true, json: true }, io)).toBe(0);
    const preview = JSON.parse(io.output()) as { generation: number; rules: RulePreview[] };

    // Deployed: the workers walk the schedule under the new rules.
    await writeFile(path.join(p.configDir, "rules.yaml"), await readFile(draftRules, "utf8"));
    const generations = new RulesGenerations(p.redis, p.prefix);
    await eventually(async () => {
      for (let shard = 0; shard < p.shards; shard++)
        if (!(await generations.walked(preview.generation, shard))) return undefined;
      return true;
    }, "the workers to walk the schedule under the deployed rules");
    // What became of each step that waited, per rule, as the preview counts it.
    const done = new Map<string, PerRule>();
    for (const [key, before] of scheduledBefore) {
      const [eventId = "", stepId = ""] = key.split(" ");
      const after = await step(p, eventId, stepId);
      const ruleId = ruleIdOf(stepId);
      const tally = done.get(ruleId) ?? {
        ruleId,
        unchanged: 0,
        earlier: 0,
        later: 0,
        cancelled: 0,
        skipped: 0,
        reasons: {},
      };
      done.set(ruleId, tally);
      if (after.state === "cancelled" || after.state === "skipped") {
        tally[after.state] += 1;
        const code = after.reason?.code ?? "";
        tally.reasons[code] = (tally.reasons[code] ?? 0) + 1;
      } else if (after.dueAt < before.dueAt) tally.earlier += 1;
      else if (after.dueAt > before.dueAt) tally.later += 1;
      else tally.unchanged += 1;
    }
    const byRule = (a: PerRule, b: PerRule) => a.ruleId.localeCompare(b.ruleId);
    const previewed = preview.rules.map(({ earlier, later, ...rule }) => ({
      ...rule,
      earlier: earlier.count,
      later: later.count,
    }));
    expect(previewed.length).toBeGreaterThan(2);
    expect([...done.values()].sort(byRule)).toEqual(previewed.sort(byRule));
    await rm(draft, { recursive: true, force: true });
  });

  it("leaves a thank-you that joined another purchase's where intake put it, behind the leader's", async () => {
    pipeline = await startPipeline("replan-joined");
    const p = pipeline;
    const { second } = await twoPansJoined(p, "cus-two-orders");

    // An edit elsewhere: both purchases are re-planned, and neither thank-you moves.
    const draft = `${p.configDir}-draft`;
    await cp(p.configDir, draft, { recursive: true });
    const file = path.join(draft, "rules.yaml");
    const doc = parseDocument(await readFile(file, "utf8"));
    doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], "P4M");
    await writeFile(file, doc.toString());
    Object.assign(process.env, p.commandEnv);
    const io = captureIo();
    expect(await runReplan({ config: draft, dryRun: true, json: true }, io)).toBe(0);
    const preview = JSON.parse(io.output()) as { rules: RulePreview[] };
    expect(preview.rules.find((r) => r.ruleId === "thank-you")).toMatchObject({
      unchanged: 2,
      earlier: { count: 0 },
      later: { count: 0 },
    });
    const edited = await loadConfig(draft);
    if (!edited.ok) throw new Error("the draft rules should be valid");
    const { generation } = await new RulesGenerations(p.redis, p.prefix).generationOf(
      edited.config.version,
    );
    const replanner = replannerOf(p, () => DateTime.utc(), p.shardOfCustomer("cus-two-orders"));
    expect(await replanner.replanEvent("evt-second", edited.config.rules, generation)).toEqual({
      purchases: 1,
      moved: 0,
      cancelled: 0,
      skipped: 0,
    });
    expect(await step(p, "evt-second", "thank-you.thank-you")).toEqual(second);
    await rm(draft, { recursive: true, force: true });
  });
});

describe("a thank-you joined to an earlier purchase's whose kind the rules change", () => {
  it("takes its new kind and, no longer a thank-you, is no longer held behind the leader's: planned as a new purchase's step", async () => {
    pipeline = await startPipeline("replan-joined-kind");
    const p = pipeline;
    const { first, second } = await twoPansJoined(p, "cus-joined-kind");

    // The rule's step, same id, becomes a custom step (so the rule coalesces no longer).
    const draft = `${p.configDir}-draft`;
    await cp(p.configDir, draft, { recursive: true });
    const file = path.join(draft, "rules.yaml");
    const doc = parseDocument(await readFile(file, "utf8"));
    const rule = ruleIndex(doc, "thank-you");
    doc.deleteIn(["rules", rule, "coalesce"]);
    doc.setIn(
      ["rules", rule, "steps", 0],
      doc.createNode({
        id: "thank-you",
        kind: "custom",
        channel: "email",
        template: "thank-you",
        delay: "PT1H",
      }),
    );
    await writeFile(file, doc.toString());
    const edited = await loadConfig(draft);
    if (!edited.ok) throw new Error("the draft rules should be valid");
    const rules = edited.config.rules;
    // Where the planner puts the step for the second purchase under these rules.
    const stored = await p.store.loadEvent("evt-second");
    if (!stored) throw new Error("the second purchase should be stored");
    const fresh = planFollowUps(stored, rules, { previousPurchases: 1 }, DateTime.utc());
    const own = Date.parse(
      fresh.steps.find((s) => s.stepId === "thank-you.thank-you")?.dueAt ?? "",
    );
    expect(own).toBeLessThan(second.dueAt);

    Object.assign(process.env, p.commandEnv);
    const io = captureIo();
    expect(await runReplan({ config: draft, dryRun: true, json: true }, io)).toBe(0);
    const preview = JSON.parse(io.output()) as { rules: RulePreview[] };
    expect(preview.rules.find((r) => r.ruleId === "thank-you")).toMatchObject({
      unchanged: 1,
      earlier: { count: 1 },
      later: { count: 0 },
    });
    const generations = new RulesGenerations(p.redis, p.prefix);
    const { generation } = await generations.generationOf(edited.config.version);
    const replanner = replannerOf(p, () => DateTime.utc(), p.shardOfCustomer("cus-joined-kind"));
    for (const eventId of ["evt-first", "evt-second"])
      await replanner.replanEvent(eventId, rules, generation);
    expect(await step(p, "evt-first", "thank-you.thank-you")).toMatchObject({
      state: "scheduled",
      dueAt: first.dueAt,
      kind: "custom",
    });
    const replanned = await step(p, "evt-second", "thank-you.thank-you");
    expect(replanned).toMatchObject({ state: "scheduled", dueAt: own, kind: "custom" });
    // The same rules again (a comment edited): nothing moves back behind the first purchase's.
    expect(await replanner.replanEvent("evt-second", rules, generation + 1)).toEqual({
      purchases: 1,
      moved: 0,
      cancelled: 0,
      skipped: 0,
    });
    expect(await step(p, "evt-second", "thank-you.thank-you")).toEqual(replanned);
    await rm(draft, { recursive: true, force: true });
  });
});

describe("a step whose kind the rules change under the same id", () => {
  const offer = (id: string, category: string, at = DateTime.utc()) =>
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: iso(at) ?? "",
      customer: { id: "cus-kinds" },
      items: [item(category, "40.00")],
    });
  /**
   * The garden and sofa offers (a 30-day discount cooldown; garden care's discount `garden` after
   * the purchase, default 20 days), the sofa's step being `id: offer` of `kind`, 25 days after the
   * purchase.
   */
  const withSofaStep = async (configDir: string, kind: "custom" | "discount", garden = "P20D") => {
    await withTwoOffers(configDir, { garden, sofa: "P25D" });
    await withFirstStep(configDir, "sofa-offer", {
      id: "offer",
      kind,
      channel: "email",
      template: kind === "discount" ? "loyalty-discount" : "thank-you",
      delay: "P25D",
    });
  };

  it("takes a kind under a cooldown that holds it where it stays only as a new purchase would: skipped", async () => {
    pipeline = await startPipeline("replan-kind-cooldown", { startWorker: false });
    const p = pipeline;
    await withSofaStep(p.configDir, "custom");
    await p.startWorker();
    await takeInTurn(p, [offer("evt-garden", "garden-care"), offer("evt-sofa", "sofas")]);
    // A custom offer 25 days on, five days after the garden discount: no cooldown holds it.
    const planned = await step(p, "evt-sofa", "sofa-offer.offer");
    expect(planned).toMatchObject({ state: "scheduled", kind: "custom" });
    // The sofa's offer becomes a discount, same id, same delay: five days from another discount.
    await withSofaStep(p.configDir, "discount");
    const after = await eventually(async () => {
      const record = await step(p, "evt-sofa", "sofa-offer.offer");
      return record.state === "scheduled" && record.kind === "custom" ? undefined : record;
    }, "the sofa offer to be re-planned");
    expect(after).toMatchObject({
      state: "skipped",
      dueAt: planned.dueAt,
      reason: { code: "cooldown" },
    });
    // As the planner decides a new purchase of a sofa now: no offer.
    await p.publisher.publish(offer("evt-sofa-2", "sofas") as never);
    await eventProcessed(p, "evt-sofa-2");
    expect(
      (await p.store.stepRecords("evt-sofa-2", ["sofa-offer.offer"])).get("sofa-offer.offer"),
    ).toBeUndefined();
    expect((await step(p, "evt-garden", "garden-offer.discount")).state).toBe("scheduled");
  });

  /** A pipeline whose sofa offer is a custom step, and a sofa bought: its offer's record. */
  const sofaCustomOffer = async (label: string) => {
    pipeline = await startPipeline(label, { startWorker: false });
    const p = pipeline;
    await withSofaStep(p.configDir, "custom");
    await p.startWorker();
    await p.publisher.publish(offer("evt-sofa", "sofas") as never);
    await eventProcessed(p, "evt-sofa");
    const planned = await step(p, "evt-sofa", "sofa-offer.offer");
    expect(planned).toMatchObject({ state: "scheduled", kind: "custom" });
    return { p, planned };
  };

  it("is counted unchanged where its due time stays, by the preview and by the workers' summary", async () => {
    const { p, planned } = await sofaCustomOffer("replan-kind-summary");

    const { draft, preview } = await previewDraft(p, (dir) => withSofaStep(dir, "discount"));
    expect(preview.rules).toEqual([
      {
        ruleId: "sofa-offer",
        unchanged: 1,
        earlier: { count: 0 },
        later: { count: 0 },
        cancelled: 0,
        skipped: 0,
        reasons: {},
      },
    ]);

    // Deployed: the worker's walk rewrites the step with its new kind, at the same time.
    const summary = await deployDraft(p, draft);
    expect(await step(p, "evt-sofa", "sofa-offer.offer")).toMatchObject({
      state: "scheduled",
      dueAt: planned.dueAt,
      kind: "discount",
    });
    expect(summary).toMatchObject({
      generation: preview.generation,
      purchases: 1,
      moved: 0,
      cancelled: 0,
      skipped: 0,
    });
    await rm(draft, { recursive: true, force: true });
  });

  it("rewritten where its due time stays, is filed in the schedule once: no second line for the same step", async () => {
    const { p, planned } = await sofaCustomOffer("replan-kind-one-line");
    const schedule = p.stores.of(p.shardOfCustomer("cus-kinds")).schedule;
    const linesOfStep = async () =>
      (await schedule.read(bucketOf(planned.dueAt), 0, 1_000)).refs.filter(
        (ref) => ref.eventId === "evt-sofa" && ref.stepId === "sofa-offer.offer",
      ).length;
    expect(await linesOfStep()).toBe(1);

    // The step becomes a discount at the same time: its record is rewritten, its line stays.
    await withSofaStep(p.configDir, "discount");
    await eventually(
      async () =>
        (await step(p, "evt-sofa", "sofa-offer.offer")).kind === "discount" ? true : undefined,
      "the sofa offer to be re-planned",
    );
    expect(await step(p, "evt-sofa", "sofa-offer.offer")).toMatchObject({
      state: "scheduled",
      dueAt: planned.dueAt,
    });
    expect(await linesOfStep()).toBe(1);
  });

  it("no longer holds the customer's later purchases under its former kind's cooldown", async () => {
    pipeline = await startPipeline("replan-kind-former", { startWorker: false });
    const p = pipeline;
    await withSofaStep(p.configDir, "discount");
    await p.startWorker();
    await p.publisher.publish(offer("evt-sofa", "sofas") as never);
    await eventProcessed(p, "evt-sofa");
    expect(await step(p, "evt-sofa", "sofa-offer.offer")).toMatchObject({ kind: "discount" });
    // The sofa's offer becomes a custom step, same id, same time: no discount is planned for it.
    await withSofaStep(p.configDir, "custom");
    await eventually(
      async () =>
        (await step(p, "evt-sofa", "sofa-offer.offer")).kind === "custom" ? true : undefined,
      "the sofa offer to be re-planned",
    );
    // A garden purchase now: its discount, 20 days on, five days from the sofa's custom offer.
    await p.publisher.publish(offer("evt-garden", "garden-care") as never);
    await eventProcessed(p, "evt-garden");
    expect(await step(p, "evt-garden", "garden-offer.discount")).toMatchObject({
      state: "scheduled",
    });
  });

  it("no longer holds, in the preview either, a step the walk re-plans after it under its former kind's cooldown", async () => {
    pipeline = await startPipeline("replan-kind-former-preview", { startWorker: false });
    const p = pipeline;
    await withSofaStep(p.configDir, "discount", "P60D");
    await p.startWorker();
    // The sofa's discount 25 days on, the garden's 60 days on: 35 days apart, both planned.
    await takeInTurn(p, [offer("evt-sofa", "sofas"), offer("evt-garden", "garden-care")]);
    for (const [id, stepId] of [
      ["evt-sofa", "sofa-offer.offer"],
      ["evt-garden", "garden-offer.discount"],
    ] as const)
      expect(await step(p, id, stepId)).toMatchObject({ state: "scheduled", kind: "discount" });

    // The sofa's offer becomes a custom step where it is; the garden's discount moves to 20 days
    // on, five days from the sofa's offer, which is no discount any more. The walk re-plans the
    // sofa first (its bucket comes first), and the garden's move is held by no cooldown.
    const { draft, preview } = await previewDraft(p, (dir) => withSofaStep(dir, "custom", "P20D"));
    const summary = await deployDraft(p, draft);
    expect(await step(p, "evt-sofa", "sofa-offer.offer")).toMatchObject({
      state: "scheduled",
      kind: "custom",
    });
    expect((await step(p, "evt-garden", "garden-offer.discount")).state).toBe("scheduled");
    expect(summary).toMatchObject({ moved: 1, cancelled: 0, skipped: 0 });
    expect(preview.rules.find((r) => r.ruleId === "garden-offer")).toMatchObject({
      unchanged: 0,
      earlier: { count: 1 },
      skipped: 0,
    });
    await rm(draft, { recursive: true, force: true });
  });

  it("of a purchase re-planned in the same batch of the walk as another of the customer's is held to where the walk leaves that one, by the workers as in the preview", async () => {
    pipeline = await startPipeline("replan-kind-same-batch", { startWorker: false });
    const p = pipeline;
    await withSofaStep(p.configDir, "custom", "P25D");
    await p.startWorker();
    // A garden discount and a custom sofa offer, both 25 days on: one bucket, one batch.
    const now = DateTime.utc();
    await takeInTurn(p, [offer("evt-garden", "garden-care", now), offer("evt-sofa", "sofas", now)]);
    const garden = await step(p, "evt-garden", "garden-offer.discount");
    const sofa = await step(p, "evt-sofa", "sofa-offer.offer");
    expect(bucketOf(sofa.dueAt)).toBe(bucketOf(garden.dueAt));

    // The garden's discount moves to 60 days on, and the sofa's offer becomes a discount where it
    // is: 35 days from the garden's new due time. The walk re-plans the garden's first (it was
    // filed first), so the sofa's discount stays, as the preview says.
    const { draft, preview } = await previewDraft(p, (dir) =>
      withSofaStep(dir, "discount", "P60D"),
    );
    expect(preview.rules.find((r) => r.ruleId === "sofa-offer")).toMatchObject({
      unchanged: 1,
      skipped: 0,
    });
    expect(preview.rules.find((r) => r.ruleId === "garden-offer")).toMatchObject({
      later: { count: 1 },
    });
    const summary = await deployDraft(p, draft);
    expect(await step(p, "evt-sofa", "sofa-offer.offer")).toMatchObject({
      state: "scheduled",
      kind: "discount",
      dueAt: sofa.dueAt,
    });
    expect(summary).toMatchObject({ purchases: 2, moved: 1, cancelled: 0, skipped: 0 });
    await rm(draft, { recursive: true, force: true });
  });

  it("of two purchases within its new kind's cooldown is skipped for one, by the workers and in the preview", async () => {
    pipeline = await startPipeline("replan-kind-two", { startWorker: false });
    const p = pipeline;
    await withSofaStep(p.configDir, "custom");
    await p.startWorker();
    const now = DateTime.utc();
    await takeInTurn(p, [
      offer("evt-sofa-a", "sofas", now.minus({ minutes: 2 })),
      offer("evt-sofa-b", "sofas", now),
    ]);
    for (const id of ["evt-sofa-a", "evt-sofa-b"])
      expect(await step(p, id, "sofa-offer.offer")).toMatchObject({ state: "scheduled" });

    // Both offers become discounts two minutes apart, under a 30-day discount cooldown: as two
    // new purchases of sofas, the first keeps its offer and the second's is skipped.
    const { draft, preview } = await previewDraft(p, (dir) => withSofaStep(dir, "discount"));
    const summary = await deployDraft(p, draft);
    const states = await Promise.all(
      ["evt-sofa-a", "evt-sofa-b"].map(async (id) => (await step(p, id, "sofa-offer.offer")).state),
    );
    expect(states.sort()).toEqual(["scheduled", "skipped"]);
    expect(summary).toMatchObject({ moved: 0, cancelled: 0, skipped: 1 });
    // The preview counts the walk's own re-plans against each other, as the workers hold them.
    const [sofas, ...others] = preview.rules;
    expect(others).toEqual([]);
    expect(sofas).toMatchObject({ ruleId: "sofa-offer", unchanged: 1, cancelled: 0, skipped: 1 });
    expect(sofas?.reasons).toEqual({ cooldown: 1 });
    expect([sofas?.earlier.count, sofas?.later.count]).toEqual([0, 0]);
    await rm(draft, { recursive: true, force: true });
  });
});

describe("a call a re-plan skips for a cooldown", () => {
  /** The big-ticket check-in `delay` after the purchase, as a call. */
  const withCallDelay = async (configDir: string, delay: string) => {
    const file = path.join(configDir, "rules.yaml");
    const doc = parseDocument(await readFile(file, "utf8"));
    doc.setIn(["rules", ruleIndex(doc, "big-ticket"), "steps", 1, "delay"], delay);
    await writeFile(file, doc.toString());
  };
  /**
   * The big-ticket check-in as a call (three months on) with a text a day after it, a check-in
   * text 20 days after a pan, and a 30-day check-in cooldown.
   */
  const withCallAndPanCheckIn = async (configDir: string) => {
    await withVoiceCheckIn(configDir, [], "P1D");
    const file = path.join(configDir, "rules.yaml");
    const doc = parseDocument(await readFile(file, "utf8"));
    doc.set("cooldowns", doc.createNode({ "check-in": "P30D" }));
    const rules = doc.get("rules") as { items: unknown[] };
    rules.items.unshift(
      doc.createNode({
        id: "pan-check-in",
        priority: 190,
        when: { anyItem: { categories: ["kitchenware"] } },
        steps: [{ kind: "check-in", channel: "sms", template: "check-in", delay: "P20D" }],
      }),
    );
    await writeFile(file, doc.toString());
  };
  const bought = (id: string, category: string, price: string, at: DateTime) =>
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: iso(at) ?? "",
      customer: { id: "cus-calls" },
      items: [item(category, price)],
    });

  it("skips its fallback too, for the cooldown: counted so, and so previewed", async () => {
    pipeline = await startPipeline("replan-call-cooldown", { startWorker: false });
    const p = pipeline;
    await withCallAndPanCheckIn(p.configDir);
    await p.startWorker();
    const now = DateTime.utc();
    await takeInTurn(p, [
      bought("evt-pan", "kitchenware", "75.00", now),
      bought("evt-tv", "televisions", "899.00", now),
    ]);
    expect((await step(p, "evt-pan", "pan-check-in.check-in")).state).toBe("scheduled");
    const call = await step(p, "evt-tv", "big-ticket.check-in");
    const fallback = await step(p, "evt-tv", "big-ticket.check-in-fallback");
    expect(call).toMatchObject({ state: "scheduled", channel: "voice" });
    expect(fallback).toMatchObject({ state: "scheduled", channel: "sms" });

    // The call 25 days after the purchase: five days after the pan's check-in, within the
    // cooldown. A skipped call lets its fallback go at send time, so the text would go in it.
    const { draft, preview } = await previewDraft(p, (dir) => withCallDelay(dir, "P25D"));
    expect(preview.rules.find((r) => r.ruleId === "big-ticket")).toMatchObject({
      cancelled: 0,
      skipped: 2,
      reasons: { cooldown: 2 },
    });

    // Deployed: the call and its fallback are both skipped, where they were.
    const summary = await deployDraft(p, draft);
    expect(summary).toMatchObject({ moved: 0, cancelled: 0, skipped: 2 });
    expect(await step(p, "evt-tv", "big-ticket.check-in")).toMatchObject({
      state: "skipped",
      dueAt: call.dueAt,
      reason: { code: "cooldown" },
    });
    expect(await step(p, "evt-tv", "big-ticket.check-in-fallback")).toMatchObject({
      state: "skipped",
      dueAt: fallback.dueAt,
      reason: { code: "cooldown" },
    });
    expect((await step(p, "evt-pan", "pan-check-in.check-in")).state).toBe("scheduled");
    // Counted under their reason, as other re-plan skips are.
    const ledger = p.stores.of(0).ledger;
    const totals = sumHours(await ledger.hours(Date.now() - 7_200_000, Date.now() + 3_600_000));
    expect(totals.get("reason|skipped|voice|check-in|cooldown")).toBe(1);
    expect(totals.get("reason|skipped|sms|check-in|cooldown")).toBe(1);
    await rm(draft, { recursive: true, force: true });
  });
});

describe("a step a re-plan gives the kind of another step of its purchase", () => {
  it("is skipped as superseded when a rule above has a step of that kind: one per purchase, as planned; counted so, and so previewed", async () => {
    pipeline = await startPipeline("replan-kind-superseded");
    const p = pipeline;
    await p.publisher.publish(buy("evt-laptop", "laptops", "400.00", DateTime.utc()) as never);
    await allInSchedule(p, [
      ["evt-laptop", "big-ticket.check-in"],
      ["evt-laptop", "accessories.discount"],
    ]);
    const checkIn = await step(p, "evt-laptop", "big-ticket.check-in");

    // The accessories rule's step (same id) becomes a check-in email: the big-ticket rule above
    // it has the purchase's check-in already.
    const { draft, preview } = await previewDraft(p, (dir) =>
      withFirstStep(dir, "accessories", {
        id: "discount",
        kind: "check-in",
        channel: "email",
        template: "thank-you",
        delay: "P14D",
      }),
    );
    expect(preview.rules.find((r) => r.ruleId === "accessories")).toMatchObject({
      unchanged: 0,
      skipped: 1,
      reasons: { superseded: 1 },
    });
    expect(preview.rules.find((r) => r.ruleId === "big-ticket")).toMatchObject({ skipped: 0 });

    const summary = await deployDraft(p, draft);
    expect(summary).toMatchObject({ moved: 0, cancelled: 0, skipped: 1 });
    expect(await step(p, "evt-laptop", "accessories.discount")).toMatchObject({
      state: "skipped",
      reason: { code: "superseded" },
    });
    expect(await step(p, "evt-laptop", "big-ticket.check-in")).toEqual(checkIn);
    const ledger = p.stores.of(p.shardOfCustomer("cus-evt-laptop")).ledger;
    const totals = sumHours(await ledger.hours(Date.now() - 7_200_000, Date.now() + 3_600_000));
    expect(totals.get("reason|skipped|email|discount|superseded")).toBe(1);
    await rm(draft, { recursive: true, force: true });
  });
});
