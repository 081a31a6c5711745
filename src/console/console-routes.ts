import { createHmac } from "node:crypto";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { FastifyAdapter } from "@bull-board/fastify";
import fastifyCookie from "@fastify/cookie";
import fastifyCsrf from "@fastify/csrf-protection";
import fastifyRateLimit from "@fastify/rate-limit";
import type { Queue } from "bullmq";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { DateTime, IANAZone } from "luxon";
import type { AdminToken } from "../config/env.js";
import { MAX_ID_LENGTH, parseEvent } from "../domain/events.js";
import { planFollowUps } from "../domain/planner.js";
import type { RuleSet } from "../domain/rules.js";
import { tokenOwner } from "../http/bearer-token.js";
import type { ErasureReceipt } from "../operations/erase-customer.js";
import {
  notInternationalPhone,
  OPERATOR_ERROR_STATUS,
  OperatorError,
  type OperatorTools,
  PHONE_LOOKUP_FORMAT,
} from "../operations/operator-tools.js";
import type { MessagePreview } from "../operations/preview-step.js";
import { REFUSED_DEFAULT_LIMIT } from "../operations/refused-limits.js";
import { type CustomerTimeline, STORED_DATA_WORDS } from "../operations/timeline.js";
import { renderPlanTable } from "../reports/plan-table.js";
import { renderReportHtml } from "../reports/render-report-html.js";
import type { ReportModel, ReportPeriod } from "../reports/report-model.js";
import { periodFromDates, reportDatesProblem } from "../reports/report-period.js";
import { type ConsoleSession, type ConsoleSessions, tokenTag } from "../store/console-sessions.js";
import { isRedisUnavailable } from "../store/redis-client.js";
import { rateLimitGroup } from "./client-address.js";
import {
  CONSOLE_CSS,
  type ConsoleView,
  consolePath,
  isolated,
  isolatedAt,
  isolatedProblems,
  renderConsolePage,
} from "./console-views.js";
import { pendingChartSvg } from "./pending-chart.js";

/**
 * The operator console at /console: sign in with an admin token, then see and act on customers'
 * follow-ups, failed ones, refused events, a plan preview, the owner report and the audit trail, with Bull Board at
 * /console/queues behind the same sign-in. Sessions live in Redis (httpOnly cookie, SameSite=Strict,
 * Secure when reached over https); every form carries a CSRF token bound to the session; pages send a strict
 * Content-Security-Policy (no scripts at all); sign-in attempts are rate-limited per address.
 */

export interface ConsoleDeps {
  readonly tokens: readonly AdminToken[];
  readonly tools: OperatorTools;
  readonly sessions: ConsoleSessions;
  readonly rules: () => RuleSet;
  readonly versions: () => { rules: string; generation: number; templates: string };
  /**
   * The queues whose job counts the overview shows and Bull Board manages; every shard's
   * follow-ups queue among them (the overview adds them up, Bull Board names each by its shard).
   */
  readonly queues: readonly Queue[];
  readonly report: (period: ReportPeriod) => Promise<ReportModel>;
  readonly preview: (ref: string) => Promise<MessagePreview>;
  /** Signs the CSRF cookie. */
  readonly cookieSecret: string;
  /** PUBLIC_URL: cookies are Secure when the console is reached through it over https. */
  readonly publicUrl?: string;
  /** Sign-in attempts allowed per client address and minute. */
  readonly signInsPerMinute?: number;
}

const SESSION_COOKIE = "fu_console";
const CSRF_COOKIE = "fu_console_csrf";
/**
 * What an action did, for the page it redirects to: a signed cookie, read once. Never a query
 * parameter, which anyone could put in a link to show an operator words of their choosing.
 */
const NOTICE_COOKIE = "fu_console_notice";
const NOTICE_COOKIE_OPTIONS = {
  path: "/console",
  httpOnly: true,
  sameSite: "strict",
  signed: true,
} as const;
/** Longer notices are cut (a cookie holds about 4 kB). */
const MAX_NOTICE_LENGTH = 500;
/** No scripts, no inline styles, no framing: the pages need nothing more. */
const PAGE_CSP =
  "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'";
/** The owner report is the email's HTML: inline styles, nothing else, shown framed by the console. */
const REPORT_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";
/** Bull Board is a script application of its own. */
const QUEUES_CSP =
  "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";
const JOB_STATES = ["waiting", "delayed", "active", "completed", "failed"] as const;
const CHANNELS = ["email", "sms", "voice"] as const;
const STYLESHEET = "/console/assets/console.css";
/** Audit trail entries the console shows on one page. */
const AUDIT_PAGE = 500;
const OPT_OUT_WORDS = { all: "everything", offers: "offers only", none: "none" } as const;
/** The channels as an operator's opt-out names them. */
const CHANNEL_WORDS = { email: "Email", sms: "SMS", voice: "Calls" } as const;

type Operator = { readonly name: string };
const operators = new WeakMap<FastifyRequest, Operator>();
/**
 * Requests that reached the console over https (directly, through PUBLIC_URL, or through a proxy
 * TRUST_PROXY names): every cookie set in answer is Secure, the CSRF and notice cookies as the
 * session's. (@fastify/cookie's `secure: "auto"` knows the protocol only, not PUBLIC_URL.)
 */
