import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runCustomer } from "../../src/cli/customer-command.js";
import type { CommandIo } from "../../src/cli/io.js";
import { runOptOut } from "../../src/cli/opt-out-command.js";
import type { OptOutReceipt } from "../../src/operations/operator-tools.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import { sumHours } from "../../src/store/delivery-ledger.js";
import { StoreKeys } from "../../src/store/keys.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
} from "../support/pipeline-harness.js";
import { optOutRacingStart } from "../support/replay-at-opt-out.js";

/** The operator's opt-out (`followups opt-out`, the admin API): "stop messaging me". */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const PHONE = "+442079460958";
const ALICE = "alice-token-0123456789";
const ago = (hours: number) =>
  DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

/** Runs a command against the pipeline's Redis, as an operator's shell would. */
async function command(p: PipelineHarness, run: (io: CommandIo) => Promise<number>) {
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  const code = await run(io);
  return { code, out: io.output(), err: io.errors() };
}

async function optOutJson(
  p: PipelineHarness,
  id: string | undefined,
  options: Record<string, unknown> = {},
): Promise<OptOutReceipt> {
  const { code, out } = await command(p, (io) =>
    runOptOut(id, { config: p.configDir, json: true, by: "sam", ...options }, io),
  );
  expect(code).toBe(0);
  return JSON.parse(out) as OptOutReceipt;
}

/** Opt-outs counted in the global ledger (with their reasons), as reports add them up. */
async function optOutCounts(p: PipelineHarness): Promise<Map<string, number>> {
  const now = Date.now();
  const hours = await p.stores.of(0).ledger.hours(now - 7_200_000, now + 3_600_000);
  return new Map(
    [...sumHours(hours)].filter(
      ([field]) => field.startsWith("optout|") || field.startsWith("reason|optout|"),
    ),
  );
}

async function stepRecord(p: PipelineHarness, eventId: string, stepId: string) {
  return (await p.store.stepRecords(eventId, [stepId])).get(stepId);
}

/** A TV bought by the default customer (cus-1, ana@example.com, PHONE): a check-in by SMS. */
async function tvBought(p: PipelineHarness, id: string, customer: Record<string, unknown> = {}) {
  await p.publisher.publish(
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: ago(2),
      items: [item("televisions", "700.00")],
      customer,
    }) as never,
  );
  await eventually(
    async () => ((await p.events.getJob(id))?.finishedOn ? true : undefined),
    `${id} to be taken in`,
  );
}

