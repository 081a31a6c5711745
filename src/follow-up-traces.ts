import {
  type Attributes,
  defaultTextMapGetter,
  defaultTextMapSetter,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { customerHash } from "./domain/address-hash.js";
import type { FollowUpTraces, IntakeSpan, TraceAttributes, TraceSpan } from "./queue/traces.js";

/**
 * The spans of intake and delivery (queue/traces.ts) over an OpenTelemetry tracer. Loaded only
 * when tracing is on. Contexts are passed explicitly, never through a global context manager or
 * propagator: each intake and each delivery starts a trace of its own, and a delivery reaches
 * its purchase's intake by a span link, from the W3C traceparent stored with the purchase.
 */

const w3c = new W3CTraceContextPropagator();

/** Intake and delivery spans recorded with `tracer`. */
export function tracesOn(tracer: Tracer, idSecret: string): FollowUpTraces {
  return {
    hashId: (id) => customerHash(idSecret, id),
    startIntake(attributes, publisher) {
      const span = tracer.startSpan(
        "followups.intake",
        {
          kind: SpanKind.CONSUMER,
          root: true,
          attributes: defined(attributes),
          links: linksTo(
            publisher === undefined ? undefined : fromMetadata(publisher),
            "publisher",
          ),
        },
        ROOT_CONTEXT,
      );
      const intake: IntakeSpan = { ...spanOf(tracer, span), traceparent: traceparentOf(span) };
      return intake;
    },
    startDelivery(attributes, intake, startTime) {
      const span = tracer.startSpan(
        "followups.deliver",
        {
          kind: SpanKind.CONSUMER,
          root: true,
          startTime,
          attributes: defined(attributes),
          links: linksTo(
            intake === undefined ? undefined : fromCarrier({ traceparent: intake }),
            "intake",
          ),
        },
        ROOT_CONTEXT,
      );
      return spanOf(tracer, span);
    },
  };
}

function spanOf(tracer: Tracer, span: Span): TraceSpan {
  let failed = false;
  return {
    setAttributes: (attributes) => span.setAttributes(defined(attributes)),
    child: (name, attributes = {}) =>
      spanOf(
        tracer,
        tracer.startSpan(
          name,
          { attributes: defined(attributes) },
          trace.setSpan(ROOT_CONTEXT, span),
        ),
      ),
    fail(code) {
      if (failed) return;
      failed = true;
      span.setAttribute("followups.failure", code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: code });
    },
    end: () => span.end(),
  };
}

/** A span's W3C traceparent (`00-<trace id>-<span id>-<flags>`), empty for a span without ids. */
function traceparentOf(span: Span): string {
  const carrier: Record<string, string> = {};
  w3c.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
  return carrier.traceparent ?? "";
}

/** The span context a W3C carrier names, if it names a valid one. */
function fromCarrier(carrier: Record<string, string>): SpanContext | undefined {
  return trace.getSpanContext(w3c.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
}

/**
 * The span context of bullmq-otel's metadata in a job's options (`opts.telemetry.metadata`): the
 * W3C carrier its propagator filled, as JSON. Anything else names none.
 */
function fromMetadata(metadata: string): SpanContext | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(metadata);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== "object") return undefined;
  const carrier: Record<string, string> = {};
  for (const key of ["traceparent", "tracestate"]) {
    const value = (parsed as Record<string, unknown>)[key];
    if (typeof value === "string") carrier[key] = value;
  }
  return fromCarrier(carrier);
}

function linksTo(context: SpanContext | undefined, what: string): Link[] {
  return context ? [{ context, attributes: { "followups.link": what } }] : [];
}

function defined(attributes: TraceAttributes): Attributes {
  const kept: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) kept[key] = value;
  return kept;
}