const overHttps = new WeakSet<FastifyRequest>();
/** Bull Board's API, under the console. */
const BOARD_API = "/console/queues/api/";
/** Bull Board actions allowed through, audited once answered. */
const boardActions = new WeakSet<FastifyRequest>();

/** Whether a browser says the request comes from a page of this same origin. */
function sameOrigin(request: FastifyRequest): boolean {
  if (request.headers["sec-fetch-site"] === "same-origin") return true;
  const origin = request.headers.origin;
  if (typeof origin !== "string" || !URL.canParse(origin)) return false;
  return new URL(origin).host === request.host;
}

export async function registerConsole(app: FastifyInstance, deps: ConsoleDeps): Promise<void> {
  const publicUrl = deps.publicUrl ? new URL(deps.publicUrl) : undefined;
  const secureFor = (request: FastifyRequest) =>
    request.protocol === "https" ||
    (publicUrl?.protocol === "https:" && request.host === publicUrl.host);

  await app.register(async (scope) => {
    await scope.register(fastifyCookie, { secret: deps.cookieSecret });
    await scope.register(fastifyCsrf, {
      cookieKey: CSRF_COOKIE,
      cookieOpts: {
        path: "/console",
        sameSite: "strict",
        httpOnly: true,
        signed: true,
        // Secure or not as the request came (csrfToken): see overHttps.
      },
      // A token is bound to the session whose page it is on (the sign-in page's to signing in):
      // a cookie and token any browser can get, planted next to an operator's session by a
      // same-site page (a sibling subdomain), are refused.
      getUserInfo: csrfBinding,
      csrfOpts: { userInfo: true, hmacKey: `${deps.cookieSecret}/console-csrf` },
    });
    // Counted in Redis: every worker process shares one limit per address.
    await scope.register(fastifyRateLimit, {
      global: false,
      ...deps.sessions.signInCounts(),
      // Counted under a keyed hash of the address (TRUST_PROXY: the client's, behind a proxy;
      // an IPv6 one by its /64), so Redis holds no address.
      keyGenerator: (request) =>
        createHmac("sha256", `${deps.cookieSecret}/sign-in`)
          .update(rateLimitGroup(request.ip))
          .digest("base64url")
          .slice(0, 22),
    });

    scope.addHook("onRequest", async (request) => {
      if (secureFor(request)) overHttps.add(request);
    });

    scope.addHook("onSend", async (request, reply, payload) => {
      if (!reply.hasHeader("content-security-policy")) {
        const path = request.url;
        reply.header(
          "content-security-policy",
          path.startsWith("/console/queues") ? QUEUES_CSP : PAGE_CSP,
        );
      }
      // Nothing is stored but the console's own stylesheet (public, the same for everyone).
      if (request.routeOptions.url !== STYLESHEET) reply.header("cache-control", "no-store");
      reply.header("referrer-policy", "same-origin");
      reply.header(
        "x-frame-options",
        request.url.startsWith("/console/report/view") ? "SAMEORIGIN" : "DENY",
      );
      return payload;
    });

    const answerError = async (
      error: Error & { statusCode?: number; code?: string },
      request: FastifyRequest,
      reply: FastifyReply,
    ) => {
      const status =
        error instanceof OperatorError
          ? OPERATOR_ERROR_STATUS[error.kind]
          : isRedisUnavailable(error)
            ? 503
            : error.statusCode && error.statusCode >= 400
              ? error.statusCode
              : 500;
      if (status === 503) return redisAway(request, reply, error);
      if (status >= 500) request.log.error({ err: error }, "console request failed");
      const message =
        error.code === "FST_CSRF_INVALID_TOKEN" || error.code === "FST_CSRF_MISSING_SECRET"
          ? "This form has expired or did not come from the console. Go back, reload the page and try again."
          : status === 429
            ? "Too many sign-in attempts from your address. Wait a minute and try again."
            : status >= 500
              ? "Something went wrong on our side; the worker's log has the details."
              : error instanceof OperatorError
                ? refusal(error)
                : error.message;
      return page(
        reply.code(status),
        "problem",
        { title: "Not done", heading: "Not done", message },
        request,
      );
    };
    scope.setErrorHandler(answerError);
    // Bull Board's routes (/console/queues) have an error handler of their own, which answers
    // 500 with the error's message (and its stack under NODE_ENV=development): Redis going away
    // while it reads, or a fault of ours, is answered as on every console page (503 with
    // Retry-After; 500 without the details, which go to the log). Its own refusals (4xx),
    // phrased for its pages, stay its own.
    scope.addHook("onRoute", (route) => {
      if (!route.url.startsWith("/console/queues")) return;
      route.errorHandler = async (error, request, reply) => {
        if (!isRedisUnavailable(error) && error.statusCode !== undefined && error.statusCode < 500)
          throw error;
        return answerError(error, request, reply);
      };
    });

    // The session: who is signed in. Everything but the sign-in page and the stylesheet needs one.
    scope.addHook("onRequest", async (request, reply) => {
      const path = request.url.split("?")[0] ?? "";
      if (path === "/console/sign-in" || path === STYLESHEET) return;
      const cookie = request.cookies[SESSION_COOKIE];
      let name: string | undefined;
      try {
        const session = await deps.sessions.sessionOf(cookie);
        // A session whose token is not among this worker's ADMIN_TOKENS is refused, and not kept
        // alive; not ended either: during a rolling deploy a worker still on the older tokens
        // would end a session that a newer one accepts.
        name = session && holdsToken(session, deps.tokens) ? session.name : undefined;
        if (session && name !== undefined) await deps.sessions.keepAlive(cookie, session);
      } catch (error) {
        if (!isRedisUnavailable(error)) throw error;
        // Answered here: a route of Bull Board's (/console/queues) has an error handler of its
        // own, which would answer 500 with Redis's message.
        return redisAway(request, reply, error);
      }
      if (name === undefined) {
        if (request.method === "GET") return reply.redirect("/console/sign-in", 303);
        return page(
          reply.code(401),
          "problem",
          {
            title: "Signed out",
            heading: "Signed out",
            message: "Your session has ended. Sign in again.",
            back: "/console/sign-in",
          },
          request,
        );
      }
      operators.set(request, { name });
      // Bull Board's actions carry no CSRF token of ours: a browser names the page that sent
      // them (Origin), which must be the console itself; each one done is audited. Known by the
      // route matched, not the path as sent (`/console/%71ueues/…` is routed there too).
      const board = (request.routeOptions.url ?? path).startsWith(BOARD_API);
      if (board && request.method !== "GET" && request.method !== "HEAD") {
        if (!sameOrigin(request)) {
          request.log.info({ path }, "refused a queue action from another origin");
          return reply.code(403).send({ error: "queue actions come from the console's own pages" });
        }
        boardActions.add(request);
      }
    });

    scope.addHook("onResponse", async (request, reply) => {
      if (!boardActions.has(request) || reply.statusCode >= 400) return;
      // The route with its parameters filled in: what was acted on, however the path was spelt.
      const route = request.routeOptions.url ?? "";
      const params = (request.params ?? {}) as Record<string, string>;
      const target = route
        .slice(BOARD_API.length)
        .replace(/:(\w+)/g, (_, name: string) => params[name] ?? name);
      await deps.tools
        .recordAction({
          by: operatorOf(request),
          action: "queue-board",
          target: `${request.method} ${target}`,
        })
        .catch((error: unknown) =>
          request.log.warn({ err: error }, "a queue action could not be audited"),
        );
    });

    scope.get(STYLESHEET, async (_request, reply) =>
      reply
        .type("text/css; charset=utf-8")
        .header("cache-control", "max-age=3600")
        .send(CONSOLE_CSS),
    );

    scope.get("/console/sign-in", async (request, reply) =>
      page(reply, "sign-in", { title: "Sign in", csrf: csrfToken(request, reply) }, request),
    );

    scope.post(
      "/console/sign-in",
      {
        preHandler: scope.csrfProtection,
        config: { rateLimit: { max: deps.signInsPerMinute ?? 10, timeWindow: 60_000 } },
      },
      async (request, reply) => {
        const token = formField(request, "token");
        const name = tokenOwner(token, deps.tokens);
        if (name === undefined) {
          request.log.info("console sign-in refused");
          return page(
            reply.code(401),
            "sign-in",
            {
              title: "Sign in",
              csrf: csrfToken(request, reply),
              error: "That token is not one of the admin tokens.",
            },
            request,
          );
        }
        const session = await deps.sessions.start(name, token);
        await deps.tools.recordAction({ by: name, action: "sign-in", target: "console" });
        reply.setCookie(SESSION_COOKIE, session, {
          path: "/console",
          httpOnly: true,
          sameSite: "strict",
          secure: overHttps.has(request),
        });
        return reply.redirect("/console", 303);
      },
    );

    scope.post(
      "/console/sign-out",
      { preHandler: scope.csrfProtection },
      async (request, reply) => {
        await deps.sessions.end(request.cookies[SESSION_COOKIE]);
        reply.clearCookie(SESSION_COOKIE, { path: "/console" });
        return reply.redirect("/console/sign-in", 303);
      },
    );

    scope.get("/console", async (request, reply) => {
      const rules = deps.rules();
      const zone = rules.defaults.timezone;
      const today = DateTime.now().setZone(zone).startOf("day");
      const period = periodFromDates(
        today.toISODate() ?? "",
        today.plus({ days: 1 }).toISODate() ?? "",
        zone,
      );
      const [model, schedule, queues] = await Promise.all([
        deps.report(period),
        deps.tools.schedule(30),
        jobCountsByName(deps.queues),
      ]);
      const byDate = new Map<string, Record<string, number>>();
      for (let i = 0; i < 30; i++) byDate.set(today.plus({ days: i }).toISODate() ?? "", {});
      for (const row of schedule.days) {
        const counts = byDate.get(row.date);
        if (counts) counts[row.channel] = (counts[row.channel] ?? 0) + row.count;
      }
      const pendingDays = [...byDate].map(([date, counts]) => ({ date, counts }));
      const versions = deps.versions();
      return page(
        reply,
        "overview",
        {
          title: "Overview",
          page: "overview",
          zone,
          today: model.totals,
          chart: pendingChartSvg(pendingDays, CHANNELS),
          channels: CHANNELS,
          pendingDays,
          queues,
          jobStates: JOB_STATES,
          rulesVersion: versions.rules,
          rulesGeneration: versions.generation,
          templatesVersion: versions.templates,
        },
        request,
      );
    });

    scope.get("/console/search", async (request, reply) => {
      const q = (queryField(request, "q") ?? "").trim();
      const base = { title: "Search", page: "search", q };
      if (q === "") return page(reply, "search", base, request);
      const byAddress = async (notKnown: string) => {
        try {
          const found = await deps.tools.customersByAddress(q);
          if (found.length === 1)
            return reply.redirect(customerPath(found[0]?.customer.id ?? ""), 303);
          return page(
            reply,
            "search",
            { ...base, matches: found.map((t) => t.customer.id) },
            request,
          );
        } catch (error) {
          if (!(error instanceof OperatorError)) throw error;
          return page(reply.code(404), "search", { ...base, error: notKnown }, request);
        }
      };
      // Ids first, exactly as given: shops often number customers and orders with digits only,
      // which would read as a phone number, and name accounts by an email address (or orders
      // `web@1042`), which would read as an address the customer may no longer have.
      const asCustomer = await deps.tools.customer(q).catch(notFound);
      if (asCustomer) return reply.redirect(customerPath(q), 303);
      const asOrder = await deps.tools.order(q).catch(notFound);
      if (asOrder) return reply.redirect(consolePath("orders", q), 303);
      if (q.includes("@")) return byAddress(`No customer is known with ${isolated(q)}.`);
      if (/^\+?[\d\s()-]{6,}$/.test(q)) {
        const hint = notInternationalPhone(q)
          ? ` ${PHONE_LOOKUP_FORMAT.charAt(0).toUpperCase()}${PHONE_LOOKUP_FORMAT.slice(1)}.`
          : "";
        return byAddress(
          `No customer or order ${isolated(q)} is known, nor a customer with that phone number.${hint}`,
        );
      }
      return page(
        reply.code(404),
        "search",
        {
          ...base,
          error: `No customer or order ${isolated(q)} is known.`,
        },
        request,
      );
    });

    // A customer's or an order's page by its id as a path segment, or as the query's `id` (the
    // ids `.` and `..`, which a browser takes out of a path: consolePath).
    const customerPage = async (request: FastifyRequest, reply: FastifyReply, id: string) => {
      const timeline = await deps.tools.customer(id);
      return timelinePage(request, reply, timeline, customerPath(id));
    };
    scope.get("/console/customers/:id", async (request, reply) =>
      customerPage(request, reply, (request.params as { id: string }).id),
    );
    scope.get("/console/customers", async (request, reply) =>
      customerPage(request, reply, queryField(request, "id") ?? ""),
    );

    const orderPage = async (request: FastifyRequest, reply: FastifyReply, orderId: string) => {
      const timeline = await deps.tools.order(orderId);
      if (timeline.customer === null)
        return page(
          reply,
          "order-without-purchase",
          { title: `Order ${orderId}`, page: "search", o: timeline },
          request,
        );
      return timelinePage(request, reply, timeline, consolePath("orders", orderId), orderId);
    };
    scope.get("/console/orders/:orderId", async (request, reply) =>
      orderPage(request, reply, (request.params as { orderId: string }).orderId),
    );
    scope.get("/console/orders", async (request, reply) =>
      orderPage(request, reply, queryField(request, "id") ?? ""),
    );

    scope.get("/console/confirm", async (request, reply) => {
      const action = queryField(request, "action");
      const ref = queryField(request, "ref") ?? "";
      const back = safeBack(queryField(request, "back")) || "/console/search";
      // An erase or opt-out of no customer: the search, to find one.
      if ((action === "erase" || action === "opt-out") && !queryField(request, "customer")?.trim())
        return reply.redirect("/console/search", 303);
      const csrf = csrfToken(request, reply);
      if (action === "erase") {
        const customer = queryField(request, "customer") ?? "";
        return page(
          reply,
          "confirm",
          {
            title: "Erase customer",
            heading: `Erase customer ${isolated(customer)}?`,
            question:
              "Every piece of their personal data is deleted now, and their pending follow-ups are cancelled. Opt-outs and anonymous counts are kept. This cannot be undone.",
            action: consolePath("customers", customer, "erase"),
            fields: [],
            confirm: "Erase everything about this customer",
            danger: true,
            back: customerPath(customer),
            csrf,
          },
          request,
        );
      }
      if (action === "opt-out") {
        const customer = queryField(request, "customer") ?? "";
        return page(
          reply,
          "confirm",
          {
            title: "Opt out customer",
            heading: `Stop messaging customer ${isolated(customer)}?`,
            question:
              "As if they had unsubscribed: their customer id and the email addresses and phone numbers of their purchases still kept are opted out of the channels chosen, and pending follow-ups there are skipped when they fall due. This is recorded with your name.",
            action: consolePath("customers", customer, "opt-out"),
            fields: [],
            channelChoices: CHANNELS.map((channel) => ({
              channel,
              words: CHANNEL_WORDS[channel],
            })),
            confirm: "Opt out",
            back: customerPath(customer),
            csrf,
          },
          request,
        );
      }
      if (action === "resolve") {
        const replyId = queryField(request, "reply") ?? "";
        return page(
          reply,
          "confirm",
          {
            title: "Resolve complaint",
            heading: `Mark reply ${isolated(replyId)} resolved?`,
            question:
              "The owners' reports count it as resolved, and the audit trail records your name and note.",
            action: "/console/replies/resolve",
            fields: [
              { name: "reply", value: replyId },
              { name: "back", value: back },
            ],
            askNote: true,
            confirm: "Mark resolved",
            back,
            csrf,
          },
          request,
        );
      }
      if (action === "cancel" || action === "resend") {
        return page(
          reply,
          "confirm",
          {
            title: action === "cancel" ? "Cancel follow-up" : "Resend follow-up",
            heading:
              action === "cancel" ? `Cancel ${isolated(ref)}?` : `Send ${isolated(ref)} again?`,
            question:
              action === "cancel"
                ? "It will not be sent. This is recorded with your name."
                : "The customer gets this message once more, now (within the send window). This is recorded with your name.",
            action: `/console/steps/${action}`,
            fields: [
              { name: "ref", value: ref },
              { name: "back", value: back },
            ],
            askReason: action === "cancel",
            confirm: action === "cancel" ? "Cancel this follow-up" : "Send it again",
            danger: action === "cancel",
            back,
            csrf,
          },
          request,
        );
      }
      return page(
        reply.code(400),
        "problem",
        { title: "Not done", heading: "Not done", message: "Unknown action." },
        request,
      );
    });

    scope.post(
      "/console/steps/cancel",
      { preHandler: scope.csrfProtection },
      async (request, reply) => {
        const reason = formField(request, "reason").trim();
        const result = await deps.tools.cancel(
          { step: formField(request, "ref") },
          { by: operatorOf(request), ...(reason && { reason }) },
        );
        return backWithNotice(
          request,
          reply,
          formField(request, "back"),
          `Cancelled ${result.cancelled.map(isolated).join(", ")}.`,
        );
      },
    );

    scope.post(
      "/console/steps/resend",
      { preHandler: scope.csrfProtection },
      async (request, reply) => {
        const result = await deps.tools.resend(formField(request, "ref"), operatorOf(request));
        return backWithNotice(
          request,
          reply,
          formField(request, "back"),
          `${isolated(result.ref)} will be sent again in a moment.`,
        );
      },
    );

    scope.post(
      "/console/replies/resolve",
      { preHandler: scope.csrfProtection },
      async (request, reply) => {
        const note = formField(request, "note").trim();
        const result = await deps.tools.resolve(formField(request, "reply"), {
          by: operatorOf(request),
          ...(note && { note }),
        });
        return backWithNotice(
          request,
          reply,
          formField(request, "back"),
          `Resolved reply ${isolated(result.id)}.`,
        );
      },
    );

    // A GET of an erase or opt-out path (a bookmark, a link pasted, a form's URL followed) does
    // nothing: it leads to the customer's confirmation page, or without a customer to the search.
    // `/console/customers/erase` and `/opt-out` were the pages of the customers with those ids:
    // such a customer, when there is one, is found there too.
    for (const action of ["erase", "opt-out"] as const)
      for (const url of [`/console/customers/:id/${action}`, `/console/customers/${action}`])
        scope.get(url, async (request, reply) => {
          const id = customerIdOf(request).trim();
          if (id !== "")
            return reply.redirect(
              `/console/confirm?${new URLSearchParams({ action, customer: id })}`,
              303,
            );
          const named = url.includes(":id")
            ? undefined
            : await deps.tools.customer(action).catch(notFound);
          return reply.redirect(named ? customerPath(action) : "/console/search", 303);
        });

    // Each at the customer's path, and with the query's `id` (consolePath).
    for (const url of ["/console/customers/:id/opt-out", "/console/customers/opt-out"])
      scope.post(url, { preHandler: scope.csrfProtection }, async (request, reply) => {
        const id = customerIdOf(request);
        if (id.trim() === "") return noCustomerNamed(request, reply, "opt out");
        const receipt = await deps.tools.optOut(
          { customer: id },
          {
            by: operatorOf(request),
            channels: CHANNELS.filter(
              (channel) => formField(request, `channel-${channel}`) === "on",
            ),
            offersOnly: formField(request, "scope") === "marketing",
          },
        );
        const channels = receipt.channels.map((channel) => CHANNEL_WORDS[channel]).join(", ");
        const already =
          receipt.newlyOptedOut.length === 0 ? " (already opted out: nothing changed)" : "";
        return backWithNotice(
          request,
          reply,
          customerPath(id),
          `Opted out of ${channels} (${receipt.purposes ? "offers only" : "every follow-up"}); ${receipt.addressesCovered} ${receipt.addressesCovered === 1 ? "address" : "addresses"} covered${already}.`,
        );
      });

    for (const url of ["/console/customers/:id/erase", "/console/customers/erase"])
      scope.post(url, { preHandler: scope.csrfProtection }, async (request, reply) => {
        const id = customerIdOf(request);
        if (id.trim() === "") return noCustomerNamed(request, reply, "erase");
        const receipt: ErasureReceipt = await deps.tools.erase(id, { by: operatorOf(request) });
        return page(reply, "receipt", { title: "Customer erased", r: receipt }, request);
      });

    scope.get("/console/preview", async (request, reply) => {
      const ref = queryField(request, "ref") ?? "";
      const [eventId = ""] = ref.split("/");
      const back = safeBack(queryField(request, "back")) || "/console/search";
      try {
        const preview = await deps.preview(ref);
        return page(reply, "preview", { title: `Message of ${ref}`, ...preview, back }, request);
      } catch (error) {
        if (!(error instanceof OperatorError)) throw error;
        return page(
          reply.code(error.kind === "not-found" ? 404 : 409),
          "preview",
          {
            title: `Message of ${ref}`,
            ref,
            error: refusal(error),
            back: eventId ? back : "/console/search",
          },
          request,
        );
      }
    });

    scope.get("/console/failed", async (request, reply) => {
      const failed = await deps.tools.failed({});
      return page(
        reply,
        "failed",
        {
          title: "Failed follow-ups",
          page: "failed",
          failed,
          // Retry all retries these: those that failed by the latest shown, not one since.
          through: failed[0] ? Date.parse(failed[0].failedAt) : undefined,
          csrf: csrfToken(request, reply),
        },
        request,
      );
    });

    scope.post(
      "/console/failed/retry",
      { preHandler: scope.csrfProtection },
      async (request, reply) => {
        const ref = formField(request, "ref");
        const through = formField(request, "through");
        const { requeued } = await deps.tools.retryFailed(
          ref ? { refs: [ref] } : /^\d{1,15}$/.test(through) ? { until: Number(through) } : {},
          operatorOf(request),
        );
        const count = requeued.length;
        return backWithNotice(
          request,
          reply,
          "/console/failed",
          `Re-queued ${count} follow-up${count === 1 ? "" : "s"}.`,
        );
      },
    );

    scope.get("/console/refused", async (request, reply) => {
      const refused = await deps.tools.refusedEvents(REFUSED_DEFAULT_LIMIT);
      return page(
        reply,
        "refused",
        { title: "Refused events", page: "refused", refused, limit: REFUSED_DEFAULT_LIMIT },
        request,
      );
    });

    scope.get("/console/plan", async (request, reply) =>
      page(
        reply,
        "plan",
        { title: "Plan preview", page: "plan", csrf: csrfToken(request, reply) },
        request,
      ),
    );

    scope.post("/console/plan", { preHandler: scope.csrfProtection }, async (request, reply) => {
      const text = formField(request, "event");
      const base = {
        title: "Plan preview",
        page: "plan",
        csrf: csrfToken(request, reply),
        event: text,
      };
      let input: unknown;
      try {
        input = JSON.parse(text);
      } catch (error) {
        return page(
          reply.code(400),
          "plan",
          { ...base, error: `Not valid JSON: ${isolated((error as Error).message)}` },
          request,
        );
      }
      const withType =
        input && typeof input === "object" && !Array.isArray(input) && !("type" in input)
          ? { type: "purchase.completed", ...input }
          : input;
      const now = DateTime.utc();
      const parsed = parseEvent(withType, { now });
      if (!parsed.ok)
        return page(
          reply.code(400),
          "plan",
          { ...base, error: isolatedProblems(parsed.problems) },
          request,
        );
      if (parsed.event.type !== "purchase.completed")
        return page(
          reply.code(400),
          "plan",
          {
            ...base,
            error: `Only purchase.completed events have follow-ups to plan, got ${isolated(parsed.event.type)}.`,
          },
          request,
        );
      const plan = planFollowUps(parsed.event, deps.rules(), { previousPurchases: 0 }, now);
      return page(reply, "plan", { ...base, table: renderPlanTable(plan) }, request);
    });

    scope.get("/console/report", async (request, reply) => {
      const dates = reportDates(request, deps.rules());
      return page(
        reply,
        "report",
        {
          title: "Owner report",
          page: "report",
          since: dates.since,
          until: dates.until,
          ...(dates.error && { error: dates.error }),
        },
        request,
      );
    });

    scope.get("/console/report/view", async (request, reply) => {
      const dates = reportDates(request, deps.rules());
      if (dates.error) return reply.code(400).type("text/plain").send(dates.error);
      const model = await deps.report(periodFromDates(dates.since, dates.until, dates.zone));
      return reply
        .header("content-security-policy", REPORT_CSP)
        .type("text/html; charset=utf-8")
        .send(renderReportHtml(model));
    });

    // A page at a time, latest first. The next page starts at the last entry's millisecond,
    // past the entries of it already shown (`skip`): a retry of many steps records them all in
    // one millisecond, which a page may end in the middle of.
    scope.get("/console/audit", async (request, reply) => {
      const before = wholeNumberField(request, "before");
      const skip = before === undefined ? 0 : (wholeNumberField(request, "skip") ?? 0);
      const entries = (
        await deps.tools.auditEntries({
          ...(before !== undefined && { until: before + 1 }),
          limit: skip + AUDIT_PAGE + 1,
        })
      ).slice(skip);
      const shown = entries.slice(0, AUDIT_PAGE);
      const last = shown.at(-1);
      let older: string | undefined;
      if (last && entries.length > AUDIT_PAGE) {
        const lastAt = Date.parse(last.at);
        const ofLastAt = shown.filter((entry) => entry.at === last.at).length;
        const next = ofLastAt + (lastAt === before ? skip : 0);
        older = `/console/audit?before=${lastAt}&skip=${next}`;
      }
      return page(
        reply,
        "audit",
        {
          title: "Audit trail",
          page: "audit",
          entries: shown,
          older,
          newest: before !== undefined,
        },
        request,
      );
    });

    // Bull Board, inside this scope: the session check above guards it too.
    const board = new FastifyAdapter();
    board.setBasePath("/console/queues");
    createBullBoard({
      queues: boardAdapters(deps.queues),
      serverAdapter: board,
      options: { uiConfig: { boardTitle: "followups queues" } },
    });
    await scope.register(board.registerPlugin(), { prefix: "/console/queues" });
  });

  async function timelinePage(
    request: FastifyRequest,
    reply: FastifyReply,
    timeline: CustomerTimeline,
    back: string,
    orderId?: string,
  ) {
    const consent = CHANNELS.map((channel) => ({
      channel,
      consent: yesNo(timeline.customer.consent[channel]),
      optOut: OPT_OUT_WORDS[timeline.suppressions[channel] ?? "none"],
    }));
    return page(
      reply,
      "customer",
      {
        title: orderId ? `Order ${orderId}` : `Customer ${timeline.customer.id}`,
        page: "search",
        t: timeline,
        orderId,
        consent,
        dataWords: STORED_DATA_WORDS,
        back,
      },
      request,
    );
  }
}

