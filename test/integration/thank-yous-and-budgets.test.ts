import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { runCancel } from "../../src/cli/cancel-command.js";
import { spendMonthOf } from "../../src/domain/spend.js";
import { CustomerHistoryStore } from "../../src/store/customer-history.js";
import { StoreKeys } from "../../src/store/keys.js";
import { SpendLedger } from "../../src/store/spend-ledger.js";
import { MAX_JOINED, ThankYouGroups } from "../../src/store/thank-you-groups.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  stepRecordOf,
  whereWaiting,
} from "../support/pipeline-harness.js";
import { postTwilio } from "../support/webhooks.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const minutesAgo = (minutes: number) =>
  DateTime.utc().minus({ minutes }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

const record = stepRecordOf;

const processed = eventProcessed;

async function metricsOf(p: PipelineHarness): Promise<string> {
  return (await p.worker?.metrics.registry.metrics()) ?? "";
}

const shirt = (id: string, occurredAt: string, price = "60.00") =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt,
    customer: { id: "cus-shirts" },
    items: [item("clothing", price, { name: `Shirt ${id}` })],
  });

/** Publishes the customer's shirts (id, minutes ago, price), each processed before the next. */
async function buyShirts(p: PipelineHarness, shirts: readonly [string, number, string?][]) {
  for (const [id, minutes, price] of shirts) {
    await p.publisher.publish(shirt(id, minutesAgo(minutes), price) as never);
    await processed(p, id);
  }
}

/** `followups cancel` by alice, as an operator's shell runs it against the pipeline's Redis. */
async function operatorCancel(p: PipelineHarness, target: { order: string } | { step: string }) {
  Object.assign(process.env, p.commandEnv);
  expect(await runCancel({ config: p.configDir, by: "alice", ...target }, captureIo())).toBe(0);
}

/** The joined purchase's own thank-you, sent alone: the one email, naming none of `other`. */
async function thankedAlone(p: PipelineHarness, eventId: string, other: string) {
  await promoteStep(p, eventId, "thank-you.thank-you");
  const [mail] = await p.sink.waitForMessages(1);
  expect(mail?.parsed.text).toContain(`Shirt ${eventId}`);
  expect(mail?.parsed.text).not.toContain(other);
  expect(p.sink.messages).toHaveLength(1);
}

