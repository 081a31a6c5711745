import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseDocument } from "yaml";
import { EXIT } from "../../src/cli/io.js";
import { runSimulate } from "../../src/cli/simulate-command.js";
import { item, type PurchaseSpec, purchaseInput, SHIPPED_CONFIG_DIR } from "../support/fixtures.js";

let dir: string;
/** The shipped policy and templates, with SMS prices and a monthly SMS budget of 0.10 GBP. */
let pricedConfig: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "followups-simulate-"));
  pricedConfig = path.join(dir, "config");
  await cp(SHIPPED_CONFIG_DIR, pricedConfig, { recursive: true });
  const rulesFile = path.join(pricedConfig, "rules.yaml");
  const doc = parseDocument(await readFile(rulesFile, "utf8"));
  doc.setIn(["prices"], doc.createNode({ sms: { GB: "0.04", other: "0.10" } }));
  doc.setIn(["budget"], doc.createNode({ sms: { monthly: "0.10", transactional: "skip" } }));
  // Coalesced thank-yous have tests of their own; these count one thank-you per purchase.
  const rules = doc.get("rules") as { items: unknown[] };
  for (const index of rules.items.keys()) doc.deleteIn(["rules", index, "coalesce"]);
  await writeFile(rulesFile, doc.toString());
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function memoryIo(drained?: () => Promise<void>) {
  const output = { out: "", err: "" };
  return {
    output,
    io: {
      out: (text: string) => {
        output.out += text;
      },
      err: (text: string) => {
        output.err += text;
      },
      interactive: false,
      ...(drained && { drained }),
    },
  };
}

async function ndjson(name: string, specs: PurchaseSpec[]): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `${specs.map((s) => JSON.stringify(purchaseInput(s))).join("\n")}\n`);
  return file;
}

/** A TV bought by `customer` on `day` of November 2026: a thank-you, and a check-in SMS in February. */
const tv = (
  id: string,
  customer: string,
  day: number,
  phone = "+44 20 7946 0958",
): PurchaseSpec => ({
  id,
  orderId: `ord-${id}`,
  occurredAt: `2026-11-${String(day).padStart(2, "0")}T10:00:00Z`,
  customer: { id: customer, phone },
  items: [item("televisions", "899.00", { name: "OLED TV" })],
});

