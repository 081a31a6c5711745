import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import twilio from "twilio";
import { TWILIO_INBOUND_PATH, TWILIO_STATUS_PATH } from "../config/public-paths.js";
import type { HttpDeps } from "./http-deps.js";

/** An empty TwiML answer: Twilio itself replies to STOP/START on long codes, we add nothing. */
export const EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

type FormFields = Record<string, string | string[]>;

const MAX_SID_LENGTH = 64;
const MAX_STATUS_LENGTH = 32;

/**
 * Status callbacks and inbound messages. Every request must carry a valid X-Twilio-Signature
 * for PUBLIC_URL + its path and its exact form fields; anything else is refused before a
 * dependency is called.
 */
export function registerTwilioRoutes(
  app: FastifyInstance,
  deps: HttpDeps,
  publicUrl: string | undefined,
): void {
  const authToken = deps.settings.twilioAuthToken;

  const verify = async (request: FastifyRequest, reply: FastifyReply) => {
    if (authToken === undefined || authToken === "" || publicUrl === undefined) {
      return reply
        .code(503)
        .send({ error: "Twilio webhooks are not configured (TWILIO_AUTH_TOKEN, PUBLIC_URL)" });
    }
    if (mediaType(request) !== "application/x-www-form-urlencoded") {
      return reply.code(415).send({ error: "expected application/x-www-form-urlencoded" });
    }
    const signature = request.headers["x-twilio-signature"];
    const params = formFields(request.body);
    const valid =
      typeof signature === "string" &&
      params !== undefined &&
      twilio.validateRequest(authToken, signature, publicUrl + request.url, params);
    if (!valid) {
      request.log.warn(
        { route: request.routeOptions.url },
        "refused a Twilio webhook: bad signature",
      );
      return reply.code(403).send({ error: "invalid X-Twilio-Signature" });
    }
  };

  app.post(TWILIO_STATUS_PATH, { preHandler: verify }, async (request, reply) => {
    const fields = formFields(request.body) ?? {};
    const messageSid = single(fields, "MessageSid", MAX_SID_LENGTH);
    const status = single(fields, "MessageStatus", MAX_STATUS_LENGTH);
    const rawErrorCode = single(fields, "ErrorCode", 16);
    if (messageSid === undefined || status === undefined) {
      return reply.code(400).send({ error: "expected MessageSid and MessageStatus" });
    }
    const errorCode =
      rawErrorCode !== undefined && /^\d+$/.test(rawErrorCode) ? Number(rawErrorCode) : undefined;
    const outcome = await deps.smsStatus({
      messageSid,
      status,
      ...(errorCode !== undefined && { errorCode }),
    });
    request.log.info({ messageSid, status, errorCode, outcome }, "SMS status callback");
    return reply.code(204).send();
  });

  app.post(TWILIO_INBOUND_PATH, { preHandler: verify }, async (request, reply) => {
    const fields = formFields(request.body) ?? {};
    const messageSid = single(fields, "MessageSid", MAX_SID_LENGTH);
    const from = single(fields, "From", 64);
    if (messageSid === undefined || from === undefined) {
      return reply.code(400).send({ error: "expected MessageSid and From" });
    }
    const body = typeof fields.Body === "string" ? fields.Body : "";
    const outcome = await deps.inboundSms({ from, body, messageSid });
    request.log.info({ messageSid, outcome }, "inbound SMS");
    return reply.code(200).type("text/xml; charset=utf-8").send(EMPTY_TWIML);
  });
}

function mediaType(request: FastifyRequest): string {
  return (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

/** The parsed form as twilio.validateRequest expects it; undefined for any other shape. */
function formFields(body: unknown): FormFields | undefined {
  if (body === undefined || body === null) return {};
  if (typeof body !== "object" || Array.isArray(body)) return undefined;
  const fields: FormFields = {};
  for (const [name, value] of Object.entries(body)) {
    if (typeof value === "string") fields[name] = value;
    else if (Array.isArray(value) && value.every((entry) => typeof entry === "string")) {
      fields[name] = value;
    } else return undefined;
  }
  return fields;
}

/** One non-empty, bounded value; repeated or oversized fields count as missing. */
function single(fields: FormFields, name: string, maxLength: number): string | undefined {
  const value = fields[name];
  return typeof value === "string" && value !== "" && value.length <= maxLength ? value : undefined;
}