describe("one thank-you for purchases close together (coalesce)", () => {
  it("thanks once for every order within the hour, leaves out a returned one, and thanks a purchase after it was sent on its own", async () => {
    pipeline = await startPipeline("coalesce");
    const p = pipeline;
    // The shipped thank-you rule coalesces for an hour: the first purchase's thank-you waits for it.
    for (const [id, at] of [
      ["co-a", minutesAgo(30)],
      ["co-b", minutesAgo(20)],
      ["co-c", minutesAgo(10)],
    ] as const) {
      await p.publisher.publish(shirt(id, at) as never);
      await processed(p, id);
    }
    const leader = await record(p, "co-a", "thank-you.thank-you");
    expect(leader?.state).toBe("scheduled");
    // Due when the hour after the first purchase is over, not an hour after each.
    expect(Math.abs((leader?.dueAt ?? 0) - (Date.now() + 30 * 60_000))).toBeLessThan(120_000);
    // The others keep a thank-you of their own, due a quarter of an hour after the leader's
    // at the earliest (the third's own hour ends later than that).
    const b = await record(p, "co-b", "thank-you.thank-you");
    expect(b?.state).toBe("scheduled");
    expect(b?.dueAt).toBe((leader?.dueAt ?? 0) + 15 * 60_000);
    const c = await record(p, "co-c", "thank-you.thank-you");
    expect(c?.state).toBe("scheduled");
    expect(c?.dueAt).toBe((leader?.dueAt ?? 0) + 20 * 60_000);

    // The third order goes back before the thank-you: it is not thanked for.
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "co-c-refund",
      occurredAt: minutesAgo(5),
      orderId: "ord-co-c",
    });
    await processed(p, "co-c-refund");

    // Falling due early (a promoter), the joined one waits for the leader's thank-you.
    await promoteStep(p, "co-b", "thank-you.thank-you");
    await eventually(
      async () => ((await whereWaiting(p, "co-b", "thank-you.thank-you")) ? true : undefined),
      "the joined thank-you to wait again",
    );
    expect(p.sink.messages).toHaveLength(0);

    await promoteStep(p, "co-a", "thank-you.thank-you");
    const [mail] = await p.sink.waitForMessages(1);
    const text = mail?.parsed.text ?? "";
    expect(text).toContain("Order ord-co-a");
    expect(text).toContain("Order ord-co-b");
    expect(text).toContain("Shirt co-b");
    expect(text).not.toContain("ord-co-c");
    expect(mail?.parsed.html || "").toContain("Order ord-co-b");

    // Now the joined thank-you is done with: skipped, counted, not sent.
    await promoteStep(p, "co-b", "thank-you.thank-you");
    const done = await eventually(async () => {
      const r = await record(p, "co-b", "thank-you.thank-you");
      return r?.state === "skipped" ? r : undefined;
    }, "the joined thank-you to be skipped");
    expect(done.reason?.code).toBe("coalesced");
    // Counted right after the state changes (the worker releases the cap slot in between).
    const coalesced =
      /^followups_skipped_total\{channel="email",kind="thank-you",reason="coalesced"\} 1$/m;
    await eventually(
      async () => (coalesced.test(await metricsOf(p)) ? true : undefined),
      "the coalesced thank-you to be counted",
    );
    expect(await metricsOf(p)).toMatch(coalesced);

    // Within the hour but after the thank-you went: this purchase gets its own.
    await p.publisher.publish(shirt("co-d", minutesAgo(1)) as never);
    await processed(p, "co-d");
    expect((await record(p, "co-d", "thank-you.thank-you"))?.state).toBe("scheduled");
    await promoteStep(p, "co-d", "thank-you.thank-you");
    const mails = await p.sink.waitForMessages(2);
    const own = mails[1]?.parsed.text ?? "";
    expect(own).toContain("Shirt co-d");
    expect(own).not.toContain("ord-co-a");
    expect(p.sink.messages).toHaveLength(2);
  });

  it("thanks a joined purchase on its own when the first one is returned before its thank-you", async () => {
    pipeline = await startPipeline("coalesce-return");
    const p = pipeline;
    await buyShirts(p, [
      ["ret-a", 30],
      ["ret-b", 20],
    ]);
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ret-a-refund",
      occurredAt: minutesAgo(5),
      orderId: "ord-ret-a",
    });
    await processed(p, "ret-a-refund");
    expect((await record(p, "ret-a", "thank-you.thank-you"))?.state).toBe("cancelled");
    await thankedAlone(p, "ret-b", "ret-a");
  });

  it("leaves out of the thank-you an order whose thank-you an operator cancelled, and keeps one whose check-in alone was cancelled", async () => {
    pipeline = await startPipeline("coalesce-cancel");
    const p = pipeline;
    // The third over 500: the big-ticket rule, a thank-you (coalescing too) and a check-in.
    await buyShirts(p, [
      ["cx-a", 30],
      ["cx-b", 20],
      ["cx-c", 10, "600.00"],
    ]);
    expect((await record(p, "cx-c", "big-ticket.check-in"))?.state).toBe("scheduled");

    await operatorCancel(p, { order: "ord-cx-b" });
    await operatorCancel(p, { step: "cx-c/big-ticket.check-in" });
    expect((await record(p, "cx-b", "thank-you.thank-you"))?.state).toBe("cancelled");

    await promoteStep(p, "cx-a", "thank-you.thank-you");
    const [mail] = await p.sink.waitForMessages(1);
    const text = mail?.parsed.text ?? "";
    expect(mail?.envelope.rcptTo).toEqual(["ana@example.com"]);
    expect(text).toContain("Order ord-cx-a");
    expect(text).toContain("Order ord-cx-c");
    expect(text).toContain("Shirt cx-c");
    expect(text).not.toContain("ord-cx-b");
    expect(text).not.toContain("Shirt cx-b");
    expect(mail?.parsed.html || "").not.toContain("Shirt cx-b");

    // The one listed is skipped as thanked for; the cancelled one stays cancelled, unsent.
    await promoteStep(p, "cx-c", "big-ticket.thank-you");
    const c = await eventually(async () => {
      const r = await record(p, "cx-c", "big-ticket.thank-you");
      return r?.state === "skipped" ? r : undefined;
    }, "the listed thank-you to be skipped");
    expect(c.reason?.code).toBe("coalesced");
    expect((await record(p, "cx-b", "thank-you.thank-you"))?.state).toBe("cancelled");
    expect(p.sink.messages).toHaveLength(1);
  });

  it("thanks each joined purchase on its own when an operator cancels the first one's order", async () => {
    pipeline = await startPipeline("coalesce-cancel-lead");
    const p = pipeline;
    await buyShirts(p, [
      ["cl-a", 30],
      ["cl-b", 20],
    ]);
    await operatorCancel(p, { order: "ord-cl-a" });
    expect((await record(p, "cl-a", "thank-you.thank-you"))?.state).toBe("cancelled");
    await thankedAlone(p, "cl-b", "cl-a");
  });

  it("files a purchase the same way when its event comes again, never replaces a group whose thank-you has not gone, and forgets it all on erasure", async () => {
    pipeline = await startPipeline("coalesce-again");
    const p = pipeline;
    const groups = new ThankYouGroups(p.redis, p.prefix);
    const histories = new CustomerHistoryStore(p.redis, p.prefix);
    const at = Date.parse(minutesAgo(10));
    const HOUR = 3_600_000;
    const file = async (id: string, offsetMs: number) =>
      groups.file(
        "cus-g",
        {
          eventId: id,
          stepId: "thank-you.thank-you",
          purchasedAt: at + offsetMs,
          dueAt: at + offsetMs + HOUR,
        },
        HOUR,
        86_400_000,
        await histories.erasureKey("cus-g"),
      );
    expect(await file("g-1", 0)).toEqual({ role: "lead" });
    expect(await file("g-1", 0)).toEqual({ role: "lead" });
    const joined = {
      role: "joined",
      leaderEventId: "g-1",
      leaderStepId: "thank-you.thank-you",
      leaderDueAt: at + HOUR,
    };
    expect(await file("g-2", 60_000)).toEqual(joined);
    expect(await file("g-2", 60_000)).toEqual(joined);
    expect(await groups.filingOf("cus-g", "g-2")).toEqual(joined);
    // An older purchase arriving late never takes the group over.
    expect(await file("g-0", -2 * HOUR)).toEqual({ role: "alone" });
    // Nor does a later one while the group's thank-you has not gone: it would lose g-2.
    expect(await file("g-5", HOUR + 60_000)).toEqual({ role: "alone" });
    // Only the leader closes it; closing twice gives the same members, oldest first.
    expect(await file("g-3", 30_000)).toEqual({ ...joined });
    expect(await groups.close("cus-g", "g-2")).toEqual([]);
    expect(await groups.close("cus-g", "g-1")).toEqual(["g-3", "g-2"]);
    expect(await groups.close("cus-g", "g-1")).toEqual(["g-3", "g-2"]);
    // Within the window, after the thank-you went: on its own.
    expect(await file("g-4", 120_000)).toEqual({ role: "alone" });
    // After the window, the thank-you gone: a new group; g-2 filed again keeps its answer.
    expect(await file("g-6", HOUR + 120_000)).toEqual({ role: "lead" });
    expect(await file("g-2", 60_000)).toEqual(joined);
    // One thank-you lists at most ten orders: the eleventh purchase gets its own.
    for (let n = 1; n <= MAX_JOINED; n++)
      expect((await file(`g-6-${n}`, HOUR + 120_000 + n * 1000)).role).toBe("joined");
    expect(await file("g-6-last", HOUR + 200_000)).toEqual({ role: "alone" });

    await p.publisher.publish(shirt("co-erase", minutesAgo(5)) as never);
    await processed(p, "co-erase");
    const keys = new StoreKeys(p.prefix);
    // The group lives in the customer's history, with no key of its own.
    const key = keys.customerHistory("cus-shirts");
    expect(await p.redis.hget(key, "tl")).toBe("co-erase");
    expect(await p.redis.exists(keys.thankYouGroup("cus-shirts"))).toBe(0);
    await p.publisher.publish({
      type: "customer.erased",
      id: "erase-shirts",
      occurredAt: minutesAgo(0),
      customerId: "cus-shirts",
    });
    await processed(p, "erase-shirts");
    expect(await p.redis.exists(key)).toBe(0);
    // A purchase from before the erasure, still being taken in, files nothing after it.
    const late = await groups.file(
      "cus-shirts",
      { eventId: "co-late", stepId: "thank-you.thank-you", purchasedAt: at, dueAt: at + HOUR },
      HOUR,
      86_400_000,
      await histories.erasureKey("cus-shirts"),
    );
    expect(late).toEqual({ role: "erased" });
    expect(await p.redis.exists(key)).toBe(0);
    expect(await p.redis.exists(keys.eventRecord("co-late"))).toBe(0);
  });
});

