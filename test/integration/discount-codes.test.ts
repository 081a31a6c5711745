import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runCode } from "../../src/cli/code-command.js";
import { runCustomer } from "../../src/cli/customer-command.js";
import { runErase } from "../../src/cli/erase-command.js";
import { runReport } from "../../src/cli/report-command.js";
import { runResend } from "../../src/cli/resend-command.js";
import type { ReportModel } from "../../src/reports/report-model.js";
import { DiscountCodes } from "../../src/store/discount-codes.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { keysHolding } from "../support/personal-data-scan.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
} from "../support/pipeline-harness.js";
import { withAccessoryCodes } from "../support/rules-config.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const TILL_TOKEN = "till-token-0123456789";
const API_TOKEN = "test-api-token-0123456789";

/** A laptop bought 14 days ago to the minute (London's days): its accessories discount is due now. */
function laptop(id: string, customerId: string, extra: Record<string, unknown> = {}) {
  const occurredAt = DateTime.now()
    .setZone("Europe/London")
    .minus({ days: 14 })
    .toUTC()
    .toISO({ suppressMilliseconds: true });
  return purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: occurredAt ?? "",
    customer: { id: customerId, email: `${customerId}@example.com`, timezone: "Europe/London" },
    items: [item("laptops", "450.00", { name: "Aero 14 laptop" })],
    extra,
  });
}

/** A purchase of one item made just now. */
function boughtNow(
  id: string,
  orderId: string,
  customerId: string,
  bought: ReturnType<typeof item>,
  extra: Record<string, unknown> = {},
) {
  return purchaseInput({
    id,
    orderId,
    customer: { id: customerId },
    items: [bought],
    occurredAt: DateTime.utc().toISO({ suppressMilliseconds: true }) ?? "",
    extra,
  });
}

function codeIn(text: string): string {
  const found = /\bKIT(?:-[0-9A-Z]{4}){3}\b/.exec(text)?.[0];
  if (!found) throw new Error(`no discount code in:\n${text}`);
  return found;
}

/**
 * A pipeline whose accessories rule issues KIT codes, its HTTP address, and a till that calls it
 * (with TILL_TOKEN unless told otherwise).
 */
