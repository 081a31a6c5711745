import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { type ParsedMail, simpleParser } from "mailparser";
import { afterEach, describe, expect, it } from "vitest";
import { channelsFromEnv } from "../../src/channels/channels-from-env.js";
import { FOLLOW_UP_HEADER } from "../../src/channels/mail-options.js";
import { createLogger } from "../../src/logger.js";
import { followUpJobId } from "../../src/queue/names.js";
import { startWorker } from "../../src/worker.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

const REPLY_TO = "help@shop.example";
const THANK_YOU = "big-ticket.thank-you";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

/**
 * The pipeline with the worker's own channels, built from the environment as `followups worker`
 * builds them (the harness's adapters are made by hand and do not read REPLY_TO).
 */
async function pipelineWith(label: string, env: Record<string, string>) {
  const p = await startPipeline(label, { env, startWorker: false });
  pipeline = p;
  p.worker = await startWorker({
    env: p.env,
    logger: createLogger({ level: "silent", pretty: false }),
    channels: channelsFromEnv(p.env),
    watchConfig: false,
  });
  return p;
}

/** A TV bought two hours ago: its one-hour thank-you email is due at once. */
function tvBoughtTwoHoursAgo(id: string) {
  const occurredAt = DateTime.utc()
    .minus({ hours: 2 })
    .startOf("second")
    .toISO({ suppressMilliseconds: true });
  return purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: occurredAt ?? "",
    items: [item("televisions", "899.00", { name: "OLED TV 55 inch", sku: "TV-55" })],
  });
}

/** The Reply-To header lines of a message: none, or exactly one. */
function replyToLines(mail: ParsedMail | undefined): string[] {
  return (mail?.headerLines ?? [])
    .filter((entry) => entry.key === "reply-to")
    .map((entry) => entry.line.slice(entry.line.indexOf(":") + 1).trim());
}

async function outboxEmail(p: PipelineHarness, eventId: string): Promise<ParsedMail> {
  const followUpId = followUpJobId(eventId, THANK_YOU);
  return eventually(async () => {
    const names = await readdir(p.outboxDir).catch(() => [] as string[]);
    for (const name of names.filter((n) => n.endsWith(".eml"))) {
      const mail = await simpleParser(await readFile(path.join(p.outboxDir, name)));
      if (mail.headers.get(FOLLOW_UP_HEADER.toLowerCase()) === followUpId) return mail;
    }
    return undefined;
  }, `the outbox .eml of ${followUpId}`);
}

describe("REPLY_TO", () => {
  it("gives a follow-up sent over SMTP the header Reply-To: <REPLY_TO>", async () => {
    const p = await pipelineWith("reply-to-smtp", { REPLY_TO });
    await p.publisher.publish(tvBoughtTwoHoursAgo("evt-reply-to") as never);

    const [mail] = await p.sink.waitForMessages(1);
    expect(mail?.parsed.headers.get(FOLLOW_UP_HEADER.toLowerCase())).toBe(
      followUpJobId("evt-reply-to", THANK_YOU),
    );
    expect(replyToLines(mail?.parsed)).toEqual([REPLY_TO]);
    expect(mail?.parsed.replyTo?.value).toEqual([{ address: REPLY_TO, name: "" }]);
    // Replies go to REPLY_TO; the sender and the envelope stay MAIL_FROM's.
    expect(mail?.parsed.from?.value[0]?.address).toBe("hello@shop.example");
    expect(mail?.envelope.mailFrom).toBe("hello@shop.example");
  });

  it("leaves Reply-To out when it is not set", async () => {
    const p = await pipelineWith("reply-to-unset", {});
    expect(p.env.REPLY_TO).toBeUndefined();
    await p.publisher.publish(tvBoughtTwoHoursAgo("evt-no-reply-to") as never);

    const [mail] = await p.sink.waitForMessages(1);
    expect(mail?.parsed.headers.get(FOLLOW_UP_HEADER.toLowerCase())).toBe(
      followUpJobId("evt-no-reply-to", THANK_YOU),
    );
    expect(replyToLines(mail?.parsed)).toEqual([]);
    expect(mail?.parsed.replyTo).toBeUndefined();
  });

  it("writes it into the outbox .eml when email goes to the outbox", async () => {
    // An empty SMTP_URL counts as unset: email goes to the outbox folder.
    const p = await pipelineWith("reply-to-outbox", { REPLY_TO, SMTP_URL: "" });
    await p.publisher.publish(tvBoughtTwoHoursAgo("evt-reply-to-outbox") as never);

    const mail = await outboxEmail(p, "evt-reply-to-outbox");
    expect(replyToLines(mail)).toEqual([REPLY_TO]);
    expect(p.sink.messages).toHaveLength(0);
  });
});
