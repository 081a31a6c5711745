import { DateTime } from "luxon";
import { runReport } from "../../src/cli/report-command.js";
import type { ReportModel } from "../../src/reports/report-model.js";
import { captureIo } from "./capture-io.js";
import type { PipelineHarness } from "./pipeline-harness.js";

/** Today's owners' report of a pipeline (London's day), as `followups report --format json` prints it. */
export async function todaysReport(p: PipelineHarness): Promise<ReportModel> {
  Object.assign(process.env, p.commandEnv);
  const today = DateTime.now().setZone("Europe/London");
  const io = captureIo();
  await runReport(
    {
      config: p.configDir,
      since: today.toISODate() ?? "",
      until: today.plus({ days: 1 }).toISODate() ?? "",
      timezone: "Europe/London",
      format: "json",
    },
    io,
  );
  return JSON.parse(io.output()) as ReportModel;
}
