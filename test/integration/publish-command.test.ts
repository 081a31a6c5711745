import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { Redis } from "ioredis";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runPublish } from "../../src/cli/publish-command.js";
import { eventJobId } from "../../src/queue/names.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  type PipelineHarness,
  startPipeline,
  waitForState,
} from "../support/pipeline-harness.js";
import { startRedisServer } from "../support/redis-server.js";

/** `followups publish` against the suite's Redis: one Redis, and a Redis Cluster in the cluster run. */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const tv = (id: string) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: "2026-01-01T00:00:00Z",
    customer: { id: `cus-${id}` },
    items: [item("televisions", "899.00")],
  });

describe("followups publish", () => {
  it("enqueues every event of an NDJSON file for the worker, restamped and with fresh ids", async () => {
    pipeline = await startPipeline("publish-command");
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    const file = path.join(p.configDir, "events.ndjson");
    // The file holds the first event twice (a publisher's retry): still one event, new id or not.
    await writeFile(
      file,
      [tv("evt-pub-a"), tv("evt-pub-b"), tv("evt-pub-a")]
        .map((e) => `${JSON.stringify(e)}\n`)
        .join(""),
    );

    const io = captureIo();
    const before = DateTime.utc();
    expect(await runPublish(file, { occurredAt: "-PT30M", newId: true }, io)).toBe(0);
    const after = DateTime.utc();
    const lines = io.output().trim().split("\n");
    expect(lines).toHaveLength(3);
    const cluster = p.commandEnv.REDIS_CLUSTER === "true";
    const queue = `${cluster ? `{${p.prefix}}` : p.prefix}:purchase-events`;
    const ids = lines.map((line) => {
      const match = /^published (evt-pub-[ab]-[0-9a-f]{8}) to (\S+) \(job (\S+)\)$/.exec(line);
      expect(match?.[2]).toBe(queue);
      return match?.[1] ?? "";
    });
    expect(new Set(ids).size).toBe(2);
    expect(ids[2]).toBe(ids[0]);

    // The worker takes both in: each TV's thank-you (an hour after the purchase) is planned from
    // the restamped time, half an hour ago, not from the file's.
    for (const id of ids) {
      expect(await eventProcessed(p, id)).toBe("completed");
      const thankYou = await waitForState(p, id, "big-ticket.thank-you", "scheduled");
      expect(thankYou.dueAt).toBeGreaterThanOrEqual(
        before.plus({ minutes: 30 }).toMillis() - 1_000,
      );
      expect(thankYou.dueAt).toBeLessThanOrEqual(after.plus({ minutes: 30 }).toMillis() + 1_000);
    }
  });

  it("refuses an id that --new-id's suffix would make too long, saying so; one that fits goes", async () => {
    pipeline = await startPipeline("publish-new-id-length", { startWorker: false });
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    const file = path.join(p.configDir, "long-ids.ndjson");
    const longest = `evt-${"x".repeat(187)}`; // 191 characters: 200 with the suffix
    // 195 characters as the contract counts them (an emoji one, though two UTF-16 units): valid
    // alone, 204 with the suffix.
    const tooLong = `evt-${"🎉".repeat(191)}`;
    await writeFile(file, [tv(longest), tv(tooLong)].map((e) => JSON.stringify(e)).join("\n"));

    // Not "published", then refused by the worker as an invalid event.
    const refused = runPublish(file, { newId: true }, captureIo());
    await expect(refused).rejects.toMatchObject({ code: 1 });
    await expect(refused).rejects.toThrow(
      /nothing published\nevent 2:\nid: 195 characters, and 204 with --new-id's suffix -[0-9a-f]{8}; expected a unique event id of at most 200 characters with it \(at most 191 without\)$/,
    );
    expect(await p.events.getJobCounts("waiting")).toEqual({ waiting: 0 });

    // The longest that fits is published at 200 characters, and an id's surrounding white space
    // (which the contract trims) stays out of the new id.
    await writeFile(
      file,
      [tv(longest), tv(" evt-pub-padded \n")].map((e) => JSON.stringify(e)).join("\n"),
    );
    const io = captureIo();
    expect(await runPublish(file, { newId: true }, io)).toBe(0);
    const ids = io
      .output()
      .trim()
      .split("\n")
      .map((line) => /^published (\S+) /.exec(line)?.[1] ?? "");
    expect(ids[0]).toMatch(new RegExp(`^${longest}-[0-9a-f]{8}$`));
    expect(ids[0]).toHaveLength(200);
    expect(ids[1]).toMatch(/^evt-pub-padded-[0-9a-f]{8}$/);
  });

  it("enqueues nothing when one event is invalid, and names the file and the event", async () => {
    pipeline = await startPipeline("publish-invalid", { startWorker: false });
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    const file = path.join(p.configDir, "mixed.json");
    const bad = { ...tv("evt-pub-bad"), customer: { id: "cus-bad", email: "not-an-address" } };
    await writeFile(file, JSON.stringify([tv("evt-pub-good"), bad]));

    await expect(runPublish(file, { occurredAt: "now" }, captureIo())).rejects.toMatchObject({
      code: 1,
      message: expect.stringMatching(
        new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: nothing published\nevent 2:`),
      ),
    });
    expect(await p.events.getJobCounts("waiting", "delayed", "prioritized")).toEqual({
      waiting: 0,
      delayed: 0,
      prioritized: 0,
    });
  });

  it("enqueues nothing when an id is taken by other content, in the queue or earlier in the file", async () => {
    pipeline = await startPipeline("publish-conflict", { startWorker: false });
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    await p.publisher.publish(tv("evt-pub-taken") as never);
    const file = path.join(p.configDir, "conflict.ndjson");
    const changed = { ...tv("evt-pub-taken"), orderId: "ord-other" };
    const twice = [tv("evt-pub-twice"), { ...tv("evt-pub-twice"), orderId: "ord-x" }];
    await writeFile(
      file,
      [tv("evt-pub-new"), changed, ...twice, tv("evt-pub-new")]
        .map((e) => JSON.stringify(e))
        .join("\n"),
    );
    const refused = runPublish(file, {}, captureIo());
    await expect(refused).rejects.toMatchObject({ code: 1 });
    await expect(refused).rejects.toThrow(
      /nothing published\nevent 2: id evt-pub-taken waits in the queue already with other content[^\n]*\nevent 4: id evt-pub-twice is event 3's, with other content$/,
    );
    // Only the event published before waits; the same event again is no conflict.
    expect((await p.events.getJobs(["waiting"])).map((job) => job.id)).toEqual(["evt-pub-taken"]);
    await writeFile(
      file,
      `${JSON.stringify(tv("evt-pub-taken"))}\n${JSON.stringify(tv("evt-pub-a"))}\n`,
    );
    expect(await runPublish(file, {}, captureIo())).toBe(0);
    expect(await p.events.getJobCounts("waiting")).toEqual({ waiting: 2 });
  });

  it("enqueues nothing when an id was taken in already for other content, its job gone", async () => {
    pipeline = await startPipeline("publish-taken");
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    await p.publisher.publish(tv("evt-pub-done") as never);
    expect(await eventProcessed(p, "evt-pub-done")).toBe("completed");
    // Cleaned up, as retention does after an hour: only the worker's record knows the id now.
    await (await p.events.getJob("evt-pub-done"))?.remove();
    const file = path.join(p.configDir, "taken.json");
    await writeFile(file, JSON.stringify({ ...tv("evt-pub-done"), orderId: "ord-other" }));
    // Not "published", then refused by the worker where the operator does not look.
    await expect(runPublish(file, {}, captureIo())).rejects.toMatchObject({
      code: 1,
      message: `${file}: nothing published\nevent 1: id evt-pub-done was taken in already for another event (a new event needs a new id; --new-id makes one)`,
    });
    expect(await p.events.getJob("evt-pub-done")).toBeUndefined();
    // The same event again is no conflict.
    await writeFile(file, JSON.stringify(tv("evt-pub-done")));
    expect(await runPublish(file, {}, captureIo())).toBe(0);
  });

  it("names the line of an NDJSON file that is not JSON, and refuses a time without an offset", async () => {
    pipeline = await startPipeline("publish-lines", { startWorker: false });
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    const file = path.join(p.configDir, "broken.ndjson");
    await writeFile(
      file,
      `${JSON.stringify(tv("evt-l1"))}\n\n${JSON.stringify(tv("evt-l2")).slice(0, 40)}\n`,
    );
    await expect(runPublish(file, {}, captureIo())).rejects.toThrow(
      new RegExp(
        `^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3: not valid JSON, cut short: the line ends before the JSON does`,
      ),
    );
    // A line that is not even an object (a stray word, a line of a log pasted in) is named too,
    // not as a position in the whole file read as one JSON text.
    const stray = path.join(p.configDir, "stray.ndjson");
    await writeFile(
      stray,
      `${JSON.stringify(tv("evt-l1"))}\ngarbage\n${JSON.stringify(tv("evt-l2"))}\n`,
    );
    await expect(runPublish(stray, {}, captureIo())).rejects.toThrow(
      new RegExp(`^${stray.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:2: not valid JSON \\(`),
    );
    await expect(
      runPublish(file, { occurredAt: "2026-12-03T10:00:00" }, captureIo()),
    ).rejects.toMatchObject({
      code: 2,
      message: expect.stringMatching(/^--occurred-at: expected an ISO date-time with an offset/),
    });
    // No events at all: said, and nothing to do.
    await writeFile(file, "[]");
    const io = captureIo();
    expect(await runPublish(file, {}, io)).toBe(0);
    expect(io.errors()).toContain("holds no events: nothing published");
    expect(await p.events.getJobCounts("waiting")).toEqual({ waiting: 0 });
  });

  it("refuses an event that gives a key twice, naming the line or event and the key", async () => {
    pipeline = await startPipeline("publish-key-twice", { startWorker: false });
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    // JSON.parse would keep the second orderId; the publisher's tooling may have meant the first.
    const twice = JSON.stringify(tv("evt-twice-2")).replace(
      '"orderId":',
      '"orderId": "ord-first", "orderId":',
    );
    const ndjson = path.join(p.configDir, "twice.ndjson");
    await writeFile(ndjson, `${JSON.stringify(tv("evt-twice-1"))}\n${twice}\n`);
    await expect(runPublish(ndjson, {}, captureIo())).rejects.toMatchObject({
      code: 1,
      message: `${ndjson}:2: gives orderId twice: give each key once (JSON readers differ on which of the two counts)`,
    });
    const list = path.join(p.configDir, "twice.json");
    await writeFile(list, `[${JSON.stringify(tv("evt-twice-1"))}, ${twice}]`);
    await expect(runPublish(list, {}, captureIo())).rejects.toMatchObject({
      code: 1,
      message: `${list}: event 2 gives orderId twice: give each key once (JSON readers differ on which of the two counts)`,
    });
    expect(await p.events.getJobCounts("waiting")).toEqual({ waiting: 0 });
  });

  it("refuses a file that is not UTF-8 rather than alter names, and reads one that opens with a BOM", async () => {
    pipeline = await startPipeline("publish-encoding", { startWorker: false });
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    // Saved as Latin-1: read as UTF-8, "Zoë" would be published as "Zo\uFFFD".
    const latin1 = path.join(p.configDir, "latin1.json");
    const zoe = { ...tv("evt-latin1"), customer: { id: "cus-z", name: "Zoë" } };
    await writeFile(latin1, Buffer.from(JSON.stringify(zoe), "latin1"));
    await expect(runPublish(latin1, {}, captureIo())).rejects.toMatchObject({
      code: 1,
      message: `${latin1}: not UTF-8 text; save it as UTF-8`,
    });
    expect(await p.events.getJobCounts("waiting")).toEqual({ waiting: 0 });

    // NDJSON as spreadsheets and Windows tools write it: a byte order mark, CRLF line ends.
    const bom = path.join(p.configDir, "bom.ndjson");
    await writeFile(
      bom,
      `\uFEFF${JSON.stringify(tv("evt-bom-1"))}\r\n${JSON.stringify(tv("evt-bom-2"))}\r\n`,
    );
    expect(await runPublish(bom, {}, captureIo())).toBe(0);
    expect((await p.events.getJobs(["waiting"])).map((job) => job.id).sort()).toEqual([
      "evt-bom-1",
      "evt-bom-2",
    ]);
  });
});

describe("a command whose Redis stops answering half-way", () => {
  it("says so in one line, without a stack trace, and exits 1", async () => {
    const server = await startRedisServer();
    const admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const busy = new Redis(server.url, { maxRetriesPerRequest: 1 });
    try {
      // A script that runs until killed: after 100 ms Redis answers every other command BUSY.
      await admin.config("SET", "busy-reply-threshold", "100");
      const dir = await mkdtemp(path.join(tmpdir(), "followups-busy-"));
      const file = path.join(dir, "events.ndjson");
      await writeFile(
        file,
        Array.from({ length: 2_000 }, (_, n) => JSON.stringify(tv(`evt-busy-${n}`))).join("\n"),
      );
      const child = spawn(
        process.execPath,
        ["--import", "tsx", "src/cli.ts", "publish", file, "--occurred-at", "now"],
        {
          env: {
            ...process.env,
            REDIS_URL: server.url,
            REDIS_CLUSTER: "false",
            QUEUE_PREFIX: "busy",
          },
        },
      );
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
      // Once the first events are on the queue, Redis stops answering.
      const lines = createInterface({ input: child.stdout });
      await new Promise<void>((resolve) => lines.once("line", () => resolve()));
      void busy.eval("while true do end", 0).catch(() => undefined);
      const code = await exited;
      expect(code).toBe(1);
      expect(stderr).toMatch(
        /^followups: Redis stopped answering during the command \(BUSY .*\); it stopped there: run it again once Redis answers\n$/,
      );
    } finally {
      await admin.call("SCRIPT", "KILL").catch(() => undefined);
      admin.disconnect();
      busy.disconnect();
      await server.stop();
    }
  }, 60_000);
});

const halved = (id: string) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: "2026-01-01T00:00:00Z",
    customer: { id: `cus-${id}`, name: "Zo\ud800" },
    items: [item("televisions", "899.00")],
  });

describe("an event holding an unpaired UTF-16 surrogate", () => {
  it("is not published, and is refused once as invalid by a worker it reaches anyway", async () => {
    pipeline = await startPipeline("event-surrogates");
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    const file = path.join(p.configDir, "halved.json");
    // JSON.stringify writes the half as the escape `\ud800`: the file is valid UTF-8 and JSON.
    await writeFile(file, JSON.stringify(halved("evt-half-1")));
    const published = runPublish(file, {}, captureIo());
    await expect(published).rejects.toMatchObject({ code: 1 });
    await expect(published).rejects.toThrow(
      "customer.name: the text holds half a character at character 3 (an unpaired UTF-16 surrogate, \\ud800)",
    );
    expect(await p.events.getJobCounts("waiting")).toEqual({ waiting: 0 });

    // Added to the queue by hand: refused at once, not tried again and again.
    await p.events.add("purchase.completed", halved("evt-half-2"), {
      jobId: eventJobId("evt-half-2"),
      attempts: 3,
      backoff: { type: "fixed", delay: 100 },
    });
    expect(await eventProcessed(p, eventJobId("evt-half-2"))).toBe("failed");
    const job = await p.events.getJob(eventJobId("evt-half-2"));
    expect(job?.attemptsMade).toBe(1);
    expect(job?.failedReason).toContain("customer.name: the text holds half a character");
  });
});

describe("followups publish, to a terminal", () => {
  it("prints the ids it published with their control and bidi characters escaped", async () => {
    pipeline = await startPipeline("publish-unsafe-id");
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    const file = path.join(p.configDir, "unsafe.ndjson");
    // A bell and an override in a publisher's id: printed raw, one rings, the other reverses.
    await writeFile(file, `${JSON.stringify(tv("evt-\u0007\u202epub"))}\n`);
    const io = captureIo();
    expect(await runPublish(file, {}, io)).toBe(0);
    expect(io.output()).toMatch(/^published evt-\\u0007\\u202epub to /);
    expect(await eventProcessed(p, eventJobId("evt-\u0007\u202epub"))).toBe("completed");
  });
});
