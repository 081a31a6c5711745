import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { createOutboxChannel, outboxFileName } from "../../src/channels/outbox.js";
import { runSimulate } from "../../src/cli/simulate-command.js";
import { loadRules } from "../../src/config/load-rules.js";
import type { KindOutcomes } from "../../src/domain/delivery-simulation.js";
import { stepIdOf } from "../../src/domain/step-ref.js";
import { createLogger } from "../../src/logger.js";
import { followUpJobId } from "../../src/queue/names.js";
import { ThankYouGroups } from "../../src/store/thank-you-groups.js";
import { startWorker } from "../../src/worker.js";
import { captureIo } from "../support/capture-io.js";
import { item, type PurchaseSpec, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
} from "../support/pipeline-harness.js";
import { settledQueue } from "../support/settled-queue.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

/** The longest delay in the test policy: purchases this long (and a little) ago are all due now. */
const LONGEST_DELAY_MINUTES = 180;

/**
 * The shipped policy with every step due within three hours of the purchase, windows open all
 * day every day and no holidays (so the hour CI runs at does not matter), and the shipped caps:
 * email 1 a day and 3 a week, SMS 1 a day and 2 a week; thank-yous exempt, the rest deferred;
 * the shipped coalescing of thank-yous and the loyalty cooldown; no budgets (see below).
 */
async function writeTestPolicy(rulesFile: string): Promise<void> {
  const doc = parseDocument(await readFile(rulesFile, "utf8"));
  doc.setIn(["holidays"], doc.createNode([]));
  // Which steps a budget stops, and whether a step the budget stopped left cap room for another
  // of the customer's, depends on the order of sends, which several concurrent sends do not fix;
  // simulate's budgets have unit tests (delivery-simulation.test.ts).
  doc.deleteIn(["budget"]);
  doc.setIn(
    ["frequencyCaps"],
    doc.createNode({
      email: [
        { max: 1, per: "PT24H" },
        { max: 3, per: "P7D" },
      ],
      sms: [
        { max: 1, per: "PT24H" },
        { max: 2, per: "P7D" },
      ],
      voice: [{ max: 1, per: "P7D" }],
    }),
  );
  doc.setIn(
    ["whenCapped"],
    doc.createNode({
      "thank-you": "exempt",
      "check-in": "defer",
      discount: "defer",
      custom: "defer",
    }),
  );
  const rules = doc.get("rules") as { items: { get(key: string): unknown }[] };
  const delays: Record<string, string> = {
    "services.thank-you": "PT2H",
    "big-ticket.thank-you": "PT1H",
    "big-ticket.check-in": "PT3H",
    "accessories.discount": "PT2H",
    "loyal-customer.discount": "PT2H",
    "thank-you.thank-you": "PT1H",
  };
  for (const [index, rule] of rules.items.entries()) {
    const steps = (rule.get("steps") as { items: { get(key: string): unknown }[] } | undefined)
      ?.items;
    for (const [stepIndex, step] of (steps ?? []).entries()) {
      const id = `${String(rule.get("id"))}.${String(step.get("id") ?? step.get("kind"))}`;
      const delay = delays[id];
      if (delay === undefined) throw new Error(`the test policy has no delay for ${id}`);
      doc.setIn(["rules", index, "steps", stepIndex, "delay"], delay);
    }
  }
  await writeFile(rulesFile, doc.toString());
}

/**
 * 200 purchases of 150 customers (every fourth has two purchases, every tenth three, so caps
 * bite), of TVs, laptops, kitchenware, newspapers and salon visits, with and without consent or
 * a phone. Deterministic: the same list every run, only the times follow the clock.
 */
