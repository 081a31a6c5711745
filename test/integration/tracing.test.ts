import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { Queue } from "bullmq";
import { BullMQOtel } from "bullmq-otel";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { customerHash } from "../../src/domain/address-hash.js";
import { createLogger } from "../../src/logger.js";
import { eventJobId, PURCHASE_EVENTS_QUEUE, queuePrefix } from "../../src/queue/names.js";
import { StoreKeys, shardScope } from "../../src/store/keys.js";
import { createTracing, tracesUrl } from "../../src/tracing.js";
import { startWorker } from "../../src/worker.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  channelsFor,
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  waitForState,
} from "../support/pipeline-harness.js";

/**
 * Traces (OTEL_EXPORTER_OTLP_ENDPOINT): a trace per purchase event's intake, a trace per delivery
 * linked to it by a span link through the traceparent kept with the purchase, and nothing of the
 * customer in any span. Spans are collected in memory from a tracer handed to the worker; no
 * provider is registered globally (but for the publisher's, in its own test, and taken back).
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

/** Two customers with everything a span must never show. */
const PEOPLE = [
  {
    eventId: "evt-trace-ivy",
    orderId: "ord-trace-ivy-7731",
    customer: {
      id: "cus-trace-ivy",
      name: "Ivy Quennell",
      email: "ivy.quennell@example.com",
      phone: "+44 20 7946 0311",
    },
    item: item("kitchenware", "75.00", { name: "Copper Saucepan Zephyrine", sku: "SKU-ZEPH-1" }),
  },
  {
    eventId: "evt-trace-bo",
    orderId: "ord-trace-bo-4410",
    customer: {
      id: "cus-trace-bo",
      name: "Bo Haldane",
      email: "bo.haldane@example.com",
      phone: "+44 20 7946 0722",
    },
    item: item("big-ticket", "900.00", { name: "Walnut Wardrobe Orsolya", sku: "SKU-ORSO-2" }),
  },
  {
    // Only a discount in 14 days: a record with nothing sent yet, as most records are.
    eventId: "evt-trace-cy",
    orderId: "ord-trace-cy-0925",
    customer: {
      id: "cus-trace-cy",
      name: "Cy Ambrosetti",
      email: "cy.ambrosetti@example.com",
      phone: "+44 20 7946 0155",
    },
    item: item("cameras", "30.00", { name: "Camera Strap Veradis", sku: "SKU-VER-3" }),
  },
] as const;

/** Every string a span must not contain: ids in clear, names, addresses, numbers, items. */
const PERSONAL = PEOPLE.flatMap((person) => [
  person.eventId,
  person.orderId,
  person.customer.id,
  person.customer.name,
  ...person.customer.name.split(" "),
  person.customer.email,
  person.customer.phone,
  person.customer.phone.replaceAll(" ", ""),
  person.customer.phone.replaceAll(" ", "").slice(1),
  person.item.name,
  person.item.sku,
]);

/** A purchase of two hours ago: its thank-you is due now, a check-in (big-ticket) in months. */
const purchaseOf = (person: (typeof PEOPLE)[number]) =>
  purchaseInput({
    id: person.eventId,
    orderId: person.orderId,
    occurredAt: DateTime.utc().minus({ hours: 2 }).toISO() ?? "",
    customer: person.customer,
    items: [person.item],
  });

/** The deployment's key for keyed hashes: ids in spans are hashed under it. */
const ID_SECRET = "tracing-test-address-hash-secret-0123456789";

/** A pipeline whose worker records spans into `exporter`. */
async function tracedPipeline(label: string, exporter: InMemorySpanExporter) {
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const p = await startPipeline(label, {
    startWorker: false,
    env: { ADDRESS_HASH_SECRET: ID_SECRET },
  });
  p.worker = await startWorker({
    env: p.env,
    logger: createLogger({ level: "silent", pretty: false }),
    channels: channelsFor(p.env),
    watchConfig: false,
    // Flushed, not shut down: the in-memory exporter forgets its spans when shut down.
    tracing: { tracer: provider.getTracer("followups"), shutdown: () => provider.forceFlush() },
  });
  return p;
}

const named = (spans: readonly ReadableSpan[], name: string) =>
  spans.filter((span) => span.name === name);
const ofEvent = (spans: readonly ReadableSpan[], eventId: string) =>
  spans.filter(
    (span) => span.attributes["followups.event.id_hash"] === customerHash(ID_SECRET, eventId),
  );

