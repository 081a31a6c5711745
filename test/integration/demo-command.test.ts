import { afterEach, describe, expect, it } from "vitest";
import { runDemo } from "../../src/cli/demo-command.js";
import { StoreKeys } from "../../src/store/keys.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { captureIo } from "../support/capture-io.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

describe("followups demo", () => {
  it("has a worker drop the addresses recorded by workers gone without stopping", async () => {
    pipeline = await startPipeline("demo-gone", { startWorker: false });
    const p = pipeline;
    const key = new StoreKeys(p.prefix).httpAddresses();
    // Workers killed (no stop) on ports of their choosing: their entries ran out long ago.
    const gone = ["http://127.0.0.1:40001", "http://127.0.0.1:40002"];
    for (const address of gone) await p.redis.hset(key, address, String(Date.now() - 60_000));
    const worker = await p.startWorker();
    const held = await eventually(async () => {
      const now = await p.redis.hgetall(key);
      return worker.httpAddress && now[worker.httpAddress] && !now[gone[0] ?? ""] ? now : undefined;
    }, "the worker to record its address and drop the ones run out");
    expect(Object.keys(held)).toEqual([worker.httpAddress]);
  });

  it("publishes fresh samples, some due at once, and says what happens and where to look", async () => {
    pipeline = await startPipeline("demo");
    const p = pipeline;
    Object.assign(process.env, {
      ...p.commandEnv,
      OUTBOX_DIR: p.outboxDir,
      ADMIN_TOKENS: "alice:alice-token-0123456789",
    });
    const io = captureIo();
    expect(await runDemo({ config: p.configDir }, io)).toBe(0);
    const out = io.output();
    const run = /\(run ([0-9a-f]{6})\)/.exec(out)?.[1] ?? "";
    expect(out).toContain("Published 8 demo events");
    expect(out).toContain("big-ticket.check-in");
    expect(out).toContain("No follow-ups planned.");
    expect(out).toContain(`followups customer demo-${run}-ana`);
    // The console where the running worker listens (HTTP_PORT 0: a port of its choosing), not
    // HTTP_PORT as this command's environment has it (unset here: 8080).
    const listening = p.worker?.httpAddress ?? "";
    expect(listening).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(listening).not.toMatch(/:8080$/);
    expect(out).toContain(`  the console: ${listening}/console `);
    // The worker has no ADMIN_TOKENS: its console is off, whatever this command's environment has.
    expect(out).toContain("off on that worker: set ADMIN_TOKENS in the worker's environment");

    // Ana's check-in text, the laptop offer and Priya's thank-you go out at once.
    await p.twilio.waitForMessages(1);
    await p.sink.waitForMessages(2);
    // Sam's sofa was refunded: nothing pending is left for it. The intake may take the refund
    // first (several events at once): then nothing was planned at all.
    for (const name of ["sam-purchase", "sam-refund"]) {
      await eventually(async () => {
        const state = await (await p.events.getJob(`demo-${run}-${name}`))?.getState();
        return state === "completed" ? true : undefined;
      }, `the ${name} event to be processed`);
    }
    const states = [...(await p.store.allStepRecords(`demo-${run}-sam-purchase`)).values()].map(
      (r) => r.state,
    );
    expect(states.filter((s) => s !== "cancelled")).toEqual([]);
    // Sam's history lives in Sam's shard (FOLLOW_UP_SHARDS on the cluster).
    const { history } = p.stores.of(p.shardOfCustomer(`demo-${run}-sam`));
    const [sofa] = await history.purchasesOf(`demo-${run}-sam`);
    // Planned before the refund came: both follow-ups cancelled; taken after it: no step at all.
    if (sofa) expect(states).toEqual(["cancelled", "cancelled"]);
    else expect(states).toEqual([]);
    // Lee texted STOP.
    const suppressions = new SuppressionList(p.redis, p.prefix);
    await eventually(
      async () =>
        (await suppressions.isSuppressed("sms", { customerId: `demo-${run}-lee` }))
          ? true
          : undefined,
      "Lee's opt-out",
    );

    // A second run publishes new events, not repeats.
    const again = captureIo();
    expect(await runDemo({ config: p.configDir }, again)).toBe(0);
    expect(again.output()).not.toContain(`run ${run}`);
  });

  it("says the console is on, with the worker's ADMIN_TOKENS, when the worker it found has it on and this command's environment has no ADMIN_TOKENS", async () => {
    pipeline = await startPipeline("demo-console-on", {
      env: { ADMIN_TOKENS: "alice:alice-token-0123456789" },
    });
    const p = pipeline;
    Object.assign(process.env, { ...p.commandEnv, OUTBOX_DIR: p.outboxDir });
    delete process.env.ADMIN_TOKENS;
    const io = captureIo();
    expect(await runDemo({ config: p.configDir }, io)).toBe(0);
    const out = io.output();
    expect(out).toContain(
      `  the console: ${p.worker?.httpAddress}/console (sign in with one of the worker's ADMIN_TOKENS tokens)`,
    );
    expect(out).not.toContain("switch it on");
  });
});
