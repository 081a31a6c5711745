import { type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { KEEP_COMPLETED, KEEP_COMPLETED_EVENTS, KEEP_FAILED } from "../src/queue/job-retention.js";
import { followUpJobId } from "../src/queue/names.js";

/**
 * Reference workers of the baselines, run as their own process like a real worker, with the same
 * concurrency and retention settings as ours (the pass-through keeps completed jobs as our intake
 * does, the no-op as our delivery does; until 2026-12-04 both kept them as delivery does):
 * - `noop`: the processor does nothing (baseline of the send benches);
 * - `passthrough`: each input event becomes its delayed jobs, the purchase as payload, with no
 *   validation, planning or records (the least any queue-fed intake must do). How many jobs an
 *   event gets comes from NOOP_STEPS, the follow-ups per mix position, by the event id's number.
 */
const url = process.env.REDIS_URL ?? "";
const prefix = process.env.QUEUE_PREFIX ?? "";
const queueName = process.env.NOOP_QUEUE ?? "";
const concurrency = Number(process.env.NOOP_CONCURRENCY ?? "8");
const mode = process.env.NOOP_MODE ?? "noop";
if (!url || !prefix || !queueName)
  throw new Error("REDIS_URL, QUEUE_PREFIX and NOOP_QUEUE are required");

const connection = new Redis(url, { maxRetriesPerRequest: null });
const producer = new Redis(url, { maxRetriesPerRequest: null });
const target = new Queue(process.env.NOOP_TARGET_QUEUE ?? "follow-ups", {
  connection: producer,
  prefix,
});
const steps = JSON.parse(process.env.NOOP_STEPS ?? "[]") as number[];

async function passThrough(job: Job): Promise<void> {
  const event = job.data as { id: string };
  const index = Number(event.id.slice(event.id.lastIndexOf("-") + 1));
  const count = steps[index % steps.length] ?? 0;
  if (count === 0) return;
  await target.addBulk(
    Array.from({ length: count }, (_, step) => ({
      name: "follow-up",
      data: { step: `step-${step}`, event },
      opts: {
        jobId: followUpJobId(event.id, `step-${step}`),
        delay: 3_600_000 * (1 + ((index * 7 + step * 997) % 2_184)),
      },
    })),
  );
}

const worker = new Worker(queueName, mode === "passthrough" ? passThrough : async () => undefined, {
  connection,
  prefix,
  concurrency,
  removeOnComplete: mode === "passthrough" ? KEEP_COMPLETED_EVENTS : KEEP_COMPLETED,
  removeOnFail: KEEP_FAILED,
});
await worker.waitUntilReady();
console.log("noop worker ready");
process.once("SIGTERM", () => {
  void worker
    .close()
    .then(() => target.close())
    .then(() => Promise.all([connection.quit(), producer.quit()]))
    .then(() => process.exit(0));
});
