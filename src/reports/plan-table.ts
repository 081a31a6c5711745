import { DateTime } from "luxon";
import type { Plan } from "../domain/planner.js";
import { formatTable } from "./text-table.js";

/** The plan as `followups plan` prints it (and the console shows it): a table per part. */
export function renderPlanTable(plan: Plan): string {
  const head =
    `event ${plan.eventId}, order ${plan.orderId}, customer ${plan.customerId}\n` +
    `time zone ${plan.timezone} (from the ${plan.timezoneSource}), rules version ${plan.rulesVersion}\n\n`;
  const steps =
    plan.steps.length === 0
      ? "No follow-ups planned.\n"
      : formatTable(
          ["STEP", "KIND", "CHANNEL", "TEMPLATE", "DUE (UTC)", "LOCAL DUE"],
          plan.steps.map((s) => [
            s.stepId,
            s.kind,
            s.fallbackOf ? `${s.channel} if ${s.fallbackOf} is not answered` : s.channel,
            s.template,
            s.dueAt,
            DateTime.fromISO(s.localDueAt, { setZone: true })
              .setZone(plan.timezone)
              .toFormat("ccc d LLL yyyy HH:mm ZZZZ"),
          ]),
        );
  const skipped =
    plan.skipped.length === 0
      ? ""
      : `\nSkipped:\n${formatTable(
          ["RULE", "KIND", "REASON"],
          plan.skipped.map((s) => [s.ruleId ?? "-", s.kind ?? "-", s.reason]),
        )}`;
  return head + steps + skipped;
}
