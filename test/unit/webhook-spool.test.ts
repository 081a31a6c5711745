import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/http/http-deps.js";
import { createSpoolReplay, replayVerdict } from "../../src/http/spool-replay.js";
import {
  handleSpooled,
  parseSpoolText,
  SPOOL_FAILED_DIR,
  spoolEntry,
  spoolFileName,
  spoolFileNames,
  spoolText,
  WebhookSpool,
} from "../../src/http/webhook-spool.js";
import {
  spoolCallStatusWhenUnavailable,
  spoolSmsStatusWhenUnavailable,
  spoolUnsubscribeWhenUnavailable,
  spoolWhenUnavailable,
} from "../../src/http-bindings.js";
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

  it("tells erasure what a failed file names, and removes from failed/ only what it picks", async () => {
    const gather = { followUpId: "fcall1", callSid: "CA1", digits: "9", to: "+447400123457" };
    expect(spoolFileNames(spoolText(spoolEntry("gather", gather, 1_000)))).toMatchObject({
      numbers: ["+447400123457"],
      followUpId: "fcall1",
      optOut: true,
    });
    const unheard = spoolText(spoolEntry("unheard", { followUpId: "fcall2", callSid: "CA2" }, 1));
    expect(spoolFileNames(unheard)).toMatchObject({ numbers: [], followUpId: "fcall2" });
    const ended = { followUpId: "fcall3", callSid: "CA3", callStatus: "completed" };
    expect(
      spoolFileNames(spoolText(spoolEntry("callStatus", { ...ended, to: "+447400123458" }, 1))),
    ).toMatchObject({ numbers: ["+447400123458"], followUpId: "fcall3", optOut: false });
    expect(spoolFileNames(spoolText(spoolEntry("callStatus", ended, 1)))).toMatchObject({
      numbers: [],
      followUpId: "fcall3",
    });
    expect(spoolFileNames("{ half +447400123456")).toEqual({
      numbers: [],
      optOut: false,
      text: "{ half +447400123456",
    });
    const sms = (body: string) =>
      spoolFileNames(spoolText({ receivedAt: 1, message: { ...message, body } }));
    expect(sms("STOP")).toMatchObject({ numbers: [message.from], optOut: true });
    expect(sms("Lovely, thanks")).toMatchObject({ optOut: false });

    const spool = new WebhookSpool(await folder());
    expect(await spool.removeFailed(async () => true)).toBe(0);
    const mine = String(await spool.add({ receivedAt: 1_000, message }));
    const theirs = String(
      await spool.add({ receivedAt: 2_000, message: { ...message, from: "+447400123458" } }),
    );
    const waiting = String(await spool.add({ receivedAt: 3_000, message }));
    await spool.moveAside(mine);
    await spool.moveAside(theirs);
    const picked = async (file: { numbers: readonly string[] }) =>
      file.numbers.includes(message.from);
    expect(await spool.removeFailed(picked)).toBe(1);
    expect(await readdir(path.join(spool.dir, SPOOL_FAILED_DIR))).toEqual([theirs]);
    expect(await spool.list()).toEqual([waiting]);
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

describe("an inbound SMS while webhooks wait in the spool (Redis up)", () => {
  const handled = async () => "handled" as const;

  it("is spooled behind them, and handled at once when none wait or the spool cannot take it", async () => {
    const root = await folder();
    const spool = new WebhookSpool(path.join(root, "spool"));
    const behind = spoolWhenUnavailable({
      handle: handled,
      spool,
      now: () => 9_000,
      logger,
      waiting: async () => true,
    });
    expect(await behind(message)).toBe("spooled");
    expect(await spool.read(String((await spool.list())[0]))).toEqual({
      receivedAt: 9_000,
      message,
    });

    const none = spoolWhenUnavailable({
      handle: handled,
      spool,
      now: Date.now,
      logger,
      waiting: async () => false,
    });
    expect(await none(message)).toBe("handled");

    const full = new WebhookSpool(path.join(root, "full"), 1);
    await full.add({ receivedAt: 1, message });
    const fullBehind = spoolWhenUnavailable({
      handle: handled,
      spool: full,
      now: Date.now,
      logger,
      waiting: async () => true,
    });
    expect(await fullBehind(message)).toBe("handled");
    expect(await full.list()).toHaveLength(1);
  });

  it("is replayed without waiting for the next round when it came while a round replayed others", async () => {
    const spool = new WebhookSpool(await folder());
    await spool.add({ receivedAt: 1_000, message });
    const seen: string[] = [];
    const replay = createSpoolReplay({
      spool,
      handle: async (entry) => {
        if (!("message" in entry)) return;
        seen.push(entry.message.messageSid);
        // A message that comes while the first is handled, spooled behind it.
        if (seen.length === 1)
          await spool.add({ receivedAt: 2_000, message: { ...message, messageSid: "SMunit3" } });
      },
      redisReady: () => true,
      isRedisAway: () => false,
      logger,
      intervalMs: 60_000,
    });
    replay.start();
    const until = Date.now() + 5_000;
    while (seen.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    await replay.stop();
    expect(seen).toEqual(["SMunit1", "SMunit3"]);
    expect(await spool.list()).toEqual([]);
  });
});

describe("a status callback while Redis is away", () => {
  const smsStatus = { messageSid: "SMunit2", status: "undelivered", errorCode: 21610 };
  const callStatus = {
    followUpId: "f0123",
    callSid: "CAunit1",
    answeredBy: "human",
    callStatus: "completed",
    durationSeconds: 41,
  };

  it("is spooled, answered as spooled, and read back as written, tagged with its kind", async () => {
    const spool = new WebhookSpool(await folder());
    const deps = { handle: away, spool, now: () => 7_000, logger };
    expect(await spoolSmsStatusWhenUnavailable(deps)(smsStatus)).toBe("spooled");
    expect(await spoolCallStatusWhenUnavailable(deps)(callStatus)).toBe("spooled");
    const [first, second] = await spool.list();
    expect(await spool.read(String(first))).toEqual({ receivedAt: 7_000, smsStatus });
    expect(await spool.read(String(second))).toEqual({ receivedAt: 7_000, callStatus });
    const kinds = await Promise.all(
      [first, second].map(
        async (name) => JSON.parse(await readFile(path.join(spool.dir, String(name)), "utf8")).kind,
      ),
    );
    expect(kinds).toEqual(["twilio-sms-status", "twilio-voice-status"]);
  });

  it("is handed to the handler of its kind with its arrival time", async () => {
    const seen: unknown[] = [];
    const handlers = {
      inboundSms: async (entry: unknown, at: number) => seen.push(["inboundSms", entry, at]),
      gather: async (entry: unknown, at: number) => seen.push(["gather", entry, at]),
      smsStatus: async (entry: unknown, at: number) => seen.push(["smsStatus", entry, at]),
      callStatus: async (entry: unknown, at: number) => seen.push(["callStatus", entry, at]),
      unheard: async (entry: unknown, at: number) => seen.push(["unheard", entry, at]),
      unsubscribe: async (entry: unknown, at: number) => seen.push(["unsubscribe", entry, at]),
    };
    const unheard = { followUpId: "f0123", callSid: "CAunit1" };
    const unsubscribe = {
      customerId: "cus-1",
      channel: "email" as const,
      source: "one-click" as const,
      scope: "marketing" as const,
    };
    await handleSpooled({ receivedAt: 1, message }, handlers);
    await handleSpooled({ receivedAt: 2, smsStatus }, handlers);
    await handleSpooled({ receivedAt: 3, callStatus }, handlers);
    await handleSpooled({ receivedAt: 4, unheard }, handlers);
    await handleSpooled({ receivedAt: 5, unsubscribe }, handlers);
    expect(seen).toEqual([
      ["inboundSms", message, 1],
      ["smsStatus", smsStatus, 2],
      ["callStatus", callStatus, 3],
      ["unheard", unheard, 4],
      ["unsubscribe", unsubscribe, 5],
    ]);
  });

  it("is not read from a file whose status is missing", () => {
    const text = JSON.stringify({
      kind: "twilio-voice-status",
      receivedAt: 1,
      callStatus: { followUpId: "f0123", callSid: "CAunit1" },
    });
    expect(parseSpoolText(text)).toBeUndefined();
  });
});

describe("an unsubscribe link while Redis is away", () => {
  const request = {
    customerId: "cus-1",
    channel: "email" as const,
    source: "link" as const,
    scope: "all" as const,
  };

  it("keeps one file for the same request sent again and again, also at once, so one link cannot fill the spool", async () => {
    const spool = new WebhookSpool(await folder(), 10);
    let now = 1_000;
    const unsubscribe = spoolUnsubscribeWhenUnavailable({
      handle: away,
      spool,
      now: () => now++,
      logger,
    });
    const answers = await Promise.all(Array.from({ length: 25 }, () => unsubscribe(request)));
    for (let i = 0; i < 25; i++) answers.push(await unsubscribe(request));
    expect(new Set(answers)).toEqual(new Set(["spooled"]));
    const [first, ...others] = await spool.list();
    expect(others).toEqual([]);
    // The first request's, dated when it came.
    expect(await spool.read(String(first))).toEqual({ receivedAt: 1_000, unsubscribe: request });

    // Room is left for the STOPs Twilio sends meanwhile, which it does not send again after a 503.
    expect(
      await spoolWhenUnavailable({ handle: away, spool, now: () => now, logger })(message),
    ).toBe("spooled");
    // Another request (offers only, a one-click POST, another customer or channel) has its own file.
    await unsubscribe({ ...request, scope: "marketing" });
    await unsubscribe({ ...request, source: "one-click" });
    await unsubscribe({ ...request, customerId: "cus-2" });
    await unsubscribe({ ...request, channel: "sms" });
    await unsubscribe({ ...request, addressHash: "AAAAAAAAAAAAAAAAAAAAAA" });
    expect(await spool.list()).toHaveLength(7);

    // Once handled (its file removed), the same request is spooled again.
    await spool.remove(String(first));
    await unsubscribe(request);
    expect(await spool.list()).toHaveLength(7);
  });

  it("keeps a request naming the customer by keyed hash (a link of now) apart from one naming the id (a link of before), and names files of the latter as before", async () => {
    const spool = new WebhookSpool(await folder(), 10);
    const unsubscribe = spoolUnsubscribeWhenUnavailable({
      handle: away,
      spool,
      now: () => 1_000,
      logger,
    });
    const { customerId: _, ...rest } = request;
    const hashed = { ...rest, customerHash: "AAECAwQFBgcICQoLDA0ODw" };
    expect(await unsubscribe(hashed)).toBe("spooled");
    expect(await unsubscribe({ ...rest, customerHash: "AAECAwQFBgcICQoLDA0ODg" })).toBe("spooled");
    expect(await unsubscribe(request)).toBe("spooled");
    expect(await unsubscribe({ ...rest, customerId: "AAECAwQFBgcICQoLDA0ODw" })).toBe("spooled");
    const files = await spool.list();
    expect(files).toHaveLength(4);
    expect(await spool.read(String(files[0]))).toEqual({ receivedAt: 1_000, unsubscribe: hashed });
    // A file the version before 7 December 2026 spooled for this request has this name: the same
    // request taken again after the upgrade is not spooled twice.
    const before = createHash("sha256")
      .update(JSON.stringify(["cus-1", "email", null, "link", "all"]))
      .digest("hex")
      .slice(0, 32);
    expect(files.filter((name) => name.endsWith(`-${before}.json`))).toHaveLength(1);
    const file = (unsubscribe: unknown) =>
      JSON.stringify({ kind: "unsubscribe", receivedAt: 1_000, unsubscribe });
    expect(parseSpoolText(file(request))).toEqual({ receivedAt: 1_000, unsubscribe: request });
    expect(parseSpoolText(file({ ...rest, customerHash: "not-a-hash" }))).toBeUndefined();
    expect(parseSpoolText(file(rest))).toBeUndefined();
  });

  it("logs that it spooled the request without its file's name, a digest of the customer id", async () => {
    const lines: Record<string, unknown>[] = [];
    const recording = createLogger({
      level: "info",
      pretty: false,
      destination: { write: (line: string) => lines.push(JSON.parse(line)) },
    });
    const spool = new WebhookSpool(await folder(), 10);
    const unsubscribe = spoolUnsubscribeWhenUnavailable({
      handle: away,
      spool,
      now: () => 1_000,
      logger: recording,
    });
    expect(await unsubscribe(request)).toBe("spooled");
    const [file] = await spool.list();
    const tag = String(file)
      .replace(/^\d{15}-\d{6}-/, "")
      .replace(/\.json$/, "");
    expect(tag).toMatch(/^[0-9a-f]{32}$/);
    const spooled = lines.find((line) => String(line.msg).includes("unsubscribe spooled to disk"));
    expect(spooled).toMatchObject({ channel: "email", source: "link", scope: "all" });
    expect(JSON.stringify(lines)).not.toContain(tag);
  });
});

describe("temporary files left by an interrupted write", () => {
  it("are removed by the replay's round once older than ten minutes; newer ones and spooled files stay", async () => {
    const spool = new WebhookSpool(await folder());
    const kept = String(await spool.add({ receivedAt: 1_000, message }));
    const stale = ".000000000001000-000001-ab.json.tmp";
    const fresh = ".000000000002000-000002-cd.json.tmp";
    const now = Date.now();
    await writeFile(path.join(spool.dir, stale), "{ half");
    await writeFile(path.join(spool.dir, fresh), "{ half");
    await writeFile(path.join(spool.dir, ".notes.tmp"), "not ours");
    const elevenMinutesAgo = new Date(now - 11 * 60_000);
    await utimes(path.join(spool.dir, stale), elevenMinutesAgo, elevenMinutesAgo);
    await utimes(path.join(spool.dir, ".notes.tmp"), elevenMinutesAgo, elevenMinutesAgo);

    // A round while Redis is away: nothing is replayed, the stale file goes all the same.
    const replay = createSpoolReplay({
      spool,
      handle: away,
      redisReady: () => false,
      isRedisAway: () => true,
      now: () => now,
      logger,
      intervalMs: 60_000,
    });
    replay.start();
    await replay.stop();

    expect((await readdir(spool.dir)).sort()).toEqual([fresh, ".notes.tmp", kept].sort());
    expect(await spool.list()).toEqual([kept]);
  });
});
