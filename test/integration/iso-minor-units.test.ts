import { hash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import type { PurchaseCompleted } from "../../src/domain/events.js";
import { afterRefunds } from "../../src/domain/refund.js";
import { DeliveryLedger, sumHours } from "../../src/store/delivery-ledger.js";
import { hourOf, StoreKeys, shardScope } from "../../src/store/keys.js";
import { OrderStore } from "../../src/store/order-store.js";
import { encodePurchase } from "../../src/store/purchase-codec.js";
import { purchaseOfFields } from "../../src/store/purchase-fields.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { reportModelOf } from "../support/report-model.js";

/**
 * Amounts in ISO 4217 minor units (README: Event contract v1, and Operations: upgrading): a
 * purchase of 1299.50 HUF is taken, and a threshold in HUF with decimals decides; what a version up
 * to 6 December 2026 stored in HUF without decimals (purchases, refunds, ledger revenue) means
 * what it meant after the upgrade.
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const THRESHOLD = `total: { min: { GBP: "50", USD: "60", EUR: "55" } }`;

/** The shipped rules, with a thank-you threshold of 1299.50 HUF. */
async function startWithForintThreshold(label: string): Promise<PipelineHarness> {
  const p = await startPipeline(label, { startWorker: false });
  pipeline = p;
  const file = path.join(p.configDir, "rules.yaml");
  const text = await readFile(file, "utf8");
  expect(text).toContain(THRESHOLD);
  await writeFile(
    file,
    text.replace(THRESHOLD, `total: { min: { GBP: "50", USD: "60", EUR: "55", HUF: "1299.50" } }`),
  );
  await p.startWorker();
  return p;
}

const forints = (id: string, amount: string, occurredAt: DateTime) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    customer: { id: `cus-${id}` },
    occurredAt: occurredAt.toUTC().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
    currency: "HUF",
    items: [item("kitchenware", amount, { sku: "POT" })],
  });

async function taken(p: PipelineHarness, jobId: string): Promise<void> {
  await eventually(async () => {
    const state = await (await p.events.getJob(jobId))?.getState();
    if (state === "failed") throw new Error(`${jobId} failed`);
    return state === "completed" ? true : undefined;
  }, `intake of ${jobId}`);
}

it("takes a purchase of 1299.50 HUF, and a threshold of 1299.50 HUF decides for it", async () => {
  const p = await startWithForintThreshold("huf-intake");
  const twoHoursAgo = DateTime.utc().minus({ hours: 2 });
  await p.publisher.publish(forints("evt-huf", "1299.50", twoHoursAgo) as never);
  await p.publisher.publish(forints("evt-huf-below", "1299.49", twoHoursAgo) as never);
  await taken(p, "evt-huf");
  await taken(p, "evt-huf-below");

  const stored = await p.store.loadEvent("evt-huf");
  expect(stored?.total).toEqual({ minor: 129_950, currency: "HUF" });
  expect(
    (await p.store.stepRecords("evt-huf-below", ["thank-you.thank-you"])).get(
      "thank-you.thank-you",
    ),
  ).toBeUndefined();
  // Due an hour after the purchase, so at once: the email shows the amount as given.
  const [mail] = await p.sink.waitForMessages(1);
  expect(mail?.parsed.text).toMatch(/Total: HUF\s1,299\.50\n/);
});

