import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { CommandError } from "../../src/cli/io.js";
import { withOperatorTools } from "../../src/cli/operator-session.js";
import { StoreKeys } from "../../src/store/keys.js";
import {
  markOperatorCommand,
  OperatorCommandLapsed,
  operatorCommandsRefusal,
} from "../../src/store/operator-commands.js";
import { createRedisClient } from "../../src/store/redis-client.js";
import { scanKeys } from "../../src/store/reshard-store.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  type PipelineHarness,
  startPipeline,
  stepRecordOf,
} from "../support/pipeline-harness.js";

/**
 * A writing operator command's mark (`{…global}:fu:command:<id>`) keeps `followups reshard` and
 * `migrate` from starting. A command held up past what its mark is sure to last (a stalled
 * process, a paused machine) stops before it writes again, since one of them may have begun.
 * The mark's clock is a test's own: nothing here waits 30 s.
 */

let pipeline: PipelineHarness | undefined;
const savedEnv = { ...process.env };
afterEach(async () => {
  process.env = { ...savedEnv };
  await pipeline?.close();
  pipeline = undefined;
});

const CHECK_IN = "big-ticket.check-in";

async function commandMarks(p: PipelineHarness): Promise<string[]> {
  const marks: string[] = [];
  for await (const batch of scanKeys(p.redis, new StoreKeys(p.prefix).operatorCommands()))
    marks.push(...batch);
  return marks;
}

async function bought(label: string): Promise<PipelineHarness> {
  pipeline = await startPipeline(label);
  const p = pipeline;
  await p.publisher.publish(
    purchaseInput({
      id: "evt-mark",
      orderId: "ord-mark",
      occurredAt: DateTime.utc().toISO() ?? "",
      customer: { id: "cus-mark" },
      items: [item("televisions", "899.00", { name: "OLED TV" })],
    }) as never,
  );
  await eventProcessed(p, "evt-mark");
  expect((await stepRecordOf(p, "evt-mark", CHECK_IN))?.state).toBe("scheduled");
  process.env = { ...savedEnv, ...p.commandEnv };
  return p;
}

describe("an operator command whose mark may have lapsed", () => {
  it("stops before writing again when it was held up past what its mark is sure to last, with an error that says what to do", async () => {
    const p = await bought("mark-stalled");
    let clock = 0;
    const cancelled = withOperatorTools(
      p.configDir,
      async (tools) => {
        expect(await commandMarks(p)).toHaveLength(1);
        // The command stalls 25 s (an event loop blocked: no renewal ran). Its mark (30 s) may
        // have run out: here it did, and a reshard found no command at work.
        clock += 25_000;
        for (const key of await commandMarks(p)) await p.redis.del(key);
        expect(await operatorCommandsRefusal(p.redis, p.prefix)).toBeUndefined();
        return tools.cancel({ step: `evt-mark/${CHECK_IN}` }, { by: "alice" });
      },
      { mark: { clock: () => clock } },
    );
    const refused = await cancelled.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(CommandError);
    expect(refused).toMatchObject({ code: 1 });
    expect((refused as Error).message).toMatch(
      /^this command's mark in Redis \(.*fu:command:[0-9a-f-]+\), which keeps `followups reshard` and `followups migrate` from starting while it runs, was last renewed 25 s ago and lasts 30 s \(the command was held up: its process stalled or its machine paused, or Redis did not answer\): one of them may have begun since, so the command stopped before writing anything more\. What it did before is done; run it again \(it refuses while a reshard or a move is under way, and does what is left\)$/,
    );
    // Nothing was written: the step is still pending, no audit entry, no mark left behind.
    expect((await stepRecordOf(p, "evt-mark", CHECK_IN))?.state).toBe("scheduled");
    expect(await p.redis.zcard(new StoreKeys(p.prefix).auditTrail())).toBe(0);
    expect(await commandMarks(p)).toEqual([]);
  });

  it("goes on when it was held up for less than that", async () => {
    const p = await bought("mark-short-stall");
    let clock = 0;
    const result = await withOperatorTools(
      p.configDir,
      async (tools) => {
        clock += 19_000;
        return tools.cancel({ step: `evt-mark/${CHECK_IN}` }, { by: "alice" });
      },
      { mark: { clock: () => clock } },
    );
    expect(result.cancelled).toEqual([`evt-mark/${CHECK_IN}`]);
    expect((await stepRecordOf(p, "evt-mark", CHECK_IN))?.state).toBe("cancelled");
  });

  it("refuses everything on its connection once a renewal finds the mark gone, a pipeline as a whole, and leaves the connection as it was once released", async () => {
    const p = await bought("mark-gone");
    // The command's own connection, as commandRedis opens one.
    const redis = createRedisClient(
      p.commandEnv.REDIS_URL ?? "",
      p.commandEnv.REDIS_CLUSTER === "true",
    );
    try {
      const mark = await markOperatorCommand(redis, p.prefix, Date.now, { clock: () => 0 });
      const [key] = await commandMarks(p);
      expect(key).toBeDefined();
      await redis.set(`${p.prefix}:mark-probe`, "before");
      expect(mark.lapsed()).toBeUndefined();
      // Taken away (it ran out while the command was away, say): the next renewal finds it gone.
      await p.redis.del(key ?? "");
      await mark.renew();
      expect(mark.lapsed()).toBeInstanceOf(OperatorCommandLapsed);
      expect(mark.lapsed()?.message).toContain(
        "was gone when it was renewed (it ran out, or was deleted)",
      );
      await expect(redis.set(`${p.prefix}:mark-probe`, "after")).rejects.toBeInstanceOf(
        OperatorCommandLapsed,
      );
      const replies = await redis
        .pipeline()
        .set(`${p.prefix}:mark-probe`, "piped")
        .set(`${p.prefix}:mark-other`, "piped")
        .exec();
      expect(replies?.map(([error]: [Error | null, unknown]) => error)).toEqual([
        mark.lapsed(),
        mark.lapsed(),
      ]);
      expect(await p.redis.get(`${p.prefix}:mark-probe`)).toBe("before");
      expect(await p.redis.exists(`${p.prefix}:mark-other`)).toBe(0);
      // Released, the connection is as it was.
      await mark.release();
      expect(await redis.get(`${p.prefix}:mark-probe`)).toBe("before");
    } finally {
      redis.disconnect();
    }
  });

  it("two marks on one connection released out of order: the one still held guards it, and none once both are released", async () => {
    const p = await bought("op-mark-two");
    const redis = createRedisClient(
      p.commandEnv.REDIS_URL ?? "",
      p.commandEnv.REDIS_CLUSTER === "true",
    );
    const probe = `${p.prefix}:mark-probe`;
    try {
      let first = 0;
      let second = 0;
      const a = await markOperatorCommand(redis, p.prefix, Date.now, { clock: () => first });
      const b = await markOperatorCommand(redis, p.prefix, Date.now, { clock: () => second });
      await a.release();
      // The second mark, still held, lapses: its connection refuses the write.
      second += 25_000;
      await expect(redis.set(probe, "after b lapsed")).rejects.toBeInstanceOf(
        OperatorCommandLapsed,
      );
      expect(b.lapsed()).toBeInstanceOf(OperatorCommandLapsed);
      await b.release();
      // Both released: the first mark's clock (its renewals stopped) no longer guards anything.
      first += 25_000;
      expect(await redis.set(probe, "after both")).toBe("OK");
      expect(a.lapsed()).toBeUndefined();
      expect(Object.hasOwn(redis, "sendCommand")).toBe(false);
      expect(await p.redis.get(probe)).toBe("after both");
    } finally {
      redis.disconnect();
    }
  });
});