async function page(
  reply: FastifyReply,
  view: ConsoleView,
  data: Record<string, unknown>,
  request: FastifyRequest,
): Promise<FastifyReply> {
  const operator = operators.get(request);
  const notice = takeNotice(request, reply);
  const html = await renderConsolePage(view, {
    ...(notice !== undefined && { notice }),
    ...data,
    ...(operator && { operator: operator.name }),
    csrf: data.csrf ?? (operator ? csrfToken(request, reply) : undefined),
  });
  return reply.type("text/html; charset=utf-8").send(html);
}

/** The console's answer while Redis is away: 503, try again in a few seconds. */
function redisAway(request: FastifyRequest, reply: FastifyReply, error: unknown) {
  request.log.warn({ err: error }, "console answered 503: Redis away");
  return page(
    reply.code(503).header("retry-after", "5"),
    "problem",
    {
      title: "Not done",
      heading: "Not done",
      message: "Redis is not answering right now. Try again in a few seconds.",
    },
    request,
  );
}

/** What a CSRF token is bound to: the session's id, or the sign-in page, which has none. */
function csrfBinding(request: FastifyRequest): string {
  const path = request.url.split("?")[0] ?? "";
  return path === "/console/sign-in" ? "sign-in" : (request.cookies[SESSION_COOKIE] ?? "");
}