function purchases(now: DateTime): Record<string, unknown>[] {
  const baskets: PurchaseSpec["items"][] = [
    [item("televisions", "899.00", { name: "OLED TV", sku: "TV-1" })],
    [item("laptops", "1199.00", { name: "Laptop 14", sku: "LAP-14" })],
    [item("kitchenware", "75.00", { name: "Casserole", sku: "KIT-1" })],
    [item("newspapers", "2.50", { name: "Daily News", sku: "NEWS" })],
    [item("salon", "40.00", { name: "Haircut", sku: "SALON" })],
    [
      item("cameras", "450.00", { name: "Camera", sku: "CAM-1" }),
      item("televisions", "600.00", { name: "TV 43", sku: "TV-43" }),
    ],
  ];
  const customers: string[] = [];
  for (let c = 0; c < 150; c++) {
    customers.push(`cus-${c}`);
    if (c % 4 === 0) customers.push(`cus-${c}`);
    if (c % 10 === 0) customers.push(`cus-${c}`);
  }
  // And one customer who buys five times within the hour: one loyalty discount (the cooldown),
  // one thank-you for all five orders (coalesce).
  const list = [...customers.slice(0, 195), ...Array.from({ length: 5 }, () => "cus-900")];
  return list.map((customerId, i) => {
    const c = Number(customerId.slice(4));
    const consent =
      c % 7 === 3
        ? { email: false, sms: false } // declined everything
        : c % 5 === 1
          ? { sms: true } // no marketing email (no discounts)
          : { email: true, sms: true };
    // Past the longest delay by 1 to 30 minutes, so every step is due, none past its grace.
    const occurredAt = now
      .minus({ minutes: LONGEST_DELAY_MINUTES + 1 + ((i * 7) % 30) })
      .startOf("second")
      .toISO({ suppressMilliseconds: true });
    return purchaseInput({
      id: `evt-sim-${i}`,
      orderId: `ord-sim-${i}`,
      occurredAt: occurredAt ?? "",
      customer: {
        id: customerId,
        email: `${customerId}@example.com`,
        phone: c % 6 === 5 ? undefined : `+44207946${String(c).padStart(4, "0")}`,
        consent,
      },
      items:
        customerId === "cus-900"
          ? [item("kitchenware", "75.00", { name: "Casserole", sku: "KIT-1" })]
          : baskets[(c + i) % baskets.length],
    });
  });
}

type Counts = Record<string, number>;
const key = (channel: string, kind: string) => `${channel} ${kind}`;
const add = (counts: Counts, k: string) => {
  counts[k] = (counts[k] ?? 0) + 1;
};

/**
 * Where the thank-yous that joined another's wait: in the schedule (the default horizon, as a run
 * mostly finds them), or already jobs, as the promoter makes them when a run falls in the
 * seconds before their bucket comes within its horizon (here: always, with a horizon past them).
 */
const HORIZONS: { joined: string; env: Record<string, string> }[] = [
  { joined: "in the schedule", env: {} },
  { joined: "already jobs", env: { PROMOTE_HORIZON_MS: String(20 * 60_000) } },
];

