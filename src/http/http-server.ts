import { isUtf8 } from "node:buffer";
import formbody from "@fastify/formbody";
import {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  fastify,
  LogController,
} from "fastify";
import { duplicateKeyPath, duplicateKeyProblem } from "../domain/json-duplicate-keys.js";
import {
  MAX_UNSUBSCRIBE_TOKEN_LENGTH,
  MIN_UNSUBSCRIBE_SECRET_LENGTH,
} from "../domain/unsubscribe-token.js";
import { registerAdminRoutes } from "./admin-routes.js";
import { checkBearerToken } from "./bearer-token.js";
import { registerDiscountRoutes } from "./discount-routes.js";
import { type HttpDeps, UnavailableError } from "./http-deps.js";
import { answerMethodNotAllowed } from "./method-not-allowed.js";
import { registerTwilioRoutes } from "./twilio-routes.js";
import { unsubscribeRoutes } from "./unsubscribe-routes.js";

/**
 * The most a route other than POST /v1/events reads (HTTP_BODY_LIMIT when smaller): Twilio's
 * webhooks, the unsubscribe page and the console take forms of a few kilobytes, and read the
 * body before they can tell a caller they do not know. Events are larger, and their route checks
 * the API token before it reads a byte. The inbound email webhook has INBOUND_EMAIL_MAX_BYTES.
 */
export const OTHER_ROUTES_BODY_LIMIT = 64 * 1024;

/**
 * How long a request's headers and body may take to arrive (HTTP_REQUEST_TIMEOUT_MS is not a
 * setting): past it, 408 and the connection is closed. Fastify's default is none at all (it sets
 * Node's 300 s to 0), so a client that sends headers and part of a body, then nothing, held its
 * connection, and up to 64 KiB of body, for ever, before any token or signature was checked:
 * enough such connections and the worker runs out of sockets and memory, and Twilio's STOPs get
 * no answer. Twilio waits 15 s for a webhook; 30 s carries the largest event (4 MiB) at 140 kB/s.
 * A request that arrived whole may take longer to handle: this bounds the arrival only.
 */
export const REQUEST_TIMEOUT_MS = 30_000;

/** Routes polled by orchestrators and scrapers: logged at debug so they do not drown the rest. */
const QUIET_ROUTES = new Set(["/healthz", "/readyz", "/metrics"]);

/**
 * The worker's HTTP surface: event intake, Twilio webhooks, unsubscribe links, health and
 * metrics. Built but not listening; the caller listens and closes. Request logs name the route
 * pattern only, never a URL, so tokens, numbers and bodies stay out of the logs.
 */
