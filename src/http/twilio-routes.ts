import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import twilio from "twilio";
import {
  asciiBaseUrl,
  TWILIO_INBOUND_PATH,
  TWILIO_STATUS_PATH,
  TWILIO_VOICE_ANSWER_PATH,
  TWILIO_VOICE_GATHER_PATH,
  TWILIO_VOICE_STATUS_PATH,
} from "../config/public-paths.js";
import type { CallTurn } from "../domain/voice-call.js";
import type { HttpDeps } from "./http-deps.js";

/** An empty TwiML answer: Twilio itself replies to STOP/START on long codes, we add nothing. */
export const EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

type FormFields = Record<string, string | string[]>;

const MAX_SID_LENGTH = 64;
const MAX_STATUS_LENGTH = 32;

/**
 * Status callbacks and inbound messages. Every request must carry a valid X-Twilio-Signature
 * for PUBLIC_URL + its path and its exact form fields; anything else is refused before a
 * dependency is called. Twilio signs the URL it requests: for the URLs we give it (callbacks, a
 * call's TwiML) PUBLIC_URL's ASCII form (punycode host, percent-encoded path, asciiBaseUrl); for a
 * webhook an operator set in Twilio's console, that form or PUBLIC_URL as written. A PUBLIC_URL
 * of other letters has both, and each is checked.
 */
