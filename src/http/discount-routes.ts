import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { contractLength, MAX_ID_LENGTH } from "../domain/events.js";
import { checkBearerToken } from "./bearer-token.js";
import type { HttpDeps } from "./http-deps.js";

/** A code as a till may type it: letters, digits, hyphens and spaces. */
const TYPED_CODE = /^[A-Za-z0-9][A-Za-z0-9 -]{0,63}$/;
/** As the event contract bounds an order id, in characters (code points). */
const MAX_ORDER_ID = MAX_ID_LENGTH;

/**
 * Discount codes for tills and checkouts: look a code up, and redeem it for an order, once.
 * `API_TOKEN` or `TILL_TOKEN` (which can do nothing else) is accepted.
 */
export function registerDiscountRoutes(app: FastifyInstance, deps: HttpDeps): void {
  const tokens = [deps.settings.apiToken, deps.settings.tillToken].filter(
    (token): token is string => token !== undefined && token !== "",
  );

  const authorize = async (request: FastifyRequest, reply: FastifyReply) => {
    if (tokens.length === 0) {
      return reply
        .code(503)
        .send({ error: "not configured: set TILL_TOKEN or API_TOKEN to check discount codes" });
    }
    // Every token is compared, in constant time, so the timing says nothing about which matched.
    const checks = tokens.map((token) => checkBearerToken(request.headers.authorization, token));
    if (checks.includes("ok")) return;
    const missing = checks.includes("missing");
    request.log.info({ route: request.routeOptions.url }, "refused a discount code request");
    return reply
      .code(401)
      .header(
        "www-authenticate",
        missing ? 'Bearer realm="followups"' : 'Bearer realm="followups", error="invalid_token"',
      )
      .send({ error: missing ? "missing token" : "wrong token" });
  };

  const typedCode = (request: FastifyRequest): string | undefined => {
    const code = (request.params as { code?: unknown }).code;
    return typeof code === "string" && TYPED_CODE.test(code) ? code : undefined;
  };

  app.get("/v1/discount-codes/:code", { onRequest: authorize }, async (request, reply) => {
    const code = typedCode(request);
    if (code === undefined) return reply.code(404).send({ code: "", status: "unknown" });
    const found = await deps.discountCodes.lookup(code);
    reply.header("cache-control", "no-store");
    return found ? reply.send(found) : reply.code(404).send({ code, status: "unknown" });
  });

  app.post("/v1/discount-codes/:code/redeem", { onRequest: authorize }, async (request, reply) => {
    const code = typedCode(request);
    if (code === undefined) return reply.code(404).send({ code: "", status: "unknown" });
    const given = (request.body as { orderId?: unknown } | undefined)?.orderId;
    // Trimmed, as the event contract reads an order id: the purchase naming this code is then
    // the order that redeemed it, not another one that took it ("ord-1\n" from a scanner).
    const orderId =
      typeof given === "string" && contractLength(given) <= MAX_ORDER_ID ? given.trim() : "";
    if (orderId === "") {
      return reply.code(400).send({
        error: `expected a JSON body {"orderId"} with the redeeming order's id, at most ${MAX_ORDER_ID} characters`,
      });
    }
    const result = await deps.discountCodes.redeem(code, orderId);
    reply.header("cache-control", "no-store");
    request.log.info({ result: result.status }, "discount code redemption");
    switch (result.status) {
      case "redeemed":
        return reply.send(result.code);
      case "taken":
        return reply.code(409).send({
          code: result.code.code,
          status: "redeemed",
          redeemedBy: result.code.redeemedBy,
        });
      case "expired":
      case "revoked":
        return reply.code(410).send(result.code);
      case "unknown":
        return reply.code(404).send({ code, status: "unknown" });
    }
  });
}
