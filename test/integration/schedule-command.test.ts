import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runSchedule } from "../../src/cli/schedule-command.js";
import type { ScheduleDay } from "../../src/reports/pending-schedule.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

async function scheduleJson(p: PipelineHarness, days: string): Promise<ScheduleDay[]> {
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  expect(await runSchedule({ config: p.configDir, days, json: true }, io)).toBe(0);
  return (JSON.parse(io.output()) as { days: ScheduleDay[] }).days;
}

describe("followups schedule", () => {
  it("shows what is coming by local date, channel and rule, and forgets what was cancelled", async () => {
    pipeline = await startPipeline("schedule-cli", { env: { PROMOTE_HORIZON_MS: "60000" } });
    const p = pipeline;
    const now = DateTime.utc().startOf("second");
    const tv = (id: string) =>
      purchaseInput({
        id,
        orderId: `ord-${id}`,
        occurredAt: now.toISO({ suppressMilliseconds: true }) ?? "",
        // A customer each: one customer's purchases within the hour share one thank-you.
        customer: { id: `cus-${id}` },
        items: [item("televisions", "899.00")],
      });
    for (const id of ["evt-a", "evt-b"]) await p.publisher.publish(tv(id) as never);
    await eventually(async () => {
      const records = await p.store.allStepRecords("evt-b");
      return records.size === 2 ? true : undefined;
    }, "both purchases to be planned");

    // The thank-yous are due within the hour (today or tomorrow in London); the check-ins in
    // three months, beyond 30 days.
    const soon = await scheduleJson(p, "30");
    expect(soon.reduce((sum, row) => sum + row.count, 0)).toBe(2);
    expect(soon.every((row) => row.channel === "email" && row.ruleId === "big-ticket")).toBe(true);
    const later = await scheduleJson(p, "120");
    const checkIns = later.filter((row) => row.channel === "sms");
    const dueDate = now.setZone("Europe/London").plus({ months: 3 }).toISODate();
    expect(checkIns).toEqual([{ date: dueDate, channel: "sms", ruleId: "big-ticket", count: 2 }]);

    // A full refund cancels both steps of evt-a: the schedule no longer counts them.
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-a",
      occurredAt: now.toISO({ suppressMilliseconds: true }) ?? "",
      orderId: "ord-evt-a",
    });
    await eventually(async () => {
      const rows = await scheduleJson(p, "120");
      return rows.reduce((sum, row) => sum + row.count, 0) === 2 ? rows : undefined;
    }, "the refunded purchase's steps to leave the schedule");

    const text = captureIo();
    await runSchedule({ config: p.configDir, days: "120" }, text);
    expect(text.output()).toContain("by due date in Europe/London");
    expect(text.output()).toContain("2 pending in these 120 days.");
    await expect(runSchedule({ config: p.configDir, days: "0" }, captureIo())).rejects.toThrow(
      /--days: expected a whole number from 1 to 400, got "0"/,
    );
    // Written as digits only: not hexadecimal, an exponent or with spaces (Number() takes those).
    for (const days of ["0x10", "1e2", " 5", "5 "])
      await expect(runSchedule({ config: p.configDir, days }, captureIo())).rejects.toMatchObject({
        code: 2,
        message: `--days: expected a whole number from 1 to 400, got ${JSON.stringify(days)}`,
      });
  });
});