/** A CSRF token for the forms of the page answering `request`. */
function csrfToken(request: FastifyRequest, reply: FastifyReply): string {
  // The options also name the cookie's, when one is set.
  return reply.generateCsrf({ userInfo: csrfBinding(request), secure: overHttps.has(request) });
}

function operatorOf(request: FastifyRequest): string {
  return operators.get(request)?.name ?? "console";
}

function formField(request: FastifyRequest, name: string): string {
  const body = request.body as Record<string, unknown> | undefined;
  const value = body?.[name];
  return typeof value === "string" ? value : "";
}

/** A query parameter of digits only (at most 15), as a number; undefined otherwise. */
function wholeNumberField(request: FastifyRequest, name: string): number | undefined {
  const value = queryField(request, name);
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

function queryField(request: FastifyRequest, name: string): string | undefined {
  const value = (request.query as Record<string, unknown>)[name];
  return typeof value === "string" ? value : undefined;
}

function customerPath(id: string): string {
  return consolePath("customers", id);
}

/** The customer an action on a customer names: by its path, or by the query's `id`. */
function customerIdOf(request: FastifyRequest): string {
  return (request.params as { id?: string }).id ?? queryField(request, "id") ?? "";
}

/** An erase or opt-out form that names no customer (an older page's): said so, with the search. */
function noCustomerNamed(
  request: FastifyRequest,
  reply: FastifyReply,
  action: "erase" | "opt out",
): Promise<FastifyReply> {
  return page(
    reply.code(400),
    "problem",
    {
      title: "Not done",
      heading: "Not done",
      message: `This form names no customer to ${action}: find them with Search, then ${action === "erase" ? "erase them" : "opt them out"} from their page.`,
      back: "/console/search",
    },
    request,
  );
}

/** The origin a `back` is read against: a console page's own (any will do: only its path is kept). */
const BACK_BASE = "http://console.invalid";
/**
 * A longer `back` is not followed: room for the path of a page of the longest id the contract
 * allows, 200 characters of four UTF-8 bytes each, percent-encoded (12 characters each: 2,400),
 * and the rest of its path and query.
 */
const MAX_BACK_LENGTH = 12 * MAX_ID_LENGTH + 200;

/**
 * Where to go back to: a console path only, never another site, as a URL reads it (`..` and
 * `%2e%2e` resolved, a backslash as a slash) and written as a header can carry it: percent-encoded
 * (characters above U+007F as UTF-8, an invalid UTF-16 surrogate as U+FFFD), which Node would
 * otherwise refuse (above U+00FF) or send as single bytes a browser reads as other characters.
 * Anything else, control characters included, is "" (the caller's default page).
 */
function safeBack(back: string | undefined): string {
  if (
    back === undefined ||
    back.length > MAX_BACK_LENGTH ||
    !back.startsWith("/console/") ||
    // A URL drops tabs and line breaks, and trims other controls and spaces: not a way back.
    /[\p{Cc}]/u.test(back) ||
    !URL.canParse(back, BACK_BASE)
  )
    return "";
  const url = new URL(back, BACK_BASE);
  const path = `${url.pathname}${url.search}`;
  return url.origin === BACK_BASE && path.startsWith("/console/") && path.length <= MAX_BACK_LENGTH
    ? path
    : "";
}

/** Back to `back` (a console path; else search), which shows `notice` once. */
function backWithNotice(
  request: FastifyRequest,
  reply: FastifyReply,
  back: string,
  notice: string,
): FastifyReply {
  reply.setCookie(NOTICE_COOKIE, notice.slice(0, MAX_NOTICE_LENGTH), {
    ...NOTICE_COOKIE_OPTIONS,
    secure: overHttps.has(request),
  });
  return reply.redirect(safeBack(back) || "/console/search", 303);
}

/** The notice an action left for this page, if any (signed by this console), cleared as read. */
function takeNotice(request: FastifyRequest, reply: FastifyReply): string | undefined {
  const raw = request.cookies[NOTICE_COOKIE];
  if (raw === undefined) return undefined;
  reply.clearCookie(NOTICE_COOKIE, { path: "/console" });
  const unsigned = request.unsignCookie(raw);
  return unsigned.valid && unsigned.value !== null ? unsigned.value : undefined;
}

/** An operator tool's refusal as a page shows it: the ids it quotes isolated. */
function refusal(error: OperatorError): string {
  return isolatedAt(error.message, error.quoted);
}

function notFound(error: unknown): undefined {
  if (error instanceof OperatorError && error.kind === "not-found") return undefined;
  throw error;
}

function yesNo(value: boolean | null): string {
  return value === null ? "not stated" : value ? "yes" : "no";
}

/**
 * Whether a session's token is still one of the admin tokens, under the same name (a session of
 * an earlier version, which names no token, while its operator has a token at all).
 */
function holdsToken(session: ConsoleSession, tokens: readonly AdminToken[]): boolean {
  return tokens.some(
    (entry) => entry.name === session.name && tokenTag(entry.token) === session.tokenTag,
  );
}

function reportDates(
  request: FastifyRequest,
  rules: RuleSet,
): { since: string; until: string; zone: string; error?: string } {
  const zone = rules.defaults.timezone;
  const today = DateTime.now()
    .setZone(IANAZone.isValidZone(zone) ? zone : "UTC")
    .startOf("day");
  const until = queryField(request, "until") || (today.toISODate() ?? "");
  const since = queryField(request, "since") || (today.minus({ days: 7 }).toISODate() ?? "");
  const valid = (d: string) => /^\d{4}-\d{2}-\d{2}$/.test(d);
  const problem =
    valid(since) && valid(until) ? reportDatesProblem(since, until) : "dates are YYYY-MM-DD";
  if (problem)
    return { since, until, zone, error: `${problem[0]?.toUpperCase()}${problem.slice(1)}.` };
  return { since, until, zone };
}

/** Job counts per queue name: every shard's follow-ups queue adds up into one row. */
async function jobCountsByName(
  queues: readonly Queue[],
): Promise<{ name: string; counts: Record<string, number> }[]> {
  const counts = await Promise.all(queues.map((queue) => queue.getJobCounts(...JOB_STATES)));
  const byName = new Map<string, Record<string, number>>();
  queues.forEach((queue, index) => {
    const row = byName.get(queue.name) ?? {};
    for (const [state, count] of Object.entries(counts[index] ?? {}))
      row[state] = (row[state] ?? 0) + count;
    byName.set(queue.name, row);
  });
  return [...byName].map(([name, row]) => ({ name, counts: row }));
}

/**
 * Bull Board's queues. Bull Board tells queues apart by name, so queues sharing one (every shard's
 * follow-ups queue) are named by their shard: `shard-3-follow-ups`, shown as "follow-ups (shard 3)".
 */
function boardAdapters(queues: readonly Queue[]): BullMQAdapter[] {
  const named = new Map<string, number>();
  for (const queue of queues) named.set(queue.name, (named.get(queue.name) ?? 0) + 1);
  const seen = new Map<string, number>();
  return queues.map((queue) => {
    const ordinal = seen.get(queue.name) ?? 0;
    seen.set(queue.name, ordinal + 1);
    if ((named.get(queue.name) ?? 0) < 2) return new BullMQAdapter(queue);
    const shard = shardOfQueuePrefix(queue.opts.prefix) ?? ordinal;
    return new BullMQAdapter(queue, {
      prefix: `shard-${shard}-`,
      displayName: `${queue.name} (shard ${shard})`,
    });
  });
}

/**
 * The shard a follow-ups queue's BullMQ prefix names (`{followups:3}`, or `{followups:3.7}` for a
 * tag spread over the slots: keys.ts shardTag); a plain prefix is shard 0's.
 */
export function shardOfQueuePrefix(prefix: string | undefined): number | undefined {
  if (prefix === undefined) return undefined;
  const tagged = /^\{.+:(\d+)(?:\.\d+)?\}$/.exec(prefix);
  if (tagged) return Number(tagged[1]);
  return prefix.startsWith("{") ? undefined : 0;
}
