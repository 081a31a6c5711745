import { DateTime, IANAZone } from "luxon";
import { renderReportCsv, renderReportJson, renderReportText } from "../reports/render-report.js";
import { periodFromDates, reportDatesProblem } from "../reports/report-period.js";
import { loadRulesForCommand } from "./check-command.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";
import { withOperatorTools } from "./operator-session.js";

export interface ReportOptions {
  readonly config: string;
  readonly since?: string;
  readonly until?: string;
  readonly timezone?: string;
  readonly format: string;
  /** Same as `--format json`. */
  readonly json?: boolean;
}

const FORMATS = ["text", "json", "csv"] as const;

/**
 * `followups report`: the owners' report model for any period, from the ledger in Redis. Dates
 * are local dates in the zone (default: the rules' default zone); until is exclusive and defaults
 * to today, since to seven days before until.
 */
export async function runReport(given: ReportOptions, io: CommandIo): Promise<number> {
  if (given.json && given.format !== "text" && given.format !== "json")
    throw new CommandError(`--json and --format ${given.format} ask for two formats`, EXIT.usage);
  const options = given.json ? { ...given, format: "json" } : given;
  if (!(FORMATS as readonly string[]).includes(options.format)) {
    throw new CommandError(
      `--format: expected text, json or csv, got ${JSON.stringify(options.format)}`,
      EXIT.usage,
    );
  }
  const rules = await loadRulesForCommand(options.config);
  const zone = options.timezone ?? rules.defaults.timezone;
  if (!IANAZone.isValidZone(zone)) {
    throw new CommandError(
      `--timezone: expected an IANA time zone such as Europe/Berlin, got ${JSON.stringify(zone)}`,
      EXIT.usage,
    );
  }
  const until =
    readDate("--until", options.until, zone) ?? DateTime.now().setZone(zone).startOf("day");
  const since = readDate("--since", options.since, zone) ?? until.minus({ days: 7 });
  if (since >= until) {
    // Without --until the period ends yesterday: say so, and how to take today in.
    const why =
      options.until === undefined
        ? `, which is ${until.toISODate()} when not given (today: the period ends the day before --until); to include ${since.toISODate()}, give --until ${since.plus({ days: 1 }).toISODate()}`
        : "";
    throw new CommandError(`--since must be before --until${why}`, EXIT.usage);
  }
  const span = reportDatesProblem(since.toISODate() ?? "", until.toISODate() ?? "");
  if (span) throw new CommandError(`--since to --until: ${span}`, EXIT.usage);
  const period = periodFromDates(since.toISODate() ?? "", until.toISODate() ?? "", zone);
  const model = await withOperatorTools(
    { loaded: rules },
    (tools) => tools.report(period, "operator"),
    { readOnly: true },
  );
  const render = { text: renderReportText, json: renderReportJson, csv: renderReportCsv }[
    options.format as (typeof FORMATS)[number]
  ];
  io.out(render(model));
  const { count } = model.unreadable;
  if (count > 0)
    io.err(
      `warning: ${count} ${count === 1 ? "purchase" : "purchases"} of the period's replies cannot be read (damaged, or a newer version's format): their replies are shown without order and name\n`,
    );
  return EXIT.ok;
}

function readDate(flag: string, text: string | undefined, zone: string): DateTime | undefined {
  if (text === undefined) return undefined;
  const date = DateTime.fromISO(text, { zone });
  if (!date.isValid || !/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    throw new CommandError(
      `${flag}: expected a date YYYY-MM-DD, got ${JSON.stringify(text)}`,
      EXIT.usage,
    );
  }
  return date.startOf("day");
}
