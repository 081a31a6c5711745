import type { Registry } from "prom-client";
import type { CodeLookup, RedeemResult } from "../domain/discount-code.js";
import type { Channel, EventProblem } from "../domain/events.js";
import type { UnsubscribeTarget } from "../domain/unsubscribe-token.js";
import type { CallRequest, CallTurn } from "../domain/voice-call.js";

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

/** An operator action or lookup of the admin API, validated by the route. */
export type AdminRequest =
  | { readonly op: "customer"; readonly customerId: string }
  | { readonly op: "customers-by-address"; readonly address: string }
  | { readonly op: "order"; readonly orderId: string }
  | { readonly op: "cancel-step"; readonly ref: string; readonly reason?: string }
  | { readonly op: "resend-step"; readonly ref: string }
  | { readonly op: "failed"; readonly since?: number; readonly channel?: string }
  | {
      readonly op: "retry-failed";
      readonly since?: number;
      readonly channel?: string;
      readonly refs?: readonly string[];
    }
  | { readonly op: "erase"; readonly customerId: string }
  | ({ readonly op: "opt-out"; readonly customerId: string } & AdminOptOutChoice)
  | ({ readonly op: "opt-out-address" } & (
      | { readonly email: string }
      | { readonly phone: string }
    ) &
      AdminOptOutChoice)
  | { readonly op: "resolve-reply"; readonly replyId: string; readonly note?: string }
  | { readonly op: "schedule"; readonly days: number }
  | { readonly op: "audit"; readonly since?: number; readonly limit?: number }
  | { readonly op: "refused"; readonly limit: number };

/** What an operator's opt-out covers: some channels (else every one), offers only or everything. */
export interface AdminOptOutChoice {
  readonly channels?: readonly Channel[];
  readonly offersOnly?: boolean;
}

/** The answer to an admin request: the CLI's `--json` body, or `{"error"}` with 400, 404 or 409. */
export interface AdminAnswer {
  readonly status: 200 | 400 | 404 | 409;
  readonly body: unknown;
}

/** The admin API: on when ADMIN_TOKENS names operators. */
export interface AdminApi {
  readonly tokens: readonly { readonly name: string; readonly token: string }[];
  /** Carries out a request for the operator `by` (recorded in the audit trail). */
  run(request: AdminRequest, by: string): Promise<AdminAnswer>;
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
  /**
   * Opts a customer (by the keyed hash of their id; by the id in a link sent before 7 December
   * 2026), and the address the link was sent to (by its hash), out of a channel; idempotent.
   */
  unsubscribe(
    request: UnsubscribeTarget & {
      source: "link" | "one-click";
      /** Offers only (`marketing`), or every follow-up on the channel. */
      scope: "marketing" | "all";
    },
  ): Promise<unknown>;
  /**
   * An inbound SMS: returns what was done so the route can answer; `spooled` when Redis was away
   * and the message waits on disk (WEBHOOK_SPOOL_DIR) to be handled once it is back.
   */
  inboundSms(message: {
    from: string;
    body: string;
    messageSid: string;
    /** How many pictures or files an MMS carried (NumMedia), when any. */
    media?: number;
    /** Twilio's OptOutType (Advanced Opt-Out): `STOP` when Twilio took it for an opt-out. */
    optOutType?: string;
  }): Promise<"opted-out" | "opted-in" | "reply-recorded" | "ignored" | "spooled">;
  /**
   * An inbound email (raw MIME): an unsubscribe by List-Unsubscribe's mailto, or a reply recorded
   * against the follow-up it answers.
   */
  inboundEmail(
    raw: Buffer,
  ): Promise<
    | { outcome: "recorded"; replyId: string }
    | { outcome: "unsubscribed" }
    | { outcome: "ignored"; reason: string }
  >;
  /**
   * A Twilio status callback for a message we sent; `spooled` when Redis was away and the report
   * waits on disk (WEBHOOK_SPOOL_DIR) to be recorded once it is back; `kept-early` when it came
   * before the message's reference was written, and waits for the worker that writes it;
   * `ignored` for a status of an inbound message (`receiving`, `received`).
   */
  smsStatus(update: {
    messageSid: string;
    status: string;
    errorCode?: number;
  }): Promise<"recorded" | "kept-early" | "unknown-message" | "ignored" | "spooled">;
  /** Voice check-in calls: Twilio's answer, gather and status webhooks (TwiML turns). */
  readonly voiceCall: {
    answered(request: CallRequest): Promise<CallTurn>;
    /** `to`: the number Twilio called (its `To`), by which a 9 opts out when the call is gone. */
    gathered(
      request: CallRequest & { digits?: string; speech?: string; to?: string },
    ): Promise<CallTurn>;
    /**
     * How the call ended; `spooled` when Redis was away (as smsStatus). `to`: the number called,
     * which prices the minutes of a call whose record is gone (its customer erased meanwhile).
     */
    status(
      request: CallRequest & { callStatus: string; durationSeconds?: number; to?: string },
    ): Promise<"recorded" | "in-progress" | "unknown-call" | "spooled">;
  };
  /** Discount codes for tills: look up and redeem (`/v1/discount-codes`). */
  readonly discountCodes: {
    lookup(code: string): Promise<CodeLookup | undefined>;
    redeem(code: string, orderId: string): Promise<RedeemResult>;
  };
  /** The admin API under /admin/v1; absent (ADMIN_TOKENS unset): those paths answer 404. */
  readonly admin?: AdminApi;
  /** Readiness: Redis reachable, rules loaded, workers running. */
  readiness(): Promise<{ ready: boolean; checks: Record<string, boolean> }>;
  readonly metrics: Registry;
  readonly settings: {
    /** Bearer token for POST /v1/events; when undefined the endpoint answers 503 "not configured". */
    readonly apiToken?: string;
    /** TILL_TOKEN: may only look up and redeem discount codes (as API_TOKEN may too). */
    readonly tillToken?: string;
    /** Public base URL as Twilio and customers see it, e.g. https://followups.shop.example */
    readonly publicUrl?: string;
    /** For X-Twilio-Signature validation; when undefined the Twilio routes answer 503. */
    readonly twilioAuthToken?: string;
    readonly unsubscribeSecret?: string;
    /** Shop name shown on the unsubscribe page. */
    readonly shopName?: string;
    /** HTTP_BODY_LIMIT: the largest body of POST /v1/events (other routes: at most 64 KiB). */
    readonly bodyLimitBytes: number;
    /**
     * TRUST_PROXY: the proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (the
     * client's address for rate limits, https for Secure cookies); none when undefined.
     */
    readonly trustProxy?: boolean | readonly string[];
    /** INBOUND_EMAIL_TOKEN; when undefined POST /webhooks/email/inbound answers 503. */
    readonly inboundEmailToken?: string;
    /** INBOUND_EMAIL_MAX_BYTES: the largest raw email accepted. */
    readonly inboundEmailMaxBytes?: number;
    /** How long a request may take to arrive (REQUEST_TIMEOUT_MS when undefined; tests shorten it). */
    readonly requestTimeoutMs?: number;
  };
  readonly logger: import("pino").Logger;
}
