import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { describe, expect, it } from "vitest";
import { tracesOn } from "../../src/follow-up-traces.js";
import { inChildSpan } from "../../src/queue/traces.js";

/** The spans of intake and delivery over a tracer of the test's own (nothing global). */
function recorded() {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const traces = tracesOn(provider.getTracer("test"), "test-id-secret-0123456789");
  const span = (name: string): ReadableSpan => {
    const found = exporter.getFinishedSpans().find((s) => s.name === name);
    if (!found) throw new Error(`no span ${name}`);
    return found;
  };
  return { traces, span };
}

describe("intake and delivery spans", () => {
  it("give the intake's traceparent, and a delivery a link to it in a trace of its own", () => {
    const { traces, span } = recorded();
    const intake = traces.startIntake({ "followups.event.type": "purchase.completed" });
    intake.end();
    expect(intake.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const delivery = traces.startDelivery({ "followups.step.id": "a.b" }, intake.traceparent, 0);
    delivery.end();
    const { traceId, spanId } = span("followups.intake").spanContext();
    expect(intake.traceparent).toBe(`00-${traceId}-${spanId}-01`);
    const deliver = span("followups.deliver");
    expect(deliver.spanContext().traceId).not.toBe(traceId);
    expect(deliver.links).toEqual([
      expect.objectContaining({
        context: expect.objectContaining({ traceId, spanId }),
        attributes: { "followups.link": "intake" },
      }),
    ]);
  });

  it("link nothing for a traceparent or publisher context they cannot read", () => {
    const { traces, span } = recorded();
    for (const metadata of ["not json", "[]", '{"traceparent":7}', '{"traceparent":"00-zz"}'])
      traces.startIntake({}, metadata).end();
    traces.startDelivery({}, "00-00000000000000000000000000000000-0000000000000000-01", 0).end();
    expect(span("followups.intake").links).toEqual([]);
    expect(span("followups.deliver").links).toEqual([]);
  });

  it("leave out undefined attributes, keep the first failure code, and end a child however it ends", async () => {
    const { traces, span } = recorded();
    const intake = traces.startIntake({ "followups.steps.planned": undefined, kept: 1 });
    await expect(
      inChildSpan(
        intake,
        "followups.plan",
        () => Promise.reject(new Error("boom")),
        () => ({}),
      ),
    ).rejects.toThrow("boom");
    intake.fail("invalid");
    intake.fail("rejected");
    intake.end();
    expect(span("followups.intake").attributes).toEqual({
      kept: 1,
      "followups.failure": "invalid",
    });
    expect(span("followups.intake").status).toMatchObject({ message: "invalid" });
    const plan = span("followups.plan");
    expect(plan.parentSpanContext?.spanId).toBe(span("followups.intake").spanContext().spanId);
    expect(plan.attributes).toEqual({ "followups.failure": "error" });
  });

  it("run the work alone without a parent span (tracing off)", async () => {
    expect(
      await inChildSpan(
        undefined,
        "x",
        async () => 7,
        () => ({ never: true }),
      ),
    ).toBe(7);
  });
});