async function tillPipeline(name: string) {
  pipeline = await startPipeline(name, { startWorker: false, env: { TILL_TOKEN } });
  const p = pipeline;
  await withAccessoryCodes(p.configDir);
  await p.startWorker();
  const http = p.worker?.httpAddress ?? "";
  const till = (method: string, route: string, body?: unknown, token = TILL_TOKEN) =>
    fetch(`${http}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined && { "content-type": "application/json" }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  return { p, http, till };
}

describe("consent given at one checkout and withdrawn at a later one", () => {
  it("the later purchase's stands: the earlier purchase's offer is skipped, nothing sent", async () => {
    const { p } = await tillPipeline("consent-withdrawn");
    // Bought today, with the email box cleared at checkout.
    await p.publisher.publish(
      purchaseInput({
        id: "evt-cw-2",
        orderId: "ord-cw-2",
        customer: { id: "cus-cw", email: "cus-cw@example.com", consent: { email: false } },
        items: [item("kitchenware", "20.00")],
        occurredAt: DateTime.utc().toISO({ suppressMilliseconds: true }) ?? "",
      }) as never,
    );
    await eventually(
      async () =>
        (await (await p.events.getJob("evt-cw-2"))?.getState()) === "completed" ? true : undefined,
      "the later purchase to be taken in",
    );
    // A laptop bought 14 days before, with the box ticked then, arrives late: its offer is due now.
    await p.publisher.publish(laptop("evt-cw-1", "cus-cw") as never);
    const step = "accessories.discount";
    const offer = await eventually(async () => {
      const record = (await p.store.stepRecords("evt-cw-1", [step])).get(step);
      return record && record.state !== "scheduled" && record.state !== "sending"
        ? record
        : undefined;
    }, "the offer to be decided");
    expect(offer).toMatchObject({ state: "skipped", reason: { code: "no-consent" } });
    expect(p.sink.messages.filter((m) => m.envelope.rcptTo.includes("cus-cw@example.com"))).toEqual(
      [],
    );
    // The customer's timeline shows the consent that decides, not a purchase's own.
    Object.assign(process.env, p.commandEnv);
    const io = captureIo();
    expect(await runCustomer("cus-cw", { config: p.configDir, json: true }, io)).toBe(0);
    expect(JSON.parse(io.output()).customer.consent).toMatchObject({ email: false });
  });
});

describe("discount codes a till can check", () => {
  it("stores every code it sends; tills look them up and redeem them once, by token, in any spelling", async () => {
    const { p, http, till } = await tillPipeline("discount-codes");

    await p.publisher.publish(laptop("evt-code-1", "cus-code-1") as never);
    const [email] = await p.sink.waitForMessages(1, 15_000);
    const code = codeIn(email?.parsed.text ?? "");
    const validUntil = DateTime.now().setZone("Europe/London").plus({ days: 7 }).toISODate();

    // Looked up as a cashier types it: lower case, no hyphens.
    const typed = code.replaceAll("-", "").toLowerCase();
    const looked = await till("GET", `/v1/discount-codes/${typed}`);
    expect(looked.status).toBe(200);
    expect(looked.headers.get("cache-control")).toBe("no-store");
    expect(await looked.json()).toEqual({ code, status: "valid", percent: 15, validUntil });
    // The API token works as well; a wrong token and no token do not.
    expect((await till("GET", `/v1/discount-codes/${code}`, undefined, API_TOKEN)).status).toBe(
      200,
    );
    expect(
      (await till("GET", `/v1/discount-codes/${code}`, undefined, "wrong-token-000000")).status,
    ).toBe(401);
    expect((await fetch(`${http}/v1/discount-codes/${code}`)).status).toBe(401);
    // A typo is unknown.
    const typo = await till("GET", "/v1/discount-codes/KIT-0000-0000-0000");
    expect(typo.status).toBe(404);
    expect(await typo.json()).toEqual({ code: "KIT-0000-0000-0000", status: "unknown" });
    // The till token cannot publish events.
    const publish = await till("POST", "/v1/events", laptop("evt-code-x", "cus-x"));
    expect(publish.status).toBe(401);

    // Redeemed once: the same order again is fine, another order is told who had it.
    const first = await till("POST", `/v1/discount-codes/${typed}/redeem`, {
      orderId: "ord-till-1",
    });
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({
      code,
      status: "redeemed",
      percent: 15,
      validUntil,
      redeemedBy: "ord-till-1",
    });
    expect(
      (await till("POST", `/v1/discount-codes/${code}/redeem`, { orderId: "ord-till-1" })).status,
    ).toBe(200);
    const second = await till("POST", `/v1/discount-codes/${code}/redeem`, {
      orderId: "ord-till-2",
    });
    expect(second.status).toBe(409);
    expect(await second.json()).toEqual({ code, status: "redeemed", redeemedBy: "ord-till-1" });
    expect((await till("POST", `/v1/discount-codes/${code}/redeem`, {})).status).toBe(400);
    expect(
      (await till("POST", "/v1/discount-codes/KIT-0000-0000-0000/redeem", { orderId: "o" })).status,
    ).toBe(404);

    // An expired code: looked up as expired, not redeemable (410).
    const codes = new DiscountCodes(p.redis, p.prefix);
    const yesterday = DateTime.utc().minus({ days: 1 });
    await codes.issue(
      { code: "KIT-OLD0-0000-0001", percent: 10, validUntil: yesterday.toISODate() ?? "" },
      yesterday.endOf("day").toMillis(),
      { eventId: "evt-old", stepId: "accessories.discount", shard: 0, customer: "k:old" },
      yesterday.minus({ days: 7 }).toMillis(),
      30 * 86_400_000,
    );
    const expired = await till("POST", "/v1/discount-codes/kit-old0-0000-0001/redeem", {
      orderId: "ord-late",
    });
    expect(expired.status).toBe(410);
    expect(await expired.json()).toMatchObject({ code: "KIT-OLD0-0000-0001", status: "expired" });

    // A purchase that names a code redeems it for its order.
    await p.publisher.publish(laptop("evt-code-2", "cus-code-2") as never);
    const [, secondEmail] = await p.sink.waitForMessages(2, 15_000);
    const code2 = codeIn(secondEmail?.parsed.text ?? "");
    expect(code2).not.toBe(code);
    await p.publisher.publish(
      boughtNow("evt-code-3", "ord-web-3", "cus-code-2", item("accessories", "30.00"), {
        discountCodes: [code2.toLowerCase()],
      }) as never,
    );
    const redeemed = await eventually(async () => {
      const found = await codes.lookup(code2, Date.now());
      return found?.status === "redeemed" ? found : undefined;
    }, "the purchase to redeem its code");
    expect(redeemed.redeemedBy).toBe("ord-web-3");

    // The CLI says the same.
    Object.assign(process.env, p.commandEnv);
    const io = captureIo();
    expect(await runCode(code2, { json: true }, io)).toBe(0);
    expect(JSON.parse(io.output())).toEqual({ ...redeemed });
    const text = captureIo();
    expect(await runCode(code, {}, text)).toBe(0);
    expect(text.output()).toBe(`${code}: 15% off, redeemed by order ord-till-1\n`);
    const unknown = captureIo();
    expect(await runCode("KIT-0000-0000-0000", {}, unknown)).toBe(1);

    // Brought back: the order that used its code counts for the accessories rule, by code; a
    // purchase by the first customer after their discount email counts as brought back by it.
    await p.publisher.publish(
      boughtNow("evt-code-4", "ord-back-4", "cus-code-1", item("kitchenware", "80.00")) as never,
    );
    // An order returned before its purchase event arrived brought no one back.
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-back-5",
      occurredAt: DateTime.utc().toISO() ?? "",
      orderId: "ord-back-5",
    });
    const processed = (jobId: string) =>
      eventually(
        async () =>
          (await (await p.events.getJob(jobId))?.getState()) === "completed" ? true : undefined,
        `${jobId} to be processed`,
      );
    await processed("ref-back-5");
    await p.publisher.publish(
      boughtNow("evt-code-5", "ord-back-5", "cus-code-1", item("kitchenware", "500.00")) as never,
    );
    await processed("evt-code-4");
    await processed("evt-code-5");
    // An operator resends the second discount: one message more, the same code, not a code more.
    const step = "accessories.discount";
    const recordOf = async () => (await p.store.stepRecords("evt-code-2", [step])).get(step);
    const before = await recordOf();
    expect(
      await runResend(
        { config: p.configDir, step: `evt-code-2/${step}`, by: "carol" },
        captureIo(),
      ),
    ).toBe(0);
    await eventually(async () => {
      const record = await recordOf();
      return record?.state === "sent" && record.providerId !== before?.providerId
        ? record
        : undefined;
    }, "the resend to go out");
    const again = p.sink.messages.filter((m) =>
      m.envelope.rcptTo.includes("cus-code-2@example.com"),
    );
    expect(again.map((m) => codeIn(m.parsed.text ?? ""))).toEqual([code2, code2]);
    const today = DateTime.utc();
    const reportOf = async (format: "json" | "text" | "csv") => {
      const io = captureIo();
      const range = {
        since: today.toISODate() ?? "",
        until: today.plus({ days: 1 }).toISODate() ?? "",
      };
      expect(await runReport({ config: p.configDir, ...range, timezone: "UTC", format }, io)).toBe(
        0,
      );
      return io.output();
    };
    const model = JSON.parse(await reportOf("json")) as ReportModel;
    expect(model.broughtBack).toEqual({
      orders: 2,
      byCode: 1,
      revenue: [{ currency: "GBP", amount: "110.00" }],
      byRule: [
        {
          ruleId: "accessories",
          orders: 2,
          revenue: [{ currency: "GBP", amount: "110.00" }],
        },
      ],
      byChannelKind: [
        {
          channel: "email",
          kind: "discount",
          orders: 2,
          revenue: [{ currency: "GBP", amount: "110.00" }],
        },
      ],
      // Two codes sent by the accessories rule (one of them twice: resent), one redeemed by a
      // till and one by a purchase.
      redemption: [{ ruleId: "accessories", sent: 2, redeemed: 2, rate: 1 }],
    });
    const csvRows = (await reportOf("csv")).trim().split("\r\n");
    // The check-in comparison's six columns follow: empty on a channel's row, zero on the total.
    expect(csvRows.find((row) => row.includes(",email,discount,"))).toMatch(
      /,2,110\.00 GBP,,,,,,$/,
    );
    expect(csvRows.at(-1)).toMatch(/,total,,.*,2,110\.00 GBP,0,0,,0,0,$/);
    const reportText = await reportOf("text");
    expect(reportText).toContain(
      "2 orders came after a follow-up (1 with its discount code), worth 110.00 GBP.",
    );
    expect(reportText).toContain("accessories codes: 2 redeemed of 2 sent (100%)");

    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/^followups_discount_redemptions_total\{result="redeemed"\} 2$/m);
    expect(metrics).toMatch(/^followups_discount_redemptions_total\{result="taken"\} 1$/m);
  });

  it("reads the till's order id trimmed, as the purchase's: the purchase naming the code is the order that redeemed it", async () => {
    const { p, till: call } = await tillPipeline("discount-codes-padded");
    const till = async (route: string, body: unknown) => {
      const answer = await call("POST", route, body);
      return { status: answer.status, body: await answer.json() };
    };
    await p.publisher.publish(laptop("evt-pad-1", "cus-pad") as never);
    const [email] = await p.sink.waitForMessages(1, 15_000);
    const code = codeIn(email?.parsed.text ?? "");
    const redeem = `/v1/discount-codes/${code}/redeem`;

    // A scanned order number keeps its line end; the till retries with it cleaned up.
    const scanned = await till(redeem, { orderId: "ord-pad-1\n" });
    expect(scanned).toMatchObject({ status: 200, body: { redeemedBy: "ord-pad-1" } });
    expect(await till(redeem, { orderId: "ord-pad-1" })).toMatchObject({ status: 200 });
    // The purchase of that order names the code: the same order, so not `taken`.
    await p.publisher.publish(
      boughtNow("evt-pad-2", "ord-pad-1", "cus-pad", item("accessories", "30.00"), {
        discountCodes: [code],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-pad-2")).toBe("completed");
    const metrics = await (await fetch(`${p.worker?.httpAddress}/metrics`)).text();
    expect(metrics).not.toMatch(/^followups_discount_redemptions_total\{result="taken"\}/m);
    // An order id of the contract's 200 characters (code points: 400 UTF-16 units) is read: the
    // code is taken by ord-pad-1 (409), not refused (400).
    expect((await till(redeem, { orderId: "😀".repeat(200) })).status).toBe(409);
    // An order id beyond the contract's bound is refused saying so.
    for (const orderId of ["o".repeat(201), "😀".repeat(201)])
      expect(await till(redeem, { orderId })).toEqual({
        status: 400,
        body: {
          error:
            'expected a JSON body {"orderId"} with the redeeming order\'s id, at most 200 characters',
        },
      });
  });

  it("revokes an erased customer's codes: the till hears revoked, a redeemed one stays redeemed by no order, and the counts stay", async () => {
    const { p, http, till: call } = await tillPipeline("discount-codes-erased");
    const till = async (method: string, route: string, body?: unknown) => {
      const answer = await call(method, route, body);
      return { status: answer.status, body: await answer.json() };
    };
    await p.publisher.publish(laptop("evt-gone-1", "cus-gone") as never);
    await p.publisher.publish(laptop("evt-gone-2", "cus-gone") as never);
    const emails = await p.sink.waitForMessages(2, 15_000);
    const [used, unused] = emails.map((email) => codeIn(email.parsed.text ?? ""));
    if (!used || !unused) throw new Error("two codes expected");
    expect(
      (await till("POST", `/v1/discount-codes/${used}/redeem`, { orderId: "ord-gone-9" })).status,
    ).toBe(200);
    // The owners' report counts what happened: two codes sent, one redeemed.
    const redemption = async () => {
      const report = captureIo();
      const today = DateTime.utc();
      const range = {
        since: today.toISODate() ?? "",
        until: today.plus({ days: 1 }).toISODate() ?? "",
      };
      expect(
        await runReport({ config: p.configDir, ...range, timezone: "UTC", format: "json" }, report),
      ).toBe(0);
      return (JSON.parse(report.output()) as ReportModel).broughtBack.redemption;
    };
    Object.assign(process.env, p.commandEnv);
    const before = await redemption();
    expect(before).toEqual([{ ruleId: "accessories", sent: 2, redeemed: 1, rate: 0.5 }]);

    const erase = captureIo();
    expect(await runErase("cus-gone", { config: p.configDir, json: true }, erase)).toBe(0);
    expect(JSON.parse(erase.output())).toMatchObject({ codesRevoked: 2 });

    // Never redeemed: revoked, not redeemable, and nothing ties it to the customer.
    const validUntil = DateTime.now().setZone("Europe/London").plus({ days: 7 }).toISODate();
    expect(await till("GET", `/v1/discount-codes/${unused}`)).toEqual({
      status: 200,
      body: { code: unused, status: "revoked", percent: 15, validUntil },
    });
    expect(await till("POST", `/v1/discount-codes/${unused}/redeem`, { orderId: "ord-x" })).toEqual(
      {
        status: 410,
        body: { code: unused, status: "revoked", percent: 15, validUntil },
      },
    );
    const codes = new DiscountCodes(p.redis, p.prefix);
    expect(await codes.origin(unused)).toBeUndefined();
    const text = captureIo();
    expect(await runCode(unused, {}, text)).toBe(0);
    expect(text.output()).toBe(
      `${unused}: 15% off, revoked: the customer it was issued to had their data erased\n`,
    );
    // Redeemed before: still redeemed (not again), by no order named.
    expect(await till("GET", `/v1/discount-codes/${used}`)).toEqual({
      status: 200,
      body: { code: used, status: "redeemed", percent: 15, validUntil },
    });
    expect(
      await till("POST", `/v1/discount-codes/${used}/redeem`, { orderId: "ord-gone-9" }),
    ).toEqual({
      status: 409,
      body: { code: used, status: "redeemed" },
    });
    const redeemed = captureIo();
    expect(await runCode(used, {}, redeemed)).toBe(0);
    expect(redeemed.output()).toBe(
      `${used}: 15% off, redeemed (its customer's data was since erased)\n`,
    );
    // The order that redeemed it is no longer stored.
    expect(await keysHolding(p.redis, p.prefix, ["ord-gone-9"])).toEqual([]);

    // The report's counts are as they were.
    expect(await redemption()).toEqual(before);
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/^followups_discount_redemptions_total\{result="redeemed"\} 1$/m);
    expect(metrics).toMatch(/^followups_discount_redemptions_total\{result="revoked"\} 1$/m);
  });
});

