import type { Registry } from "prom-client";
import type { Channel, EventProblem } from "../domain/events.js";

/**
 * Thrown by a dependency that cannot do its part right now (Redis away or refusing writes): the
 * route answers 503 with Retry-After instead of 500, so the client sends the request again.
 */
export class UnavailableError extends Error {
  readonly statusCode = 503;

  constructor(
    message: string,
    /** Seconds the client should wait before trying again (the Retry-After header). */
    readonly retryAfterSeconds: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "UnavailableError";
  }
}

/** What the HTTP surface needs from the worker: the server itself holds no state. */
export interface HttpDeps {
  /**
   * Validates and enqueues an event (same path as the queue); idempotent on the event id. Throws
   * UnavailableError when a valid event cannot be stored now.
   */
  acceptEvent(
    input: unknown,
  ): Promise<
    | { ok: true; eventId: string }
    | { ok: false; problems: EventProblem[] }
    | { ok: false; reusedId: string }
  >;
  /** Opts a customer (and the address the link was sent to, by its hash) out of a channel; idempotent. */
  unsubscribe(request: {
    customerId: string;
    channel: Channel;
    addressHash?: string;
    source: "link" | "one-click";
    /** Offers only (`marketing`), or every follow-up on the channel. */
    scope: "marketing" | "all";
  }): Promise<void>;
  /** An inbound SMS: returns what was done so the route can answer. */
  inboundSms(message: {
    from: string;
    body: string;
    messageSid: string;
  }): Promise<"opted-out" | "opted-in" | "reply-recorded" | "ignored">;
  /** A Twilio status callback for a message we sent. */
  smsStatus(update: {
    messageSid: string;
    status: string;
    errorCode?: number;
  }): Promise<"recorded" | "unknown-message">;
  /** Readiness: Redis reachable, rules loaded, workers running. */
  readiness(): Promise<{ ready: boolean; checks: Record<string, boolean> }>;
  readonly metrics: Registry;
  readonly settings: {
    /** Bearer token for POST /v1/events; when undefined the endpoint answers 503 "not configured". */
    readonly apiToken?: string;
    /** Public base URL as Twilio and customers see it, e.g. https://followups.shop.example */
    readonly publicUrl?: string;
    /** For X-Twilio-Signature validation; when undefined the Twilio routes answer 503. */
    readonly twilioAuthToken?: string;
    readonly unsubscribeSecret?: string;
    /** Shop name shown on the unsubscribe page. */
    readonly shopName?: string;
    readonly bodyLimitBytes: number;
  };
  readonly logger: import("pino").Logger;
}
