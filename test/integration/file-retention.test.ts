import { mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  createOutboxChannel,
  outboxFileName,
  outboxWriteProbeName,
} from "../../src/channels/outbox.js";
import { createFileRetention } from "../../src/file-retention.js";
import {
  FAILED_WEBHOOK_MAX_AGE_MS,
  SPOOL_FAILED_DIR,
  spoolEntry,
  spoolFileName,
  spoolText,
  WebhookSpool,
} from "../../src/http/webhook-spool.js";
import { createLogger } from "../../src/logger.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

/**
 * The folders that hold personal data outside Redis expire their files: the outbox's rendered
 * messages (names, addresses, texts) RECORD_RETENTION_DAYS after each was written, and the
 * webhooks the spool moved aside to `failed/` (numbers, texts) 30 days after the move, but for an
 * opt-out, which only handling applies.
 */

const DAY = 86_400_000;
let pipeline: PipelineHarness | undefined;
const folders: string[] = [];
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
  for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
});

const silent = createLogger({ level: "silent", pretty: false });

async function aged(file: string, text: string, ageMs: number): Promise<void> {
  await writeFile(file, text);
  const at = new Date(Date.now() - ageMs);
  await utimes(file, at, at);
}

/** Expiry of `outbox` after 30 days, with a spool of its own under `root`. */
function outboxRetention(root: string, outbox: string) {
  return createFileRetention({
    outboxDir: outbox,
    outboxMaxAgeMs: 30 * DAY,
    spool: new WebhookSpool(path.join(root, "spool")),
    failedMaxAgeMs: FAILED_WEBHOOK_MAX_AGE_MS,
    now: Date.now,
    logger: silent,
  });
}

/** A spooled inbound SMS's file text (its sender and words). */
function inboundSms(body: string, receivedAt: number): string {
  return spoolText(
    spoolEntry(
      "message",
      { from: "+447400900321", body, messageSid: `SM${"a".repeat(32)}` },
      receivedAt,
    ),
  );
}