describe("SMS spend and budgets", () => {
  it("counts the opt-out confirmation text in the month's SMS spend", async () => {
    pipeline = await startPipeline("spend-confirmation", { startWorker: false });
    const p = pipeline;
    const rulesFile = path.join(p.configDir, "rules.yaml");
    const doc = parseDocument(await readFile(rulesFile, "utf8"));
    doc.set("prices", doc.createNode({ sms: { GB: "0.04", other: "0.10" } }));
    doc.set("budget", doc.createNode({ sms: { monthly: "0.10" } }));
    await writeFile(rulesFile, doc.toString());
    await p.startWorker();

    const answer = await postTwilio(p, "/webhooks/twilio/inbound", {
      From: "+44 20 7946 0958",
      Body: "Please stop texting me",
      MessageSid: "SMrvconfirm1",
    });
    expect(answer.status).toBe(200);
    const [confirmation] = await p.twilio.waitForMessages(1);
    expect(confirmation?.body).toBe("You will get no more messages from Your shop.");
    // One GSM-7 segment to a GB number: 0.04 spent on SMS this month.
    const month = spendMonthOf(Date.now(), "Europe/London");
    const ledger = new SpendLedger(p.redis, p.prefix);
    // Charged once the text went: just after Twilio took it.
    await eventually(
      async () => ((await ledger.spent("sms", month)) > 0 ? true : undefined),
      "the confirmation to be charged",
    );
    expect(await ledger.spent("sms", month)).toBe(40_000);
  });

  it("stops marketing SMS at the monthly budget, keeps check-ins going, emails the owner at 80% and 100%, and exposes spend", async () => {
    pipeline = await startPipeline("budget", { startWorker: false });
    const p = pipeline;
    const rulesFile = path.join(p.configDir, "rules.yaml");
    const doc = parseDocument(await readFile(rulesFile, "utf8"));
    doc.set("prices", doc.createNode({ sms: { GB: "0.04", other: "0.10" } }));
    doc.set("budget", doc.createNode({ sms: { monthly: "0.10" } }));
    doc.set(
      "owners",
      doc.createNode([
        {
          name: "Maria",
          email: "maria@shop.example",
          timezone: "Europe/London",
          frequency: "weekly",
        },
      ]),
    );
    const rules = doc.get("rules") as { items: unknown[] };
    rules.items.unshift(
      doc.createNode({
        id: "garden-offer",
        priority: 200,
        final: true,
        when: { anyItem: { categories: ["garden"] } },
        steps: [
          {
            kind: "custom",
            channel: "sms",
            template: "check-in",
            delay: "PT0S",
            purpose: "marketing",
          },
        ],
      }),
      doc.createNode({
        id: "garden-care",
        priority: 190,
        final: true,
        when: { anyItem: { categories: ["garden-care"] } },
        steps: [{ kind: "check-in", channel: "sms", template: "check-in", delay: "PT0S" }],
      }),
    );
    await writeFile(rulesFile, doc.toString());
    await p.startWorker();

    const buyer = (n: number, category: string) =>
      purchaseInput({
        id: `bud-${n}`,
        orderId: `ord-bud-${n}`,
        occurredAt: minutesAgo(1),
        customer: { id: `cus-bud-${n}`, phone: `+44 20 7946 095${n}` },
        items: [item(category, "20.00")],
      });
    for (let n = 1; n <= 4; n++) await p.publisher.publish(buyer(n, "garden") as never);
    const ended = await eventually(
      async () => {
        const found = await Promise.all(
          [1, 2, 3, 4].map((n) => record(p, `bud-${n}`, "garden-offer.custom")),
        );
        return found.every((r) => r && r.state !== "scheduled" && r.state !== "sending")
          ? found
          : undefined;
      },
      "the four offers to end",
      20_000,
    );
    // 0.04 per one-segment text: three fit under 0.10 (the third crosses it), the fourth does not.
    expect(ended.map((r) => r?.state).sort()).toEqual(["sent", "sent", "sent", "skipped"]);
    const skipped = ended.find((r) => r?.state === "skipped");
    expect(skipped?.reason?.code).toBe("budget-reached");
    expect(skipped?.reason?.text).toMatch(
      /sms spend in \d{4}-\d{2} is 0\.12 of the 0\.10 GBP budget/,
    );
    expect(p.twilio.messages.every((m) => m.body.length <= 160)).toBe(true);

    // A check-in is transactional: it still goes out (budget.transactional: continue).
    await p.publisher.publish(buyer(5, "garden-care") as never);
    await eventually(async () => {
      const r = await record(p, "bud-5", "garden-care.check-in");
      return r?.state === "sent" ? r : undefined;
    }, "the check-in to be sent");

    const owners = await p.sink.waitForMessages(2);
    const subjects = owners.map((m) => m.parsed.subject ?? "").sort();
    expect(subjects).toEqual([
      expect.stringMatching(/SMS spend at 100% of the \d{4}-\d{2} budget/),
      expect.stringMatching(/SMS spend at 80% of the \d{4}-\d{2} budget/),
    ]);
    expect(owners.every((m) => m.envelope.rcptTo.includes("maria@shop.example"))).toBe(true);
    const full = owners.find((m) => m.parsed.subject?.includes("100%"));
    expect(full?.parsed.text).toContain("marketing SMS follow-ups are skipped");
    // Each says what the charge that crossed its threshold brought the month to.
    const early = owners.find((m) => m.parsed.subject?.includes("80%"));
    expect(early?.parsed.text).toMatch(
      /SMS follow-ups have used 80% of this month's budget: 0\.08 GBP of 0\.10 GBP in \d{4}-\d{2}( \(0\.\d\d GBP by now\))?\./,
    );
    expect(full?.parsed.text).toMatch(
      /SMS follow-ups have used 100% of this month's budget: 0\.12 GBP of 0\.10 GBP in \d{4}-\d{2}( \(0\.16 GBP by now\))?\./,
    );

    const metrics = await metricsOf(p);
    expect(metrics).toMatch(/^followups_spend_this_month\{channel="sms"\} 0\.16$/m);
    expect(metrics).toMatch(/^followups_budget_monthly\{channel="sms"\} 0\.1$/m);
    expect(metrics).toMatch(
      /^followups_skipped_total\{channel="sms",kind="custom",reason="budget-reached"\} 1$/m,
    );
  });
});