describe("simulate --steps", () => {
  it("prints every planned step as NDJSON with exactly the audit fields", async () => {
    const file = await ndjson("steps.ndjson", [
      tv("a", "cus-a", 23),
      tv("b", "cus-a", 24),
      tv("us", "cus-us", 23, "+1 415 555 0123"),
      { id: "news", items: [item("newspapers", "2.50")] },
    ]);
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: pricedConfig, steps: true }, io)).toBe(EXIT.ok);
    const lines = output.out.trimEnd().split("\n");
    const steps = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const step of steps) {
      expect(Object.keys(step)).toEqual([
        "eventId",
        "stepId",
        "ruleId",
        "kind",
        "channel",
        "dueAt",
        "localDueAt",
        "segments",
        "cost",
      ]);
    }
    const brief = steps.map((s) => [s.eventId, s.stepId, s.segments, s.cost]);
    expect(brief).toEqual([
      ["a", "big-ticket.thank-you", null, null],
      // The first SMS to the number carries the opt-out line; the shipped check-in still fits one.
      ["a", "big-ticket.check-in", 1, "0.04"],
      ["b", "big-ticket.thank-you", null, null],
      ["b", "big-ticket.check-in", 1, "0.04"],
      ["us", "big-ticket.thank-you", null, null],
      // A US number: the `other` price.
      ["us", "big-ticket.check-in", 1, "0.10"],
    ]);
    expect(steps[1]).toMatchObject({
      ruleId: "big-ticket",
      kind: "check-in",
      channel: "sms",
      dueAt: "2027-02-23T10:00:00Z",
      localDueAt: "2027-02-23T10:00:00+00:00",
    });
    expect(output.err).toBe("");
  });

  it("measures SMS on a loaded machine as the worker sends them: a render the wall clock cut off is no render failure", async () => {
    // A loaded machine as the process sees it: wall time runs far ahead of the work done. The
    // worker retries a send-time render that liquid's wall-clock limit cut off (render-time), so
    // simulate (and plan) limit their renders in CPU time: else an SMS the worker sends counted
    // as render-failed (null segments) whenever simulate ran beside busy processes.
    const file = await ndjson("loaded.ndjson", [tv("a", "cus-a", 23)]);
    const now = performance.now.bind(performance);
    const busy = vi.spyOn(performance, "now").mockImplementation(() => now() * 1000);
    const { io, output } = memoryIo();
    try {
      expect(await runSimulate(file, { config: pricedConfig, steps: true }, io)).toBe(EXIT.ok);
    } finally {
      busy.mockRestore();
    }
    const steps = output.out
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(steps.map((s) => [s.stepId, s.segments])).toEqual([
      ["big-ticket.thank-you", null],
      ["big-ticket.check-in", 1],
    ]);
  });

  it("waits for stdout to drain between writes (backpressure)", async () => {
    const file = await ndjson(
      "many.ndjson",
      Array.from({ length: 50 }, (_, i) => tv(`e${i}`, `cus-${i}`, 1 + (i % 28))),
    );
    let draining = false;
    let writesWhileDraining = 0;
    let drains = 0;
    const { io, output } = memoryIo(async () => {
      drains++;
      draining = true;
      await new Promise((resolve) => setTimeout(resolve, 1));
      draining = false;
    });
    const out = io.out;
    io.out = (text) => {
      if (draining) writesWhileDraining++;
      out(text);
    };
    expect(await runSimulate(file, { config: pricedConfig, steps: true }, io)).toBe(EXIT.ok);
    expect(output.out.trimEnd().split("\n")).toHaveLength(100);
    expect(drains).toBe(50);
    expect(writesWhileDraining).toBe(0);
  });

  it("counts a line that gives a key twice as a bad line, as publish and POST /v1/events refuse it", async () => {
    const file = path.join(dir, "twice.ndjson");
    const good = JSON.stringify(purchaseInput(tv("ok", "cus-ok", 23)));
    await writeFile(file, `${good.replace(/^\{/, '{"orderId": "ord-first", ')}\n${good}\n`);
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: pricedConfig, steps: true }, io)).toBe(EXIT.ok);
    expect(output.out.trimEnd().split("\n")).toHaveLength(2);
    expect(output.err).toMatch(/^\n1 bad line \(not planned\):\n {2}line 1: gives orderId twice: /);
  });

  it("lists bad lines on stderr, never in the NDJSON; --json with --steps is a usage error", async () => {
    const file = path.join(dir, "bad.ndjson");
    await writeFile(file, `{nope\n${JSON.stringify(purchaseInput(tv("ok", "cus-ok", 23)))}\n`);
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: pricedConfig, steps: true }, io)).toBe(EXIT.ok);
    expect(output.out.trimEnd().split("\n")).toHaveLength(2);
    expect(output.err).toMatch(/^\n1 bad line \(not planned\):\n {2}line 1: not valid JSON/);
    await expect(
      runSimulate(file, { config: pricedConfig, steps: true, json: true }, memoryIo().io),
    ).rejects.toMatchObject({ code: EXIT.usage });
    // A directory named instead of a file: one line, no stack trace.
    await expect(runSimulate(dir, { config: pricedConfig }, memoryIo().io)).rejects.toMatchObject({
      code: 1,
      message: `${dir}: expected a file of purchases (NDJSON), got a directory or device`,
    });
  });
});

describe("simulate: the delivery replay", () => {
  it("--json: messages, segments and cost per month; sent, waited and skipped per kind", async () => {
    // Three TVs of one customer (SMS caps: 1 a day, 2 a week; check-ins defer), and customers
    // enough to reach the SMS budget of 0.10 in February (transactional: skip).
    const file = await ndjson("replay.ndjson", [
      tv("a1", "cus-a", 23),
      tv("a2", "cus-a", 23),
      tv("a3", "cus-a", 24),
      tv("b", "cus-b", 25, "+44 20 7946 0001"),
      tv("c", "cus-c", 26, "+44 20 7946 0002"),
    ]);
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: pricedConfig, json: true }, io)).toBe(EXIT.ok);
    const result = JSON.parse(output.out) as Record<string, unknown>;
    // The existing fields stay, for scripts.
    expect(Object.keys(result)).toEqual([
      "lines",
      "purchases",
      "planned",
      "fallbacks",
      "coalesced",
      "invalid",
      "weeks",
      "delivery",
    ]);
    expect(result.delivery).toEqual({
      currency: "GBP",
      months: [
        {
          month: "2026-11",
          channel: "email",
          messages: 5,
          segments: null,
          cost: null,
          unpriced: 0,
        },
        // a1 on 23 February; a3 on the 24th (due then, before a2's retry); b on the 25th takes
        // the spend from 0.08 to 0.12, over the budget of 0.10: c on the 26th is skipped.
        { month: "2027-02", channel: "sms", messages: 3, segments: 3, cost: "0.12", unpriced: 0 },
        // a2 waited for the weekly cap (two in seven days) until 2 March: a new month's budget.
        { month: "2027-03", channel: "sms", messages: 1, segments: 1, cost: "0.04", unpriced: 0 },
      ],
      outcomes: [
        { channel: "email", kind: "thank-you", sent: 5, waited: 0, skipped: {} },
        {
          channel: "sms",
          kind: "check-in",
          sent: 4,
          waited: 1,
          skipped: { "budget-reached": 1 },
        },
      ],
    });
  });

  it("prints the delivery view as tables", async () => {
    const file = await ndjson("replay-text.ndjson", [tv("a1", "cus-a", 23), tv("a2", "cus-a", 23)]);
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: pricedConfig }, io)).toBe(EXIT.ok);
    const printed = output.out.split("\n");
    const start = printed.findIndex((line) => line.startsWith("Delivery, as the worker"));
    expect(printed.slice(start + 2)).toEqual([
      "MONTH    CHANNEL  MESSAGES  SEGMENTS  COST (GBP)",
      "2026-11  email    2         -         -",
      "2027-02  sms      2         2         0.08",
      "",
      "CHANNEL  KIND       SENT  WAITED  SKIPPED",
      "email    thank-you  2     0       -",
      "sms      check-in   2     1       -",
      "",
    ]);
  });
});