async function recordKeyOf(p: PipelineHarness, eventId: string): Promise<string> {
  return new StoreKeys(shardScope(p.prefix, await p.shardOf(eventId), p.shards)).eventRecord(
    eventId,
  );
}

describe("traces (OpenTelemetry)", () => {
  it("traces each purchase's intake and links each delivery to it, with nothing personal", async () => {
    const exporter = new InMemorySpanExporter();
    pipeline = await tracedPipeline("tracing", exporter);
    const p = pipeline;
    const [ivy, bo, cy] = PEOPLE;
    for (const person of PEOPLE) await p.publisher.publish(purchaseOf(person) as never);
    for (const person of PEOPLE) expect(await eventProcessed(p, person.eventId)).toBe("completed");
    await waitForState(p, ivy.eventId, "thank-you.thank-you", "sent");
    await waitForState(p, bo.eventId, "big-ticket.thank-you", "sent");
    // The check-in is three months away: it waits in the schedule, then goes as if due.
    await promoteStep(p, bo.eventId, "big-ticket.check-in");
    await waitForState(p, bo.eventId, "big-ticket.check-in", "sent");

    const spans = await eventually(async () => {
      const all = exporter.getFinishedSpans();
      const sent = named(all, "followups.deliver").filter(
        (span) => span.attributes["followups.delivery.outcome"] === "sent",
      );
      return sent.length === 3 ? all : undefined;
    }, "three delivery spans");

    for (const person of PEOPLE) {
      // One intake trace per purchase, with planning and scheduling as its children.
      const [intake, ...more] = ofEvent(named(spans, "followups.intake"), person.eventId);
      expect(more).toEqual([]);
      if (!intake) throw new Error(`no intake span of ${person.eventId}`);
      const { traceId, spanId } = intake.spanContext();
      expect(intake.parentSpanContext).toBeUndefined();
      expect(intake.attributes).toMatchObject({
        "followups.event.type": "purchase.completed",
        "followups.steps.scheduled": person === bo ? 2 : 1,
      });
      for (const stage of ["followups.plan", "followups.schedule"]) {
        const children = named(spans, stage).filter(
          (span) => span.parentSpanContext?.spanId === spanId,
        );
        expect(children.map((span) => span.spanContext().traceId)).toEqual([traceId]);
      }
      // Its context is kept with the purchase...
      expect(await p.redis.hget(await recordKeyOf(p, person.eventId), "tp")).toBe(
        `00-${traceId}-${spanId}-01`,
      );
      // ...and each delivery is a trace of its own, linked to it.
      const deliveries = ofEvent(named(spans, "followups.deliver"), person.eventId).filter(
        (span) => span.attributes["followups.delivery.outcome"] === "sent",
      );
      expect(deliveries).toHaveLength(person === bo ? 2 : person === cy ? 0 : 1);
      for (const delivery of deliveries) {
        expect(delivery.parentSpanContext).toBeUndefined();
        expect(delivery.spanContext().traceId).not.toBe(traceId);
        expect(delivery.links.map((link) => link.context)).toEqual([
          expect.objectContaining({ traceId, spanId }),
        ]);
        expect(delivery.attributes).toMatchObject({
          "followups.attempt": 1,
          "followups.rule.id": person === bo ? "big-ticket" : "thank-you",
        });
      }
    }
    const checkIn = ofEvent(named(spans, "followups.deliver"), bo.eventId).find(
      (span) => span.attributes["followups.step.id"] === "big-ticket.check-in",
    );
    expect(checkIn?.attributes).toMatchObject({
      "followups.channel": "sms",
      "followups.step.kind": "check-in",
      "followups.delivery.outcome": "sent",
    });

    // Nothing of the customers in any span: names, attributes, events, links, statuses.
    const recorded = JSON.stringify(
      spans.map((span) => ({
        name: span.name,
        attributes: span.attributes,
        events: span.events,
        links: span.links.map((link) => link.attributes),
        status: span.status,
      })),
    ).toLowerCase();
    for (const personal of PERSONAL) expect(recorded).not.toContain(personal.toLowerCase());

    // The cost: one field of a pending purchase's record, which stays a compact listpack.
    const key = await recordKeyOf(p, cy.eventId);
    const traceparent = (await p.redis.hget(key, "tp")) ?? "";
    expect(traceparent).toHaveLength(55);
    const withTrace = Number(await p.redis.call("MEMORY", "USAGE", key));
    expect(await p.redis.call("OBJECT", "ENCODING", key)).toBe("listpack");
    await p.redis.hdel(key, "tp");
    const without = Number(await p.redis.call("MEMORY", "USAGE", key));
    expect(withTrace - without).toBeLessThanOrEqual(80);
  });

  it("links the intake to the span of a publisher that adds events with bullmq-otel", async () => {
    const exporter = new InMemorySpanExporter();
    pipeline = await tracedPipeline("tracing-publisher", exporter);
    const p = pipeline;
    // The shop's process: its own provider, registered globally as bullmq-otel expects.
    const shop = new InMemorySpanExporter();
    const shopProvider = new TracerProvider({
      spanProcessors: [new SimpleSpanProcessor({ exporter: shop })],
    });
    trace.setGlobalTracerProvider(shopProvider);
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const events = new Queue(PURCHASE_EVENTS_QUEUE, {
      connection: p.redis,
      prefix: queuePrefix(p.prefix, PURCHASE_EVENTS_QUEUE, p.env.REDIS_CLUSTER),
      telemetry: new BullMQOtel({ tracerName: "shop" }),
    });
    try {
      const [ivy] = PEOPLE;
      await events.add("purchase.completed", purchaseOf(ivy), { jobId: eventJobId(ivy.eventId) });
      expect(await eventProcessed(p, eventJobId(ivy.eventId))).toBe("completed");
      const [added] = shop.getFinishedSpans().filter((span) => span.name.startsWith("add "));
      if (!added) throw new Error("bullmq-otel made no add span");
      const intake = await eventually(
        async () => ofEvent(named(exporter.getFinishedSpans(), "followups.intake"), ivy.eventId)[0],
        "the intake span",
      );
      // A trace of its own, linked to the shop's.
      expect(intake.spanContext().traceId).not.toBe(added.spanContext().traceId);
      expect(intake.links).toEqual([
        expect.objectContaining({
          context: expect.objectContaining({
            traceId: added.spanContext().traceId,
            spanId: added.spanContext().spanId,
          }),
          attributes: { "followups.link": "publisher" },
        }),
      ]);
    } finally {
      await events.close();
      trace.disable();
      propagation.disable();
    }
  });

  it("stores no trace with tracing off", async () => {
    pipeline = await startPipeline("tracing-off");
    const p = pipeline;
    const [ivy] = PEOPLE;
    await p.publisher.publish(purchaseOf(ivy) as never);
    await waitForState(p, ivy.eventId, "thank-you.thank-you", "sent");
    const record = await p.redis.hgetall(await recordKeyOf(p, ivy.eventId));
    expect(Object.keys(record)).toContain("s:thank-you.thank-you");
    expect(record.tp).toBeUndefined();
    expect(p.logs.find((line) => line.msg === "followups worker started")).toMatchObject({
      traces: "off",
    });
    const off = await createTracing({ OTEL_SERVICE_NAME: "followups" });
    expect(off.tracer).toBeUndefined();
    await off.shutdown();
  });

  it("sends to the OTLP/HTTP traces path of the endpoint", async () => {
    expect(tracesUrl("http://collector:4318")).toBe("http://collector:4318/v1/traces");
    expect(tracesUrl("https://otel.example/base/")).toBe("https://otel.example/base/v1/traces");
    const on = await createTracing({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9",
      OTEL_SERVICE_NAME: "followups",
    });
    expect(on.tracer).toBeDefined();
    // Nothing recorded: shutting down sends nothing and ends at once.
    await on.shutdown();
  });

  it("reports a batch of spans the collector did not take", async () => {
    const refusing = createServer((_request, response) => {
      response.writeHead(400).end("no");
    });
    await new Promise<void>((resolve) => refusing.listen(0, "127.0.0.1", resolve));
    const { port } = refusing.address() as AddressInfo;
    const failures: { spans: number; reason: string }[] = [];
    const on = await createTracing(
      { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_SERVICE_NAME: "followups" },
      (failure) => failures.push(failure),
    );
    on.tracer?.startSpan("followups.intake").end();
    on.tracer?.startSpan("followups.intake").end();
    // The last flush fails too: shutting down says so.
    await expect(on.shutdown()).rejects.toThrow(/Bad Request/);
    await new Promise<void>((resolve) => refusing.close(() => resolve()));
    expect(failures).toHaveLength(1);
    expect(failures[0]?.spans).toBe(2);
    expect(failures[0]?.reason).toMatch(/400|Bad Request/);
  });
});