describe("followups opt-out", () => {
  it("opts a customer out by id and by their addresses: a pending check-in is skipped (opted-out), counted once, recorded", async () => {
    pipeline = await startPipeline("optout-customer");
    const p = pipeline;
    await tvBought(p, "evt-oo-1");
    expect((await stepRecord(p, "evt-oo-1", "big-ticket.check-in"))?.state).toBe("scheduled");

    const { code, out, err } = await command(p, (io) =>
      runOptOut("cus-1", { config: p.configDir, by: "sam" }, io),
    );
    expect([code, err]).toEqual([0, ""]);
    expect(out).toContain('Opted out customer "cus-1"');
    expect(out).toContain("channels:          email, SMS, calls");
    expect(out).toContain("scope:             every follow-up");
    // The customer's email address and number, by keyed hash; neither is printed.
    expect(out).toContain("addresses covered: 2");
    expect(out).not.toMatch(/ana@example\.com|7946/);

    const list = new SuppressionList(p.redis, p.prefix);
    for (const channel of ["email", "sms", "voice"] as const)
      expect(await list.isSuppressed(channel, { customerId: "cus-1" }), channel).toBe(true);
    // A guest checkout with the same number is covered too, as after a customer.unsubscribed.
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
    expect(await list.isSuppressed("email", { address: "ana@example.com" })).toBe(true);
    // The number's calls carry the decline mark, so a texted START leaves them off.
    const voice = await p.redis.smembers(new StoreKeys(p.prefix).suppressions("voice"));
    expect(voice.filter((member) => member.startsWith("d:"))).toHaveLength(1);
    expect(await list.allow("voice", { address: PHONE })).toBe(true);
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);

    // Counted once per channel, reason `operator`.
    const counts = await optOutCounts(p);
    for (const channel of ["email", "sms", "voice"]) {
      expect(counts.get(`optout|${channel}|-|-`), channel).toBe(1);
      expect(
        [...counts].filter(
          ([field, n]) =>
            field.startsWith(`reason|optout|${channel}|`) && field.endsWith("|operator") && n === 1,
        ),
        channel,
      ).toHaveLength(1);
    }

    // The pending check-in is skipped when it falls due, and nothing is sent.
    await promoteStep(p, "evt-oo-1", "big-ticket.check-in");
    const skipped = await eventually(async () => {
      const record = await stepRecord(p, "evt-oo-1", "big-ticket.check-in");
      return record?.state === "skipped" ? record : undefined;
    }, "the check-in to be skipped");
    expect(skipped.reason?.code).toBe("opted-out");
    expect(p.twilio.requests).toBe(0);

    // Again: harmless, counted nothing, said so; in JSON without the addresses.
    const again = await optOutJson(p, "cus-1");
    expect(again).toMatchObject({
      customer: "cus-1",
      address: null,
      channels: ["email", "sms", "voice"],
      purposes: null,
      addressesCovered: 2,
      newlyOptedOut: [],
      by: "sam",
    });
    expect(JSON.stringify(again)).not.toMatch(/ana@example\.com|7946/);
    expect((await optOutCounts(p)).get("optout|sms|-|-")).toBe(1);

    // The timeline shows the opt-outs and who did it (the customer by keyed hash only).
    const { out: timelineOut } = await command(p, (io) =>
      runCustomer("cus-1", { config: p.configDir, json: true }, io),
    );
    const timeline = JSON.parse(timelineOut) as CustomerTimeline;
    expect(timeline.suppressions).toEqual({ email: "all", sms: "all", voice: "all" });
    expect(timeline.audit.map((entry) => [entry.by, entry.action, entry.target])).toEqual([
      ["sam", "opt-out", expect.stringMatching(/^customer k:/)],
      ["sam", "opt-out", expect.stringMatching(/^customer k:/)],
    ]);
    expect(timeline.audit[1]?.detail).toBe("email, sms, voice: everything; 2 addresses covered");
    expect(JSON.stringify(timeline.audit)).not.toMatch(/cus-1|ana@|7946/);
  });

  it("opts out offers only on the channels named", async () => {
    pipeline = await startPipeline("optout-offers");
    const p = pipeline;
    await tvBought(p, "evt-oo-2");
    const receipt = await optOutJson(p, "cus-1", { channels: "sms, EMAIL", offersOnly: true });
    expect(receipt).toMatchObject({
      channels: ["email", "sms"],
      purposes: ["marketing"],
      newlyOptedOut: ["email", "sms"],
    });
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("sms", { customerId: "cus-1" }, "marketing")).toBe(true);
    expect(await list.isSuppressed("sms", { customerId: "cus-1" })).toBe(false);
    expect(await list.isSuppressed("voice", { customerId: "cus-1" }, "marketing")).toBe(false);
    const counts = await optOutCounts(p);
    expect([...counts.keys()].filter((field) => field.endsWith("|operator-offers"))).toHaveLength(
      2,
    );
    // A check-in is not an offer: it still goes.
    expect((await stepRecord(p, "evt-oo-2", "big-ticket.check-in"))?.state).toBe("scheduled");
  });

  it("opts out a number no customer is known by, so an SMS to it later is not sent", async () => {
    pipeline = await startPipeline("optout-phone");
    const p = pipeline;
    const receipt = await optOutJson(p, undefined, { phone: "+44 20 7946 0958" });
    expect(receipt).toMatchObject({
      customer: null,
      address: "phone",
      channels: ["sms", "voice"],
      addressesCovered: 1,
      newlyOptedOut: ["sms", "voice"],
    });
    expect(JSON.stringify(receipt)).not.toContain("7946");
    const { out } = await command(p, (io) =>
      runOptOut(undefined, { config: p.configDir, phone: PHONE }, io),
    );
    expect(out).toContain("Opted out the phone number given");
    expect(out).not.toContain("7946");

    // A purchase later, under a customer id never seen, with that number: no text goes to it.
    await tvBought(p, "evt-oo-3", { id: "cus-new" });
    // Suppressed at intake: the check-in is not even scheduled (as after a text STOP).
    expect(await stepRecord(p, "evt-oo-3", "big-ticket.check-in")).toBeUndefined();
    // Its email is not covered: the thank-you still goes by email.
    await p.sink.waitForMessages(1);
    expect(p.twilio.requests).toBe(0);

    // The audit trail names the number by keyed hash only.
    const entries = await p.redis.zrange(new StoreKeys(p.prefix).auditTrail(), "0", "-1");
    expect(entries).toHaveLength(2);
    expect(entries.join()).not.toContain("7946");
    expect(entries[0]).toMatch(/"action":"opt-out","target":"phone h:/);
  });

  it("opts out an email address typed with an internationalised domain as events store it (in its ASCII form), and refuses one no event could carry", async () => {
    pipeline = await startPipeline("optout-idn");
    const p = pipeline;
    // Events carry an internationalised domain in its ASCII form only (xn--): the address an
    // operator reads from the customer's letter is in Unicode.
    const receipt = await optOutJson(p, undefined, { email: "Ana@Bücher.de" });
    expect(receipt).toMatchObject({ address: "email", addressesCovered: 1 });
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("email", { address: "ana@xn--bcher-kva.de" })).toBe(true);
    // Copied with its angle brackets from a mail client: not an address an event can carry, so
    // opting it out would cover no one while saying it did.
    await expect(
      command(p, (io) =>
        runOptOut(undefined, { config: p.configDir, email: "<ana@example.com>" }, io),
      ),
    ).rejects.toMatchObject({ code: 2, message: expect.stringContaining("not an email address") });
  });

  it("finds a customer by an email address with an internationalised domain typed in Unicode (followups customer --email, as erase --email looks them up)", async () => {
    pipeline = await startPipeline("optout-idn-lookup");
    const p = pipeline;
    await tvBought(p, "evt-oo-idn", { id: "cus-idn", email: "ana@xn--bcher-kva.de" });
    const { code, out } = await command(p, (io) =>
      runCustomer(undefined, { config: p.configDir, email: "Ana@Bücher.de", json: true }, io),
    );
    expect(code).toBe(0);
    expect(out).toContain("cus-idn");
  });

  it("is not undone by a START the customer sent before it and the spool replays after it", async () => {
    pipeline = await startPipeline("optout-spooled-start");
    const p = pipeline;
    // The spool replays a START sent a minute before the operator's opt-out at the moment the
    // opt-out notes its time (after its suppressions, before: whichever the code does).
    const { replayed, list: suppressions } = await optOutRacingStart(p, PHONE, () =>
      optOutJson(p, undefined, { phone: PHONE }),
    );
    expect(replayed).toBe(true);
    expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(true);
    expect(await suppressions.isSuppressed("voice", { address: PHONE })).toBe(true);
  });

  it("of offers only (--offers-only) is not undone by a START sent before it, by number or by customer", async () => {
    pipeline = await startPipeline("optout-offers-spooled-start");
    const p = pipeline;
    const first = await optOutRacingStart(p, PHONE, () =>
      optOutJson(p, undefined, { phone: PHONE, offersOnly: true }),
    );
    expect(first.replayed).toBe(true);
    expect(await first.list.isSuppressed("sms", { address: PHONE }, "marketing")).toBe(true);
    expect(await first.list.isSuppressed("voice", { address: PHONE }, "marketing")).toBe(true);
    // The customer's number, through their id.
    const OTHER = "+442079460959";
    await tvBought(p, "evt-oo-offers", { id: "cus-2", phone: OTHER });
    const second = await optOutRacingStart(p, OTHER, () =>
      optOutJson(p, "cus-2", { offersOnly: true }),
    );
    expect(second.replayed).toBe(true);
    expect(await second.list.isSuppressed("sms", { address: OTHER }, "marketing")).toBe(true);
  });

  it("as a customer.unsubscribed event's opt-out of the customer's number is not undone by a START sent before it", async () => {
    pipeline = await startPipeline("optout-event-spooled-start");
    const p = pipeline;
    await tvBought(p, "evt-oo-event");
    // The event covers the number of the customer's purchase; the spool replays a START sent a
    // minute before it at the moment the event's opt-out notes its time.
    const { replayed, list } = await optOutRacingStart(p, PHONE, async () => {
      await p.publisher.publish({
        type: "customer.unsubscribed",
        id: "unsub-oo-event",
        occurredAt: ago(0),
        customerId: "cus-1",
        channels: "all",
      });
      await eventually(
        async () => ((await p.events.getJob("unsub-oo-event"))?.finishedOn ? true : undefined),
        "the opt-out event to be taken in",
      );
    });
    expect(replayed).toBe(true);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);
  });

  it("refuses what it cannot do: exit 2 for a malformed command line, 1 for an unknown customer", async () => {
    pipeline = await startPipeline("optout-refusals", { startWorker: false });
    const p = pipeline;
    const run = (id: string | undefined, options: Record<string, unknown>) =>
      command(p, (io) => runOptOut(id, { config: p.configDir, ...options }, io));
    await expect(run(undefined, {})).rejects.toMatchObject({ code: 2 });
    await expect(run("cus-1", { email: "a@example.com" })).rejects.toMatchObject({ code: 2 });
    await expect(run("cus-1", { channels: "email,fax" })).rejects.toMatchObject({
      code: 2,
      message: expect.stringContaining(
        '--channels: expected a comma-separated list of email, sms and voice, got "fax"',
      ),
    });
    await expect(run(undefined, { phone: "07400 900020" })).rejects.toMatchObject({ code: 2 });
    await expect(run(undefined, { email: "not-an-address" })).rejects.toMatchObject({ code: 2 });
    await expect(run(undefined, { email: "a@example.com", channels: "sms" })).rejects.toMatchObject(
      { code: 2 },
    );
    await expect(run(undefined, { phone: PHONE, channels: "email" })).rejects.toMatchObject({
      code: 2,
    });
    await expect(run("cus-nobody", {})).rejects.toMatchObject({
      code: 1,
      message: expect.stringContaining('no customer "cus-nobody" is known'),
    });
    // Nothing was written by any of them.
    const keys = new StoreKeys(p.prefix);
    for (const channel of ["email", "sms", "voice"] as const)
      expect(await p.redis.scard(keys.suppressions(channel))).toBe(0);
    expect(await p.redis.zcard(keys.auditTrail())).toBe(0);
  });
});

