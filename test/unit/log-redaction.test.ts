import { describe, expect, it } from "vitest";
import { envSchema, SECRET_ENV_VARS } from "../../src/config/env.js";
import { createLogger } from "../../src/logger.js";

/** A logger whose JSON lines the test reads back. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    pretty: false,
    destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
  });
  // Without each line's time: an epoch ms can hold the digits of a phone number (7946).
  const text = () => JSON.stringify(lines.map(({ time: _time, ...line }) => line));
  return { logger, lines, text };
}

const EVENT = JSON.stringify({
  customer: { name: "Ana Novak", email: "ana@example.com", phone: "+442079460958" },
});
const PERSONAL = ["Ana Novak", "ana@example.com", "+442079460958", "7946"];

/** An error shaped as ioredis makes it: the failed command and its arguments attached. */
function redisError(message = "OOM command not allowed when used memory > 'maxmemory'.") {
  return Object.assign(new Error(message), {
    command: { name: "evalsha", args: ["5ab4", 3, "k:1", "k:2", "k:3", EVENT] },
  });
}

function expectNoPersonalData(text: string) {
  for (const needle of PERSONAL) expect(text).not.toContain(needle);
}

describe("error payloads in logs", () => {
  it("keep a failed Redis command's name, message and stack, never its arguments", () => {
    const { logger, lines, text } = capture();
    const error = redisError();
    logger.error({ err: error }, "queue error");
    logger.error(error, "as the first argument");
    logger.error({ error }, "under `error`");
    expectNoPersonalData(text());
    expect(lines.map((line) => line.msg)).toEqual([
      "queue error",
      "as the first argument",
      "under `error`",
    ]);
    for (const line of lines) {
      const logged = (line.err ?? line.error) as Record<string, unknown>;
      expect(logged).toMatchObject({
        type: "Error",
        message: "OOM command not allowed when used memory > 'maxmemory'.",
        command: { name: "evalsha" },
      });
      expect(logged.stack).toMatch(/^Error: OOM command not allowed/);
    }
    // The error itself is left as it was: retries and callers still see the command.
    expect(error.command.args).toHaveLength(6);
  });

  it("scrub previous errors of a transaction, causes and wrapped errors at any depth", () => {
    const { logger, lines, text } = capture();
    const aborted = Object.assign(new Error("EXECABORT Transaction discarded"), {
      previousErrors: [redisError(), redisError("WRONGTYPE")],
      command: { name: "exec", args: [] },
    });
    const wrapped = new Error("could not add job", { cause: aborted });
    const outer = Object.assign(new Error("could not enqueue the event", { cause: wrapped }), {
      details: { job: { data: EVENT, args: [EVENT] }, attempts: 2 },
    });
    logger.error({ err: outer }, "request failed");
    expectNoPersonalData(text());
    const err = lines[0]?.err as Record<string, unknown>;
    // pino folds the causes' messages in; the structure stays for the command names.
    expect(err.message).toBe(
      "could not enqueue the event: could not add job: EXECABORT Transaction discarded",
    );
    expect(err.details).toEqual({ job: { data: "[redacted]", args: "[redacted]" }, attempts: 2 });
    expect(err.cause).toMatchObject({
      message: "could not add job: EXECABORT Transaction discarded",
      cause: {
        command: { name: "exec" },
        previousErrors: [
          { message: expect.stringMatching(/^OOM/), command: { name: "evalsha" } },
          { message: "WRONGTYPE", command: { name: "evalsha" } },
        ],
      },
    });
  });

  it("scrub aggregate errors, survive cycles, mask contact details quoted in a message", () => {
    const { logger, lines, text } = capture();
    const cyclic = Object.assign(new Error("cyclic"), { self: undefined as unknown });
    cyclic.self = cyclic;
    const provider = new Error(
      "The 'To' number +44 20 7946 0958 is not a valid phone number; bounce for ana@example.com",
    );
    logger.error({ err: new AggregateError([redisError(), cyclic], "all failed") }, "x");
    logger.error({ err: provider }, "y");
    expectNoPersonalData(text());
    expect(lines[0]?.err).toMatchObject({
      aggregateErrors: [
        { command: { name: "evalsha" } },
        { message: "cyclic", self: "[circular]" },
      ],
    });
    expect(lines[1]?.err).toMatchObject({
      message: "The 'To' number [phone] is not a valid phone number; bounce for [email]",
    });
  });

  it("keep only the verb of an SMTP command and drop the server's response", () => {
    const { logger, lines, text } = capture();
    const smtp = Object.assign(new Error("Can't send mail - all recipients were rejected"), {
      code: "EENVELOPE",
      command: "RCPT TO:<ana@example.com>",
      response: "550 5.1.1 <ana@example.com>: Recipient address rejected",
      responseCode: 550,
      rejected: ["ana@example.com"],
    });
    logger.error({ err: smtp }, "send failed");
    expectNoPersonalData(text());
    expect(lines[0]?.err).toMatchObject({
      code: "EENVELOPE",
      command: "RCPT",
      responseCode: 550,
      response: "[redacted]",
      rejected: "[redacted]",
    });
  });
});

