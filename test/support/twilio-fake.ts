import { randomBytes } from "node:crypto";
import http, { STATUS_CODES } from "node:http";
import { countSmsSegments } from "../../src/domain/sms-segments.js";
import { Arrivals } from "./arrivals.js";

/** Re-exported for tests that imported it from here before it moved to the domain. */
export { countSmsSegments };

/** A message accepted by the fake Messages API. */
export interface TwilioFakeMessage {
  sid: string;
  to: string;
  from?: string;
  messagingServiceSid?: string;
  body: string;
  statusCallback?: string;
  numSegments: number;
  receivedAt: Date;
}

/** A call placed through the fake Calls API. */
export interface TwilioFakeCall {
  sid: string;
  to: string;
  from: string;
  /** Where Twilio would ask what to say when the call is answered. */
  url: string;
  method?: string;
  statusCallback?: string;
  statusCallbackMethod?: string;
  machineDetection?: string;
  timeout?: string;
  receivedAt: Date;
}

/** A scripted error response consumed by the next request. */
export interface TwilioScriptedFailure {
  status: number;
  code?: number;
  message?: string;
  /** Sent as the Retry-After header (seconds) when given. */
  retryAfterSeconds?: number;
  /**
   * The request is carried out all the same (the message or call is created), and then answered
   * with the error: what a Twilio 5xx may mean.
   */
  createdAnyway?: boolean;
  /**
   * With `createdAnyway`: carried out this long after the error is answered (Twilio's back end
   * placing the call after its front answered 5xx), so a look in the Calls list meanwhile does not
   * find it.
   */
  createdAfterMs?: number;
  /**
   * The request is carried out and its answer begins (status and headers, `status` ignored), but
   * the connection breaks halfway through the body: Twilio created the message or call, and the
   * SDK cannot read what it answered.
   */
  cutAnswer?: boolean;
}

/** Credentials the fake accepts. */
export interface TwilioFakeOptions {
  accountSid: string;
  authToken: string;
}

/** A local stand-in for Twilio's 2010-04-01 Messages and Calls APIs. */
export interface TwilioFake {
  readonly baseUrl: string;
  readonly messages: TwilioFakeMessage[];
  readonly calls: TwilioFakeCall[];
  waitForCalls(count: number, timeoutMs?: number): Promise<TwilioFakeCall[]>;
  /** Every HTTP request received, including rejected ones. */
  readonly requests: number;
  waitForMessages(count: number, timeoutMs?: number): Promise<TwilioFakeMessage[]>;
  failNext(...responses: TwilioScriptedFailure[]): void;
  /** Delays every answer by `ms` (default 0), after a message has been created: provider latency. */
  setResponseDelay(ms: number): void;
  close(): Promise<void>;
}

interface MessageResource {
  account_sid: string;
  api_version: "2010-04-01";
  body: string;
  date_created: string;
  date_sent: null;
  date_updated: string;
  direction: "outbound-api";
  error_code: null;
  error_message: null;
  from: string | null;
  messaging_service_sid: string | null;
  num_media: string;
  num_segments: string;
  price: null;
  price_unit: string;
  sid: string;
  status: "queued" | "accepted";
  subresource_uris: { media: string };
  to: string;
  uri: string;
}

const DEFAULT_ERROR_CODES: Record<number, number> = {
  401: 20003,
  404: 20404,
  429: 20429,
  500: 20500,
  503: 20503,
};

const MESSAGES_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/;
const CALLS_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Calls\.json$/;
const MESSAGE_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\/(SM[0-9a-f]{32})\.json$/;

