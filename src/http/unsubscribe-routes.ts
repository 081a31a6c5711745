import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { UNSUBSCRIBE_PATH } from "../config/public-paths.js";
import { type UnsubscribeTarget, verifyUnsubscribeToken } from "../domain/unsubscribe-token.js";
import type { HttpDeps } from "./http-deps.js";
import {
  confirmUnsubscribePage,
  HTML_SECURITY_HEADERS,
  invalidLinkPage,
  pageLanguage,
  type UnsubscribeScope,
  unavailablePage,
  unsubscribedPage,
} from "./unsubscribe-page.js";

type TokenRequest = FastifyRequest<{ Params: { token: string }; Querystring: { lang?: string } }>;

/** RFC 8058 body, in either encoding a mail provider may use (multipart is read as raw text). */
const ONE_CLICK_FIELD = /(^|&)List-Unsubscribe=One-Click(&|$)/;
const ONE_CLICK_MULTIPART = /name="?List-Unsubscribe"?\r?\n(?:[^\r\n]+\r?\n)*\r?\nOne-Click\r?\n/i;

/** The page's `scope` field: `scope=marketing` or `scope=all`, form-encoded. */
const SCOPE_FIELD = /(^|&)scope=(marketing|all)(&|$)/;

/**
 * GET shows a confirmation page and changes nothing (link scanners prefetch links); POST, from
 * the page's buttons (offers only, or every follow-up) or a mail provider's one-click request
 * (offers: the list the message came from), unsubscribes. Pages speak the customer's language
 * (`?lang=` from the link, else the browser's). Registered as its own plugin so its catch-all body
 * parser and HTML error pages stay on these routes.
 */
export async function unsubscribeRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const secret = deps.settings.unsubscribeSecret;
  const shopName = deps.settings.shopName ?? "our shop";

  app.addContentTypeParser("*", { parseAs: "string" }, (_request, body, done) => {
    done(null, body);
  });
  // A valid link's POST unsubscribes whatever its body: JSON that does not parse is read as text
  // (no scope named: every follow-up), where the server's parser would refuse the opt-out.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_request, body, done) => {
    done(null, jsonOrText(body as string));
  });

  const languageOf = (request: FastifyRequest) =>
    pageLanguage((request.query as { lang?: unknown }).lang, request.headers["accept-language"]);

  app.setErrorHandler((error, request, reply) => {
    const status = statusOf(error);
    if (status >= 500) {
      request.log.error({ err: error, route: request.routeOptions.url }, "unsubscribe failed");
      return sendHtml(reply.header("retry-after", "5"), 503, unavailablePage(languageOf(request)));
    }
    return sendHtml(reply, status, invalidLinkPage(languageOf(request)));
  });

  const target = (request: TokenRequest, reply: FastifyReply): UnsubscribeTarget | undefined => {
    if (secret === undefined || secret === "") {
      request.log.error("unsubscribe link followed but UNSUBSCRIBE_SECRET is not set");
      sendHtml(reply, 503, unavailablePage(languageOf(request)));
      return undefined;
    }
    const verified = verifyUnsubscribeToken(secret, request.params.token);
    if (verified === undefined) {
      request.log.info("refused an unsubscribe token");
      sendHtml(reply, 400, invalidLinkPage(languageOf(request)));
    }
    return verified;
  };

  app.get(`${UNSUBSCRIBE_PATH}/:token`, async (request: TokenRequest, reply) => {
    const verified = target(request, reply);
    if (verified === undefined) return reply;
    return sendHtml(
      reply,
      200,
      confirmUnsubscribePage(shopName, verified.channel, languageOf(request)),
    );
  });

  app.post(`${UNSUBSCRIBE_PATH}/:token`, async (request: TokenRequest, reply) => {
    const verified = target(request, reply);
    if (verified === undefined) return reply;
    const oneClick = isOneClick(request.body);
    const source = oneClick ? "one-click" : "link";
    const scope: UnsubscribeScope = oneClick ? "marketing" : scopeOf(request.body);
    await deps.unsubscribe({ ...verified, source, scope });
    request.log.info({ channel: verified.channel, source, scope }, "unsubscribed");
    return sendHtml(
      reply,
      200,
      unsubscribedPage(shopName, verified.channel, scope, languageOf(request)),
    );
  });
}

function jsonOrText(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

function isOneClick(body: unknown): boolean {
  if (typeof body === "string") return ONE_CLICK_FIELD.test(body) || ONE_CLICK_MULTIPART.test(body);
  if (typeof body === "object" && body !== null) {
    return (body as Record<string, unknown>)["List-Unsubscribe"] === "One-Click";
  }
  return false;
}

/** The button pressed on the page; a form without one (a page from before) stops everything. */
function scopeOf(body: unknown): UnsubscribeScope {
  if (typeof body === "string")
    return SCOPE_FIELD.exec(body)?.[2] === "marketing" ? "marketing" : "all";
  if (typeof body === "object" && body !== null)
    return (body as Record<string, unknown>).scope === "marketing" ? "marketing" : "all";
  return "all";
}

function sendHtml(reply: FastifyReply, status: number, html: string): FastifyReply {
  return reply.code(status).headers(HTML_SECURITY_HEADERS).send(html);
}

function statusOf(error: unknown): number {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === "number" && status >= 400 && status < 600 ? status : 500;
}