describe("secret environment variables", () => {
  /** URLs that hold no credentials: public addresses. */
  const NOT_SECRET = new Set(["PUBLIC_URL", "TWILIO_API_URL"]);

  it("every credential, key, token and URL of the schema is in SECRET_ENV_VARS", () => {
    const names = Object.keys(envSchema.shape);
    expect(names.length).toBeGreaterThan(20);
    const looksSecret = names.filter(
      (name) => /SECRET|TOKEN|PASSWORD|PRIVATE_KEY|_URL$/.test(name) && !NOT_SECRET.has(name),
    );
    expect([...SECRET_ENV_VARS].sort()).toEqual(expect.arrayContaining(looksSecret.sort()));
    for (const name of [
      "REDIS_URL",
      "SMTP_URL",
      "TWILIO_AUTH_TOKEN",
      "DISCOUNT_SECRET",
      "API_TOKEN",
      "UNSUBSCRIBE_SECRET",
      "DKIM_PRIVATE_KEY",
    ])
      expect(SECRET_ENV_VARS).toContain(name);
  });

  it("are redacted by name wherever a log line carries them", () => {
    const { logger, lines, text } = capture();
    const values = Object.fromEntries(SECRET_ENV_VARS.map((name) => [name, `value-of-${name}`]));
    logger.info(values, "top level");
    logger.info({ env: values }, "nested");
    for (const name of SECRET_ENV_VARS) expect(text()).not.toContain(`value-of-${name}`);
    // Censored where they were, not dropped with the line.
    const censored = Object.fromEntries(SECRET_ENV_VARS.map((name) => [name, "[redacted]"]));
    expect(lines[0]).toMatchObject({ msg: "top level", ...censored });
    expect(lines[1]).toMatchObject({ msg: "nested", env: censored });
  });
});

describe("contact details and names in log lines", () => {
  it("are censored at the top, one level down, in a child's bindings and on an error", () => {
    const { logger, lines } = capture();
    const contact = { email: "ana@example.com", phone: "+442079460958", id: "c-1" };
    logger.info({ email: contact.email, recipient: contact, count: 2 }, "line");
    logger
      .child({ job: { to: contact.phone, stepId: "s-1" }, component: "test" })
      .child({ nested: { name: "Ana Novak" } })
      .info({ step: { token: "t-1" } }, "child line");
    logger.warn({ err: Object.assign(new Error("failed"), { phone: contact.phone }) }, "error");
    expectNoPersonalData(JSON.stringify(lines));
    expect(lines[0]).toMatchObject({
      email: "[redacted]",
      recipient: { email: "[redacted]", phone: "[redacted]", id: "c-1" },
      count: 2,
    });
    expect(lines[1]).toMatchObject({
      job: { to: "[redacted]", stepId: "s-1" },
      component: "test",
      nested: { name: "[redacted]" },
      step: { token: "[redacted]" },
    });
    expect(lines[2]).toMatchObject({ err: { message: "failed", phone: "[redacted]" } });
  });

  it("are censored in what a line shows: an error under any name, an object's toJSON, bindings set later", () => {
    const { logger, lines } = capture();
    const failure = Object.assign(new Error("failed"), { email: "ana@example.com", code: 7 });
    class Recipient {
      constructor(
        readonly id: string,
        private readonly address: string,
      ) {}
      toJSON() {
        return { id: this.id, phone: this.address, name: "Ana Novak" };
      }
    }
    const child = logger.child({ component: "test" });
    child.setBindings({ job: { email: "ana@example.com", id: "j-1" } });
    child.info({ failure, recipient: new Recipient("c-1", "+442079460958") }, "line");
    expectNoPersonalData(JSON.stringify(lines));
    expect(lines[0]).toMatchObject({
      failure: { email: "[redacted]", code: 7 },
      recipient: { id: "c-1", phone: "[redacted]", name: "[redacted]" },
      job: { email: "[redacted]", id: "j-1" },
    });
  });

  it("leave what they name untouched in the caller's objects", () => {
    const { logger } = capture();
    const recipient = { email: "ana@example.com" };
    logger.info({ recipient }, "line");
    expect(recipient.email).toBe("ana@example.com");
  });
});