export function registerTwilioRoutes(
  app: FastifyInstance,
  deps: HttpDeps,
  publicUrl: string | undefined,
): void {
  const authToken = deps.settings.twilioAuthToken;
  const asciiBase = publicUrl === undefined ? undefined : asciiBaseUrl(publicUrl);
  const signedBases = [...new Set([asciiBase, publicUrl].filter((base) => base !== undefined))];

  const verify = async (request: FastifyRequest, reply: FastifyReply) => {
    if (authToken === undefined || authToken === "" || asciiBase === undefined) {
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
      signedBases.some((base) =>
        twilio.validateRequest(authToken, signature, base + request.url, params),
      );
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

  /** The call's follow-up id from `?call=`, and the form; undefined when either is unusable. */
  const callRequest = (request: FastifyRequest) => {
    const followUpId = (request.query as Record<string, unknown>).call;
    const fields = formFields(request.body) ?? {};
    const callSid = single(fields, "CallSid", MAX_SID_LENGTH);
    if (typeof followUpId !== "string" || !FOLLOW_UP_ID.test(followUpId) || !callSid) return;
    const answeredBy = single(fields, "AnsweredBy", MAX_STATUS_LENGTH);
    return { fields, followUpId, callSid, ...(answeredBy && { answeredBy }) };
  };
  const sendTwiml = (reply: FastifyReply, followUpId: string, turn: CallTurn) =>
    reply
      .code(200)
      .type("text/xml; charset=utf-8")
      .send(
        callTwiml(
          turn,
          `${asciiBase}${TWILIO_VOICE_GATHER_PATH}?call=${encodeURIComponent(followUpId)}`,
        ),
      );
  const badCall = (reply: FastifyReply) =>
    reply.code(400).send({ error: "expected ?call=<follow-up id> and CallSid" });

  app.post(TWILIO_VOICE_ANSWER_PATH, { preHandler: verify }, async (request, reply) => {
    const call = callRequest(request);
    if (!call) return badCall(reply);
    const { fields: _, ...answer } = call;
    const turn = await deps.voiceCall.answered(answer);
    request.log.info({ callSid: call.callSid, turn: turn.type }, "voice call answered");
    return sendTwiml(reply, call.followUpId, turn);
  });

  app.post(TWILIO_VOICE_GATHER_PATH, { preHandler: verify }, async (request, reply) => {
    const call = callRequest(request);
    if (!call) return badCall(reply);
    const { fields, ...answer } = call;
    const digits = single(fields, "Digits", 8);
    const speech = single(fields, "SpeechResult", 500);
    // The number called: a 9 still opts it out when the call's record is gone.
    const to = single(fields, "To", 64);
    const turn = await deps.voiceCall.gathered({
      ...answer,
      ...(digits !== undefined && { digits }),
      ...(speech !== undefined && { speech }),
      ...(to !== undefined && { to }),
    });
    request.log.info({ callSid: call.callSid, turn: turn.type }, "voice call answer heard");
    return sendTwiml(reply, call.followUpId, turn);
  });

  app.post(TWILIO_VOICE_STATUS_PATH, { preHandler: verify }, async (request, reply) => {
    const call = callRequest(request);
    const callStatus = call && single(call.fields, "CallStatus", MAX_STATUS_LENGTH);
    if (!call || !callStatus) {
      return reply
        .code(400)
        .send({ error: "expected ?call=<follow-up id>, CallSid and CallStatus" });
    }
    const { fields, ...status } = call;
    const duration = Number(single(fields, "CallDuration", 8) ?? "0");
    // The number called: it prices the minutes of a call whose record is gone.
    const to = single(fields, "To", 64);
    const outcome = await deps.voiceCall.status({
      ...status,
      callStatus,
      ...(Number.isInteger(duration) && duration > 0 && { durationSeconds: duration }),
      ...(to !== undefined && { to }),
    });
    request.log.info({ callSid: call.callSid, callStatus, outcome }, "voice call status");
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
    // An MMS: its pictures or files (not fetched), counted so a reply without words still shows.
    const media = Number(single(fields, "NumMedia", 2) ?? "0");
    // Sent with Advanced Opt-Out, for its keywords and the shop's own: STOP, START or HELP.
    const optOutType = single(fields, "OptOutType", 16);
    const outcome = await deps.inboundSms({
      from,
      body,
      messageSid,
      ...(Number.isInteger(media) && media > 0 && { media }),
      ...(optOutType !== undefined && { optOutType }),
    });
    request.log.info({ messageSid, outcome }, "inbound SMS");
    return reply.code(200).type("text/xml; charset=utf-8").send(EMPTY_TWIML);
  });
}

type Twiml = InstanceType<typeof twilio.twiml.VoiceResponse>;
/** `<Say>`'s attributes; language and voice come from the rules, so they are checked there. */
type SayAttributes = NonNullable<Parameters<Twiml["say"]>[0]>;
type GatherAttributes = NonNullable<Parameters<Twiml["gather"]>[0]>;

/** Seconds a call waits for a key press (or speech) after the question. */
const GATHER_TIMEOUT_SECONDS = 8;
/** Follow-up ids in callback URLs: job ids (`f0123…`, `…-r2`). */
const FOLLOW_UP_ID = /^[A-Za-z0-9._:-]{1,100}$/;

/**
 * TwiML for one turn of a call, built with the SDK's VoiceResponse. An `ask` gathers one key (or
 * speech) and posts it to the gather webhook, also when nothing was pressed.
 */
export function callTwiml(turn: CallTurn, gatherUrl: string): string {
  const response = new twilio.twiml.VoiceResponse();
  if (turn.type === "hang-up") {
    response.hangup();
    return response.toString();
  }
  const sayAttributes = {
    language: turn.speaking.language,
    ...(turn.speaking.voice !== undefined && { voice: turn.speaking.voice }),
  } as SayAttributes;
  if (turn.type === "ask") {
    const gather = response.gather({
      input: turn.speech ? ["dtmf", "speech"] : ["dtmf"],
      numDigits: 1,
      timeout: GATHER_TIMEOUT_SECONDS,
      action: gatherUrl,
      method: "POST",
      actionOnEmptyResult: true,
      ...(turn.speech && {
        language: turn.speaking.language as GatherAttributes["language"],
        speechTimeout: "auto",
      }),
    });
    for (const sentence of turn.say) gather.say(sayAttributes, sentence);
    return response.toString();
  }
  for (const sentence of turn.say) response.say(sayAttributes, sentence);
  response.hangup();
  return response.toString();
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