export function createHttpServer(deps: HttpDeps): FastifyInstance {
  const publicUrl = checkSettings(deps.settings);
  const requestTimeout = deps.settings.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const app = fastify({
    requestTimeout,
    // Headers too (Node's default is 60 s), and looked at every second rather than every 30 s.
    http: {
      headersTimeout: requestTimeout,
      connectionsCheckingInterval: Math.min(1_000, Math.ceil(requestTimeout / 4)),
    },
    loggerInstance: deps.logger.child({ component: "http" }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: Math.min(deps.settings.bodyLimitBytes, OTHER_ROUTES_BODY_LIMIT),
    trustProxy: trustProxyOption(deps.settings.trustProxy),
    // Room for a mangled link to reach the token check and get the HTML answer; beyond, 414.
    // Measured decoded: a console or admin path's id (200 characters, 400 UTF-16 units) fits.
    routerOptions: { maxParamLength: 2 * MAX_UNSUBSCRIBE_TOKEN_LENGTH },
    return503OnClosing: true,
    // The router's own answers would echo the path, token included.
    frameworkErrors: (error, request, reply) => {
      const status = error.code === "FST_ERR_MAX_PARAM_LENGTH" ? 414 : statusOf(error);
      request.log.info({ code: error.code, statusCode: status }, "refused a malformed URL");
      (reply as FastifyReply)
        .code(status)
        .send({ error: status === 414 ? "URL too long" : "malformed URL" });
    },
  });

  app.register(formbody);
  // JSON is UTF-8 (RFC 8259): a body with bytes that are not is refused, where the default parser
  // would put U+FFFD in their place and store a name the customer never had.
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
    const bytes = body as Buffer;
    if (!isUtf8(bytes))
      return done(Object.assign(new Error(NOT_UTF8), { statusCode: 400, code: NOT_UTF8 }));
    const text = bytes.toString("utf8");
    parseJson(request, text, (error, value) => {
      // Valid JSON refused all the same: a __proto__ or constructor.prototype key (poisoning).
      if (error && parsesAsJson(text))
        return done(Object.assign(new Error(POISONED), { statusCode: 400, code: POISONED }));
      if (error) return done(error, value);
      // A key given twice: the parser keeps the last, a gateway in front may have checked the first.
      const twice = duplicateKeyPath(text);
      if (twice)
        return done(
          Object.assign(new Error(`the body ${duplicateKeyProblem(twice)}`), {
            statusCode: 400,
            code: KEY_TWICE,
          }),
        );
      done(null, value);
    });
  });

  app.addHook("onSend", async (_request, reply, payload) => {
    reply.header("x-content-type-options", "nosniff");
    return payload;
  });

  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "(no route)";
    const line = {
      method: request.method,
      route,
      statusCode: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    };
    if (QUIET_ROUTES.has(route)) request.log.debug(line, "http request");
    else request.log.info(line, "http request");
  });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof UnavailableError) {
      // The cause (an ioredis error) is logged without its command's arguments: see logger.ts.
      request.log.warn(
        { err: error, route: request.routeOptions.url, retryAfterSeconds: error.retryAfterSeconds },
        "answered 503: a dependency is unavailable",
      );
      return reply
        .code(503)
        .header("retry-after", String(error.retryAfterSeconds))
        .header("cache-control", "no-store")
        .send({ error: "temporarily unavailable; retry later" });
    }
    const status = statusOf(error);
    if (status >= 500) {
      request.log.error({ err: error, route: request.routeOptions.url }, "request failed");
      return reply.code(500).send({ error: "internal error" });
    }
    if (status === 413) {
      return reply
        .code(413)
        .send({ error: `request body is larger than ${request.routeOptions.bodyLimit} bytes` });
    }
    return reply.code(status).send({ error: clientErrorMessage(error, status) });
  });

  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: "not found" }));

  const methodNotAllowed = answerMethodNotAllowed(app);
  registerEventRoute(app, deps);
  registerTwilioRoutes(app, deps, publicUrl);
  registerDiscountRoutes(app, deps);
  app.register(unsubscribeRoutes, deps);
  registerHealthRoutes(app, deps);
  registerInboundEmailRoute(app, deps);
  if (deps.admin) registerAdminRoutes(app, deps.admin);
  methodNotAllowed.close();

  return app;
}

