import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runRefused } from "../../src/cli/refused-command.js";
import type { ErasureReceipt } from "../../src/operations/erase-customer.js";
import type { RefusedEvent } from "../../src/operations/operator-tools.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { keysHolding } from "../support/personal-data-scan.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
} from "../support/pipeline-harness.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const ALICE = "alice-token-0123456789";
const BOB = "bob-token-0123456789xyz";

async function call(
  p: PipelineHarness,
  method: "GET" | "POST" | "DELETE",
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

/** Each of `values`, given in a query parameter (`path`), is a 400 that says `error`. */
async function expectBadValues(
  p: PipelineHarness,
  path: (value: string) => string,
  values: readonly string[],
  error: string,
): Promise<void> {
  for (const value of values)
    expect(await call(p, "GET", path(value), { token: ALICE }), value).toEqual({
      status: 400,
      body: { error },
    });
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
    expect(await call(p, "DELETE", "/admin/v1/customers/cus-admin", { token: ALICE })).toEqual({
      status: 405,
      body: { error: "method DELETE not allowed; use GET, HEAD" },
    });
    expect(await call(p, "GET", "/admin/v1/failed/retry", { token: ALICE })).toEqual({
      status: 405,
      body: { error: "method GET not allowed; use POST" },
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
    await expectBadValues(
      p,
      (days) => `/admin/v1/schedule?days=${days}`,
      ["0x10", "1e2", "%205", "5.0", ""],
      "days: expected a whole number from 1 to 400",
    );
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

  it("lists refused events, from the queue and over HTTP, exactly as `followups refused --json`", async () => {
    pipeline = await startPipeline("admin-refused", { env: { ADMIN_TOKENS: `alice:${ALICE}` } });
    const p = pipeline;
    const refused = async (query = "") => {
      const answer = await call(p, "GET", `/admin/v1/refused${query}`, { token: ALICE });
      expect(answer.status, query).toBe(200);
      return (answer.body as { refused: RefusedEvent[] }).refused;
    };
    expect(await call(p, "GET", "/admin/v1/refused")).toEqual({
      status: 401,
      body: { error: "missing admin token" },
    });
    expect(await refused()).toEqual([]);

    // Over HTTP: a purchase, then a refund in another currency, which the intake refuses; an
    // invalid event is answered 400 there and kept nowhere.
    const post = async (event: unknown) =>
      (
        await fetch(`${p.worker?.httpAddress}/v1/events`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${p.envVars.API_TOKEN}`,
            "content-type": "application/json",
          },
          body: JSON.stringify(event),
        })
      ).status;
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true });
    expect(await post(purchaseInput({ id: "evt-paid", orderId: "ord-paid", occurredAt }))).toBe(
      202,
    );
    expect(await eventProcessed(p, "evt-paid")).toBe("completed");
    const refund = {
      type: "purchase.refunded",
      id: "ref-in-euros",
      occurredAt,
      orderId: "ord-paid",
      amount: { amount: "10.00", currency: "EUR" },
    };
    expect(await post(refund)).toBe(202);
    expect(await eventProcessed(p, "ref-in-euros")).toBe("failed");
    expect(await post({ type: "purchase.completed", id: "evt-http-invalid" })).toBe(400);
    // Then 100 invalid events added to the queue by hand, as a publisher in another language might.
    await p.events.addBulk(
      Array.from({ length: 100 }, (_, i) => ({
        name: "purchase.completed",
        data: { type: "purchase.completed", id: `evt-bad-${i}`, customer: { id: "cus-bad" } },
      })),
    );
    await eventually(
      async () => ((await p.events.getFailedCount()) === 101 ? true : undefined),
      "the 100 invalid events to be refused",
    );

    // The same body as the command's, with its default of 100: the refund, refused first, is
    // the 101st.
    Object.assign(process.env, p.commandEnv);
    const io = captureIo();
    expect(await runRefused({ config: p.configDir, limit: "100", json: true }, io)).toBe(0);
    const listed = await refused();
    expect({ refused: listed }).toEqual(JSON.parse(io.output()));
    expect(listed).toHaveLength(100);
    expect(listed[99]).toMatchObject({ type: "purchase.completed", attempts: 1 });
    expect(listed[99]?.reason).toMatch(/^invalid event: .*orderId/);
    const all = await refused("?limit=10000");
    expect(all).toHaveLength(101);
    expect(all[100]).toEqual({
      eventId: "ref-in-euros",
      type: "purchase.refunded",
      refusedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
      attempts: 1,
      reason: "refund ref-in-euros is in EUR but order ord-paid was paid in GBP",
    });
    expect(all.map((event) => event.eventId)).not.toContain("evt-http-invalid");
    expect((await refused("?limit=1")).map((event) => event.eventId)).toEqual([listed[0]?.eventId]);
    // Digits only, from 1 to 10000, as the command's --limit.
    await expectBadValues(
      p,
      (limit) => `/admin/v1/refused?limit=${limit}`,
      ["0", "10001", "0x10", "1e2", "%205", "5.0", "-1", ""],
      "limit: expected a whole number from 1 to 10000",
    );
    expect(await call(p, "GET", "/admin/v1/refused?limit=1&limit=2", { token: ALICE })).toEqual({
      status: 400,
      body: { error: "limit: give the query parameter once" },
    });
  });

  it("refuses a reason or note holding half a character, which Redis cannot store, and acts on nothing", async () => {
    pipeline = await startPipeline("admin-half", { env: { ADMIN_TOKENS: `alice:${ALICE}` } });
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-half",
        occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-half", email: "half@example.com" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-half")).toBe("completed");
    // JSON can write half a character ("\ud800"); a shell's argument or a form field cannot.
    const half = { reason: "rang \ud800 back" };
    const refusal = (what: string) => ({
      status: 400,
      body: {
        error: `${what}: the text holds half a character (an unpaired UTF-16 surrogate), which cannot be stored: give the character whole, or leave it out`,
      },
    });
    expect(
      await call(p, "POST", "/admin/v1/steps/evt-half/big-ticket.check-in/cancel", {
        token: ALICE,
        body: half,
      }),
    ).toEqual(refusal("reason"));
    expect((await p.store.allStepRecords("evt-half")).get("big-ticket.check-in")?.state).toBe(
      "scheduled",
    );
    expect(
      await call(p, "POST", "/admin/v1/replies/evt-half/big-ticket.check-in/1/resolve", {
        token: ALICE,
        body: { note: "\udc00" },
      }),
    ).toEqual(refusal("note"));
    // Whole characters, an emoji's two halves included, are taken.
    expect(
      await call(p, "POST", "/admin/v1/steps/evt-half/big-ticket.check-in/cancel", {
        token: ALICE,
        body: { reason: "rang back \ud83d\ude00" },
      }),
    ).toEqual({ status: 200, body: { cancelled: ["evt-half/big-ticket.check-in"], inFlight: [] } });
  });

  it("refuses a body it cannot read exactly, instead of acting as if none were given", async () => {
    pipeline = await startPipeline("admin-bodies", { env: { ADMIN_TOKENS: `alice:${ALICE}` } });
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-bodies",
        occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-bodies", email: "bodies@example.com" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-bodies")).toBe("completed");
    const post = async (path: string, body: string, contentType?: string) => {
      const response = await fetch(`${p.worker?.httpAddress}/admin/v1${path}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${ALICE}`,
          ...(contentType && { "content-type": contentType }),
        },
        body,
      });
      return { status: response.status, body: await response.json() };
    };
    const retryFields = "expected a JSON object with since, channel or refs";
    // A filter of the wrong type, misspelt, or sent as a form (curl -d without a Content-Type)
    // would retry every failed follow-up of every channel: each is refused, naming the mistake.
    const json = "application/json";
    for (const [body, contentType, error] of [
      ['{"channel": 5}', json, "channel: expected email, sms or voice"],
      ['{"since": 1764547200000}', json, "since: expected an ISO date or date-time"],
      ['{"chanel": "sms"}', json, `chanel: not a field of this request; ${retryFields}`],
      ['["evt-bodies/big-ticket.thank-you"]', json, `the body: ${retryFields}`],
      ['{"channel": "sms"}', "application/x-www-form-urlencoded", `the body: ${retryFields}`],
      ['{"channel": "sms"}', "text/plain", `the body: ${retryFields}`],
    ] as const)
      expect(await post("/failed/retry", body, contentType), body).toEqual({
        status: 400,
        body: { error },
      });
    // A cancel whose reason would be lost cancels nothing.
    const cancel = "/steps/evt-bodies/big-ticket.check-in/cancel";
    expect(
      await post(cancel, "reason=returned in store", "application/x-www-form-urlencoded"),
    ).toEqual({
      status: 400,
      body: { error: "the body: expected a JSON object with reason" },
    });
    expect(await post(cancel, '{"reasn": "returned in store"}', json)).toEqual({
      status: 400,
      body: { error: "reasn: not a field of this request; expected a JSON object with reason" },
    });
    expect((await p.store.allStepRecords("evt-bodies")).get("big-ticket.check-in")?.state).toBe(
      "scheduled",
    );
    expect(await post("/replies/evt-bodies/big-ticket.check-in/1/resolve", "[]", json)).toEqual({
      status: 400,
      body: { error: "the body: expected a JSON object with note" },
    });
    // An empty body is no body (what fetch sends as text/plain); empty JSON is malformed JSON.
    expect(await post(cancel, "", "text/plain")).toEqual({
      status: 200,
      body: { cancelled: ["evt-bodies/big-ticket.check-in"], inFlight: [] },
    });
    expect(await post("/failed/retry", "", json)).toEqual({
      status: 400,
      body: { error: "the body is empty; expected JSON" },
    });
    expect(await post("/failed/retry", '{"channel": "sms"}', json)).toEqual({
      status: 409,
      body: { error: "nothing to retry: no failed follow-ups" },
    });
  });

  it("is off without ADMIN_TOKENS", async () => {
    pipeline = await startPipeline("admin-off");
    expect(await call(pipeline, "GET", "/admin/v1/customers/cus-1", { token: ALICE })).toEqual({
      status: 404,
      body: { error: "not found" },
    });
  });
});
