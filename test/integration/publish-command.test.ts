import { writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runPublish } from "../../src/cli/publish-command.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  type PipelineHarness,
  startPipeline,
  waitForState,
} from "../support/pipeline-harness.js";

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
    await writeFile(
      file,
      `${JSON.stringify(tv("evt-pub-a"))}\n${JSON.stringify(tv("evt-pub-b"))}\n`,
    );

    const io = captureIo();
    const before = DateTime.utc();
    expect(await runPublish(file, { occurredAt: "-PT30M", newId: true }, io)).toBe(0);
    const after = DateTime.utc();
    const lines = io.output().trim().split("\n");
    expect(lines).toHaveLength(2);
    const cluster = p.commandEnv.REDIS_CLUSTER === "true";
    const queue = `${cluster ? `{${p.prefix}}` : p.prefix}:purchase-events`;
    const ids = lines.map((line) => {
      const match = /^published (evt-pub-[ab]-[0-9a-f]{8}) to (\S+) \(job (\S+)\)$/.exec(line);
      expect(match?.[2]).toBe(queue);
      return match?.[1] ?? "";
    });
    expect(new Set(ids).size).toBe(2);

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
});