describe("simulate tells the truth", () => {
  it.each(HORIZONS)(
    "the worker sends (and keeps waiting) what simulate says, per channel and kind (joined thank-yous $joined)",
    async ({ env }) => {
      // One purchase at a time, in file order, as simulate reads them: the repeat customer's
      // purchases are counted (and cooled down) in the same order.
      pipeline = await startPipeline("sim-vs-worker", {
        startWorker: false,
        env: { INTAKE_CONCURRENCY: "1", ...env },
      });
      const p = pipeline;
      await writeTestPolicy(path.join(p.configDir, "rules.yaml"));
      const loaded = await loadRules(p.configDir);
      if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
      const rules = loaded.rules;
      const outbox = createOutboxChannel({ dir: p.outboxDir, from: "Shop <hello@shop.example>" });
      p.worker = await startWorker({
        env: p.env,
        logger: createLogger({ level: "silent", pretty: false }),
        channels: { email: outbox, sms: outbox, voice: outbox },
        watchConfig: false,
      });

      const events = purchases(DateTime.utc());
      const file = path.join(p.configDir, "..", "purchases.ndjson");
      await writeFile(file, `${events.map((e) => JSON.stringify(e)).join("\n")}\n`);
      const io = captureIo();
      await runSimulate(file, { config: p.configDir, json: true }, io);
      const simulated = JSON.parse(io.output()) as {
        purchases: number;
        coalesced: number;
        delivery: { outcomes: KindOutcomes[] };
      };
      expect(simulated).toMatchObject({ purchases: 200, invalid: [] });

      // Every purchase is taken in before anything is sent, as simulate assumes (each arrives at
      // its occurredAt, long before its thank-you is due): then a later purchase of the hour
      // always joins the first one's thank-you.
      await p.followUps.pause();
      for (const event of events) await p.publisher.publish(event as never);
      await settledQueue(p.events, "the purchase events", 30_000);
      // The purchases whose thank-you joined an earlier one's: theirs waits behind it, to be
      // skipped; simulate counts those apart (`coalesced`).
      const groups = new ThankYouGroups(p.redis, p.prefix);
      const joined = new Set<string>();
      for (const event of events) {
        const customerId = (event.customer as { id: string }).id;
        const filing = await groups.filingOf(customerId, String(event.id));
        if (filing?.role === "joined") joined.add(String(event.id));
      }
      expect(joined.size).toBe(simulated.coalesced);
      // Customers with two or three purchases within the hour, and the one with five.
      expect(joined.size).toBeGreaterThan(20);
      await p.followUps.resume();

      // Every step the worker planned, by the outbox file it would write when sent.
      const stepIds = rules.rules.flatMap((rule) => rule.steps.map((step) => stepIdOf(rule, step)));
      const labels = new Map(
        rules.rules.flatMap((rule) =>
          rule.steps.map((step) => [stepIdOf(rule, step), key(step.channel, step.kind)] as const),
        ),
      );
      const records = async () => {
        const all: { eventId: string; stepId: string; state: string; code?: string }[] = [];
        for (const event of events) {
          const eventId = String(event.id);
          for (const [stepId, record] of await p.store.stepRecords(eventId, stepIds)) {
            if (!record) continue;
            all.push({
              eventId,
              stepId,
              state: record.state,
              ...(record.reason && { code: record.reason.code }),
            });
          }
        }
        return all.filter(
          (r) => !(joined.has(r.eventId) && labels.get(r.stepId) === "email thank-you"),
        );
      };

      // Settled: nothing waiting or running, every delayed job far ahead (a cap's wait is hours, a
      // joined thank-you's a quarter of an hour; a rate slot's or a retry's is moments), and every
      // step either ended or waiting for its own delayed job: matched by job id, not by counting,
      // since the delayed set may also hold jobs of joined thank-yous (records() leaves those out),
      // which the promoter makes once their bucket comes within its horizon, at some times of day.
      // A step being sent (`sending`) is not settled, and nothing may have moved while the records
      // were read: a send still under way would be missing from the outbox read below.
      const quiet = async () => {
        const counts = await p.followUps.getJobCounts("waiting", "active", "prioritized");
        return (counts.waiting ?? 0) + (counts.active ?? 0) + (counts.prioritized ?? 0) === 0;
      };
      const farDelayed = async (): Promise<string | undefined> => {
        const delayed = await p.redis.zrange(
          p.followUps.keys.delayed ?? "",
          "0",
          "-1",
          "WITHSCORES",
        );
        const soon = Date.now() + 10 * 60_000;
        for (let i = 1; i < delayed.length; i += 2)
          if (Math.floor(Number(delayed[i]) / 0x1000) < soon) return undefined;
        return delayed.filter((_, i) => i % 2 === 0).join(" ");
      };
      const settled = await eventually(
        async () => {
          if (!(await quiet())) return undefined;
          const delayed = await farDelayed();
          if (delayed === undefined) return undefined;
          const waitingJobs = new Set(delayed.split(" "));
          const all = await records();
          const pending = all.filter((r) => r.state === "scheduled" || r.state === "sending");
          if (
            pending.some(
              (r) => r.state === "sending" || !waitingJobs.has(followUpJobId(r.eventId, r.stepId)),
            )
          )
            return undefined;
          return (await quiet()) && (await farDelayed()) === delayed ? all : undefined;
        },
        "the worker to settle",
        60_000,
      );

      const sentByFile = new Map<string, string>();
      for (const r of settled) {
        for (const ext of [".eml", ".json"])
          sentByFile.set(
            outboxFileName(followUpJobId(r.eventId, r.stepId), ext),
            labels.get(r.stepId) ?? "?",
          );
      }
      // `ended`: steps that ended otherwise (failed, cancelled), which simulate never foresees: a
      // send that failed under load shows here by its code, not as one sent fewer.
      const worker = {
        sent: {} as Counts,
        waiting: {} as Counts,
        skipped: {} as Counts,
        ended: {} as Counts,
      };
      const files = await readdir(p.outboxDir);
      for (const name of files) {
        const label = sentByFile.get(name);
        expect(label, `outbox file ${name} belongs to a planned step`).toBeDefined();
        add(worker.sent, label ?? "?");
      }
      // What the outbox holds is what the records say was sent, step by step.
      const sentSteps = settled.filter((r) => r.state === "sent");
      expect(files.length).toBe(sentSteps.length);
      for (const r of sentSteps) {
        const id = followUpJobId(r.eventId, r.stepId);
        expect(
          files.some(
            (name) => name === outboxFileName(id, ".eml") || name === outboxFileName(id, ".json"),
          ),
          `the outbox holds ${r.eventId}/${r.stepId}, which is sent`,
        ).toBe(true);
      }
      for (const r of settled) {
        if (r.state === "scheduled") add(worker.waiting, labels.get(r.stepId) ?? "?");
        if (r.state === "skipped") add(worker.skipped, `${labels.get(r.stepId)} ${r.code}`);
        else if (r.state !== "scheduled" && r.state !== "sent")
          add(worker.ended, `${labels.get(r.stepId)} ${r.state} ${r.code}`);
      }

      const simulate = {
        sent: {} as Counts,
        waiting: {} as Counts,
        skipped: {} as Counts,
        ended: {} as Counts,
      };
      for (const o of simulated.delivery.outcomes) {
        if (o.sent - o.waited > 0) simulate.sent[key(o.channel, o.kind)] = o.sent - o.waited;
        if (o.waited > 0) simulate.waiting[key(o.channel, o.kind)] = o.waited;
        for (const [code, count] of Object.entries(o.skipped))
          simulate.skipped[`${key(o.channel, o.kind)} ${code}`] = count;
      }
      // Checked before the counts, of which it is one (an email discount): it names itself if it fails.
      // The customer who bought five times got one loyalty discount: the cooldown held the other.
      const loyal = events.filter((e) => (e.customer as { id: string }).id === "cus-900");
      const discounts = await Promise.all(
        loyal.map(async (e) =>
          (await p.store.stepRecords(String(e.id), ["loyal-customer.discount"])).get(
            "loyal-customer.discount",
          ),
        ),
      );
      expect(discounts.filter((d) => d !== undefined)).toHaveLength(1);
      expect(worker).toEqual(simulate);
      // The comparison covers what matters: every kind, and caps that bite on both channels.
      expect(Object.keys(simulate.sent).sort()).toEqual([
        "email discount",
        "email thank-you",
        "sms check-in",
      ]);
      expect(simulate.waiting["email discount"]).toBeGreaterThan(0);
      expect(simulate.waiting["sms check-in"]).toBeGreaterThan(0);
    },
    120_000,
  );
});