function registerEventRoute(app: FastifyInstance, deps: HttpDeps): void {
  const apiToken = deps.settings.apiToken;

  const authorize = async (request: FastifyRequest, reply: FastifyReply) => {
    if (apiToken === undefined || apiToken === "") {
      return reply.code(503).send({ error: "not configured: set API_TOKEN to accept events" });
    }
    const check = checkBearerToken(request.headers.authorization, apiToken);
    if (check !== "ok") {
      request.log.info({ route: request.routeOptions.url, check }, "refused an API request");
      return reply
        .code(401)
        .header(
          "www-authenticate",
          check === "missing"
            ? 'Bearer realm="followups"'
            : 'Bearer realm="followups", error="invalid_token"',
        )
        .send({ error: check === "missing" ? "missing API token" : "wrong API token" });
    }
    if (mediaType(request) !== "application/json") {
      return reply.code(415).send({ error: "expected Content-Type: application/json" });
    }
    // Nothing here inflates a body: a gzip one would be refused as "not valid UTF-8".
    const encoding = (request.headers["content-encoding"] ?? "").trim().toLowerCase();
    if (encoding !== "" && encoding !== "identity") {
      return reply.code(415).send({
        error: `Content-Encoding ${encoding.slice(0, 40)} is not accepted: send the JSON uncompressed`,
      });
    }
  };

  // The whole of HTTP_BODY_LIMIT: read only once the token is checked (onRequest).
  const bodyLimit = deps.settings.bodyLimitBytes;
  app.post("/v1/events", { onRequest: authorize, bodyLimit }, async (request, reply) => {
    const result = await deps.acceptEvent(request.body);
    if (!result.ok && "reusedId" in result) {
      request.log.info({ eventId: result.reusedId }, "refused an event id used for another event");
      return reply
        .code(409)
        .send({ error: "event id reused with different content", eventId: result.reusedId });
    }
    if (!result.ok) {
      request.log.info(
        { problems: result.problems.map((problem) => problem.path) },
        "refused an invalid event",
      );
      return reply.code(400).send({
        error: "invalid event",
        problems: result.problems.map(({ path, message }) => ({ path, message })),
      });
    }
    request.log.info({ eventId: result.eventId }, "event accepted");
    return reply.code(202).send({ eventId: result.eventId });
  });
}

/** Email replies, posted raw (message/rfc822) by an inbound-parse service, up to their own limit. */
function registerInboundEmailRoute(app: FastifyInstance, deps: HttpDeps): void {
  const maxBytes = deps.settings.inboundEmailMaxBytes ?? 10 * 1024 * 1024;
  app.register(async (scope) => {
    scope.addContentTypeParser(
      ["message/rfc822", "application/octet-stream", "text/plain"],
      { parseAs: "buffer", bodyLimit: maxBytes },
      (_request, body, done) => done(null, body),
    );
    scope.setErrorHandler(
      (error: Error & { statusCode?: number; code?: string }, request, reply) => {
        if (error.statusCode === 413)
          return reply.code(413).send({ error: `email larger than ${maxBytes} bytes` });
        // More MIME parts (1,000) or a longer header (1 MiB a part) than the parser reads: the
        // sender's fault, not ours; a 500 would be retried by the inbound-parse service for days.
        if (error.code === "EMAXLEN") {
          request.log.info({ why: error.message }, "refused an email the parser cannot read");
          return reply.code(413).send({ error: `the email cannot be read: ${error.message}` });
        }
        throw error;
      },
    );
    // The token is checked before the body is read: a caller without it cannot make the server
    // take in an email of up to INBOUND_EMAIL_MAX_BYTES.
    scope.addHook("onRequest", async (request, reply) => {
      const token = deps.settings.inboundEmailToken;
      if (!token)
        return reply
          .code(503)
          .send({ error: "not configured: set INBOUND_EMAIL_TOKEN to accept email replies" });
      const check = checkBearerToken(request.headers.authorization, token);
      if (check !== "ok") {
        request.log.info({ check }, "refused an inbound email");
        return reply
          .code(401)
          .send({ error: check === "missing" ? "missing token" : "wrong token" });
      }
    });
    scope.post("/webhooks/email/inbound", { bodyLimit: maxBytes }, async (request, reply) => {
      if (!Buffer.isBuffer(request.body))
        return reply.code(415).send({ error: "expected the raw email as message/rfc822" });
      const result = await deps.inboundEmail(request.body);
      if (result.outcome === "recorded") {
        request.log.info({ replyId: result.replyId }, "email reply recorded");
        return reply.code(202).send({ status: "recorded", replyId: result.replyId });
      }
      if (result.outcome === "unsubscribed") {
        request.log.info("unsubscribed by email (List-Unsubscribe mailto)");
        return reply.code(200).send({ status: "unsubscribed" });
      }
      request.log.info({ reason: result.reason }, "email reply ignored");
      return reply.code(200).send({ status: "ignored", reason: result.reason });
    });
  });
}

