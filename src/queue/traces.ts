import type { AttributeValue } from "@opentelemetry/api";
import type { Plan } from "../domain/planner.js";

/**
 * Traces as intake and delivery record them (README, "Traces (OpenTelemetry)"). The worker hands
 * these in only when tracing is on (src/follow-up-traces.ts makes them over an OpenTelemetry
 * tracer); off, nothing here runs. Attributes are codes, counts, rule and step ids, channels,
 * kinds and hashes: never a customer's data, an order id or an event id in clear, nor an error's
 * message or a provider's words (either may quote an address).
 */

/** Span attributes; undefined values are left out. */
export type TraceAttributes = Readonly<Record<string, AttributeValue | undefined>>;

/** A span being recorded. */
export interface TraceSpan {
  setAttributes(attributes: TraceAttributes): void;
  /** A span for a stage of this one (planning, scheduling), in the same trace. */
  child(name: string, attributes?: TraceAttributes): TraceSpan;
  /** Marks the span failed, with a code saying why; the first code given stays. */
  fail(code: string): void;
  end(): void;
}

/** The span of a purchase event's intake: the root of that event's trace. */
export interface IntakeSpan extends TraceSpan {
  /** The span's W3C traceparent: stored with the purchase, so its deliveries link to it. */
  readonly traceparent: string;
}

/** Starts the spans; made over a tracer only when tracing is on. */
export interface FollowUpTraces {
  /**
   * An id (event id, job id) as spans name it: a keyed hash (HMAC under the deployment's
   * ADDRESS_HASH_SECRET), so a trace backend cannot recover ids by hashing guesses. The same id
   * gives the same value, so an operator can compute it to search (`followups` computes it the
   * same way as `customerHash`).
   */
  hashId(id: string): string;
  /**
   * Starts an event's intake, a new trace. `publisher` is the context a publisher's BullMQ
   * telemetry (bullmq-otel) put in the job's options: the span links to the publisher's span.
   */
  startIntake(attributes: TraceAttributes, publisher?: string): IntakeSpan;
  /**
   * Starts one delivery attempt, a new trace (its purchase's intake may be months old), linked to
   * the intake span whose traceparent was stored with the purchase, when there is one.
   */
  startDelivery(
    attributes: TraceAttributes,
    intake: string | undefined,
    startTime: number,
  ): TraceSpan;
}

/** What delivery traces need: the spans, and the intake trace stored with a purchase. */
export interface DeliveryTracing {
  readonly traces: FollowUpTraces;
  intakeTraceOf(eventId: string): Promise<string | undefined>;
}

/** How one delivery attempt went, noted as it goes, for its span (see createDeliveryProcessor). */
export interface DeliveryNotes {
  channel?: string;
  kind?: string;
  ruleId?: string;
  /** The send attempt (1 for the first), once the step was claimed. */
  attempt?: number;
  outcome?: "sent" | "skipped" | "deferred" | "retry" | "failed" | "already-handled" | "error";
  /** The skip or failure code, the deferral's reason (a fixed phrase) or the state found. */
  code?: string;
  /** The step was taken over from a sender that vanished: a possible duplicate. */
  takenOver?: boolean;
}

/** The attributes of a delivery span, from its notes. */
export function deliveryAttributes(notes: DeliveryNotes): TraceAttributes {
  return {
    "followups.channel": notes.channel,
    "followups.step.kind": notes.kind,
    "followups.rule.id": notes.ruleId,
    "followups.attempt": notes.attempt,
    "followups.delivery.outcome": notes.outcome,
    "followups.delivery.code": notes.code,
    "followups.possible_duplicate": notes.takenOver,
  };
}

/**
 * Runs `work` in a child span of `parent`, ended however the work ends, with the attributes
 * `describe` gives of its result; without a parent (tracing off) only the work runs.
 */
export async function inChildSpan<T>(
  parent: TraceSpan | undefined,
  name: string,
  work: () => Promise<T>,
  describe: (result: T) => TraceAttributes,
): Promise<T> {
  if (!parent) return work();
  const span = parent.child(name);
  try {
    const result = await work();
    span.setAttributes(describe(result));
    return result;
  } catch (error) {
    span.fail("error");
    throw error;
  } finally {
    span.end();
  }
}

/** What a plan decided, as attributes: its steps' ids, rules, kinds and channels, its skips' codes. */
export function planAttributes(plan: Plan): TraceAttributes {
  const distinct = (values: readonly string[]) => [...new Set(values)];
  return {
    "followups.rules.version": plan.rulesVersion,
    "followups.steps.planned": plan.steps.length,
    "followups.step.ids": plan.steps.map((step) => step.stepId),
    "followups.rule.ids": distinct(plan.steps.map((step) => step.ruleId)),
    "followups.step.kinds": distinct(plan.steps.map((step) => step.kind)),
    "followups.channels": distinct(plan.steps.map((step) => step.channel)),
    "followups.skip.codes": distinct(plan.skipped.map((skip) => skip.code)),
  };
}
