import { type ParsedMail, simpleParser } from "mailparser";
import {
  SMTPServer,
  type SMTPServerAuthentication,
  type SMTPServerAuthenticationResponse,
  type SMTPServerDataStream,
  type SMTPServerError,
  type SMTPServerSession,
} from "smtp-server";
import { Arrivals } from "./arrivals.js";

/** SMTP envelope of one accepted message. */
export interface SmtpSinkEnvelope {
  mailFrom: string;
  rcptTo: string[];
}

/** One AUTH exchange seen by the sink. */
export interface SmtpSinkAuthentication {
  method: string;
  username: string;
  password: string | null;
  accepted: boolean;
}

/** A message the sink accepted, parsed by mailparser. */
export interface SmtpSinkMessage {
  envelope: SmtpSinkEnvelope;
  parsed: ParsedMail;
  raw: string;
  auth: SmtpSinkAuthentication | undefined;
  receivedAt: Date;
}

/** A scripted SMTP reply consumed by one delivery attempt (MAIL FROM transaction). */
export interface SmtpScriptedResponse {
  code: number;
  message?: string;
  /** Where the reply is given: MAIL FROM, every RCPT TO (default) or after the DATA body. */
  stage?: "mail" | "rcpt" | "data";
}

/** Options for startSmtpSink. */
export interface SmtpSinkOptions {
  /** Reject AUTH with other credentials (535) and refuse unauthenticated mail (530). */
  requireAuth?: { user: string; pass: string };
}

/** A local SMTP server recording what our mailer sends. */
export interface SmtpSink {
  readonly url: string;
  readonly port: number;
  readonly messages: SmtpSinkMessage[];
  readonly authentications: SmtpSinkAuthentication[];
  /** Delivery attempts (MAIL FROM commands), including the ones that were failed. */
  readonly attempts: number;
  /** TCP sessions accepted while up. */
  readonly connections: number;
  /** Socket-level errors reported by the server (e.g. client resets). */
  readonly errors: Error[];
  waitForMessages(count: number, timeoutMs?: number): Promise<SmtpSinkMessage[]>;
  failNext(...responses: SmtpScriptedResponse[]): void;
  /**
   * Delays the reply to each accepted message by `ms` (default 0), after it has been recorded:
   * provider latency, and the window in which a sender that dies leaves a message it cannot know
   * was accepted.
   */
  setReplyDelay(ms: number): void;
  setDown(down: boolean): Promise<void>;
  close(): Promise<void>;
}

const CLOSE_GRACE_MS = 50;