describe("files past their age", () => {
  it("the worker removes expired outbox files and failed webhooks at start, keeping opt-outs", async () => {
    pipeline = await startPipeline("file-retention", {
      startWorker: false,
      env: { RECORD_RETENTION_DAYS: "30" },
    });
    const p = pipeline;
    const outbox = p.outboxDir;
    const failed = path.join(path.dirname(outbox), "spool", SPOOL_FAILED_DIR);
    await mkdir(outbox, { recursive: true });
    await mkdir(failed, { recursive: true });
    await aged(
      path.join(outbox, "evt-old_thank-you-0123456789.eml"),
      "To: ana@example.com",
      31 * DAY,
    );
    await aged(
      path.join(outbox, "evt-old_sms-0123456789.json"),
      '{"to":"+447400900321"}',
      31 * DAY,
    );
    await aged(path.join(outbox, ".evt-x.eml.1234.tmp"), "To: ana@example.com", 3600_000);
    // Left by a start-up's write check whose process died before it removed it.
    await aged(path.join(outbox, outboxWriteProbeName()), "", 3600_000);
    await aged(
      path.join(outbox, "evt-new_thank-you-0123456789.eml"),
      "To: bo@example.com",
      29 * DAY,
    );
    await aged(path.join(outbox, "notes.txt"), "an operator's", 400 * DAY);
    const old = Date.now() - 40 * DAY;
    const reply = spoolFileName(old, 1, "aaaaaaaaaaaa");
    const stop = spoolFileName(old, 2, "bbbbbbbbbbbb");
    const fresh = spoolFileName(Date.now() - DAY, 3, "cccccccccccc");
    await aged(path.join(failed, reply), inboundSms("thanks, lovely kettle", old), 31 * DAY);
    await aged(path.join(failed, stop), inboundSms("STOP", old), 31 * DAY);
    await aged(path.join(failed, fresh), inboundSms("hello", Date.now() - DAY), 29 * DAY);

    await p.startWorker();
    await eventually(
      async () => ((await readdir(outbox)).length === 2 ? true : undefined),
      "the expired outbox files to go",
    );
    expect((await readdir(outbox)).sort()).toEqual([
      "evt-new_thank-you-0123456789.eml",
      "notes.txt",
    ]);
    await eventually(
      async () => ((await readdir(failed)).length === 2 ? true : undefined),
      "the expired failed webhook to go",
    );
    expect((await readdir(failed)).sort()).toEqual([stop, fresh].sort());
  });

  it("keeps expiring them while the worker runs", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "followups-file-retention-"));
    folders.push(root);
    const outbox = path.join(root, "outbox");
    const spool = new WebhookSpool(path.join(root, "spool"));
    const channel = createOutboxChannel({ dir: outbox, from: "shop <hello@shop.example>" });
    const sent = await channel.send({
      channel: "sms",
      followUpId: "evt-1:check-in",
      to: "+447400900321",
      text: "Hi Ana, how is the kettle?",
    } as never);
    expect(sent.ok).toBe(true);
    const retention = createFileRetention({
      outboxDir: outbox,
      outboxMaxAgeMs: 30 * DAY,
      spool,
      failedMaxAgeMs: FAILED_WEBHOOK_MAX_AGE_MS,
      now: Date.now,
      logger: silent,
      everyMs: 50,
    });
    retention.start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      // Written just now: kept.
      expect(await readdir(outbox)).toHaveLength(1);
      const [name] = await readdir(outbox);
      const at = new Date(Date.now() - 31 * DAY);
      await utimes(path.join(outbox, name ?? ""), at, at);
      await eventually(
        async () => ((await readdir(outbox)).length === 0 ? true : undefined),
        "the outbox file to expire on a later round",
      );
    } finally {
      await retention.stop();
      await channel.close();
    }
  });

  it("leaves alone what the outbox did not write, in a folder it shares, and links", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "followups-file-retention-"));
    folders.push(root);
    const outbox = path.join(root, "outbox");
    const elsewhere = path.join(root, "elsewhere");
    await mkdir(outbox, { recursive: true });
    await mkdir(elsewhere, { recursive: true });
    const ours = outboxFileName("evt-1:check-in", ".json");
    await aged(path.join(outbox, ours), '{"to":"+447400900321"}', 31 * DAY);
    // Another program's files in the same folder, with the outbox's extensions.
    const theirs = ["package.json", "invoice-2025.eml", ".editor-swap.tmp", "archive.json.tmp"];
    for (const name of theirs) await aged(path.join(outbox, name), "{}", 400 * DAY);
    // A link named like a message, to a file of someone else's (itself old).
    const target = path.join(elsewhere, "ledger.json");
    await aged(target, "{}", 400 * DAY);
    const link = outboxFileName("evt-2:check-in", ".json");
    await symlink(target, path.join(outbox, link));
    const removed = await outboxRetention(root, outbox).sweep();
    expect(removed.outbox).toBe(1);
    expect((await readdir(outbox)).sort()).toEqual([...theirs, link].sort());
    expect(await readdir(elsewhere)).toEqual(["ledger.json"]);
  });

  it("a worker stopping does not wait for a round through a large outbox", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "followups-file-retention-"));
    folders.push(root);
    const outbox = path.join(root, "outbox");
    await mkdir(outbox, { recursive: true });
    const at = new Date(Date.now() - 31 * DAY);
    const total = 20_000;
    for (let i = 0; i < total; i += 500)
      await Promise.all(
        Array.from({ length: 500 }, async (_, j) => {
          const file = path.join(outbox, outboxFileName(`evt-${i + j}:check-in`, ".json"));
          await writeFile(file, "{}");
          await utimes(file, at, at);
        }),
      );
    const retention = outboxRetention(root, outbox);
    retention.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await retention.stop();
    // The round was left when the worker stopped: what it had not reached is still there (the
    // next start goes on with it).
    expect((await readdir(outbox)).length).toBeGreaterThan(0);
  }, 60_000);

  it("keeps a failed webhook that does not read as one: it may be an opt-out", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "followups-file-retention-"));
    folders.push(root);
    const spool = new WebhookSpool(path.join(root, "spool"));
    const failed = path.join(root, "spool", SPOOL_FAILED_DIR);
    await mkdir(failed, { recursive: true });
    const old = Date.now() - 40 * DAY;
    // Written by another version (a kind this one does not know), and moved aside by this one: a
    // STOP for all it can tell.
    const other = spoolFileName(old, 1, "dddddddddddd");
    const text = JSON.stringify({
      kind: "keyword",
      keyword: { from: "+447400900321", body: "STOP" },
      receivedAt: old,
    });
    await aged(path.join(failed, other), text, 31 * DAY);
    expect(await spool.removeExpiredFailed(Date.now())).toEqual({ removed: 0, optOutsKept: 1 });
    expect(await readdir(failed)).toEqual([other]);
  });

  it("dates a webhook moved aside by the move, not by its arrival", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "followups-file-retention-"));
    folders.push(root);
    const spool = new WebhookSpool(path.join(root, "spool"));
    // Spooled 40 days ago (a long outage), moved aside today: an operator has 30 days from now.
    const name = await spool.add(
      spoolEntry(
        "message",
        { from: "+447400900321", body: "thanks", messageSid: `SM${"b".repeat(32)}` },
        Date.now() - 40 * DAY,
      ),
    );
    expect(name).not.toBe(false);
    const file = path.join(root, "spool", String(name));
    const at = new Date(Date.now() - 40 * DAY);
    await utimes(file, at, at);
    await spool.moveAside(String(name));
    expect(await spool.removeExpiredFailed(Date.now())).toEqual({ removed: 0, optOutsKept: 0 });
    expect(await spool.removeExpiredFailed(Date.now() + 31 * DAY)).toEqual({
      removed: 1,
      optOutsKept: 0,
    });
  });
});