describe("simulate replays purchases by when they happened, not by where they are in the file", () => {
  it("a file not in time order (the sample itself is not) sends what the same purchases in order send", async () => {
    // Other customers each: file order decides no history here, only when each arrives.
    const specs = [tv("late", "cus-late", 25, "+44 20 7946 0003"), tv("early", "cus-early", 2)];
    const replayed = async (name: string, list: PurchaseSpec[]) => {
      const { io, output } = memoryIo();
      await runSimulate(await ndjson(name, list), { config: pricedConfig, json: true }, io);
      return JSON.parse(output.out) as { planned: number; delivery: unknown };
    };
    const inOrder = await replayed("in-order.ndjson", [...specs].reverse());
    const outOfOrder = await replayed("out-of-order.ndjson", specs);
    expect(inOrder.delivery).toMatchObject({
      outcomes: [
        { channel: "email", kind: "thank-you", sent: 2, skipped: {} },
        { channel: "sms", kind: "check-in", sent: 2, skipped: {} },
      ],
    });
    // Before, the early purchase's thank-you was replayed from the late one's arrival: past-due.
    expect(outOfOrder).toEqual(inOrder);
  });
});

describe("simulate coalesces thank-yous as the worker does", () => {
  it("joins a customer's purchases within the hour into the first one's thank-you, and counts them apart", async () => {
    const shirt = (id: string, at: string, customer = "cus-shirts") => ({
      id,
      orderId: `ord-${id}`,
      occurredAt: at,
      customer: { id: customer },
      items: [item("clothing", "60.00")],
    });
    const file = await ndjson("coalesce.ndjson", [
      shirt("s-1", "2026-11-10T10:00:00Z"),
      shirt("s-2", "2026-11-10T10:20:00Z"),
      shirt("s-3", "2026-11-10T10:50:00Z"),
      // After the first thank-you's hour: a thank-you of its own, which the next one joins.
      shirt("s-4", "2026-11-10T12:30:00Z"),
      shirt("s-5", "2026-11-10T12:40:00Z"),
      // Another customer in the same hour is thanked on their own.
      shirt("s-6", "2026-11-10T10:10:00Z", "cus-other"),
    ]);
    const { output, io } = memoryIo();
    expect(await runSimulate(file, { config: SHIPPED_CONFIG_DIR, json: true }, io)).toBe(EXIT.ok);
    const result = JSON.parse(output.out) as {
      planned: number;
      coalesced: number;
      delivery: { outcomes: { channel: string; kind: string; sent: number }[] };
    };
    expect(result.coalesced).toBe(3);
    // Three thank-yous, and the loyalty discount of the customer's fourth purchase.
    expect(result.planned).toBe(4);
    expect(result.delivery.outcomes).toContainEqual(
      expect.objectContaining({ channel: "email", kind: "thank-you", sent: 3 }),
    );

    const steps = memoryIo(async () => {});
    await runSimulate(file, { config: SHIPPED_CONFIG_DIR, steps: true }, steps.io);
    const lines = steps.output.out
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    const thanks = lines.filter((line) => line.kind === "thank-you");
    expect(thanks.map((line) => [line.eventId, line.dueAt])).toEqual([
      ["s-1", "2026-11-10T11:00:00Z"],
      ["s-4", "2026-11-10T13:30:00Z"],
      ["s-6", "2026-11-10T11:10:00Z"],
    ]);
  });

  it("thanks each later purchase on its own while the first one's thank-you waits for the morning", async () => {
    const shirt = (id: string, at: string) => ({
      id,
      orderId: `ord-${id}`,
      occurredAt: at,
      customer: { id: "cus-evening" },
      items: [item("clothing", "60.00")],
    });
    // The first thank-you waits for 08:00 (email closes at 21:00); the second purchase is after
    // its hour, so on its own, and the third cannot join the second: the first group stays open.
    const file = await ndjson("coalesce-evening.ndjson", [
      shirt("e-1", "2026-11-10T20:30:00Z"),
      shirt("e-2", "2026-11-10T21:40:00Z"),
      shirt("e-3", "2026-11-10T21:50:00Z"),
    ]);
    const { output, io } = memoryIo();
    expect(await runSimulate(file, { config: SHIPPED_CONFIG_DIR, json: true }, io)).toBe(EXIT.ok);
    const result = JSON.parse(output.out) as { planned: number; coalesced: number };
    expect(result).toMatchObject({ planned: 3, coalesced: 0 });
  });
});