/** Starts the fake Twilio Messages API on 127.0.0.1 (random port). */
export async function startTwilioFake(options: TwilioFakeOptions): Promise<TwilioFake> {
  const arrivals = new Arrivals<TwilioFakeMessage>();
  const callArrivals = new Arrivals<TwilioFakeCall>();
  const messages = arrivals.items;
  const resources = new Map<string, MessageResource>();
  /** The Calls API's resources, oldest first: what its list answers (newest first). */
  const callResources: CallResource[] = [];
  const scripted: TwilioScriptedFailure[] = [];
  let requests = 0;
  let responseDelayMs = 0;
  const expectedAuthorization = `Basic ${Buffer.from(`${options.accountSid}:${options.authToken}`).toString("base64")}`;

  const handle = (request: http.IncomingMessage, rawBody: string): ApiResponse => {
    const failure = scripted.shift();
    if (failure === undefined) return carryOut(request, rawBody);
    if (failure.cutAnswer) return { ...carryOut(request, rawBody), cut: true };
    if (failure.createdAnyway && failure.createdAfterMs)
      setTimeout(() => carryOut(request, rawBody), failure.createdAfterMs);
    else if (failure.createdAnyway) carryOut(request, rawBody);
    return scriptedError(failure);
  };

  const carryOut = (request: http.IncomingMessage, rawBody: string): ApiResponse => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");

    if (request.headers.authorization !== expectedAuthorization) {
      return twilioError(401, 20003, "Authenticate");
    }

    const callsMatch = CALLS_PATH.exec(url.pathname);
    if (callsMatch !== null) {
      if (callsMatch[1] !== options.accountSid) return notFound(url.pathname);
      if (request.method === "GET") return listCalls(url);
      if (request.method !== "POST") return twilioError(405, 20004, "Method not allowed");
      return createCall(new URLSearchParams(rawBody));
    }
    const listMatch = MESSAGES_PATH.exec(url.pathname);
    const itemMatch = MESSAGE_PATH.exec(url.pathname);
    const accountInPath = listMatch?.[1] ?? itemMatch?.[1];
    if (accountInPath !== options.accountSid) return notFound(url.pathname);

    if (listMatch !== null && request.method === "POST") {
      return createMessage(new URLSearchParams(rawBody));
    }
    if (itemMatch?.[2] !== undefined && request.method === "GET") {
      const resource = resources.get(itemMatch[2]);
      return resource === undefined ? notFound(url.pathname) : { status: 200, body: resource };
    }
    if (listMatch !== null || itemMatch !== null) {
      return twilioError(405, 20004, "Method not allowed");
    }
    return notFound(url.pathname);
  };

  const createMessage = (form: URLSearchParams): ApiResponse => {
    const to = form.get("To");
    const from = form.get("From");
    const messagingServiceSid = form.get("MessagingServiceSid");
    const body = form.get("Body");
    const statusCallback = form.get("StatusCallback");
    if (!to) return twilioError(400, 21604, "A 'To' phone number is required.");
    if (!from && !messagingServiceSid) {
      return twilioError(400, 21603, "A 'From' phone number is required.");
    }
    if (!body) return twilioError(400, 21602, "Message body is required.");

    const sid = `SM${randomBytes(16).toString("hex")}`;
    const now = new Date();
    const numSegments = countSmsSegments(body);
    const uri = `/2010-04-01/Accounts/${options.accountSid}/Messages/${sid}.json`;
    const resource: MessageResource = {
      account_sid: options.accountSid,
      api_version: "2010-04-01",
      body,
      date_created: now.toUTCString().replace("GMT", "+0000"),
      date_sent: null,
      date_updated: now.toUTCString().replace("GMT", "+0000"),
      direction: "outbound-api",
      error_code: null,
      error_message: null,
      from: from || null,
      messaging_service_sid: messagingServiceSid || null,
      num_media: "0",
      num_segments: String(numSegments),
      price: null,
      price_unit: "USD",
      sid,
      status: from ? "queued" : "accepted",
      subresource_uris: { media: uri.replace(/\.json$/, "/Media.json") },
      to,
      uri,
    };
    resources.set(sid, resource);

    const message: TwilioFakeMessage = { sid, to, body, numSegments, receivedAt: now };
    if (from) message.from = from;
    if (messagingServiceSid) message.messagingServiceSid = messagingServiceSid;
    if (statusCallback) message.statusCallback = statusCallback;
    arrivals.push(message);
    return { status: 201, body: resource };
  };

  const createCall = (form: URLSearchParams): ApiResponse => {
    const to = form.get("To");
    const from = form.get("From");
    const url = form.get("Url");
    if (!to) return twilioError(400, 21201, "No 'To' number is specified");
    if (!/^\+[1-9]\d{6,14}$/.test(to)) {
      return twilioError(400, 13224, `Invalid phone number: ${to}`);
    }
    if (!from) return twilioError(400, 21213, "No 'From' number is specified");
    if (!url && !form.get("Twiml")) return twilioError(400, 21205, "Url is not a valid URL");
    const sid = `CA${randomBytes(16).toString("hex")}`;
    const now = new Date();
    const call: TwilioFakeCall = { sid, to, from, url: url ?? "", receivedAt: now };
    for (const [field, name] of [
      ["Method", "method"],
      ["StatusCallback", "statusCallback"],
      ["StatusCallbackMethod", "statusCallbackMethod"],
      ["MachineDetection", "machineDetection"],
      ["Timeout", "timeout"],
    ] as const) {
      const value = form.get(field);
      if (value) call[name] = value;
    }
    callArrivals.push(call);
    const date = rfc2822(now);
    const resource: CallResource = {
      account_sid: options.accountSid,
      api_version: "2010-04-01",
      date_created: date,
      date_updated: date,
      direction: "outbound-api",
      from,
      from_formatted: from,
      sid,
      // Queued: not dialled yet, so no start time (Twilio's `start_time` is null until then).
      start_time: null,
      end_time: null,
      status: "queued",
      to,
      to_formatted: to,
      uri: `/2010-04-01/Accounts/${options.accountSid}/Calls/${sid}.json`,
    };
    callResources.push(resource);
    return { status: 201, body: resource };
  };

  /**
   * `GET Calls.json`, as Twilio answers it: the account's calls, newest first, filtered by `To`,
   * `From`, `Status` and `StartTime` (`StartTime>`/`StartTime<` inclusive, by the instant the SDK
   * sends; a call not dialled yet has no start time and matches no StartTime filter), one page of
   * `PageSize` (default 50) with the paging fields the SDK follows (`next_page_uri`).
   */
  const listCalls = (url: URL): ApiResponse => {
    const query = url.searchParams;
    const pageSize = Math.min(Math.max(Number(query.get("PageSize") ?? "50") || 50, 1), 1000);
    const page = Math.max(Number(query.get("Page") ?? "0") || 0, 0);
    const startedAt = (call: CallResource) =>
      call.start_time === null ? undefined : Date.parse(call.start_time);
    const bound = (name: string) => {
      const value = query.get(name);
      return value === null ? undefined : Date.parse(value);
    };
    const after = bound("StartTime>");
    const before = bound("StartTime<");
    const on = query.get("StartTime");
    const matching = [...callResources].reverse().filter((call) => {
      if (query.has("To") && call.to !== query.get("To")) return false;
      if (query.has("From") && call.from !== query.get("From")) return false;
      if (query.has("Status") && call.status !== query.get("Status")) return false;
      const started = startedAt(call);
      if (after !== undefined && (started === undefined || started < after)) return false;
      if (before !== undefined && (started === undefined || started > before)) return false;
      if (
        on !== null &&
        (started === undefined || !new Date(started).toISOString().startsWith(on.slice(0, 10)))
      )
        return false;
      return true;
    });
    const calls = matching.slice(page * pageSize, (page + 1) * pageSize);
    const path = `/2010-04-01/Accounts/${options.accountSid}/Calls.json`;
    const pageUri = (n: number) => {
      const next = new URLSearchParams(query);
      next.set("PageSize", String(pageSize));
      next.set("Page", String(n));
      return `${path}?${next.toString()}`;
    };
    return {
      status: 200,
      body: {
        calls,
        end: page * pageSize + Math.max(calls.length - 1, 0),
        first_page_uri: pageUri(0),
        next_page_uri: (page + 1) * pageSize < matching.length ? pageUri(page + 1) : null,
        page,
        page_size: pageSize,
        previous_page_uri: page > 0 ? pageUri(page - 1) : null,
        start: page * pageSize,
        uri: pageUri(page),
      },
    };
  };

  const server = http.createServer((request, response) => {
    requests++;
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const result = handle(request, Buffer.concat(chunks).toString("utf8"));
      const headers: http.OutgoingHttpHeaders = {
        "Content-Type": "application/json; charset=utf-8",
        "Twilio-Request-Id": `RQ${randomBytes(16).toString("hex")}`,
        ...result.headers,
      };
      const answer = () => {
        const body = JSON.stringify(result.body);
        if (result.cut) {
          // Half the answer, then the connection breaks.
          response.writeHead(result.status, {
            ...headers,
            "Content-Length": String(Buffer.byteLength(body)),
          });
          response.write(body.slice(0, Math.floor(body.length / 2)), () =>
            setTimeout(() => response.socket?.destroy(), 20),
          );
          return;
        }
        response.writeHead(result.status, headers);
        response.end(body);
      };
      if (responseDelayMs > 0) setTimeout(answer, responseDelayMs);
      else answer();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") {
    server.close();
    throw new Error("twilio-fake: could not determine the listening port");
  }

  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    messages,
    calls: callArrivals.items,
    waitForCalls(count, timeoutMs = 5_000) {
      return callArrivals.waitFor(
        count,
        timeoutMs,
        () =>
          `twilio-fake: expected ${count} call(s) within ${timeoutMs} ms but ${callArrivals.items.length} were placed (${requests} request(s))`,
      );
    },
    get requests() {
      return requests;
    },
    waitForMessages(count, timeoutMs = 5_000) {
      return arrivals.waitFor(
        count,
        timeoutMs,
        () =>
          `twilio-fake: expected ${count} message(s) within ${timeoutMs} ms but ${messages.length} arrived ` +
          `(${requests} request(s), ${scripted.length} scripted failure(s) unused)`,
      );
    },

    failNext(...responses) {
      scripted.push(...responses);
    },
    setResponseDelay(ms) {
      responseDelayMs = ms;
    },
    close() {
      return new Promise((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}

interface CallResource {
  account_sid: string;
  api_version: "2010-04-01";
  date_created: string;
  date_updated: string;
  direction: "outbound-api";
  from: string;
  from_formatted: string;
  sid: string;
  start_time: string | null;
  end_time: string | null;
  status: "queued";
  to: string;
  to_formatted: string;
  uri: string;
}

/** A date as Twilio writes them in resources: RFC 2822, `Sun, 06 Dec 2026 05:00:00 +0000`. */
function rfc2822(date: Date): string {
  return date.toUTCString().replace("GMT", "+0000");
}

interface ApiResponse {
  status: number;
  body: unknown;
  headers?: http.OutgoingHttpHeaders;
  /** Answered with half its body, then the connection breaks (TwilioScriptedFailure.cutAnswer). */
  cut?: boolean;
}

function twilioError(status: number, code: number | null, message: string): ApiResponse {
  return {
    status,
    body: {
      code,
      message,
      more_info: code === null ? null : `https://www.twilio.com/docs/errors/${code}`,
      status,
    },
  };
}

function notFound(pathname: string): ApiResponse {
  return twilioError(404, 20404, `The requested resource ${pathname} was not found`);
}

function scriptedError(failure: TwilioScriptedFailure): ApiResponse {
  const code = failure.code ?? DEFAULT_ERROR_CODES[failure.status] ?? null;
  const response = twilioError(
    failure.status,
    code,
    failure.message ?? STATUS_CODES[failure.status] ?? "Error",
  );
  if (failure.retryAfterSeconds !== undefined) {
    response.headers = { "Retry-After": String(failure.retryAfterSeconds) };
  }
  return response;
}
