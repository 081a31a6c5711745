import { writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { spawnWorker, startedLine } from "../support/worker-process.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

it("starts, logs its channels, queues and rules version, and exits 0 on SIGTERM", async () => {
  pipeline = await startPipeline("sigterm", { startWorker: false });
  const worker = spawnWorker({ ...pipeline.envVars, LOG_LEVEL: "info" });
  const started = await startedLine(worker, 15_000);
  const line = JSON.parse(started) as Record<string, unknown>;
  expect(line.transports).toBe("email=smtp sms=twilio voice=twilio");
  // On a Redis Cluster the queues' prefixes are hash tags (`{prefix}`; shard 0's `{prefix:0}`).
  const cluster = pipeline.envVars.REDIS_CLUSTER === "true";
  expect(line.queues).toEqual({
    input: `${cluster ? `{${pipeline.prefix}}` : pipeline.prefix}:purchase-events`,
    followUps: `${cluster ? `{${pipeline.prefix}:0}` : pipeline.prefix}:follow-ups`,
  });
  expect(line.rulesVersion).toMatch(/^[0-9a-f]{12}$/);
  expect(worker.output()).not.toContain(pipeline.envVars.TWILIO_AUTH_TOKEN);

  expect(await worker.stop()).toBe(0);
  expect(worker.output()).toContain('"msg":"followups worker stopped"');
});

it("names a malformed variable and exits 1 before connecting to anything", async () => {
  pipeline = await startPipeline("badenv", { startWorker: false });
  // A listener standing in for SMTP: any connection to it would mean the worker got too far.
  let connections = 0;
  const listener = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const port = (listener.address() as AddressInfo).port;
  const worker = spawnWorker({
    ...pipeline.envVars,
    SMTP_URL: `smtp://127.0.0.1:${port}`,
    REDIS_URL: "localhost:6379",
    TWILIO_FROM: "0800 123",
  });
  expect(await worker.exited()).toBe(1);
  listener.close();
  expect(worker.output()).toContain("REDIS_URL: expected a Redis URL");
  expect(worker.output()).toContain("TWILIO_FROM: expected an E.164 number");
  expect(connections).toBe(0);
});

it("refuses to start on an invalid config, listing every problem", async () => {
  pipeline = await startPipeline("badconfig", { startWorker: false });
  await writeFile(`${pipeline.configDir}/rules.yaml`, "version: 2\nrules: []\n");
  const worker = spawnWorker(pipeline.envVars);
  expect(await worker.exited()).toBe(1);
  expect(worker.output()).toMatch(/rules\.yaml:1:\d+ version: expected version: 1/);
  expect(worker.output()).toMatch(/rules\.yaml:2:\d+ rules: expected at least one rule/);
});

it("says why it cannot reach Redis, in one line, and exits 1", async () => {
  pipeline = await startPipeline("noredis", { startWorker: false });
  // A port nothing listens on: freed right after the system handed it out.
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const port = (listener.address() as AddressInfo).port;
  await new Promise<void>((resolve) => listener.close(() => resolve()));
  const worker = spawnWorker({
    ...pipeline.envVars,
    REDIS_URL: `redis://127.0.0.1:${port}`,
    REDIS_CLUSTER: "false",
  });
  expect(await worker.exited()).toBe(1);
  expect(worker.output()).toContain(
    `cannot reach Redis at REDIS_URL: connect ECONNREFUSED 127.0.0.1:${port}`,
  );
  expect(worker.output()).not.toMatch(/^\s+at /m);
});

it("refuses to start, in one line naming OUTBOX_DIR and the folder, when the outbox cannot be written (a path through a file; one under /proc, where creating it never returns)", async () => {
  pipeline = await startPipeline("outbox-unwritable", { startWorker: false });
  const throughFile = path.join(pipeline.envVars.CONFIG_DIR ?? "", "rules.yaml", "outbox");
  for (const dir of [throughFile, `/proc/followups-outbox-${process.pid}`]) {
    // Without SMTP_URL, email goes to the outbox.
    const worker = spawnWorker({ ...pipeline.envVars, SMTP_URL: "", OUTBOX_DIR: dir });
    const code = await Promise.race([
      worker.exited(),
      new Promise<string>((resolve) => setTimeout(() => resolve("still running"), 30_000)),
    ]);
    if (code === "still running") await worker.stop();
    expect(code).toBe(1);
    const lines = worker.output().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^OUTBOX_DIR: cannot write to the outbox folder ${dir.replaceAll(/[.*+?^${}()|[\]\\/]/g, "\\$&")} \\(.+\\); set OUTBOX_DIR to a folder the worker's user can write to$`,
      ),
    );
  }
}, 90_000);