it("reads HUF stored by a version up to 6 December 2026 (no decimals) in today's minor units", async () => {
  const p = await startWithForintThreshold("huf-upgrade");
  // Due in an hour: the purchase stays stored whole.
  const input = forints("evt-old", "1300", DateTime.utc().minus({ minutes: 1 }));
  await p.publisher.publish(input as never);
  await taken(p, "evt-old");

  // Turn what this version stored into what a version up to 6 December 2026 stored for the same
  // event: the purchase in format 1 with 1300 minor units of HUF, and its fingerprint of that.
  const scope = shardScope(p.prefix, await p.shardOf("evt-old"), p.shards);
  const keys = new StoreKeys(scope);
  const record = keys.eventRecord("evt-old");
  const now = await p.store.loadEvent("evt-old");
  if (!now) throw new Error("no stored purchase");
  expect(now.total).toEqual({ minor: 130_000, currency: "HUF" });
  const former: PurchaseCompleted = {
    ...now,
    items: now.items.map((entry) => ({ ...entry, unitPrice: { minor: 1300, currency: "HUF" } })),
    total: { minor: 1300, currency: "HUF" },
  };
  // Format 1 is the deflated JSON (today's format 3 has the same body for these currencies).
  const formerBytes = Buffer.concat([Buffer.of(1), encodePurchase(former).subarray(1)]);
  const fields = await p.redis.hgetallBuffer(record);
  expect(purchaseOfFields(fields)?.[0]).toBe(3);
  const chunks = Object.keys(fields).filter((field) => /^p\d+$/.test(field));
  await p.redis.hdel(record, ...chunks);
  for (let at = 0, n = 0; at < formerBytes.length; at += 64, n++)
    await p.redis.hset(record, `p${n}`, formerBytes.subarray(at, at + 64));
  // Those versions hashed the event's JSON as read, with no mark of its units.
  const formerFingerprint = hash("sha256", JSON.stringify(former), "base64url").slice(0, 11);
  await p.redis.hset(record, "f", formerFingerprint);
  const claim = new StoreKeys(p.prefix).eventIdClaim("evt-old");
  if (await p.redis.exists(claim)) await p.redis.set(claim, formerFingerprint, "KEEPTTL");
  // A partial refund of 500 HUF as such a version recorded it (record-refund.lua), and revenue
  // of 1300 HUF it counted into the ledger (count-in-record.lua).
  const orderKey = new StoreKeys(p.prefix).order("ord-evt-old");
  await p.redis.hset(orderKey, "r:ref-old", "500 HUF");
  const by = "email|thank-you|thank-you|recent";
  const hour = keys.ledgerHour(hourOf(Date.now()));
  await p.redis.hincrby(hour, `backrev|${by}|HUF`, 1300);
  await p.redis.pexpire(hour, 86_400_000);

  // This version reads all of it in ISO 4217 minor units.
  const purchase = await p.store.loadEvent("evt-old");
  expect(purchase?.total).toEqual({ minor: 130_000, currency: "HUF" });
  expect(purchase?.items[0]?.unitPrice).toEqual({ minor: 130_000, currency: "HUF" });
  const orders = new OrderStore(p.redis, p.prefix);
  // And a refund of 250.50 HUF it records beside the earlier one.
  const order = await orders.addRefund(
    "ord-evt-old",
    "ref-new",
    { amount: { minor: 25_050, currency: "HUF" } },
    86_400_000,
  );
  expect(order.refunds).toEqual(
    expect.arrayContaining([
      { minor: 50_000, currency: "HUF" },
      { minor: 25_050, currency: "HUF" },
    ]),
  );
  expect(order.refunds).toHaveLength(2);
  if (!purchase) throw new Error("no purchase");
  expect(afterRefunds(purchase, order).event.total).toEqual({ minor: 54_950, currency: "HUF" });

  const ledger = new DeliveryLedger(p.redis, scope);
  expect(
    await ledger.countBroughtBack(
      "evt-old",
      { channel: "email", kind: "thank-you", ruleId: "thank-you" },
      "recent",
      { minor: 129_950, currency: "HUF" },
      Date.now(),
    ),
  ).toBe(true);
  const counts = sumHours(
    await new DeliveryLedger(p.redis, p.prefix).hours(
      Date.now() - 7_200_000,
      Date.now() + 3_600_000,
    ),
  );
  const revenue = Object.fromEntries([...counts].filter(([field]) => field.startsWith("backrev")));
  expect(reportModelOf(revenue).broughtBack.revenue).toEqual([
    { currency: "HUF", amount: "2599.50" },
  ]);

  // The same event sent again is the event that version recorded, not another under its id.
  await (await p.events.getJob("evt-old"))?.remove();
  await p.publisher.publish(input as never);
  await taken(p, "evt-old");
  expect(p.logs.some((line) => String(line.msg).includes("reused"))).toBe(false);
});
