import { SMTPServer } from "smtp-server";
import { startTwilioFake, type TwilioFake } from "../test/support/twilio-fake.js";

/** One message a loopback provider accepted: whose it is and when (epoch ms). */
export interface Arrival {
  /** X-Followup-Id of an email, the recipient number of an SMS. */
  readonly key: string;
  readonly at: number;
}

/**
 * A loopback SMTP server that only stamps each accepted message with its arrival time and its
 * X-Followup-Id header. Unlike the test sink it does not parse messages, so the bench measures
 * the worker, not a MIME parser sharing its CPU.
 */
export interface ArrivalSink {
  readonly url: string;
  readonly arrivals: Arrival[];
  close(): Promise<void>;
}

const HEADER = /^x-followup-id:\s*(\S+)/im;

export async function startArrivalSink(): Promise<ArrivalSink> {
  const arrivals: Arrival[] = [];
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ["STARTTLS"],
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    closeTimeout: 50,
    size: 1024 * 1024,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const headerEnd = text.indexOf("\r\n\r\n");
        const key = HEADER.exec(headerEnd < 0 ? text : text.slice(0, headerEnd))?.[1] ?? "";
        arrivals.push({ key, at: Date.now() });
        callback(null, "queued");
      });
    },
  });
  server.on("error", () => undefined);
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.server.address();
      if (address === null || typeof address === "string") reject(new Error("no port"));
      else resolve(address.port);
    });
  });
  return {
    url: `smtp://127.0.0.1:${port}`,
    arrivals,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const TWILIO_SID = `AC${"1".repeat(32)}`;
export const TWILIO_TOKEN = "bench-auth-token-123";
export const TWILIO_FROM = "+15005550006";

/** Both loopback providers and the environment that points a worker at them. */
export interface Providers {
  readonly sink: ArrivalSink;
  readonly twilio: TwilioFake;
  readonly env: Record<string, string>;
  /** Arrivals at both providers so far (SMS keyed by recipient number). */
  arrivals(): Arrival[];
  /** How many messages both providers accepted so far. */
  count(): number;
  close(): Promise<void>;
}

export async function startProviders(): Promise<Providers> {
  const sink = await startArrivalSink();
  const twilio = await startTwilioFake({ accountSid: TWILIO_SID, authToken: TWILIO_TOKEN });
  return {
    sink,
    twilio,
    env: {
      SMTP_URL: sink.url,
      MAIL_FROM: "Corner Shop <hello@shop.example>",
      TWILIO_ACCOUNT_SID: TWILIO_SID,
      TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
      TWILIO_FROM,
      TWILIO_API_URL: twilio.baseUrl,
    },
    arrivals: () => [
      ...sink.arrivals,
      ...twilio.messages.map((m) => ({ key: m.to, at: m.receivedAt.getTime() })),
    ],
    count: () => sink.arrivals.length + twilio.messages.length,
    async close() {
      await sink.close();
      await twilio.close();
    },
  };
}
