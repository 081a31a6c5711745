import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import { TERMINAL_STATES } from "../../src/store/step-record.js";
import { purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { spawnWorker, type WorkerProcess } from "../support/worker-process.js";

let pipeline: PipelineHarness | undefined;
const workers: WorkerProcess[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.kill9()));
  await pipeline?.close();
  pipeline = undefined;
});

const BURST = 40;
const CONCURRENCY = 4;

it("ends every step sent exactly once or with a recorded reason when workers are killed mid-burst", {
  timeout: 90_000,
}, async () => {
  pipeline = await startPipeline("crash", {
    startWorker: false,
    env: { DELIVERY_CONCURRENCY: String(CONCURRENCY), INTAKE_CONCURRENCY: "4" },
  });
  const p = pipeline;
  const occurredAt =
    DateTime.utc().minus({ hours: 2 }).startOf("second").toISO({ suppressMilliseconds: true }) ??
    "";
  const ids = Array.from({ length: BURST }, (_, i) => `evt-crash-${i}`);
  for (const id of ids) {
    await p.publisher.publish(
      purchaseInput({
        id,
        orderId: `ord-${id}`,
        occurredAt,
        customer: { id: `cus-${id}`, email: `${id}@example.com` },
      }) as never,
    );
  }

  // Two crashes while the burst is being delivered, then a worker that is left to finish.
  for (const threshold of [5, 15]) {
    const worker = spawnWorker(p.envVars);
    workers.push(worker);
    await p.sink.waitForMessages(threshold, 30_000);
    await worker.kill9();
  }
  workers.push(spawnWorker(p.envVars), spawnWorker(p.envVars));

  const records = await eventually(
    async () => {
      const found = await Promise.all(
        ids.map(async (id) =>
          (await p.store.stepRecords(id, ["thank-you.thank-you"])).get("thank-you.thank-you"),
        ),
      );
      return found.every((r) => r && TERMINAL_STATES.has(r.state)) ? found : undefined;
    },
    "every step to reach a terminal state",
    60_000,
  );

  const byRecipient = new Map<string, number>();
  for (const message of p.sink.messages) {
    const to = message.envelope.rcptTo[0] ?? "";
    byRecipient.set(to, (byRecipient.get(to) ?? 0) + 1);
  }
  const takeovers = records.reduce((sum, r) => sum + (r?.takeovers ?? 0), 0);
  const duplicates = [...byRecipient.values()].reduce((sum, n) => sum + n - 1, 0);
  for (const [index, record] of records.entries()) {
    expect(record?.state, `step of ${ids[index]}`).toBe("sent");
    expect(
      byRecipient.get(`${ids[index]}@example.com`),
      `mails to ${ids[index]}`,
    ).toBeGreaterThanOrEqual(1);
  }
  // A duplicate is only possible where a send was cut off mid-flight, and each is counted.
  expect(duplicates).toBeLessThanOrEqual(takeovers);
  expect(duplicates).toBeLessThanOrEqual(2 * CONCURRENCY);
});