function registerHealthRoutes(app: FastifyInstance, deps: HttpDeps): void {
  app.get("/healthz", async (_request, reply) =>
    reply.header("cache-control", "no-store").send({ status: "ok" }),
  );

  app.get("/readyz", async (request, reply) => {
    let state: { ready: boolean; checks: Record<string, boolean> };
    try {
      state = await deps.readiness();
    } catch (error) {
      request.log.error({ err: error }, "readiness check failed");
      state = { ready: false, checks: {} };
    }
    return reply
      .code(state.ready ? 200 : 503)
      .header("cache-control", "no-store")
      .send({ ready: state.ready, checks: state.checks });
  });

  app.get("/metrics", async (_request, reply) => {
    const text = await deps.metrics.metrics();
    return reply.header("cache-control", "no-store").type(deps.metrics.contentType).send(text);
  });
}

/** Refuses settings that would make a route silently insecure; returns PUBLIC_URL without a trailing slash. */
function checkSettings(settings: HttpDeps["settings"]): string | undefined {
  if (!Number.isInteger(settings.bodyLimitBytes) || settings.bodyLimitBytes < 1) {
    throw new Error(
      `HTTP_BODY_LIMIT must be a positive whole number of bytes, got ${settings.bodyLimitBytes}`,
    );
  }
  const secret = settings.unsubscribeSecret;
  if (secret !== undefined && secret.length < MIN_UNSUBSCRIBE_SECRET_LENGTH) {
    throw new Error(
      `UNSUBSCRIBE_SECRET must be at least ${MIN_UNSUBSCRIBE_SECRET_LENGTH} characters`,
    );
  }
  if (settings.publicUrl === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(settings.publicUrl);
  } catch {
    throw new Error(
      `PUBLIC_URL must be an absolute URL such as https://followups.shop.example, got ${JSON.stringify(settings.publicUrl)}`,
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`PUBLIC_URL must start with https:// (or http:// for local testing)`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new Error("PUBLIC_URL must not carry a query string or fragment");
  }
  return settings.publicUrl.replace(/\/+$/, "");
}

function mediaType(request: FastifyRequest): string {
  return (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

function statusOf(error: unknown): number {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === "number" && status >= 400 && status < 600 ? status : 500;
}

/**
 * The codes of a JSON body that is not UTF-8, of one with a poisoning key, and of one that gives a
 * key twice (the parser above; the last one's message is its own).
 */
const NOT_UTF8 = "FU_BODY_NOT_UTF8";
const POISONED = "FU_BODY_POISONED";
const KEY_TWICE = "FU_BODY_KEY_TWICE";

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Fastify's own 4xx messages (and the parser's above), reworded; none of them echoes the body. */
const CLIENT_ERRORS: Record<string, string> = {
  [NOT_UTF8]: "the body is not valid UTF-8",
  [POISONED]: "the body holds a __proto__ or constructor.prototype key, which is refused",
  FST_ERR_CTP_INVALID_JSON_BODY: "the body is not valid JSON",
  FST_ERR_CTP_EMPTY_JSON_BODY: "the body is empty; expected JSON",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported Content-Type",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "Content-Length does not match the body",
};

function clientErrorMessage(error: unknown, status: number): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === KEY_TWICE) return (error as Error).message;
  const known = typeof code === "string" ? CLIENT_ERRORS[code] : undefined;
  return known ?? (status === 400 ? "malformed request" : "request refused");
}

/**
 * TRUST_PROXY as fastify takes it: a list as one comma-separated string; `true` as the nearest
 * peer only, so the client's address is the one that proxy added to X-Forwarded-For, never one a
 * client wrote there itself (fastify's own `true` would take the leftmost, the client's choice).
 */
function trustProxyOption(trust: boolean | readonly string[] | undefined) {
  if (trust === undefined || trust === false) return false;
  if (trust === true) return (_address: string, hop: number) => hop === 0;
  return trust.join(",");
}