describe("simulate counts weekly volume in the rules' default time zone, as it counts months", () => {
  it("a Monday-morning follow-up in Auckland is in that Monday's ISO week, not the week before (Sunday in UTC)", async () => {
    const aucklandConfig = path.join(dir, "config-auckland");
    await cp(SHIPPED_CONFIG_DIR, aucklandConfig, { recursive: true });
    const rulesFile = path.join(aucklandConfig, "rules.yaml");
    const doc = parseDocument(await readFile(rulesFile, "utf8"));
    doc.setIn(["defaults", "timezone"], "Pacific/Auckland");
    await writeFile(rulesFile, doc.toString());
    // Monday 7 December 2026, 09:00 NZDT (+13:00) is Sunday 6 December 20:00 UTC. The thank-you
    // is due at 10:00 that Monday (2026-W50); the check-in three months later, Sunday 7 March,
    // waits for Monday 8 March 09:00 (SMS is closed on Sundays): 2027-W10.
    const file = await ndjson("auckland.ndjson", [
      {
        id: "nz-1",
        orderId: "ord-nz-1",
        occurredAt: "2026-12-07T09:00:00+13:00",
        customer: { id: "cus-nz", timezone: "Pacific/Auckland", phone: "+64 21 123 4567" },
        items: [item("televisions", "899.00", { name: "OLED TV" })],
        currency: "NZD",
        total: "899.00",
      },
    ]);
    const { io, output } = memoryIo();
    expect(await runSimulate(file, { config: aucklandConfig, json: true }, io)).toBe(EXIT.ok);
    const result = JSON.parse(output.out) as {
      weeks: unknown[];
      invalid: unknown[];
      delivery: { months: { month: string; channel: string }[] };
    };
    expect(result.invalid).toEqual([]);
    expect(result.weeks).toEqual([
      { week: "2026-W50", channel: "email", kind: "thank-you", count: 1 },
      { week: "2027-W10", channel: "sms", kind: "check-in", count: 1 },
    ]);
    // The months of the same sends, in the same zone.
    expect(result.delivery.months.map((m) => [m.month, m.channel])).toEqual([
      ["2026-12", "email"],
      ["2027-03", "sms"],
    ]);
  });

  it("counts a customer's lines in file order: where cooldowns chain, the order decides how many discounts (README)", async () => {
    // The shipped loyalty discount: 3 earlier purchases, due 30 days on, cooldown P60D. Due on
    // 31 Jan (a), 22 Mar (b) and 11 May (c): a and b 50 days apart, b and c too, a and c 100.
    const buy = (id: string, date: string) => ({
      id,
      orderId: `ord-${id}`,
      occurredAt: `${date}T10:00:00Z`,
      customer: { id: "cus-chain" },
    });
    const earlier = ["2025-12-01", "2025-12-02", "2025-12-03"].map((d, i) => buy(`e${i}`, d));
    const [a, b, c] = [buy("a", "2026-01-01"), buy("b", "2026-02-20"), buy("c", "2026-04-11")];
    const discounts = async (name: string, order: PurchaseSpec[]) => {
      const { io, output } = memoryIo();
      await runSimulate(
        await ndjson(name, [...earlier, ...order]),
        { config: pricedConfig, steps: true },
        io,
      );
      return output.out
        .trimEnd()
        .split("\n")
        .map((line) => JSON.parse(line) as { eventId: string; stepId: string })
        .filter((step) => step.stepId === "loyal-customer.discount")
        .map((step) => step.eventId);
    };
    // In purchase order, a's discount holds b's back, and c is far enough from a's.
    expect(await discounts("chain-abc.ndjson", [a, b, c])).toEqual(["a", "c"]);
    // b first (as a worker taking them in at once may count them): b's holds back both others.
    expect(await discounts("chain-bac.ndjson", [b, a, c])).toEqual(["b"]);
  });
});
