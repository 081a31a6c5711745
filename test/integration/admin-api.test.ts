import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import type { ErasureReceipt } from "../../src/operations/erase-customer.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { keysHolding } from "../support/personal-data-scan.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const ALICE = "alice-token-0123456789";
const BOB = "bob-token-0123456789xyz";

async function call(
  p: PipelineHarness,
  method: "GET" | "POST",
  path: string,
  options: { token?: string; body?: unknown } = {},
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${p.worker?.httpAddress}${path}`, {
    method,
    headers: {
      ...(options.token && { authorization: `Bearer ${options.token}` }),
      ...(options.body !== undefined && { "content-type": "application/json" }),
    },
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
  return { status: response.status, body: await response.json() };
}

describe("the admin API", () => {
  it("answers operators named by ADMIN_TOKENS with the CLI's JSON, and records who acted", async () => {
    pipeline = await startPipeline("admin-api", {
      env: { ADMIN_TOKENS: `alice:${ALICE}, bob:${BOB}` },
    });
    const p = pipeline;
    const now = DateTime.utc().startOf("second");
    await p.publisher.publish(
      purchaseInput({
        id: "evt-admin",
        orderId: "ord-admin",
        occurredAt: now.toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-admin", email: "admin.customer@example.com" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await eventually(async () => {
      const records = await p.store.allStepRecords("evt-admin");
      return records.size === 2 ? true : undefined;
    }, "the purchase to be planned");

    expect(await call(p, "GET", "/admin/v1/customers/cus-admin")).toEqual({
      status: 401,
      body: { error: "missing admin token" },
    });
    expect(await call(p, "GET", "/admin/v1/customers/cus-admin", { token: `${ALICE}x` })).toEqual({
      status: 401,
      body: { error: "wrong admin token" },
    });

    const timeline = await call(p, "GET", "/admin/v1/customers/cus-admin", { token: ALICE });
    expect(timeline.status).toBe(200);
    expect((timeline.body as CustomerTimeline).purchases[0]?.steps.map((s) => s.state)).toEqual([
      "scheduled",
      "scheduled",
    ]);
    const byEmail = await call(p, "GET", "/admin/v1/customers?email=admin.customer@example.com", {
      token: BOB,
    });
    expect((byEmail.body as { customers: CustomerTimeline[] }).customers[0]?.customer.id).toBe(
      "cus-admin",
    );
    expect(await call(p, "GET", "/admin/v1/customers", { token: BOB })).toEqual({
      status: 400,
      body: { error: "give one of the query parameters email or phone" },
    });
    expect(await call(p, "GET", "/admin/v1/customers?phone=07400900011", { token: BOB })).toEqual({
      status: 404,
      body: {
        error:
          "no customer is known with that address; phone numbers are looked up in international format, + and the country code (+447400900020, not 07400 900020 or 0044 7400 900020)",
      },
    });
    expect(await call(p, "GET", "/admin/v1/customers/cus-nobody", { token: BOB })).toEqual({
      status: 404,
      body: { error: 'no customer "cus-nobody" is known' },
    });
    expect((await call(p, "GET", "/admin/v1/orders/ord-admin", { token: BOB })).status).toBe(200);

    const cancel = await call(p, "POST", "/admin/v1/steps/evt-admin/big-ticket.check-in/cancel", {
      token: BOB,
      body: { reason: "returned the TV in store" },
    });
    expect(cancel).toEqual({
      status: 200,
      body: { cancelled: ["evt-admin/big-ticket.check-in"], inFlight: [] },
    });
    // Again, with the event id padded as a paste may leave it: the same step, now not pending.
    const again = await call(
      p,
      "POST",
      "/admin/v1/steps/%20evt-admin%20/big-ticket.check-in/cancel",
      { token: BOB },
    );
    expect(again.status).toBe(409);
    expect(
      (
        await call(p, "POST", "/admin/v1/steps/evt-admin/big-ticket.thank-you/resend", {
          token: BOB,
        })
      ).status,
    ).toBe(409);

    const schedule = await call(p, "GET", "/admin/v1/schedule?days=30", { token: ALICE });
    expect(schedule).toEqual({
      status: 200,
      body: {
        days: [expect.objectContaining({ channel: "email", ruleId: "big-ticket", count: 1 })],
      },
    });
    expect((await call(p, "GET", "/admin/v1/schedule?days=0", { token: ALICE })).status).toBe(400);
    // Digits only, as the CLI's --days: 0x10, 1e2 or " 5" are refused, not read as 16, 100 or 5.
    for (const days of ["0x10", "1e2", "%205", "5.0", ""]) {
      expect(
        await call(p, "GET", `/admin/v1/schedule?days=${days}`, { token: ALICE }),
        days,
      ).toEqual({ status: 400, body: { error: "days: expected a whole number from 1 to 400" } });
    }
    expect(await call(p, "GET", "/admin/v1/audit?limit=1e1", { token: ALICE })).toEqual({
      status: 400,
      body: { error: "limit: expected a whole number from 1 to 10000" },
    });
    // `since` is ISO 8601, in UTC unless it names an offset: not whatever Date.parse takes.
    for (const path of [
      "/admin/v1/audit?since=Dec%201%202026",
      "/admin/v1/failed?since=12/01/2026",
    ])
      expect((await call(p, "GET", path, { token: ALICE })).status, path).toBe(400);
    const auditSoFar = await call(p, "GET", "/admin/v1/audit", { token: ALICE });
    const latest = (auditSoFar.body as { entries: { at: string }[] }).entries[0]?.at ?? "";
    const sinceLatest = async (since: string) =>
      (
        (
          await call(p, "GET", `/admin/v1/audit?since=${encodeURIComponent(since)}`, {
            token: ALICE,
          })
        ).body as { entries: unknown[] }
      ).entries.length;
    // The latest entry's instant written without its `Z` is the same instant, and an hour's
    // offset east of it is an hour earlier.
    expect(await sinceLatest(latest.replace(/Z$/, ""))).toBe(1);
    expect(await sinceLatest(latest.replace(/Z$/, "+01:00"))).toBeGreaterThanOrEqual(1);
    expect(await sinceLatest(latest.replace(/Z$/, "-01:00"))).toBe(0);
    // A parameter given twice is a mistake to name, not a list (nor a 500).
    expect(
      await call(p, "GET", "/admin/v1/customers?email=a@example.com&email=b@example.com", {
        token: ALICE,
      }),
    ).toEqual({ status: 400, body: { error: "email: give the query parameter once" } });
    expect(await call(p, "GET", "/admin/v1/failed", { token: ALICE })).toEqual({
      status: 200,
      body: { failed: [] },
    });
    expect((await call(p, "GET", "/admin/v1/failed?channel=fax", { token: ALICE })).status).toBe(
      400,
    );
    // Nothing to retry is a conflict, as `followups failed --retry` exits 1; a malformed
    // reference is a bad request.
    const retry = (body?: unknown) =>
      call(p, "POST", "/admin/v1/failed/retry", {
        token: ALICE,
        ...(body === undefined ? {} : { body }),
      });
    expect(await retry()).toEqual({
      status: 409,
      body: { error: "nothing to retry: no failed follow-ups" },
    });
    expect(await retry({ refs: ["evt-admin/big-ticket.thank-you"] })).toEqual({
      status: 409,
      body: { error: "nothing to retry: none of those follow-ups has failed" },
    });
    expect((await retry({ refs: ["nope/nope"] })).status).toBe(400);

    const erased = await call(p, "POST", "/admin/v1/customers/cus-admin/erase", { token: ALICE });
    expect(erased.status).toBe(200);
    expect(erased.body as ErasureReceipt).toMatchObject({
      by: "alice",
      purchases: 1,
      stepsCancelled: 1,
    });
    expect(
      await keysHolding(p.redis, p.prefix, ["cus-admin", "admin.customer@example.com"]),
    ).toEqual([]);
    // Counted by the worker that erased, as an erasure by event is.
    expect(await p.worker?.metrics.registry.metrics()).toContain("followups_erasures_total 1");

    const audit = await call(p, "GET", "/admin/v1/audit", { token: ALICE });
    expect(
      (audit.body as { entries: { by: string; action: string; target: string }[] }).entries.map(
        (entry) => [entry.by, entry.action, entry.target],
      ),
    ).toEqual([
      ["alice", "erase", expect.stringMatching(/^customer k:/)],
      // What the cancel named is blanked by the erasure; who did it and when stay.
      ["bob", "cancel", "(erased)"],
    ]);
  });

  it("is off without ADMIN_TOKENS", async () => {
    pipeline = await startPipeline("admin-off");
    expect(await call(pipeline, "GET", "/admin/v1/customers/cus-1", { token: ALICE })).toEqual({
      status: 404,
      body: { error: "not found" },
    });
  });
});
