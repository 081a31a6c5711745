import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { DateTime } from "luxon";
import { CHANNELS, type Channel } from "../domain/events.js";
import { matchBearerToken } from "./bearer-token.js";
import type { AdminApi, AdminOptOutChoice, AdminRequest } from "./http-deps.js";

/**
 * The admin API under /admin/v1: the operator console's actions for scripts and other tools. A
 * bearer token from ADMIN_TOKENS names the operator, whom the audit trail records. Bodies are the
 * CLI's `--json` output; errors are `{"error"}` with 400, 401, 404 or 409. Answers are never cached.
 */
export function registerAdminRoutes(app: FastifyInstance, admin: AdminApi): void {
  const operatorOf = new WeakMap<FastifyRequest, string>();

  const authorize = async (request: FastifyRequest, reply: FastifyReply) => {
    const match = matchBearerToken(request.headers.authorization, admin.tokens);
    if (match.check !== "ok") {
      request.log.info(
        { route: request.routeOptions.url, check: match.check },
        "refused an admin request",
      );
      return reply
        .code(401)
        .header("www-authenticate", 'Bearer realm="followups-admin"')
        .send({ error: match.check === "missing" ? "missing admin token" : "wrong admin token" });
    }
    operatorOf.set(request, match.name);
  };

  const answer = async (
    request: FastifyRequest,
    reply: FastifyReply,
    build: () => AdminRequest | string,
  ) => {
    reply.header("cache-control", "no-store");
    // Every parameter is one value: `?email=a&email=b` is a mistake, not a list.
    const repeated = Object.entries(request.query as Record<string, unknown>).find(([, value]) =>
      Array.isArray(value),
    );
    if (repeated)
      return reply.code(400).send({ error: `${repeated[0]}: give the query parameter once` });
    const built = build();
    if (typeof built === "string") return reply.code(400).send({ error: built });
    const by = operatorOf.get(request) ?? "admin";
    const result = await admin.run(built, by);
    if (result.status === 200 && mutates(built))
      request.log.info({ op: built.op, by }, "admin action");
    return reply.code(result.status).send(result.body);
  };

  const params = (request: FastifyRequest) => request.params as Record<string, string>;
  const query = (request: FastifyRequest) => request.query as Record<string, string | undefined>;
  /**
   * A request's optional body: none (or an empty one), else a JSON object of `fields` only. A
   * form, a list or a misspelt field is refused rather than read as no body: a retry would then
   * take every failed follow-up, a cancel drop its reason.
   */
  const body = (
    request: FastifyRequest,
    fields: readonly string[],
  ): Record<string, unknown> | string => {
    const given: unknown = request.body;
    const expected = `expected a JSON object with ${fields.slice(0, -1).join(", ")}${fields.length > 1 ? " or " : ""}${fields.at(-1)}`;
    const empty =
      given === undefined ||
      given === "" ||
      (isRecord(given) && Object.keys(given).length === 0 && !isJson(request));
    if (empty) return {};
    if (!isJson(request) || !isRecord(given)) return `the body: ${expected}`;
    const unknown = Object.keys(given).find((field) => !fields.includes(field));
    return unknown === undefined ? given : `${unknown}: not a field of this request; ${expected}`;
  };

  app.register(
    async (scope) => {
      scope.addHook("onRequest", authorize);

      scope.get("/customers/:id", (request, reply) =>
        answer(request, reply, () => ({ op: "customer", customerId: params(request).id ?? "" })),
      );
      scope.get("/customers", (request, reply) =>
        answer(request, reply, () => {
          const { email, phone } = query(request);
          if ((email === undefined) === (phone === undefined))
            return "give one of the query parameters email or phone";
          return { op: "customers-by-address", address: email ?? phone ?? "" };
        }),
      );
      scope.get("/orders/:orderId", (request, reply) =>
        answer(request, reply, () => ({ op: "order", orderId: params(request).orderId ?? "" })),
      );
      scope.post("/steps/:eventId/:stepId/cancel", (request, reply) =>
        answer(request, reply, () => {
          const given = body(request, ["reason"]);
          if (typeof given === "string") return given;
          const reason = given.reason;
          if (reason !== undefined && typeof reason !== "string") return "reason: expected text";
          return {
            op: "cancel-step",
            ref: `${params(request).eventId}/${params(request).stepId}`,
            ...(reason && { reason }),
          };
        }),
      );
      scope.post("/steps/:eventId/:stepId/resend", (request, reply) =>
        answer(request, reply, () => ({
          op: "resend-step",
          ref: `${params(request).eventId}/${params(request).stepId}`,
        })),
      );
      scope.post("/replies/:eventId/:stepId/:n/resolve", (request, reply) =>
        answer(request, reply, () => {
          const given = body(request, ["note"]);
          if (typeof given === "string") return given;
          const note = given.note;
          if (note !== undefined && typeof note !== "string") return "note: expected text";
          const { eventId, stepId, n } = params(request);
          return {
            op: "resolve-reply",
            replyId: `${eventId}/${stepId}/${n}`,
            ...(note && { note }),
          };
        }),
      );
      scope.get("/failed", (request, reply) =>
        answer(request, reply, () => {
          const filter = failedFilter(query(request));
          return typeof filter === "string" ? filter : { op: "failed", ...filter };
        }),
      );
      scope.post("/failed/retry", (request, reply) =>
        answer(request, reply, () => {
          const given = body(request, ["since", "channel", "refs"]);
          if (typeof given === "string") return given;
          const filter = failedFilter({ since: given.since, channel: given.channel });
          if (typeof filter === "string") return filter;
          const refs = given.refs;
          if (
            refs !== undefined &&
            !(Array.isArray(refs) && refs.every((r) => typeof r === "string"))
          )
            return "refs: expected a list of step references (<eventId>/<stepId>)";
          return { op: "retry-failed", ...filter, ...(refs && { refs: refs as string[] }) };
        }),
      );
      scope.post("/customers/:id/erase", (request, reply) =>
        answer(request, reply, () => ({ op: "erase", customerId: params(request).id ?? "" })),
      );
      // As a customer.unsubscribed event names them: `channels` ("all" or a list), `purposes`.
      scope.post("/customers/:id/opt-out", (request, reply) =>
        answer(request, reply, () => {
          const given = body(request, ["channels", "purposes"]);
          if (typeof given === "string") return given;
          const choice = optOutChoice(given);
          if (typeof choice === "string") return choice;
          return { op: "opt-out", customerId: params(request).id ?? "", ...choice };
        }),
      );
      scope.post("/opt-outs", (request, reply) =>
        answer(request, reply, () => {
          const given = body(request, ["email", "phone", "channels", "purposes"]);
          if (typeof given === "string") return given;
          const { email, phone } = given;
          if ((email === undefined) === (phone === undefined))
            return "give one of the fields email or phone";
          const address = email ?? phone;
          if (typeof address !== "string")
            return `${email === undefined ? "phone" : "email"}: expected text`;
          const choice = optOutChoice(given);
          if (typeof choice === "string") return choice;
          return {
            op: "opt-out-address",
            ...(email === undefined ? { phone: address } : { email: address }),
            ...choice,
          };
        }),
      );
      scope.get("/schedule", (request, reply) =>
        answer(request, reply, () => {
          const days = wholeNumber(query(request).days ?? "30", 1, 400);
          return days === undefined
            ? "days: expected a whole number from 1 to 400"
            : { op: "schedule", days };
        }),
      );
      scope.get("/audit", (request, reply) =>
        answer(request, reply, () => {
          const { since, limit } = query(request);
          const from = since === undefined ? undefined : isoInstant(since);
          if (from !== undefined && Number.isNaN(from))
            return "since: expected an ISO date or date-time";
          const count = listLimit(limit, 500);
          if (typeof count === "string") return count;
          return { op: "audit", ...(from !== undefined && { since: from }), limit: count };
        }),
      );
      // As `followups refused --json`, whose --limit defaults to 100.
      scope.get("/refused", (request, reply) =>
        answer(request, reply, () => {
          const limit = listLimit(query(request).limit, 100);
          return typeof limit === "string" ? limit : { op: "refused", limit };
        }),
      );
    },
    { prefix: "/admin/v1" },
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isJson(request: FastifyRequest): boolean {
  const type = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  return type === "application/json";
}

function mutates(request: AdminRequest): boolean {
  return [
    "cancel-step",
    "resend-step",
    "retry-failed",
    "erase",
    "resolve-reply",
    "opt-out",
    "opt-out-address",
  ].includes(request.op);
}

/**
 * An opt-out's `channels` ("all", or a list of email, sms and voice; absent: all) and `purposes`
 * (`["marketing"]`: offers only; absent: everything; an empty list is refused), as a
 * customer.unsubscribed event carries them; else why not.
 */
function optOutChoice(given: {
  channels?: unknown;
  purposes?: unknown;
}): AdminOptOutChoice | string {
  const { channels, purposes } = given;
  const listed =
    channels === undefined || channels === "all"
      ? undefined
      : Array.isArray(channels) &&
          channels.length > 0 &&
          channels.every((channel) => (CHANNELS as readonly unknown[]).includes(channel))
        ? [...new Set(channels as Channel[])]
        : null;
  if (listed === null)
    return 'channels: expected "all" or a list of one or more of email, sms and voice';
  if (
    purposes !== undefined &&
    !(
      Array.isArray(purposes) &&
      purposes.length > 0 &&
      purposes.every((purpose) => purpose === "marketing")
    )
  )
    return 'purposes: expected ["marketing"], or leave purposes out to stop everything';
  return {
    ...(listed && { channels: listed }),
    ...(purposes !== undefined && { offersOnly: true }),
  };
}

/**
 * A query parameter that is a whole number written in digits, as the CLI reads `--days`: `0x10`,
 * `1e2` or ` 5` are refused, not read as 16, 100 or 5. Undefined when not one, or out of range.
 */
function wholeNumber(text: string, min: number, max: number): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const value = Number(text);
  return value >= min && value <= max ? value : undefined;
}

/** A listing's `limit` (1 to 10000, as the CLI's `--limit`), `fallback` when not given; else why not. */
function listLimit(given: string | undefined, fallback: number): number | string {
  return (
    wholeNumber(given ?? String(fallback), 1, 10_000) ??
    "limit: expected a whole number from 1 to 10000"
  );
}

/**
 * An ISO 8601 date or date-time as epoch ms, in UTC unless it names its offset (`2026-12-01`,
 * `2026-12-01T09:00`, `2026-12-01T09:00+01:00`); NaN for anything else. Not Date.parse, which
 * reads a date-time without an offset in the process's own zone and takes forms such as
 * `Dec 1 2026`.
 */
function isoInstant(text: string): number {
  const instant = DateTime.fromISO(text, { zone: "utc", setZone: true });
  return instant.isValid ? instant.toMillis() : Number.NaN;
}

/**
 * The failed follow-ups' filter, from a query or a retry's body; a value that is not text (an
 * epoch number, a list) is refused, not dropped: dropped, a retry would take every channel.
 */
function failedFilter(given: {
  since?: unknown;
  channel?: unknown;
}): { since?: number; channel?: string } | string {
  const since =
    given.since === undefined
      ? undefined
      : typeof given.since === "string"
        ? isoInstant(given.since)
        : Number.NaN;
  if (since !== undefined && Number.isNaN(since)) return "since: expected an ISO date or date-time";
  const channel = given.channel;
  if (channel !== undefined && !(CHANNELS as readonly unknown[]).includes(channel))
    return "channel: expected email, sms or voice";
  return {
    ...(since !== undefined && { since }),
    ...(channel !== undefined && { channel: channel as Channel }),
  };
}
