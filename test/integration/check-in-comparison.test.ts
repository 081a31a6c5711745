import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runReport } from "../../src/cli/report-command.js";
import { eventFingerprints } from "../../src/domain/event-fingerprint.js";
import { countReturnAfterCheckIns } from "../../src/queue/check-in-comparison.js";
import { HISTORY_RETENTION_MS } from "../../src/queue/intake-processor.js";
import type { ReportModel } from "../../src/reports/report-model.js";
import { captureIo } from "../support/capture-io.js";
import {
  item,
  type PurchaseSpec,
  purchase,
  purchaseInput,
  shippedRules,
} from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
} from "../support/pipeline-harness.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const CHECK_IN = "big-ticket.check-in";

/** A customer of their own: own email and phone, so one's opt-out touches no other. */
function customer(id: string, n: number, extra: Record<string, unknown> = {}) {
  return { id, email: `${id}@example.com`, phone: `+44 20 7946 09${10 + n}`, ...extra };
}

/** A TV bought three months ago (less `early`): its check-in falls due now (or `early` from now). */
function tvBoughtBefore(id: string, who: Record<string, unknown>, early = { days: 0 }) {
  // Months are counted in the customer's zone (London), across its clock change.
  const at = DateTime.now()
    .setZone("Europe/London")
    .minus({ months: 3 })
    .plus(early)
    .minus({ minutes: 5 });
  return purchaseInput({
    id,
    orderId: `o-${id}`,
    occurredAt: at.toISO() ?? "",
    items: [item("televisions", "650.00")],
    customer: who,
  });
}

/** A purchase made just now by a customer (a small one: it plans only a thank-you). */
function boughtAgain(id: string, who: Record<string, unknown>): PurchaseSpec {
  return {
    id,
    orderId: `o-${id}`,
    occurredAt: DateTime.utc().toISO() ?? "",
    items: [item("kitchenware", "80.00")],
    customer: who,
  };
}

async function processed(p: PipelineHarness, eventId: string): Promise<void> {
  await eventually(
    async () =>
      (await (await p.events.getJob(eventId))?.getState()) === "completed" ? true : undefined,
    `event ${eventId} to be processed`,
  );
}

async function stateOf(p: PipelineHarness, eventId: string, want: string) {
  return eventually(async () => {
    const record = (await p.store.stepRecords(eventId, [CHECK_IN])).get(CHECK_IN);
    return record?.state === want ? record : undefined;
  }, `${eventId}'s check-in to be ${want}`);
}

describe("repeat purchases after a check-in, against customers due one who did not get it", () => {
  it("counts both groups and who of them bought again, once each, into the owner's report", async () => {
    pipeline = await startPipeline("check-in-comparison");
    const p = pipeline;
    const started = DateTime.utc();
    const who = {
      s1: customer("c-s1", 1),
      s2: customer("c-s2", 2),
      s3: customer("c-s3", 3),
      // Declined texts: the planner skips their check-ins (no-consent).
      k1: customer("c-k1", 4, { consent: { email: true, sms: false } }),
      k2: customer("c-k2", 5, { consent: { email: true, sms: false } }),
      // Opts out of texts after the purchase: delivery skips the check-in (opted-out).
      o1: customer("c-o1", 6),
      // No phone number: not eligible for a check-in, so in neither group.
      n1: { ...customer("c-n1", 7), phone: undefined },
    };
    for (const key of ["s1", "s2", "s3", "k1", "k2", "n1"] as const)
      await p.publisher.publish(tvBoughtBefore(`tv-${key}`, who[key]) as never);
    // Due in four days: more than a month end's clamping (31 December less three months is
    // 30 September, and three months on is 30 December) can bring it forward.
    await p.publisher.publish(tvBoughtBefore("tv-o1", who.o1, { days: 4 }) as never);
    await p.twilio.waitForMessages(3, 15_000);
    for (const key of ["s1", "s2", "s3"]) await stateOf(p, `tv-${key}`, "sent");
    for (const key of ["k1", "k2", "n1"]) await processed(p, `tv-${key}`);
    await stateOf(p, "tv-o1", "scheduled");
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-o1",
      occurredAt: DateTime.utc().toISO() ?? "",
      customerId: "c-o1",
      channels: ["sms"],
    });
    await processed(p, "unsub-o1");
    await promoteStep(p, "tv-o1", CHECK_IN);
    expect((await stateOf(p, "tv-o1", "skipped")).reason?.code).toBe("opted-out");

    // Two who got a check-in buy again (one of them twice), one of each skipped kind, and the
    // customer without a phone.
    const returns = [
      ["back-s1", who.s1],
      ["back-s1-again", who.s1],
      ["back-s2", who.s2],
      ["back-k1", who.k1],
      ["back-o1", who.o1],
      ["back-n1", who.n1],
    ] as const;
    const bought = new Map<string, PurchaseSpec>();
    for (const [id, buyer] of returns) {
      bought.set(id, boughtAgain(id, buyer));
      await p.publisher.publish(purchaseInput(bought.get(id)) as never);
      await processed(p, id);
    }
    // The same purchase again (a replay, reading its customer's check-ins as intake does) adds nothing.
    const rules = await shippedRules();
    const replay = purchase(bought.get("back-s2"));
    const shard = p.stores.of(p.shardOfCustomer(who.s2.id));
    const again = await shard.history.recordPurchase(
      replay,
      eventFingerprints(replay),
      HISTORY_RETENTION_MS,
      86_400_000,
    );
    if (!("attribution" in again)) throw new Error("the replay was refused");
    expect(Object.keys(again.attribution.checkIns).length).toBeGreaterThan(0);
    await countReturnAfterCheckIns(replay, again.attribution.checkIns, {
      rules: () => rules,
      clock: () => DateTime.utc(),
      ledger: shard.ledger,
    });

    Object.assign(process.env, p.commandEnv);
    const reportOf = async (format: "json" | "text" | "csv") => {
      const io = captureIo();
      const range = {
        since: started.toISODate() ?? "",
        until: started.plus({ days: 2 }).toISODate() ?? "",
      };
      expect(await runReport({ config: p.configDir, ...range, timezone: "UTC", format }, io)).toBe(
        0,
      );
      return io.output();
    };
    const model = JSON.parse(await reportOf("json")) as ReportModel;
    expect(model.checkInEffect).toEqual({
      window: "P30D",
      checkedIn: { customers: 3, cameBack: 2, rate: 0.667 },
      notCheckedIn: {
        customers: 3,
        cameBack: 2,
        rate: 0.667,
        byReason: [
          { code: "no-consent", customers: 2, cameBack: 1 },
          { code: "opted-out", customers: 1, cameBack: 1 },
        ],
      },
      comparable: false,
      smallestGroup: 20,
      openUntil: expect.any(String),
    });
    const text = (await reportOf("text")).replace(/\s+/g, " ");
    expect(text).toContain(
      "Of 3 customers who got a check-in in this period, 2 (67%) bought again within 30 days.",
    );
    expect(text).toContain(
      "Of 3 customers due a check-in who did not get one (no consent, opted out), 2 (67%) bought again within 30 days.",
    );
    expect(text).toContain("Too few customers to compare yet");
    const csv = (await reportOf("csv")).trim().split("\r\n");
    expect(csv.at(-1)).toMatch(/,total,.*,3,2,0\.667,3,2,0\.667$/);
  });
});
