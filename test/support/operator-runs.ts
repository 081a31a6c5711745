import { type Queue, UnrecoverableError, Worker } from "bullmq";
import { expect } from "vitest";
import { withOperatorTools } from "../../src/cli/operator-session.js";
import { runSchedule } from "../../src/cli/schedule-command.js";
import { readEnv } from "../../src/config/env.js";
import { createLogger } from "../../src/logger.js";
import { FOLLOW_UPS_QUEUE, type FollowUpJobData, followUpJobId } from "../../src/queue/names.js";
import type { FollowUpStore } from "../../src/store/follow-up-store.js";
import type { RedisClient } from "../../src/store/redis-client.js";
import { startWorker, type WorkerHandle } from "../../src/worker.js";
import { captureIo } from "./capture-io.js";
import { channelsFor } from "./pipeline-harness.js";

/**
 * What the tests of operator commands that move a deployment's state (reshard, migrate) do
 * before and after: start workers from an environment, count what is pending as
 * `followups schedule` does, and make a follow-up fail for good.
 */

/** A worker started from environment variables (HTTP off), kept in `started` for closing. */
export async function workerFromEnv(
  vars: Record<string, string>,
  started: WorkerHandle[],
): Promise<WorkerHandle> {
  const parsed = readEnv({ ...vars, HTTP_ENABLED: "false" });
  if (!parsed.ok) throw new Error(parsed.problems.join("; "));
  const worker = await startWorker({
    env: parsed.env,
    logger: createLogger({ level: "silent", pretty: false }),
    channels: channelsFor(parsed.env),
    watchConfig: false,
  });
  started.push(worker);
  return worker;
}

/**
 * Pending follow-ups as `followups schedule --json` counts them over 120 days, with the command's
 * environment set to `vars` (FOLLOW_UP_SHARDS left to the deployment's record).
 */
export async function pendingTotal(
  vars: Record<string, string>,
  configDir: string,
  savedEnv: NodeJS.ProcessEnv,
): Promise<number> {
  process.env = { ...savedEnv, ...vars };
  delete process.env.FOLLOW_UP_SHARDS;
  const io = captureIo();
  expect(await runSchedule({ config: configDir, days: "120", json: true }, io)).toBe(0);
  const { days } = JSON.parse(io.output()) as { days: { count: number }[] };
  return days.reduce((sum, day) => sum + day.count, 0);
}

/**
 * Fails a thank-you email for good, as a bounced email would: its step is recorded failed, and
 * its delayed job is promoted and failed by a worker of its queue.
 */
export async function failThankYou(
  redis: RedisClient,
  store: FollowUpStore,
  queue: Queue<FollowUpJobData>,
  eventId: string,
  stepId: string,
): Promise<void> {
  const now = Date.now();
  await store.claim(eventId, stepId, now, 60_000);
  await store.transition(
    eventId,
    stepId,
    ["sending"],
    { state: "failed", attempts: 1, reason: { code: "smtp-550", text: "mailbox unavailable" } },
    now,
    {
      outcome: "failed",
      channel: "email",
      kind: "thank-you",
      ruleId: stepId.split(".")[0] ?? "",
      reason: "smtp-550",
    },
  );
  await (await queue.getJob(followUpJobId(eventId, stepId)))?.promote();
  const failer = new Worker<FollowUpJobData>(
    FOLLOW_UPS_QUEUE,
    async () => {
      throw new UnrecoverableError("mailbox unavailable");
    },
    { connection: redis, prefix: queue.opts.prefix as string },
  );
  await new Promise<void>((resolve) => failer.once("failed", () => resolve()));
  await failer.close();
}

/**
 * An operator command (as `followups erase` runs one; one that only reads, as `followups
 * customer` runs one, with `readOnly`) with the rules of `configDir` and the
 * environment's Redis, at work until `finish` is called; resolves once it has begun. `done`
 * settles as the command ends.
 */
export async function operatorCommandAtWork(
  configDir: string,
  options: { readonly readOnly?: boolean } = {},
): Promise<{ finish: () => void; done: Promise<void> }> {
  let began = () => {};
  let finish = () => {};
  const running = new Promise<void>((resolve) => {
    began = resolve;
  });
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const done = withOperatorTools(
    configDir,
    async () => {
      began();
      await finished;
    },
    options,
  );
  await Promise.race([running, done]);
  return { finish, done };
}