/** Starts an SMTP sink on 127.0.0.1 (random port, plain text, AUTH optional unless requireAuth). */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const arrivals = new Arrivals<SmtpSinkMessage>();
  const messages = arrivals.items;
  const authentications: SmtpSinkAuthentication[] = [];
  const errors: Error[] = [];
  const scripted: SmtpScriptedResponse[] = [];
  const activeFailures = new Map<string, SmtpScriptedResponse>();
  const sessionAuth = new Map<string, SmtpSinkAuthentication>();
  let attempts = 0;
  let connections = 0;
  let replyDelayMs = 0;

  const createServer = () => {
    const created: SMTPServer = new SMTPServer({
      secure: false,
      disabledCommands: ["STARTTLS"],
      allowInsecureAuth: true,
      authOptional: options.requireAuth === undefined,
      authMethods: ["PLAIN", "LOGIN"],
      disableReverseLookup: true,
      logger: false,
      closeTimeout: CLOSE_GRACE_MS,
      onConnect(_session, callback) {
        connections++;
        callback();
      },
      onAuth(auth: SMTPServerAuthentication, session, callback) {
        callback(null, authenticate(auth, session));
      },
      onMailFrom(_address, session, callback) {
        attempts++;
        const failure = scripted.shift();
        if (failure?.stage === "mail") {
          activeFailures.delete(session.id);
          callback(toSmtpError(failure));
          return;
        }
        if (failure === undefined) activeFailures.delete(session.id);
        else activeFailures.set(session.id, failure);
        callback();
      },
      onRcptTo(_address, session, callback) {
        const failure = activeFailures.get(session.id);
        if (failure !== undefined && (failure.stage ?? "rcpt") === "rcpt") {
          callback(toSmtpError(failure));
          return;
        }
        callback();
      },
      onData(stream, session, callback) {
        const failure = activeFailures.get(session.id);
        activeFailures.delete(session.id);
        readStream(stream).then(
          async (raw) => {
            if (failure !== undefined) {
              callback(toSmtpError(failure));
              return;
            }
            // Taken before parsing, which is the sink's own work (slow on its first message).
            const receivedAt = new Date();
            const message = {
              envelope: toEnvelope(session),
              parsed: await simpleParser(raw),
              raw,
              auth: sessionAuth.get(session.id),
              receivedAt,
            };
            // A message counts as accepted when its 250 goes out, as for a real server: one that
            // goes down meanwhile answers 421 (smtp-server does so on close), and the message was
            // not taken.
            const accept = () => {
              if (server !== created) {
                callback(toSmtpError({ code: 421, message: "4.3.2 Shutting down" }));
                return;
              }
              arrivals.push(message);
              callback(null, `Message queued as sink-${messages.length}`);
            };
            if (replyDelayMs > 0) setTimeout(accept, replyDelayMs);
            else accept();
          },
          (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
        );
      },
      onClose(session) {
        activeFailures.delete(session.id);
        sessionAuth.delete(session.id);
      },
    });
    created.on("error", (error) => errors.push(error));
    return created;
  };

  const authenticate = (
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
  ): SMTPServerAuthenticationResponse => {
    const required = options.requireAuth;
    const accepted =
      required === undefined ||
      (auth.username === required.user && auth.password === required.pass);
    const record: SmtpSinkAuthentication = {
      method: auth.method,
      username: auth.username ?? "",
      password: auth.password ?? null,
      accepted,
    };
    authentications.push(record);
    if (!accepted) {
      return { message: "5.7.8 Authentication credentials invalid", responseCode: 535 };
    }
    sessionAuth.set(session.id, record);
    return { user: record.username };
  };

  let server: SMTPServer | undefined = createServer();
  const port = await listen(server, 0);

  const shutDown = async () => {
    const closing = server;
    server = undefined;
    if (closing !== undefined) await new Promise<void>((resolve) => closing.close(resolve));
  };

  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    messages,
    authentications,
    errors,
    get attempts() {
      return attempts;
    },
    get connections() {
      return connections;
    },
    waitForMessages(count, timeoutMs = 5_000) {
      return arrivals.waitFor(
        count,
        timeoutMs,
        () =>
          `smtp-sink: expected ${count} message(s) within ${timeoutMs} ms but ${messages.length} arrived ` +
          `(${attempts} delivery attempt(s), ${scripted.length} scripted failure(s) unused)`,
      );
    },

    failNext(...responses) {
      scripted.push(...responses);
    },
    setReplyDelay(ms) {
      replyDelayMs = ms;
    },
    async setDown(down) {
      if (down) {
        await shutDown();
        return;
      }
      if (server !== undefined) return;
      const restarted = createServer();
      await listen(restarted, port);
      server = restarted;
    },
    async close() {
      await shutDown();
    },
  };
}

function listen(server: SMTPServer, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", onError);
      const address = server.server.address();
      if (address === null || typeof address === "string") {
        reject(new Error("smtp-sink: could not determine the listening port"));
        return;
      }
      resolve(address.port);
    });
  });
}

function toSmtpError(response: SmtpScriptedResponse): SMTPServerError {
  const fallback =
    response.code >= 500 ? "Permanent failure" : "Temporary failure, try again later";
  const error: SMTPServerError = new Error(response.message ?? `${fallback} (scripted)`);
  error.responseCode = response.code;
  return error;
}

function toEnvelope(session: SMTPServerSession): SmtpSinkEnvelope {
  const { mailFrom, rcptTo } = session.envelope;
  return {
    mailFrom: mailFrom === false ? "" : mailFrom.address,
    rcptTo: rcptTo.map((recipient) => recipient.address),
  };
}

async function readStream(stream: SMTPServerDataStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
