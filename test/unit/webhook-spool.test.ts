import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/http/http-deps.js";
import { replayVerdict } from "../../src/http/spool-replay.js";
import { parseSpoolText, spoolFileName, WebhookSpool } from "../../src/http/webhook-spool.js";
import { spoolWhenUnavailable } from "../../src/http-bindings.js";
import { createLogger } from "../../src/logger.js";

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function folder(): Promise<string> {
  dir = await mkdtemp(path.join(tmpdir(), "followups-spool-"));
  return dir;
}

const message = { from: "+447400123456", body: "STOP", messageSid: "SMunit1" };
const logger = createLogger({ level: "silent", pretty: false });
const away = async (): Promise<never> => {
  throw new UnavailableError("Redis is not reachable", 5);
};

describe("the webhook spool", () => {
  it("writes one 0600 file per webhook and lists them oldest first", async () => {
    const spool = new WebhookSpool(path.join(await folder(), "spool"));
    const second = await spool.add({ receivedAt: 2_000, message });
    const first = await spool.add({ receivedAt: 1_000, message: { ...message, media: 2 } });
    expect(await spool.list()).toEqual([first, second]);
    expect((await stat(path.join(spool.dir, String(first)))).mode & 0o777).toBe(0o600);
    expect(await spool.read(String(first))).toEqual({
      receivedAt: 1_000,
      message: { ...message, media: 2 },
    });
  });

  it("reads a file that is not a webhook as undefined, and ignores names it did not write", async () => {
    const spool = new WebhookSpool(await folder());
    await writeFile(path.join(spool.dir, "notes.txt"), "hello");
    await writeFile(path.join(spool.dir, ".000000000001000-000001-ab.json.tmp"), "{");
    expect(await spool.list()).toEqual([]);
    expect(parseSpoolText("{ half")).toBeUndefined();
    expect(parseSpoolText(JSON.stringify({ kind: "other", receivedAt: 1, message }))).toBe(
      undefined,
    );
    expect(spoolFileName(1_000, 1, "ab")).toBe("000000000001000-000001-ab.json");
  });

  it("replays what is handled, keeps what waits for Redis, moves aside the rest", () => {
    expect(replayVerdict({ ok: true })).toBe("done");
    expect(replayVerdict({ ok: false, redisAway: true })).toBe("later");
    expect(replayVerdict({ ok: false, redisAway: false })).toBe("aside");
  });
});

describe("an inbound SMS while Redis is away", () => {
  it("is spooled and answered as spooled", async () => {
    const spool = new WebhookSpool(await folder());
    const inboundSms = spoolWhenUnavailable({ handle: away, spool, now: () => 5_000, logger });
    expect(await inboundSms(message)).toBe("spooled");
    const [file] = await spool.list();
    expect(await spool.read(String(file))).toEqual({ receivedAt: 5_000, message });
  });

  it("is refused (503) when the spool is full or cannot be written, and other failures are not spooled", async () => {
    const root = await folder();
    const full = new WebhookSpool(path.join(root, "full"), 1);
    await full.add({ receivedAt: 1, message });
    const fullSpool = spoolWhenUnavailable({ handle: away, spool: full, now: Date.now, logger });
    await expect(fullSpool(message)).rejects.toBeInstanceOf(UnavailableError);
    expect(await full.list()).toHaveLength(1);

    // A file where the folder should be: nothing can be written.
    await writeFile(path.join(root, "blocked"), "");
    const blocked = new WebhookSpool(path.join(root, "blocked", "spool"));
    const blockedSpool = spoolWhenUnavailable({
      handle: away,
      spool: blocked,
      now: Date.now,
      logger,
    });
    await expect(blockedSpool(message)).rejects.toBeInstanceOf(UnavailableError);

    const other = new WebhookSpool(path.join(root, "other"));
    const broken = spoolWhenUnavailable({
      handle: async () => {
        throw new Error("a bug");
      },
      spool: other,
      now: Date.now,
      logger,
    });
    await expect(broken(message)).rejects.toThrow("a bug");
    expect(await readdir(root)).not.toContain("other");
  });
});
