import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { runErase } from "../../src/cli/erase-command.js";
import type { ErasureReceipt } from "../../src/operations/erase-customer.js";
import { CustomerIndex } from "../../src/store/customer-index.js";
import { isCluster } from "../../src/store/redis-client.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { keysHolding } from "../support/personal-data-scan.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

/**
 * A follow-up may be planned years ahead (rules allow delays up to ten years): the purchase's
 * record, with the customer's name and addresses, lives until RECORD_RETENTION_DAYS after it. An
 * erasure in that time must still find it, also once two years have passed since the purchase.
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const DAY = 86_400_000;

/** What Redis would have done by `at`: every key of the test's that expires before then is gone. */
async function expireUntil(p: PipelineHarness, at: number): Promise<void> {
  const nodes = isCluster(p.redis) ? p.redis.nodes("master") : [p.redis];
  for (const node of nodes)
    for (const pattern of [`${p.prefix}*`, `{${p.prefix}*`]) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        for (const key of keys) {
          const expiresAt = await p.redis.pexpiretime(key);
          if (expiresAt > 0 && expiresAt < at) await p.redis.del(key);
        }
      } while (cursor !== "0");
    }
}

describe("erasure of a purchase with a follow-up years ahead", () => {
  it("finds the purchase after two years, while its record is kept", () => erasedLater());

  it("finds it also after a later, ordinary purchase of the same customer", () =>
    // The later purchase's history write gave the history two years from then, shorter than the
    // check-in's record: it must not shorten what the first purchase's follow-up needs.
    erasedLater("later purchase"));

  it("finds it by address also when a re-plan moved its check-in beyond the two years", () =>
    // Intake filed the address for two years (the check-in three months out): the re-plan that
    // keeps the record longer must keep the address index as long, or `erase --email` finds no
    // one while the record, with the customer's name and addresses, is still there.
    erasedLater("re-planned"));
});

/** Sets the big-ticket check-in's delay in the pipeline's rules. */
async function checkInAfter(p: PipelineHarness, delay: string): Promise<void> {
  const file = path.join(p.configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  const index = (doc.toJS().rules as { id: string }[]).findIndex((r) => r.id === "big-ticket");
  doc.setIn(["rules", index, "steps", 1, "delay"], delay);
  await writeFile(file, doc.toString());
}

/**
 * A purchase with a check-in 26 months out (planned so, or re-planned so from the shipped three
 * months; maybe with a later purchase), erased two years on: by id, or by address once re-planned.
 */
async function erasedLater(
  how: "planned" | "later purchase" | "re-planned" = "planned",
): Promise<void> {
  pipeline = await startPipeline("erase-long-delay", { startWorker: false });
  const p = pipeline;
  // A check-in 26 months after the purchase (a warranty running out, say).
  if (how !== "re-planned") await checkInAfter(p, "P26M");
  await p.startWorker();

  await p.publisher.publish(
    purchaseInput({
      id: "evt-long",
      orderId: "ord-long",
      occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
      customer: { id: "cus-long", name: "Ingrid Halvorsen", email: "ingrid.h@example.com" },
      items: [item("televisions", "899.00")],
    }) as never,
  );
  const scheduledAfter = (after: number) =>
    eventually(async () => {
      const record = (await p.store.stepRecords("evt-long", ["big-ticket.check-in"])).get(
        "big-ticket.check-in",
      );
      return record?.state === "scheduled" && record.dueAt > after ? record : undefined;
    }, "the check-in to be scheduled");
  let checkIn = await scheduledAfter(0);
  if (how === "re-planned") {
    expect(checkIn.dueAt).toBeLessThan(Date.now() + 365 * DAY);
    await checkInAfter(p, "P26M");
    checkIn = await scheduledAfter(checkIn.dueAt);
  }
  expect(checkIn.dueAt).toBeGreaterThan(Date.now() + 2 * 365 * DAY);
  if (how === "later purchase") {
    await p.publisher.publish(
      purchaseInput({
        id: "evt-small",
        orderId: "ord-small",
        occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-long", name: "Ingrid Halvorsen", email: "ingrid.h@example.com" },
        items: [item("kitchenware", "60.00")],
      }) as never,
    );
    await eventually(
      async () => (await p.store.loadEvent("evt-small")) !== undefined || undefined,
      "the later purchase to be taken in",
    );
  }

  // Two years and a month on, the check-in still waits; the customer asks to be forgotten.
  const later = Date.now() + 2 * 365 * DAY + 30 * DAY;
  await expireUntil(p, later);
  expect(await keysHolding(p.redis, p.prefix, ["Ingrid"])).not.toEqual([]);
  // An erasure asked by address finds the customer too.
  const addresses = new CustomerIndex(p.redis, p.prefix, { now: () => later });
  expect(await addresses.customersOf("ingrid.h@example.com")).toEqual(["cus-long"]);
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  let receipt: ErasureReceipt | undefined;
  if (how === "re-planned") {
    const options = { config: p.configDir, json: true, by: "dpo", email: "ingrid.h@example.com" };
    expect(await runErase(undefined, options, io)).toBe(0);
    const { receipts } = JSON.parse(io.output()) as { receipts: ErasureReceipt[] };
    expect(receipts).toHaveLength(1);
    receipt = receipts[0];
  } else {
    expect(await runErase("cus-long", { config: p.configDir, json: true, by: "dpo" }, io)).toBe(0);
    receipt = JSON.parse(io.output()) as ErasureReceipt;
  }
  // Every purchase the history lists: the long one, and the later one when there is one.
  expect(receipt?.purchases).toBe(how === "later purchase" ? 2 : 1);
  const after = (await p.store.stepRecords("evt-long", ["big-ticket.check-in"])).get(
    "big-ticket.check-in",
  );
  expect(after?.state).toBe("cancelled");
  expect(await keysHolding(p.redis, p.prefix, ["Ingrid", "ingrid.h@example.com"])).toEqual([]);
}
