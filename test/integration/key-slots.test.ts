import { connect, type Socket } from "node:net";
import { DateTime } from "luxon";
import { afterEach, describe, expect, inject, it } from "vitest";
import { shardTag } from "../../src/store/keys.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  waitForState,
} from "../support/pipeline-harness.js";
import { postTwilio } from "../support/webhooks.js";

let pipeline: PipelineHarness | undefined;
let monitorSocket: Socket | undefined;
afterEach(async () => {
  monitorSocket?.destroy();
  monitorSocket = undefined;
  await pipeline?.close();
  pipeline = undefined;
});

const minutesAgo = (minutes: number) =>
  DateTime.utc().minus({ minutes }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

/** The hash tag of a key (what Redis Cluster hashes to pick its slot), or the whole name. */
function tagOf(key: string): string {
  const open = key.indexOf("{");
  const close = key.indexOf("}", open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
}

interface Call {
  readonly what: string;
  readonly keys: readonly string[];
}

/**
 * Reads every command the pipeline sends to Redis (MONITOR) and keeps what must stay in one slot
 * on a Redis Cluster: each script call's keys, and the keys of each MULTI … EXEC, when they are
 * the store's (`:fu:`).
 */
async function watchSlots(url: string, prefix: string): Promise<Call[]> {
  const calls: Call[] = [];
  const transactions = new Map<string, string[]>();
  const ours = (key: string) => key.includes(prefix) && key.includes(":fu:");
  const seen = (args: string[], source: string) => {
    const command = (args[0] ?? "").toLowerCase();
    if (command === "evalsha" || command === "eval") {
      const keys = args.slice(3, 3 + Number(args[2]));
      if (keys.some(ours)) calls.push({ what: `${command} ${args[1]?.slice(0, 12)}`, keys });
    } else if (command === "multi") {
      transactions.set(source, []);
    } else if (command === "exec") {
      const keys = transactions.get(source) ?? [];
      transactions.delete(source);
      if (keys.some(ours)) calls.push({ what: "multi", keys });
    } else if (transactions.has(source) && args[1] !== undefined) {
      transactions.get(source)?.push(args[1]);
    }
  };
  // A plain connection: MONITOR's lines are `<time> [<db> <client>] "<arg>" "<arg>" …`.
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  monitorSocket = socket;
  socket.setEncoding("latin1");
  let buffered = "";
  let started: () => void = () => {};
  const monitoring = new Promise<void>((resolve) => {
    started = resolve;
  });
  socket.on("data", (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split("\r\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      if (line === "+OK") started();
      const source = /^\+?[\d.]+ \[\d+ ([^\]]+)\]/.exec(line)?.[1];
      if (!source) continue;
      const args = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) =>
        (m[1] ?? "").replace(/\\(.)/g, "$1"),
      );
      seen(args, source);
    }
  });
  socket.once("error", (error) => {
    throw error;
  });
  socket.write("MONITOR\r\n");
  await monitoring;
  return calls;
}

describe("Redis Cluster readiness of the store", () => {
  it("touches keys of one slot in every script call and transaction", async () => {
    // Four shards: both customers live in shard 2 (customerShard), not in shard 0.
    pipeline = await startPipeline("key-slots", { startWorker: false, shards: 4 });
    const p = pipeline;
    const calls = await watchSlots(inject("redisUrl"), p.prefix);
    await p.startWorker();

    const tv = purchaseInput({
      id: "evt-slots-tv",
      orderId: "ord-slots-tv",
      occurredAt: minutesAgo(10),
      customer: { id: "cus-slots-tv" },
      items: [item("televisions", "899.00", { name: "OLED TV" })],
    });
    const laptop = purchaseInput({
      id: "evt-slots-laptop",
      orderId: "ord-slots-laptop",
      occurredAt: minutesAgo(10),
      customer: { id: "cus-slots-laptop", email: "laptop@example.com" },
      items: [item("laptops", "900.00")],
    });
    await p.publisher.publish(tv as never);
    await p.publisher.publish(laptop as never);
    await eventProcessed(p, "evt-slots-tv");
    await eventProcessed(p, "evt-slots-laptop");

    // A thank-you and a check-in go out; the customer answers the check-in by SMS.
    await promoteStep(p, "evt-slots-tv", "big-ticket.thank-you");
    await promoteStep(p, "evt-slots-tv", "big-ticket.check-in");
    await waitForState(p, "evt-slots-tv", "big-ticket.check-in", "sent");
    // Twilio reports it delivered, then (out of order, or a carrier's second word) undelivered.
    const [sms] = await p.twilio.waitForMessages(1);
    const references = new SmsReferences(p.redis, p.prefix);
    await eventually(async () => references.stepOfSms(sms?.sid ?? ""), "the SMS's reference");
    for (const MessageStatus of ["delivered", "undelivered"]) {
      const report = { MessageSid: sms?.sid ?? "", MessageStatus };
      expect((await postTwilio(p, "/webhooks/twilio/status", report)).status).toBe(204);
    }
    const reply = await postTwilio(p, "/webhooks/twilio/inbound", {
      From: "+442079460958",
      Body: "All good, 5 stars",
      MessageSid: "SMslots1",
    });
    expect(reply.status).toBe(200);

    // The laptop is returned: its discount mailing is cancelled. Another customer opts out, and
    // the first asks to be erased.
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-slots-laptop",
      occurredAt: minutesAgo(5),
      orderId: "ord-slots-laptop",
    });
    await eventProcessed(p, "ref-slots-laptop");
    await waitForState(p, "evt-slots-laptop", "accessories.discount", "cancelled");
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-slots",
      occurredAt: minutesAgo(5),
      customerId: "cus-slots-laptop",
      channels: ["email", "sms"],
    });
    await eventProcessed(p, "unsub-slots");
    await p.publisher.publish({
      type: "customer.erased",
      id: "erase-slots",
      occurredAt: minutesAgo(0),
      customerId: "cus-slots-tv",
    });
    await eventProcessed(p, "erase-slots");

    const scripts = new Set(calls.filter((c) => c.what !== "multi").map((c) => c.what));
    expect(scripts.size).toBeGreaterThanOrEqual(12);
    const mixed = calls.filter((call) => new Set(call.keys.map(tagOf)).size > 1);
    expect(mixed).toEqual([]);
    const untagged = calls.filter((call) => call.keys.some((key) => tagOf(key) === key));
    expect(untagged).toEqual([]);
    // The customers' state was written in their shard, under its tag.
    const tags = new Set(calls.flatMap((call) => call.keys.map(tagOf)));
    expect(tags).toContain(shardTag(p.prefix, 2, 4).slice(1, -1));
  });
});