describe("simulate and the worker, a thank-you going later than planned", () => {
  it("file the purchases that come while it waits alike: on their own, none joining a later one's; the same thank-yous go, wait and are coalesced", async () => {
    pipeline = await startPipeline("sim-vs-worker-deferred", {
      startWorker: false,
      env: { INTAKE_CONCURRENCY: "1" },
    });
    const p = pipeline;
    // Thank-yous 10 s after a purchase, joined within 10 s; one email an hour, thank-yous deferred
    // by it: the first purchase's thank-you waits for the cap an earlier email took.
    const rulesFile = path.join(p.configDir, "rules.yaml");
    const doc = parseDocument(await readFile(rulesFile, "utf8"));
    doc.setIn(["holidays"], doc.createNode([]));
    doc.deleteIn(["budget"]);
    doc.setIn(["frequencyCaps"], doc.createNode({ email: [{ max: 1, per: "PT1H" }] }));
    doc.setIn(["whenCapped", "thank-you"], "defer");
    const items = (doc.get("rules") as { items: { get(key: string): unknown }[] }).items;
    const index = items.findIndex((rule) => rule.get("id") === "thank-you");
    doc.setIn(["rules", index, "coalesce"], "PT10S");
    doc.setIn(["rules", index, "steps", 0, "delay"], "PT10S");
    await writeFile(rulesFile, doc.toString());
    await p.startWorker();

    const customer = {
      id: "cus-deferred",
      email: "cus-deferred@example.com",
      consent: { email: true },
    };
    const at = (time: DateTime) => time.toUTC().toISO() ?? "";
    const bought = (id: string, category: string, price: string, time: DateTime) =>
      purchaseInput({
        id,
        orderId: `ord-${id}`,
        occurredAt: at(time),
        customer,
        items: [item(category, price)],
      });
    const events: Record<string, unknown>[] = [];
    const takeIn = async (event: Record<string, unknown>) => {
      events.push(event);
      await p.publisher.publish(event as never);
      await eventProcessed(p, String(event.id));
    };
    const record = async (eventId: string, stepId: string) =>
      (await p.store.stepRecords(eventId, [stepId])).get(stepId);
    // A salon visit two hours ago: its thank-you (due 5 minutes ago) takes the day's email.
    await takeIn(bought("evt-salon", "salon", "40.00", DateTime.utc().minus({ minutes: 125 })));
    await eventually(
      async () =>
        (await record("evt-salon", "services.thank-you"))?.state === "sent" ? true : undefined,
      "the salon's thank-you to go",
    );
    // Two pans two seconds apart: the second joins the first's thank-you, which the cap defers.
    await takeIn(bought("evt-first", "kitchenware", "75.00", DateTime.utc()));
    await takeIn(bought("evt-second", "kitchenware", "75.00", DateTime.utc()));
    const firstDue = (await record("evt-first", "thank-you.thank-you"))?.dueAt ?? 0;
    await eventually(
      async () =>
        (await record("evt-first", "thank-you.thank-you"))?.postponed?.code === "frequency-cap"
          ? true
          : undefined,
      "the first pan's thank-you to wait for the cap",
      30_000,
    );
    expect(Date.now()).toBeGreaterThan(firstDue);
    // Two more pans, after the first's window and its planned due time, its thank-you not gone.
    await takeIn(bought("evt-third", "kitchenware", "75.00", DateTime.utc()));
    await takeIn(bought("evt-fourth", "kitchenware", "75.00", DateTime.utc()));

    const groups = new ThankYouGroups(p.redis, p.prefix);
    const filed: Record<string, string | undefined> = {};
    for (const event of events)
      filed[String(event.id)] = (await groups.filingOf(customer.id, String(event.id)))?.role;
    // Filed by the worker: the third and fourth on their own (the group stays open while its
    // thank-you waits), so each gets a thank-you of its own.
    expect(filed).toEqual({
      "evt-salon": undefined,
      "evt-first": "lead",
      "evt-second": "joined",
      "evt-third": "alone",
      "evt-fourth": "alone",
    });
    await eventually(
      async () => {
        for (const id of ["evt-third", "evt-fourth"])
          if ((await record(id, "thank-you.thank-you"))?.postponed?.code !== "frequency-cap")
            return undefined;
        return true;
      },
      "the third and fourth pans' thank-yous to wait for the cap",
      30_000,
    );
    const worker = { sent: 0, waiting: 0, joined: 0 };
    for (const event of events) {
      const eventId = String(event.id);
      if (filed[eventId] === "joined") worker.joined++;
      const stepId = eventId === "evt-salon" ? "services.thank-you" : "thank-you.thank-you";
      const state = (await record(eventId, stepId))?.state;
      if (state === "sent") worker.sent++;
      else if (state === "scheduled" && filed[eventId] !== "joined") worker.waiting++;
    }

    const file = path.join(p.configDir, "..", "purchases.ndjson");
    await writeFile(file, `${events.map((e) => JSON.stringify(e)).join("\n")}\n`);
    const io = captureIo();
    await runSimulate(file, { config: p.configDir, json: true }, io);
    const simulated = JSON.parse(io.output()) as {
      coalesced: number;
      delivery: { outcomes: KindOutcomes[] };
    };
    const thankYous = simulated.delivery.outcomes.find(
      (o) => o.channel === "email" && o.kind === "thank-you",
    );
    // What the worker sent now, what waits for the cap (sent later: `waited`), what was joined.
    expect({
      sent: (thankYous?.sent ?? 0) - (thankYous?.waited ?? 0),
      waiting: thankYous?.waited ?? 0,
      joined: simulated.coalesced,
    }).toEqual(worker);
    expect(worker).toEqual({ sent: 1, waiting: 3, joined: 1 });
  }, 60_000);
});