describe("a purchase naming a code", () => {
  it("redeems it when it was valid at the purchase, although the event is taken in after the code expired", async () => {
    const { p, till } = await tillPipeline("discount-codes-late-event");
    const codes = new DiscountCodes(p.redis, p.prefix);
    const expiresAt = DateTime.utc().minus({ hours: 1 });
    await codes.issue(
      { code: "KIT-LATE-0000-0001", percent: 10, validUntil: expiresAt.toISODate() ?? "" },
      expiresAt.toMillis(),
      { eventId: "evt-late-0", stepId: "accessories.discount", shard: 0, customer: "k:late" },
      expiresAt.minus({ days: 30 }).toMillis(),
      30 * 86_400_000,
    );
    // Bought two hours ago with the code, still valid then (a web checkout that checked it);
    // its event comes in late (a publisher's outage, intake retries).
    await p.publisher.publish(
      purchaseInput({
        id: "evt-late-1",
        orderId: "ord-late-1",
        customer: { id: "cus-late" },
        items: [item("accessories", "30.00")],
        occurredAt: DateTime.utc().minus({ hours: 2 }).toISO({ suppressMilliseconds: true }) ?? "",
        extra: { discountCodes: ["KIT-LATE-0000-0001"] },
      }) as never,
    );
    expect(await eventProcessed(p, "evt-late-1")).toBe("completed");
    expect(await codes.lookup("KIT-LATE-0000-0001", Date.now())).toMatchObject({
      status: "redeemed",
      redeemedBy: "ord-late-1",
    });
    // A till asking now, for another order, is told it was redeemed (not that it expired).
    const now = await till("POST", "/v1/discount-codes/KIT-LATE-0000-0001/redeem", {
      orderId: "ord-late-2",
    });
    expect(now.status).toBe(409);

    // A code that had expired already when the purchase was made stays unredeemed.
    const before = DateTime.utc().minus({ hours: 3 });
    await codes.issue(
      { code: "KIT-LATE-0000-0002", percent: 10, validUntil: before.toISODate() ?? "" },
      before.toMillis(),
      { eventId: "evt-late-0", stepId: "accessories.discount", shard: 0, customer: "k:late" },
      before.minus({ days: 30 }).toMillis(),
      30 * 86_400_000,
    );
    await p.publisher.publish(
      purchaseInput({
        id: "evt-late-3",
        orderId: "ord-late-3",
        customer: { id: "cus-late" },
        items: [item("accessories", "30.00")],
        occurredAt: DateTime.utc().minus({ hours: 2 }).toISO({ suppressMilliseconds: true }) ?? "",
        extra: { discountCodes: ["KIT-LATE-0000-0002"] },
      }) as never,
    );
    expect(await eventProcessed(p, "evt-late-3")).toBe("completed");
    expect(await codes.lookup("KIT-LATE-0000-0002", Date.now())).toMatchObject({
      status: "expired",
    });
  });
});