describe("the admin API's opt-outs", () => {
  async function call(
    p: PipelineHarness,
    path: string,
    options: { token?: string; body?: unknown } = {},
  ): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${p.worker?.httpAddress}${path}`, {
      method: "POST",
      headers: {
        ...(options.token && { authorization: `Bearer ${options.token}` }),
        ...(options.body !== undefined && { "content-type": "application/json" }),
      },
      ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
    });
    return { status: response.status, body: await response.json() };
  }

  it("opt a customer or an address out as the CLI does, recorded with the token's name", async () => {
    pipeline = await startPipeline("optout-admin", { env: { ADMIN_TOKENS: `alice:${ALICE}` } });
    const p = pipeline;
    await tvBought(p, "evt-oo-admin");

    expect(await call(p, "/admin/v1/customers/cus-1/opt-out")).toEqual({
      status: 401,
      body: { error: "missing admin token" },
    });
    const bad = (path: string, body: unknown) => call(p, path, { token: ALICE, body });
    expect(await bad("/admin/v1/customers/cus-1/opt-out", { channels: ["fax"] })).toEqual({
      status: 400,
      body: { error: 'channels: expected "all" or a list of one or more of email, sms and voice' },
    });
    for (const purposes of [["offers"], []])
      expect(await bad("/admin/v1/customers/cus-1/opt-out", { purposes })).toEqual({
        status: 400,
        body: {
          error: 'purposes: expected ["marketing"], or leave purposes out to stop everything',
        },
      });
    expect((await bad("/admin/v1/customers/cus-1/opt-out", { reason: "x" })).status).toBe(400);
    expect(await bad("/admin/v1/opt-outs", { email: "a@example.com", phone: PHONE })).toEqual({
      status: 400,
      body: { error: "give one of the fields email or phone" },
    });
    expect((await bad("/admin/v1/opt-outs", { phone: PHONE, channels: ["email"] })).status).toBe(
      400,
    );
    expect((await bad("/admin/v1/opt-outs", { phone: "07400 900020" })).status).toBe(400);
    expect(await call(p, "/admin/v1/customers/cus-nobody/opt-out", { token: ALICE })).toEqual({
      status: 404,
      body: { error: expect.stringContaining('no customer "cus-nobody" is known') },
    });

    const sms = await call(p, "/admin/v1/customers/cus-1/opt-out", {
      token: ALICE,
      body: { channels: ["sms"] },
    });
    expect(sms).toMatchObject({
      status: 200,
      body: {
        customer: "cus-1",
        channels: ["sms"],
        purposes: null,
        addressesCovered: 1,
        newlyOptedOut: ["sms"],
        by: "alice",
      },
    });
    const all = await call(p, "/admin/v1/customers/cus-1/opt-out", {
      token: ALICE,
      body: { channels: "all", purposes: ["marketing"] },
    });
    expect(all.body).toMatchObject({
      channels: ["email", "sms", "voice"],
      purposes: ["marketing"],
    });
    const email = await call(p, "/admin/v1/opt-outs", {
      token: ALICE,
      body: { email: "someone.else@example.com" },
    });
    expect(email).toMatchObject({
      status: 200,
      body: { customer: null, address: "email", channels: ["email"], addressesCovered: 1 },
    });
    expect(JSON.stringify(email.body)).not.toContain("someone.else");
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("email", { address: "someone.else@example.com" })).toBe(true);
    expect(await list.isSuppressed("sms", { customerId: "cus-1" })).toBe(true);
    expect(await list.isSuppressed("email", { customerId: "cus-1" })).toBe(false);
    expect(await list.isSuppressed("email", { customerId: "cus-1" }, "marketing")).toBe(true);

    const audit = await fetch(`${p.worker?.httpAddress}/admin/v1/audit`, {
      headers: { authorization: `Bearer ${ALICE}` },
    });
    const { entries } = (await audit.json()) as {
      entries: { by: string; action: string; target: string }[];
    };
    expect(entries.map((entry) => [entry.by, entry.action, entry.target])).toEqual([
      ["alice", "opt-out", expect.stringMatching(/^email h:/)],
      ["alice", "opt-out", expect.stringMatching(/^customer k:/)],
      ["alice", "opt-out", expect.stringMatching(/^customer k:/)],
    ]);
    // Logged as an admin action, without the address.
    expect(p.logs.map((line) => JSON.stringify(line)).join("\n")).not.toContain("someone.else");
  });
});
